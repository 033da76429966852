"""Calibrate the tier table from imported on-device measurements.

Two corrections, both written as data that other stages read:

1. **Per-tier latency scales** (``device_tiers/calibration.yaml``). The search's latency model
   predicts ``predicted_ms = scale_tier x predicted_local_ms(arch, input_hw)``, where the
   local prediction is this machine's LiteRT time and the scale starts from a roofline ratio.
   Phones measure ``measured_ms``. On log latency the model is linear with one unknown per
   tier, ``log(measured) = log(scale_tier) + log(predicted_local)``, so least squares gives
   ``log(scale_tier) = mean(log(measured) - log(predicted_local))`` over that tier's devices:
   the geometric mean of the ratios. Log space is the right one because the errors are
   multiplicative (a 2x-slow phone is as wrong at 5 ms as at 50 ms). The fit error is
   reported before (current scales) and after, as MAPE (%) and RMSE of log latency. A
   measurement counts for the tier of the artifact that ran (its precision and delegate set
   the speed the scale stands for); one of unknown tier counts for the device's tier.

2. **Tier moves** (``device_tiers/overrides.yaml``, applied by the classifier before its own
   rules). A device's measured latency is compared with its tier's frame budget
   (1000 / target_fps). Measurements of another tier's model are rescaled by the MAC budgets
   (same device, latency ~ MACs). A device that misses its budget by more than ``margin``
   moves down (to the first smaller tier whose model fits); one that beats it by more than
   ``margin`` moves up while the next larger tier's model would also fit with that margin.
   The two thresholds differ, so a moved device stays put on the next run (no flapping).
   Every move carries its numbers in ``reason`` so a reviewer can accept or revert it.

3. **Per-device latency models** (``device_tiers/device_latency.json``), fitted on the
   imported AI Hub profiles of published networks (:mod:`mobile_pipeline.bench.device_fit`).
   The search's latency model takes a tier's latency from them when a measured phone belongs
   to the tier. Those measurements time other people's networks, so they take no part in 1
   or 2.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mobile_pipeline.bench.measurement import NOT_A_PHONE_SOURCES, Measurement, load_measurements
from mobile_pipeline.utils.atomic import atomic_write_text
from mobile_pipeline.utils.paths import device_tiers_dir

CALIBRATION_FILENAME = "calibration.yaml"
OVERRIDES_FILENAME = "overrides.yaml"
DEFAULT_MARGIN = 0.10


class CalibrationError(RuntimeError):
    """Calibration cannot run; the message says what is missing and how to get it."""


@dataclass(frozen=True)
class Sample:
    """One measurement reduced to what the fit needs."""

    tier: str
    predicted_local_ms: float
    measured_ms: float
    label: str = ""


@dataclass
class FitError:
    """Fit error of predictions against measurements (None when there is no prediction)."""

    mape_pct: float | None
    rmse_log: float | None


@dataclass
class TierFit:
    """Before/after of one tier's scale."""

    tier: str
    n_measurements: int
    scale_before: float | None
    scale_after: float
    error_before: FitError
    error_after: FitError


@dataclass
class TierMove:
    """A device that measured out of its tier's frame budget."""

    soc_model: str
    manufacturer: str | None
    from_tier: str
    to_tier: str
    measured_ms: float
    budget_ms: float
    reason: str
    n_measurements: int


@dataclass
class CalibrationReport:
    fits: dict[str, TierFit] = field(default_factory=dict)
    moves: list[TierMove] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    device_table: Any = None  # DeviceLatencyTable fitted on AI Hub profiles, when there were some

    def to_dict(self) -> dict[str, Any]:
        return {"fits": {k: asdict(v) for k, v in self.fits.items()}, "moves": [asdict(m) for m in self.moves],
                "skipped": list(self.skipped), "written": [str(p) for p in self.written],
                "device_fits": [f.to_dict() for f in self.device_table.fits] if self.device_table else []}

    def summary(self) -> str:
        """Human-readable table of the fit and the moves."""
        lines: list[str] = []
        if self.device_table is not None:
            from mobile_pipeline.bench.device_fit import summary_rows

            lines += ["device latency models (AI Hub profiles, leave-one-model-out):", *summary_rows(self.device_table), ""]
        lines += ["tier   n  scale before -> after   MAPE before -> after   RMSE(log) before -> after"]
        for fit in self.fits.values():
            lines.append(
                f"{fit.tier:<5} {fit.n_measurements:>2}  {_fmt(fit.scale_before, '.3f'):>12} -> {fit.scale_after:<7.3f}"
                f"  {_fmt(fit.error_before.mape_pct, '.1f'):>9}% -> {_fmt(fit.error_after.mape_pct, '.1f')}%"
                f"   {_fmt(fit.error_before.rmse_log, '.3f'):>10} -> {_fmt(fit.error_after.rmse_log, '.3f')}")
        if not self.fits:
            lines.append("(no tier could be fitted)")
        for move in self.moves:
            lines.append(f"move {move.soc_model} ({move.manufacturer or '?'}): {move.from_tier} -> {move.to_tier}: {move.reason}")
        for note in self.skipped:
            lines.append(f"skipped: {note}")
        return "\n".join(lines)


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


# ------------------------------------------------------------------------------ fitting
def fit_error(samples: list[Sample], scale: float | None) -> FitError:
    """MAPE (%) and RMSE of log latency of ``scale x predicted_local`` vs measured."""
    if scale is None or not samples:
        return FitError(None, None)
    ape = [abs(scale * s.predicted_local_ms - s.measured_ms) / s.measured_ms for s in samples]
    sq = [(math.log(scale * s.predicted_local_ms) - math.log(s.measured_ms)) ** 2 for s in samples]
    return FitError(mape_pct=100.0 * statistics.fmean(ape), rmse_log=math.sqrt(statistics.fmean(sq)))


def fit_tier_scales(samples: list[Sample], prior_scales: Mapping[str, float] | None = None) -> dict[str, TierFit]:
    """Least-squares scale per tier on log latency (closed form: mean of log ratios)."""
    prior_scales = prior_scales or {}
    by_tier: dict[str, list[Sample]] = {}
    for sample in samples:
        if sample.predicted_local_ms <= 0 or sample.measured_ms <= 0:
            raise CalibrationError(f"non-positive latency in sample {sample.label or sample}")
        by_tier.setdefault(sample.tier, []).append(sample)
    fits = {}
    for tier, group in sorted(by_tier.items()):
        log_scale = statistics.fmean(math.log(s.measured_ms) - math.log(s.predicted_local_ms) for s in group)
        scale = math.exp(log_scale)
        before = prior_scales.get(tier)
        fits[tier] = TierFit(tier=tier, n_measurements=len(group), scale_before=before, scale_after=scale,
                             error_before=fit_error(group, before), error_after=fit_error(group, scale))
    return fits


# ------------------------------------------------------------------------------- moves
def _frame_ms(tier: Any) -> float:
    return 1000.0 / float(tier.target_fps)


def plan_tier_moves(measurements: list[Measurement], device_tier: Callable[[Measurement], str],
                    tiers: Mapping[str, Any], margin: float = DEFAULT_MARGIN) -> list[TierMove]:
    """Devices whose measured latency misses or beats their tier's frame budget.

    Args:
        measurements: imported measurements (any artifacts).
        device_tier: the device's current tier (classifier, overrides included).
        tiers: tier table; each entry needs ``target_fps`` and ``budgets.macs``.
        margin: relative tolerance around the frame budget (0.1 = 10%).
    """
    order = sorted(tiers, key=lambda name: tiers[name].budgets.macs)
    by_device: dict[tuple[str, str | None], list[Measurement]] = {}
    for m in measurements:
        by_device.setdefault((m.device.soc_model, m.device.manufacturer), []).append(m)
    moves = []
    for (soc, manufacturer), group in sorted(by_device.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        current = device_tier(group[0])
        if current not in tiers:
            continue
        # Latency this device would need for *its own tier's* model (MACs ratio for other tiers' models).
        own = [m.latency.typical_ms * tiers[current].budgets.macs / tiers[m.tier if m.tier in tiers else current].budgets.macs
               for m in group]
        latency = statistics.median(own)
        target = _choose_tier(latency, current, order, tiers, margin)
        if target == current:
            continue
        budget = _frame_ms(tiers[current])
        estimate = latency * tiers[target].budgets.macs / tiers[current].budgets.macs
        verb = "misses" if latency > budget else "beats"
        reason = (f"measured {latency:.1f} ms per frame (median of {len(group)}, for the {current} tier's model) {verb} "
                  f"the {current} frame budget {budget:.1f} ms ({tiers[current].target_fps:g} fps) by more than "
                  f"{margin:.0%}; the {target} tier's model is estimated at {estimate:.1f} ms (MACs ratio) against "
                  f"its {_frame_ms(tiers[target]):.1f} ms budget")
        moves.append(TierMove(soc_model=soc, manufacturer=manufacturer, from_tier=current, to_tier=target,
                              measured_ms=round(latency, 3), budget_ms=round(budget, 3), reason=reason,
                              n_measurements=len(group)))
    return moves


def _choose_tier(latency: float, current: str, order: list[str], tiers: Mapping[str, Any], margin: float) -> str:
    index = order.index(current)
    base_macs = tiers[current].budgets.macs

    def estimate(name: str) -> float:
        return latency * tiers[name].budgets.macs / base_macs

    if latency > _frame_ms(tiers[current]) * (1 + margin):
        for name in reversed(order[:index]):  # walk down until a smaller model fits
            if estimate(name) <= _frame_ms(tiers[name]) * (1 + margin):
                return name
        return order[0]
    chosen = current
    if latency < _frame_ms(tiers[current]) * (1 - margin):
        for name in order[index + 1:]:  # walk up while the larger model still fits with margin
            if estimate(name) <= _frame_ms(tiers[name]) * (1 - margin):
                chosen = name
            else:
                break
    return chosen


# ------------------------------------------------------------------------------ files
def _read_yaml(path: Path, expected: type) -> Any:
    import yaml

    if not path.is_file():
        return expected()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise CalibrationError(f"{path} is not valid YAML ({err}); fix or delete it") from None
    if data is None:
        return expected()
    if not isinstance(data, expected):
        raise CalibrationError(f"{path}: top level must be a {expected.__name__}, got {type(data).__name__}")
    return data


def _leading_comments(path: Path, default: str) -> str:
    """Keep a file's own header comment (its documentation) when rewriting it."""
    if path.is_file():
        lines = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("#"):
                break
            lines.append(line)
        if lines:
            return "\n".join(lines) + "\n"
    return default


def write_calibration(fits: Mapping[str, TierFit], path: Path, now: datetime) -> Path:
    """Merge fitted tiers into ``calibration.yaml`` (other tiers keep their entries)."""
    import yaml

    data = _read_yaml(path, dict)
    for tier, fit in fits.items():
        data[tier] = {
            "scale": round(fit.scale_after, 6),
            "n_measurements": fit.n_measurements,
            "fit_error_before": _round(asdict(fit.error_before)),
            "fit_error_after": _round(asdict(fit.error_after)),
            "updated": now.isoformat(timespec="seconds"),
        }
    header = _leading_comments(path, (
        "# Per-tier latency scales fitted by `mobile-pipeline bench calibrate` from device_tiers/measurements/.\n"
        "# Read by mobile_pipeline.search.latency (overrides the roofline scales). fit_error: MAPE % and RMSE of\n"
        "# log latency of the predictions, before and after this fit.\n"))
    return atomic_write_text(path, header + yaml.safe_dump(data, sort_keys=True))


def _round(values: dict[str, float | None]) -> dict[str, float | None]:
    return {k: (None if v is None else round(v, 4)) for k, v in values.items()}


def write_overrides(moves: list[TierMove], path: Path, now: datetime, source: str) -> Path:
    """Merge moves into ``overrides.yaml``: one entry per (soc_model, manufacturer), newest wins."""
    import yaml

    entries = _read_yaml(path, list)
    keys = {(m.soc_model.lower(), (m.manufacturer or "").lower()) for m in moves}
    kept = [e for e in entries if not (isinstance(e, dict) and
                                       (str(e.get("soc_model", "")).lower(), str(e.get("manufacturer") or "").lower()) in keys)]
    for move in moves:
        kept.append({"soc_model": move.soc_model, "manufacturer": move.manufacturer, "tier": move.to_tier,
                     "reason": move.reason, "source": source, "date": now.date().isoformat()})
    try:  # never write a file the classifier would reject
        from mobile_pipeline.tiers.overrides import parse_overrides
    except ImportError:
        parse_overrides = None
    if parse_overrides is not None:
        parse_overrides(kept, source=f"{path} (about to be written)")
    header = _leading_comments(path, (
        "# Device -> tier overrides, applied by the tier classifier before the catalog and its rules.\n"
        "# Written by `mobile-pipeline bench calibrate` from measured latency; edit or delete entries to revert.\n"))
    return atomic_write_text(path, header + yaml.safe_dump(kept, sort_keys=False, width=1000))


# --------------------------------------------------------------------------- top level
def _default_device_tier(classify_fn: Callable[[Any], Any] | None) -> Callable[[Measurement], str]:
    """Device tier: explicit ``device.tier`` > classifier (overrides first) > the artifact's tier > cpu."""
    if classify_fn is None:
        try:
            from mobile_pipeline.tiers.classifier import classify as classify_fn
        except ImportError:
            classify_fn = None

    def tier_of(m: Measurement) -> str:
        if m.device.tier:
            return m.device.tier
        if classify_fn is not None:
            from mobile_pipeline.tiers.device_info import DeviceInfo

            info = DeviceInfo(platform=m.device.platform, soc_model=m.device.soc_model, soc_manufacturer=m.device.manufacturer)
            return classify_fn(info).tier
        return m.tier or "cpu"

    return tier_of


def calibrate(measurements: list[Measurement] | None = None, *, latency_model: Any = None,
              tiers: Mapping[str, Any] | None = None, device_tier: Callable[[Measurement], str] | None = None,
              margin: float = DEFAULT_MARGIN, moves: bool = True, dry_run: bool = False, measurements_dir: Path | None = None,
              calibration_path: Path | None = None, overrides_path: Path | None = None,
              device_latency_path: Path | None = None, now: datetime | None = None) -> CalibrationReport:
    """Refit tier scales and plan tier moves from measurements; write both unless ``dry_run``.

    Args:
        measurements: defaults to everything under ``device_tiers/measurements/``.
        latency_model: object with ``predict_local_ms(arch, input_hw)`` and ``tier_scales``
            (default: ``LatencyModel.load()``).
        tiers: tier table (default ``load_tier_table()``).
        device_tier: measurement -> the device's current tier (default: explicit tag, then the
            classifier with its overrides).
        margin: relative tolerance around the frame budget for moves.
        moves: plan tier moves (False: only refit the scales).
        dry_run: compute and report, write nothing.
        device_latency_path: where the per-device latency models go (default
            ``device_tiers/device_latency.json``).
    """
    now = now or datetime.now(timezone.utc)
    if measurements is None:
        measurements = [m for _, m in load_measurements(measurements_dir)]
    # A Core ML parity run on a Mac is timed too, but a Mac is not a phone of any tier.
    measurements = [m for m in measurements if m.source not in NOT_A_PHONE_SOURCES]
    published = [m for m in measurements if m.reference_model]
    measurements = [m for m in measurements if not m.reference_model]
    if not measurements and not published:
        raise CalibrationError("no measurements to calibrate from; import some with "
                               "`mobile-pipeline bench import FILE --soc SOC_MODEL` (or an AI Hub perf.yaml) first")
    report = CalibrationReport()
    if published:
        from mobile_pipeline.bench.device_fit import fit_device_models

        report.device_table, notes = fit_device_models(published)
        report.skipped += notes
        if not dry_run and report.device_table.fits:
            report.written.append(report.device_table.write(device_latency_path))
    if not measurements:
        report.skipped.append("no measurements of our own artifacts: tier scales and tier moves left as they are")
        return report
    if tiers is None:
        from mobile_pipeline.tiers.table import load_tier_table

        tiers = load_tier_table()
    if latency_model is None:
        from mobile_pipeline.search.latency import LatencyModel

        latency_model = LatencyModel.load()
    device_tier = device_tier or _default_device_tier(None)

    report.moves = plan_tier_moves(measurements, device_tier, tiers, margin) if moves else []
    moved = {(m.soc_model, m.manufacturer): m.to_tier for m in report.moves}
    samples = []
    for m in measurements:
        label = f"{m.device.soc_model}/{m.artifact}"
        hw = m.input_hw or ((tiers[m.tier].resolution,) * 2 if m.tier in tiers else None)
        if not m.arch or not hw:
            report.skipped.append(f"{label}: no {'arch' if not m.arch else 'input size'}; re-import with --arch ARCH_STRING "
                                  "or --artifact PATH_TO_ARTIFACT (its report has both)")
            continue
        # The scale belongs to the tier whose model and delegate ran (precision and delegate
        # set the speed); a measurement of unknown tier counts for the device's (moved) tier.
        tier = m.tier if m.tier in tiers else moved.get((m.device.soc_model, m.device.manufacturer)) or device_tier(m)
        try:
            predicted = float(latency_model.predict_local_ms(m.arch, tuple(hw)))
        except ValueError as err:  # SpecError for a malformed arch string: skip this one, keep the rest
            report.skipped.append(f"{label}: arch {m.arch!r} cannot be predicted ({err}); fix it and re-import")
            continue
        samples.append(Sample(tier=tier, predicted_local_ms=predicted, measured_ms=m.latency.typical_ms, label=label))
    report.fits = fit_tier_scales(samples, dict(getattr(latency_model, "tier_scales", {}) or {}))

    if not dry_run:
        root = device_tiers_dir()
        if report.fits:
            report.written.append(write_calibration(report.fits, calibration_path or root / CALIBRATION_FILENAME, now))
        if report.moves:
            source = f"bench calibrate {now.date().isoformat()} ({len(measurements)} measurements)"
            report.written.append(write_overrides(report.moves, overrides_path or root / OVERRIDES_FILENAME, now, source))
    return report

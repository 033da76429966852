"""Latency model: a per-op lookup table measured here, summed per network, scaled per tier.

FBNet-style: a network's latency is predicted as the sum of its ops' latencies, each
measured once on this machine with the LiteRT interpreter (1 thread) and stored in
``device_tiers/latency_lut.json`` (data, committed). The op list comes from tracing the real
generator (:mod:`mobile_pipeline.search.ops`), so the model follows whatever the layers do.

Each single-op model also pays the interpreter's fixed per-invoke cost; a network pays it
once, so the prediction is ``overhead + sum(entry - overhead)``. An optional linear
correction (fitted by ``benchmarks/bench_latency_model.py`` on a held-out split and stored in
the LUT) absorbs what per-op sums miss (e.g. cache effects between ops).

Tier scales: a tier's reference device is described by a roofline (GFLOP/s, GB/s) in the
tier table; this machine's roofline is measured when the LUT is built. The scale is the
ratio of the two rooflines' times for the reference network's ops, with the tier's element
size (int8 = 1 byte, fp16 = 2, fp32 = 4). A roofline scale is labelled
``uncalibrated (datasheet)`` wherever its predictions are shown.

A tier that a measured phone belongs to instead takes its latency from that phone's fitted
model (:mod:`mobile_pipeline.search.device_latency`, ``device_tiers/device_latency.json``,
fitted on Qualcomm AI Hub profiles): the tier's reference SoC when it was measured, else the
slowest measured phone of the tier (the budget then holds on every measured member). Its
``tier_scales`` entry becomes that model's time over the LUT time of the reference network,
for display and for calibration's prior; ``predict_ms`` uses the fitted model itself, so the
search ranks architectures the NPU's way. Bench calibration of our own artifacts writes
measured scales to ``device_tiers/calibration.yaml``, which override both.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobile_pipeline.nets.spec import ArchSpec
from mobile_pipeline.search.device_latency import (
    FITTED,
    UNCALIBRATED,
    DeviceFit,
    DeviceLatencyTable,
    op_features,
    tier_target,
)
from mobile_pipeline.search.ops import Op
from mobile_pipeline.utils.paths import device_tiers_dir

_log = logging.getLogger(__name__)

LUT_VERSION = 1
LUT_FILENAME = "latency_lut.json"
CALIBRATION_FILENAME = "calibration.yaml"
CALIBRATED = "calibrated (own measurements)"


class LatencyModelError(RuntimeError):
    """The LUT is missing or unusable; the message says how to (re)build it."""


def default_lut_path() -> Path:
    return device_tiers_dir() / LUT_FILENAME


def spec_ops(spec: ArchSpec | str, input_hw: tuple[int, int]) -> list[Op]:
    """Runtime ops of the generator built from ``spec`` (traced on the meta device)."""
    import torch

    from mobile_pipeline.nets.generator import build_generator
    from mobile_pipeline.search.ops import trace_ops

    spec = ArchSpec.from_string(spec) if isinstance(spec, str) else spec
    try:
        with torch.device("meta"):
            model = build_generator(spec)
    except Exception:  # some init code needs real tensors; build on CPU, trace a meta copy
        model = build_generator(spec)
    ops, unknown = trace_ops(model, input_hw)
    if unknown:
        _log.warning("latency model: ops without LUT kind ignored for %s: %s", spec.to_string(), sorted(set(unknown)))
    return ops


def op_bytes(op: Op, element_bytes: int) -> int:
    """Activation + weight traffic of one op (roofline's memory side)."""
    c, h, w = op.shape
    if op.kind in ("conv", "deconv"):
        s = op.attr("s")
        oh, ow = (op.attr("oh"), op.attr("ow")) if op.kind == "deconv" else (h // s, w // s)
        cout, k, g = op.attr("cout"), op.attr("k"), op.attr("g")
        return element_bytes * (c * h * w + cout * oh * ow + cout * (c // g) * k * k)
    if op.kind in ("add", "mul") and not op.attr("scalar"):
        return element_bytes * 3 * c * h * w
    if op.kind.startswith("resize"):
        return element_bytes * c * (h * w + op.attr("oh") * op.attr("ow"))
    return element_bytes * 2 * c * h * w


def roofline_ms(ops: list[Op], gflops: float, bandwidth_gbs: float, element_bytes: int) -> float:
    """Sum over ops of max(compute time, memory time): the classic per-op roofline."""
    total = 0.0
    for op in ops:
        flops = 2.0 * op.macs
        total += max(flops / (gflops * 1e9), op_bytes(op, element_bytes) / (bandwidth_gbs * 1e9))
    return total * 1e3


@dataclass
class LatencyModel:
    """Predicts generator latency from the LUT; see the module docstring for the method."""

    entries: dict[str, float]
    overhead_ms: float
    machine: dict[str, float]
    reference_ops: list[str] = field(default_factory=list)
    correction: dict[str, float] = field(default_factory=lambda: {"intercept_ms": 0.0, "slope": 1.0})
    tier_scales: dict[str, float] = field(default_factory=dict)
    scale_sources: dict[str, str] = field(default_factory=dict)
    device_fits: dict[str, DeviceFit] = field(default_factory=dict)
    device_table: DeviceLatencyTable = field(default_factory=DeviceLatencyTable)
    path: Path | None = None
    fallbacks: int = 0
    _ops_cache: dict[tuple[str, tuple[int, int]], list[Op]] = field(default_factory=dict, repr=False)
    _features_cache: dict[tuple[str, tuple[int, int], int], tuple[float, ...]] = field(default_factory=dict, repr=False)
    _extrapolated: dict[str, float] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: Path | None = None, *, tiers: dict[str, Any] | None = None,
             calibration_path: Path | None = None, device_latency_path: Path | None = None) -> "LatencyModel":
        """Load the LUT and compute the tier scales.

        Args:
            path: LUT JSON (default ``device_tiers/latency_lut.json``).
            tiers: tier table (``load_tier_table()``); loaded on demand when None.
            calibration_path: measured scales (default ``device_tiers/calibration.yaml``); used
                when the file exists.
            device_latency_path: fitted device models (default ``device_tiers/device_latency.json``);
                used when the file exists.
        """
        path = Path(path) if path else default_lut_path()
        if not path.is_file():
            raise LatencyModelError(
                f"latency LUT not found at {path}; build it with `python scripts/build_latency_lut.py` "
                "or `mobile-pipeline search --build-lut`")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise LatencyModelError(f"latency LUT {path} is not valid JSON ({err}); rebuild it") from None
        if data.get("version") != LUT_VERSION:
            raise LatencyModelError(f"latency LUT {path} has version {data.get('version')}, expected {LUT_VERSION}; rebuild it")
        entries = {key: float(item["ms"]) for key, item in data.get("entries", {}).items()}
        if not entries or "overhead_ms" not in data:
            raise LatencyModelError(f"latency LUT {path} has no measured entries yet; run the LUT build to completion")
        model = cls(entries=entries, overhead_ms=float(data["overhead_ms"]), machine=data.get("machine", {}),
                    reference_ops=list(data.get("reference_ops", [])),
                    correction=data.get("correction") or {"intercept_ms": 0.0, "slope": 1.0}, path=path)
        model.set_tier_scales(tiers, calibration_path, device_latency_path)
        return model

    def set_tier_scales(self, tiers: dict[str, Any] | None = None, calibration_path: Path | None = None,
                        device_latency_path: Path | None = None) -> None:
        """Roofline scales for every tier, then fitted phones, then the calibration file."""
        if tiers is None:
            try:
                from mobile_pipeline.tiers.table import load_tier_table

                tiers = load_tier_table()
            except Exception as err:  # the search names the tier it needs; predict_ms raises then
                _log.warning("tier table unavailable, no tier scales: %s", err)
                tiers = {}
        self.tier_scales, self.scale_sources, self.device_fits = {}, {}, {}
        for name, tier in tiers.items():
            self.tier_scales[name] = self.roofline_scale(tier)
            roofline = getattr(tier, "roofline", None)
            peaks = f" ({roofline.gflops:g} GFLOP/s, {roofline.bandwidth_gbs:g} GB/s)" if roofline else ""
            self.scale_sources[name] = (f"{UNCALIBRATED}: roofline ratio of {getattr(tier, 'reference_soc', 'the reference')}'s "
                                        f"peaks{peaks} to this machine's")
        self.device_table = DeviceLatencyTable.load(device_latency_path)
        for name, tier in tiers.items():
            fit = self.tier_device_fit(name, tier)
            if fit is None:
                continue
            self.device_fits[name] = fit
            reference = self.reference_ops_list()
            self.tier_scales[name] = (fit.predict_ms(op_features(reference, fit.element_size))
                                      / (self.correction["intercept_ms"] + self.correction["slope"] * self.sum_ops_ms(reference)))
            stand_in = getattr(tier, "reference_soc", None)
            note = "" if fit.soc_model == stand_in else (
                f"; the tier's reference {stand_in} is not measured, its slowest measured phone stands in")
            self.scale_sources[name] = fit.source() + note
        calibration_path = calibration_path or device_tiers_dir() / CALIBRATION_FILENAME
        for name, scale in load_calibration(calibration_path).items():
            self.tier_scales[name] = scale
            self.device_fits.pop(name, None)
            self.scale_sources[name] = f"{CALIBRATED}: measured scale from {calibration_path.name}"

    def tier_device_fit(self, name: str, tier: Any) -> DeviceFit | None:
        """The measured phone that stands for ``tier``: its reference SoC, else its slowest measured member."""
        target = tier_target(tier)
        if target is None or not self.device_table.fits:
            return None
        candidates = [fit for fit in self.device_table.select(*target) if _tier_of(fit.tier_soc) == name]
        if not candidates:
            return None
        for fit in candidates:
            if fit.soc_model == getattr(tier, "reference_soc", None):
                return fit
        reference = self.reference_ops_list()
        return max(candidates, key=lambda fit: (fit.predict_ms(op_features(reference, fit.element_size)), fit.device))

    def reference_ops_list(self) -> list[Op]:
        if not self.reference_ops:
            raise LatencyModelError("latency LUT lacks reference_ops; rebuild it")
        return [Op.from_key(key) for key in self.reference_ops]

    def phone_predictions(self, spec: ArchSpec | str, tier_name: str, tier: Any,
                          input_hw: tuple[int, int]) -> list[dict[str, Any]]:
        """The spec's predicted latency on every measured phone, for the tier's runtime and precision.

        Rows carry the fit's leave-one-model-out error, the phone's own tier and whether the
        phone stands for ``tier_name`` in the search. The phones' NPU is what was measured; a
        tier that runs on the CPU or GPU gets NPU figures only as a hint (``unit`` says so).
        """
        target = tier_target(tier)
        if target is None:
            return []
        runtime, precision, unit = target
        standing = self.device_fits.get(tier_name)
        rows = []
        for fit in self.device_table.select(runtime, precision, "NPU"):
            rows.append({"device": fit.device, "soc_model": fit.soc_model, "runtime": runtime, "precision": precision,
                         "predicted_ms": self.predict_device_ms(spec, input_hw, fit), "loo_mape_pct": fit.loo_mape_pct,
                         "loo_spearman": fit.loo_spearman, "phone_tier": _tier_of(fit.tier_soc),
                         "stands_for_tier": standing is not None and fit.device == standing.device
                         and fit.runtime == standing.runtime, "tier_unit": unit})
        return sorted(rows, key=lambda row: -row["predicted_ms"])

    def latency_label(self, tier: str) -> str:
        """Short provenance of the tier's predicted latency: fitted, calibrated or uncalibrated (datasheet)."""
        source = self.scale_sources.get(tier, UNCALIBRATED)
        for label in (FITTED, CALIBRATED, UNCALIBRATED):
            if source.startswith(label):
                return label
        return source

    def roofline_scale(self, tier: Any) -> float:
        """Reference-device time / this machine's time for the reference network's ops."""
        if not self.machine.get("gflops") or not self.machine.get("bandwidth_gbs"):
            raise LatencyModelError("latency LUT lacks this machine's roofline (machine.gflops/bandwidth_gbs); rebuild it")
        ops = [Op.from_key(key) for key in self.reference_ops]
        if not ops:
            raise LatencyModelError("latency LUT lacks reference_ops; rebuild it")
        element_bytes = tier_element_bytes(tier)
        local = roofline_ms(ops, self.machine["gflops"], self.machine["bandwidth_gbs"], 4)
        remote = roofline_ms(ops, tier.roofline.gflops, tier.roofline.bandwidth_gbs, element_bytes)
        return remote / local

    # --------------------------------------------------------------- predicting
    def ops_for(self, spec: ArchSpec | str, input_hw: tuple[int, int]) -> list[Op]:
        spec = ArchSpec.from_string(spec) if isinstance(spec, str) else spec
        key = (spec.to_string(), tuple(input_hw))
        if key not in self._ops_cache:
            self._ops_cache[key] = spec_ops(spec, tuple(input_hw))
        return self._ops_cache[key]

    def op_ms(self, op: Op) -> float:
        """LUT time of one op (fixed invoke cost removed); extrapolated when not measured."""
        ms = self.entries.get(op.key)
        if ms is None:
            self.fallbacks += 1
            ms = self._extrapolated.get(op.key)
            if ms is None:
                ms = self._extrapolated[op.key] = self._extrapolate(op)
        return max(ms - self.overhead_ms, 0.0)

    def sum_ops_ms(self, ops: list[Op]) -> float:
        """The raw FBNet sum: one invoke overhead plus every op's own time."""
        return self.overhead_ms + sum(self.op_ms(op) for op in ops)

    def predict_local_ms_ops(self, ops: list[Op]) -> float:
        """The LUT prediction for any op list (e.g. a published network traced in our vocabulary)."""
        return self.correction["intercept_ms"] + self.correction["slope"] * self.sum_ops_ms(ops)

    def predict_local_ms(self, spec: ArchSpec | str, input_hw: tuple[int, int]) -> float:
        """Predicted LiteRT 1-thread latency on this machine (ms), correction applied."""
        raw = self.sum_ops_ms(self.ops_for(spec, input_hw))
        return self.correction["intercept_ms"] + self.correction["slope"] * raw

    def predict_ms(self, spec: ArchSpec | str, tier: str, input_hw: tuple[int, int]) -> float:
        """Predicted latency on the tier's reference device, or on the measured phone standing for it (ms)."""
        fit = self.device_fits.get(tier)
        if fit is not None:
            return self.predict_device_ms(spec, input_hw, fit)
        if tier not in self.tier_scales:
            raise LatencyModelError(f"no latency scale for tier {tier!r}; known: {sorted(self.tier_scales)}")
        return self.predict_local_ms(spec, input_hw) * self.tier_scales[tier]

    def predict_device_ms(self, spec: ArchSpec | str, input_hw: tuple[int, int], fit: DeviceFit) -> float:
        """A fitted phone's predicted latency (ms); the feature vector is computed once per spec and size."""
        spec = ArchSpec.from_string(spec) if isinstance(spec, str) else spec
        key = (spec.to_string(), tuple(input_hw), fit.element_size)
        features = self._features_cache.get(key)
        if features is None:
            features = self._features_cache[key] = op_features(self.ops_for(spec, input_hw), fit.element_size)
        return fit.predict_ms(features)

    def _extrapolate(self, op: Op) -> float:
        """Missing entry: the same op at the nearest measured resolution, scaled by pixels;
        else the median time-per-MAC of that op kind."""
        c, h, w = op.shape
        best: tuple[float, float] | None = None
        for key, ms in self.entries.items():
            if not key.startswith(op.kind + "|"):
                continue
            other = Op.from_key(key)
            if other.shape[0] != c or other.with_hw(h, w) != op:
                continue
            distance = abs(math.log((other.shape[1] * other.shape[2]) / (h * w)))
            if best is None or distance < best[0]:
                pixels = (h * w) / (other.shape[1] * other.shape[2])
                best = (distance, self.overhead_ms + (ms - self.overhead_ms) * pixels)
        if best is not None:
            return best[1]
        rates = sorted((ms - self.overhead_ms) / max(Op.from_key(key).macs, 1)
                       for key, ms in self.entries.items() if key.startswith(op.kind + "|"))
        if not rates:
            rates = sorted((ms - self.overhead_ms) / max(Op.from_key(key).macs, 1) for key, ms in self.entries.items())
        return self.overhead_ms + rates[len(rates) // 2] * op.macs

    def coverage(self, spec: ArchSpec | str, input_hw: tuple[int, int]) -> float:
        """Fraction of the spec's ops measured directly (1.0 = no extrapolation)."""
        ops = self.ops_for(spec, input_hw)
        return sum(op.key in self.entries for op in ops) / max(len(ops), 1)


def _tier_of(soc_model: str) -> str | None:
    """The classifier's tier for a Qualcomm SoC model (None when the classifier is unavailable)."""
    try:
        from mobile_pipeline.tiers.classifier import classify
        from mobile_pipeline.tiers.device_info import DeviceInfo

        return classify(DeviceInfo(platform="android", soc_model=soc_model, soc_manufacturer="QTI")).tier
    except Exception as err:  # a broken catalog must not break latency prediction: no fitted tiers then
        _log.warning("cannot classify %s for the device latency model: %s", soc_model, err)
        return None


def tier_element_bytes(tier: Any) -> int:
    """Bytes per activation on the tier's accelerator: int8 tiers 1, fp16 GPUs 2, else 4."""
    if getattr(tier, "int8_only", False):
        return 1
    precisions = {variant.precision for variant in getattr(tier, "variants", [])}
    if precisions and precisions <= {"fp16"}:
        return 2
    return 4


def load_calibration(path: Path) -> dict[str, float]:
    """Measured per-tier scales from bench calibration: {tier: {scale: float, ...}}."""
    if not path.is_file():
        return {}
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise LatencyModelError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise LatencyModelError(f"{path}: top level must map tier -> {{scale: ...}}")
    scales = {}
    for tier, entry in raw.items():
        scale = entry.get("scale") if isinstance(entry, dict) else None
        if not isinstance(scale, (int, float)) or not scale > 0:
            raise LatencyModelError(f"{path}: {tier}.scale must be a positive number, got {scale!r}")
        scales[str(tier)] = float(scale)
    return scales

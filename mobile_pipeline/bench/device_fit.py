"""Fit the per-device latency models on imported AI Hub measurements; judge them leave-one-out.

Input: measurements with ``source: aihub`` whose ``reference_model`` is one of the networks
rebuilt in :mod:`mobile_pipeline.bench.reference_nets`. For every (device, runtime, precision,
compute unit) with enough networks, the coefficients of
:func:`mobile_pipeline.search.device_latency.op_features` are fitted by non-negative least
squares on the *relative* error (each row divided by its measured time), because a 0.2 ms
super-resolution net and a 25 ms U-Net must count alike; non-negative, because no kind of
work makes a network faster.

The quality figure is leave-one-model-out: each architecture group (ESRGAN and
Real-ESRGAN-x4plus are one) is predicted by a fit on all the others, and the MAPE and the
Spearman rank correlation of those held-out predictions are reported and stored with the fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mobile_pipeline.bench.measurement import Measurement
from mobile_pipeline.search.device_latency import (
    FEATURES,
    DeviceFit,
    DeviceLatencyTable,
    element_bytes,
    op_features,
    spearman,
)

MIN_MODELS = len(FEATURES) + 2  # fewer networks than that cannot be judged leave-one-out


@dataclass
class DeviceSamples:
    """The networks measured on one device x runtime x precision x compute unit."""

    device: str
    soc_model: str
    tier_soc: str
    form_factor: str
    runtime: str
    precision: str
    compute_unit: str
    models: list[str]
    groups: list[str]
    measured_ms: list[float]
    origin: str
    tool_versions: tuple[str, ...]


def nnls_relative(rows: Sequence[Sequence[float]], measured: Sequence[float]) -> list[float]:
    """Non-negative coefficients minimising sum(((x . c) - y) / y)^2."""
    import numpy as np
    from scipy.optimize import nnls

    x = np.asarray(rows, dtype=float) / np.asarray(measured, dtype=float)[:, None]
    scale = np.abs(x).max(axis=0)
    scale[scale == 0] = 1.0  # a feature that is zero everywhere keeps coefficient 0
    coef, _ = nnls(x / scale, np.ones(len(measured)), maxiter=50 * x.shape[1])
    return [float(v) for v in coef / scale]


def leave_one_group_out(rows: Sequence[Sequence[float]], measured: Sequence[float], groups: Sequence[str],
                        fit: Callable[[Sequence[Sequence[float]], Sequence[float]], list[float]] = nnls_relative,
                        ) -> list[float]:
    """Held-out prediction of every row: fitted on the rows of all *other* groups."""
    predictions = [0.0] * len(rows)
    for group in dict.fromkeys(groups):
        train = [i for i, g in enumerate(groups) if g != group]
        coef = fit([rows[i] for i in train], [measured[i] for i in train])
        for i, g in enumerate(groups):
            if g == group:
                predictions[i] = sum(c * f for c, f in zip(coef, rows[i]))
    return predictions


def mape_pct(predicted: Sequence[float], measured: Sequence[float]) -> float:
    return 100.0 * sum(abs(p - y) / y for p, y in zip(predicted, measured)) / len(measured)


def collect_samples(measurements: Sequence[Measurement], known_models: Callable[[str], str | None]) -> list[DeviceSamples]:
    """Group AI Hub measurements of rebuilt networks by device x runtime x precision x compute unit.

    Args:
        known_models: reference model id -> its leave-one-out group (None: not rebuilt, ignored).

    The newest import wins when the same network was imported twice for the same device.
    """
    latest: dict[tuple[str, str, str, str, str], Measurement] = {}
    for m in measurements:
        if m.source != "aihub" or not m.reference_model or not m.runtime or not m.precision:
            continue
        if known_models(m.reference_model) is None or element_bytes(m.precision) is None:
            continue
        key = (m.device.device_name or m.device.soc_model, m.runtime, m.precision, m.compute_unit or "?", m.reference_model)
        stamp = m.imported_at.isoformat() if m.imported_at else ""
        if key not in latest or stamp >= (latest[key].imported_at.isoformat() if latest[key].imported_at else ""):
            latest[key] = m
    grouped: dict[tuple[str, str, str, str], list[Measurement]] = {}
    for key, m in sorted(latest.items()):
        grouped.setdefault(key[:4], []).append(m)
    out = []
    for (device, runtime, precision, unit), group in sorted(grouped.items()):
        first = group[0]
        raw = first.raw or {}
        origins = sorted({(m.origin or "?").split(":")[0] for m in group})
        versions = sorted({f"{k} {v}" for m in group for k, v in (m.tool_versions or {}).items()})
        out.append(DeviceSamples(
            device=device, soc_model=first.device.soc_model, tier_soc=str(raw.get("same_silicon") or first.device.soc_model),
            form_factor=str(raw.get("form_factor", "phone")), runtime=runtime, precision=precision, compute_unit=unit,
            models=[m.reference_model for m in group], groups=[str(known_models(m.reference_model)) for m in group],
            measured_ms=[m.latency.typical_ms for m in group], origin=", ".join(origins), tool_versions=tuple(versions)))
    return out


def fit_device(samples: DeviceSamples, features: Callable[[str, int], tuple[float, ...]]) -> DeviceFit | None:
    """Coefficients on all of the device's networks, judged leave-one-group-out; None if too few."""
    if len(set(samples.groups)) < MIN_MODELS:
        return None
    size = element_bytes(samples.precision) or 1
    rows = [features(model, size) for model in samples.models]
    held_out = leave_one_group_out(rows, samples.measured_ms, samples.groups)
    coef = nnls_relative(rows, samples.measured_ms)
    in_sample = [sum(c * f for c, f in zip(coef, row)) for row in rows]
    return DeviceFit(
        device=samples.device, soc_model=samples.soc_model, tier_soc=samples.tier_soc, form_factor=samples.form_factor,
        runtime=samples.runtime, precision=samples.precision, compute_unit=samples.compute_unit,
        coefficients=tuple(round(c, 9) for c in coef), models=tuple(samples.models),
        loo_mape_pct=round(mape_pct(held_out, samples.measured_ms), 2),
        loo_spearman=round(spearman(held_out, samples.measured_ms), 4),
        fit_mape_pct=round(mape_pct(in_sample, samples.measured_ms), 2),
        origin=samples.origin, tool_versions=samples.tool_versions)


def reference_features() -> tuple[Callable[[str], str | None], Callable[[str, int], tuple[float, ...]]]:
    """(model -> LOO group, (model, element size) -> features) for the rebuilt networks, traced once each."""
    from mobile_pipeline.bench.reference_nets import REFERENCE_NETS, reference_ops

    ops_cache: dict[str, list[Any]] = {}

    def group(model: str) -> str | None:
        net = REFERENCE_NETS.get(model)
        return net.group if net else None

    def features(model: str, size: int) -> tuple[float, ...]:
        if model not in ops_cache:
            ops_cache[model] = reference_ops(model)
        return op_features(ops_cache[model], size)

    return group, features


def fit_device_models(measurements: Sequence[Measurement]) -> tuple[DeviceLatencyTable, list[str]]:
    """Fit every device with enough rebuilt networks; returns the table and notes on what was not fitted."""
    group, features = reference_features()
    fits, notes = [], []
    for samples in collect_samples(measurements, group):
        fit = fit_device(samples, features)
        if fit is None:
            notes.append(f"{samples.device} {samples.runtime} {samples.precision} {samples.compute_unit}: "
                         f"{len(set(samples.groups))} networks, need {MIN_MODELS} to fit and judge leave-one-out")
            continue
        fits.append(fit)
    table = DeviceLatencyTable(fits=fits, notes=(
        "Fitted by `mobile-pipeline bench calibrate` on the AI Hub measurements in device_tiers/measurements/ "
        "(networks rebuilt in mobile_pipeline/bench/reference_nets.py); loo_* = leave-one-model-out."))
    return table, notes


def summary_rows(table: DeviceLatencyTable) -> list[str]:
    """One line per fit: device, runtime, precision, networks, LOO MAPE and Spearman."""
    lines = [f"{'device':34s} {'SoC':8s} {'runtime':8s} {'prec':6s} {'n':>3s} {'LOO MAPE %':>10s} {'Spearman':>8s}"]
    for fit in sorted(table.fits, key=lambda f: (f.precision, f.runtime, f.device)):
        rho = "n/a" if math.isnan(fit.loo_spearman) else f"{fit.loo_spearman:.3f}"
        lines.append(f"{fit.device[:34]:34s} {fit.soc_model[:8]:8s} {fit.runtime:8s} {fit.precision:6s} "
                     f"{len(fit.models):3d} {fit.loo_mape_pct:10.1f} {rho:>8s}")
    return lines

"""The per-device latency fit: NNLS on relative error, leave-one-group-out, and the fitted table."""

from __future__ import annotations

import math
import random

import pytest

from mobile_pipeline.bench.device_fit import (
    MIN_MODELS,
    collect_samples,
    fit_device,
    leave_one_group_out,
    mape_pct,
    nnls_relative,
)
from mobile_pipeline.bench.measurement import Measurement
from mobile_pipeline.search.device_latency import FEATURES, DeviceLatencyTable, spearman

TRUE = [0.2, 0.03, 0.002, 0.004, 0.007, 0.001, 0.3]  # ms per unit of each feature


def _rows(n: int, seed: int = 0) -> list[list[float]]:
    rng = random.Random(seed)
    return [[1.0] + [rng.uniform(0.0, 50.0) for _ in FEATURES[1:]] for _ in range(n)]


def _time(row: list[float]) -> float:
    return sum(c * f for c, f in zip(TRUE, row))


def test_nnls_recovers_known_coefficients_and_keeps_them_non_negative():
    rows = _rows(20)
    coef = nnls_relative(rows, [_time(r) for r in rows])
    assert coef == pytest.approx(TRUE, rel=1e-6, abs=1e-9)
    # a feature that only ever makes things faster gets 0, not a negative cost
    rows = [[1.0, x] for x in (1.0, 2.0, 3.0, 4.0)]
    assert nnls_relative(rows, [1.0 - 0.1 * r[1] for r in rows])[1] == 0.0


def test_leave_one_out_is_exact_on_noiseless_data_and_leaves_groups_out_together():
    rows = _rows(12, seed=1)
    measured = [_time(r) for r in rows]
    groups = [f"g{i}" for i in range(12)]
    held = leave_one_group_out(rows, measured, groups)
    assert mape_pct(held, measured) == pytest.approx(0.0, abs=1e-6)
    # Two copies of one architecture measured 2x slower than the law: left out *together*,
    # each is predicted by the law (100 % error -> 50 %); alone, its twin would predict it.
    rows += [rows[0][:], rows[0][:]]
    measured += [2 * measured[0], 2 * measured[0]]
    held = leave_one_group_out(rows, measured, groups + ["twin", "twin"])
    assert held[-1] == pytest.approx(measured[0], rel=0.02) == pytest.approx(held[-2], rel=1e-9)
    apart = leave_one_group_out(rows, measured, groups + ["a", "b"])
    coef = nnls_relative(rows[:-1], measured[:-1])  # what "left out alone" means: the twin stays in
    assert apart[-1] == pytest.approx(sum(c * f for c, f in zip(coef, rows[-1])), rel=1e-9)
    assert apart[-1] > 1.05 * held[-1]  # the twin drags its copy towards the 2x time


def test_spearman_known_values():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [1, 1, 2]) == pytest.approx(math.sqrt(3) / 2)  # ties take the mean rank
    assert math.isnan(spearman([1, 2], [1, 2]))


def _measurement(model: str, ms: float, device: str = "Samsung Galaxy S24", soc: str = "SM8650",
                 runtime: str = "tflite", imported: str | None = None) -> Measurement:
    return Measurement.model_validate({
        "source": "aihub", "device": {"soc_model": soc, "device_name": device}, "artifact": f"{model}.w8a8.{runtime}",
        "reference_model": model, "runtime": runtime, "precision": "w8a8", "compute_unit": "NPU",
        "latency": {"avg_ms": ms}, "origin": "qai-hub-models 0.0.1: test", "imported_at": imported,
        "raw": {"form_factor": "phone"}})


def test_fit_device_on_synthetic_networks_round_trips_through_the_table(tmp_path):
    rows = {f"net{i}": row for i, row in enumerate(_rows(MIN_MODELS + 2, seed=2))}
    measurements = [_measurement(model, _time(row)) for model, row in rows.items()]
    # a re-import of net0 with a newer time replaces the older one
    measurements.append(_measurement("net0", 2 * _time(rows["net0"]), imported="2030-01-01T00:00:00Z"))
    measurements.append(_measurement("not-rebuilt", 1.0))
    (samples,) = collect_samples(measurements, lambda m: m if m in rows else None)
    assert sorted(samples.models) == sorted(rows) and samples.measured_ms[samples.models.index("net0")] > _time(rows["net0"])
    samples.measured_ms[samples.models.index("net0")] = _time(rows["net0"])  # back to the law: exact fit
    fit = fit_device(samples, lambda model, size: tuple(rows[model]))
    assert fit.loo_mape_pct == pytest.approx(0.0, abs=1e-3) and fit.loo_spearman == pytest.approx(1.0)
    assert fit.coefficients == pytest.approx(TRUE, rel=1e-4, abs=1e-8)
    assert (fit.device, fit.soc_model, fit.runtime, fit.precision, fit.is_phone) == (
        "Samsung Galaxy S24", "SM8650", "tflite", "w8a8", True)
    assert "leave-one-model-out MAPE 0.0%" in fit.source()
    path = DeviceLatencyTable(fits=[fit]).write(tmp_path / "device_latency.json")
    loaded = DeviceLatencyTable.load(path)
    assert loaded.fits == [fit]
    assert loaded.select("tflite", "w8a8") == [fit] and loaded.select("onnx", "w8a8") == []
    assert DeviceLatencyTable.load(tmp_path / "missing.json").fits == []


def test_too_few_networks_are_not_fitted():
    rows = {f"net{i}": row for i, row in enumerate(_rows(MIN_MODELS - 1, seed=3))}
    (samples,) = collect_samples([_measurement(m, _time(r)) for m, r in rows.items()], lambda m: m)
    assert fit_device(samples, lambda model, size: tuple(rows[model])) is None

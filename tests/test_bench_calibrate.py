"""Calibration: per-tier scales recovered from synthetic measurements; tier moves written with a reason."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from mobile_pipeline.bench.calibrate import (
    CalibrationError,
    Sample,
    calibrate,
    fit_tier_scales,
    plan_tier_moves,
)
from mobile_pipeline.bench.measurement import Measurement
from mobile_pipeline.search.latency import load_calibration
from mobile_pipeline.tiers.overrides import parse_overrides
from mobile_pipeline.tiers.table import load_tier_table

NOW = datetime(2026, 11, 22, 9, 0, 0, tzinfo=timezone.utc)


def _tier(fps: float, macs: int, resolution: int = 256) -> SimpleNamespace:
    return SimpleNamespace(target_fps=fps, resolution=resolution, budgets=SimpleNamespace(macs=macs))


# Fixed numbers (like device_tiers/tiers.yaml today) so edits to the real table do not move these tests.
TIERS = {"cpu": _tier(15, 400_000_000), "dsp": _tier(24, 800_000_000), "gpu": _tier(30, 2_000_000_000, 320),
         "npu": _tier(30, 3_500_000_000, 384)}


class FakeLatencyModel:
    """predict_local_ms from a fixed table: lets the test know the ground truth exactly."""

    def __init__(self, local_ms: dict[str, float], tier_scales: dict[str, float]) -> None:
        self.local_ms, self.tier_scales, self.calls = local_ms, tier_scales, []

    def predict_local_ms(self, arch: str, input_hw: tuple[int, int]) -> float:
        self.calls.append((arch, tuple(input_hw)))
        if arch not in self.local_ms:
            raise ValueError(f"unknown arch {arch!r}")  # as SpecError (a ValueError) does
        return self.local_ms[arch]


def _m(soc: str, ms: float, *, tier: str | None = None, device_tier: str | None = None, arch: str | None = "a0",
       manufacturer: str | None = "QTI") -> Measurement:
    return Measurement.model_validate({
        "source": "app_timing", "device": {"soc_model": soc, "manufacturer": manufacturer, "tier": device_tier},
        "artifact": f"{tier or 'x'}_fp32.tflite", "arch": arch, "tier": tier, "input_hw": [256, 256],
        "latency": {"avg_ms": ms}})


def _synthetic(true_scales: dict[str, float], per_tier: int, sigma: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    local = {f"a{i}": float(v) for i, v in enumerate(rng.uniform(3.0, 15.0, size=12))}
    measurements = []
    for tier, scale in true_scales.items():
        for k in range(per_tier):
            arch = f"a{k % len(local)}"
            measured = scale * local[arch] * math.exp(rng.normal(0.0, sigma))
            measurements.append(_m(f"{tier.upper()}-{k}", measured, tier=tier, device_tier=tier, arch=arch))
    return measurements, local


def test_fit_recovers_exact_scales_without_noise() -> None:
    samples = [Sample("gpu", p, 0.4 * p) for p in (2.0, 5.0, 11.0)] + [Sample("cpu", p, 3.5 * p) for p in (1.0, 7.0)]
    fits = fit_tier_scales(samples, {"gpu": 1.0})
    assert fits["gpu"].scale_after == pytest.approx(0.4, rel=1e-12)
    assert fits["cpu"].scale_after == pytest.approx(3.5, rel=1e-12)
    assert fits["gpu"].error_after.mape_pct == pytest.approx(0.0, abs=1e-9)
    assert fits["gpu"].error_before.mape_pct == pytest.approx(150.0)  # 1.0 vs 0.4: |1-0.4|/0.4
    assert fits["gpu"].error_before.rmse_log == pytest.approx(abs(math.log(0.4)))
    assert fits["cpu"].scale_before is None and fits["cpu"].error_before.mape_pct is None


def test_calibrate_recovers_known_scales_from_noisy_measurements(tmp_path: Path) -> None:
    truth = {"cpu": 3.0, "dsp": 1.6, "gpu": 0.8, "npu": 0.45}
    measurements, local = _synthetic(truth, per_tier=40, sigma=0.08)
    model = FakeLatencyModel(local, {"cpu": 2.0, "dsp": 2.0, "gpu": 2.0, "npu": 2.0})
    cal = tmp_path / "calibration.yaml"
    cal.write_text(yaml.safe_dump({"legacy": {"scale": 9.0}}))  # other tiers' entries survive a refit
    report = calibrate(measurements, latency_model=model, tiers=TIERS, device_tier=lambda m: m.device.tier,
                       moves=False, calibration_path=cal, overrides_path=tmp_path / "overrides.yaml", now=NOW)
    for tier, scale in truth.items():
        fit = report.fits[tier]
        assert fit.n_measurements == 40
        assert fit.scale_after == pytest.approx(scale, rel=0.04)
        assert fit.error_after.rmse_log < fit.error_before.rmse_log
        assert fit.error_after.rmse_log == pytest.approx(0.08, rel=0.3)  # the noise level
    assert {hw for _, hw in model.calls} == {(256, 256)}
    data = yaml.safe_load(cal.read_text())
    assert set(data) == {"legacy", *truth}
    entry = data["gpu"]
    assert set(entry) == {"scale", "n_measurements", "fit_error_before", "fit_error_after", "updated"}
    assert set(entry["fit_error_after"]) == {"mape_pct", "rmse_log"} and entry["updated"].startswith("2026-11-22")
    # the search's latency model reads the file back
    assert load_calibration(cal)["gpu"] == pytest.approx(report.fits["gpu"].scale_after, rel=1e-5)
    assert not (tmp_path / "overrides.yaml").exists() and cal in report.written


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    measurements, local = _synthetic({"cpu": 2.0}, per_tier=3, sigma=0.0)
    report = calibrate(measurements, latency_model=FakeLatencyModel(local, {}), tiers=TIERS,
                       device_tier=lambda m: m.device.tier, dry_run=True, moves=False,
                       calibration_path=tmp_path / "c.yaml", overrides_path=tmp_path / "o.yaml")
    assert report.fits["cpu"].scale_after == pytest.approx(2.0)
    assert report.written == [] and list(tmp_path.iterdir()) == []
    assert "cpu" in report.summary() and "2.000" in report.summary()


def test_measurement_without_arch_is_skipped_with_a_note() -> None:
    model = FakeLatencyModel({"a0": 10.0}, {})
    report = calibrate([_m("SM1", 20.0, device_tier="cpu"), _m("SM2", 30.0, device_tier="cpu", arch=None)],
                       latency_model=model, tiers=TIERS, device_tier=lambda m: m.device.tier, moves=False, dry_run=True)
    assert report.fits["cpu"].n_measurements == 1
    assert len(report.skipped) == 1 and "SM2" in report.skipped[0] and "--arch" in report.skipped[0]
    # an arch the latency model cannot read is skipped with its error, the rest still fit
    report = calibrate([_m("SM1", 20.0, device_tier="cpu"), _m("SM3", 30.0, device_tier="cpu", arch="bogus")],
                       latency_model=model, tiers=TIERS, device_tier=lambda m: m.device.tier, moves=False, dry_run=True)
    assert report.fits["cpu"].n_measurements == 1 and "'bogus' cannot be predicted" in report.skipped[0]


def test_no_measurements_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="bench import"):
        calibrate(measurements_dir=tmp_path / "none", latency_model=FakeLatencyModel({}, {}), tiers=TIERS)


def test_tier_moves_down_and_up_with_reason(tmp_path: Path) -> None:
    # frame budgets: cpu 66.7 ms (0.4 GMACs), dsp 41.7 ms (0.8), gpu 33.3 ms (2.0), npu 33.3 ms (3.5)
    slow_dsp = [_m("MT6833", 60.0, tier="dsp", device_tier="dsp", manufacturer="Mediatek")]  # misses 41.7 by >10%
    fast_cpu = [_m("SM7325", 10.0, tier="cpu", device_tier="cpu"), _m("SM7325", 12.0, tier="cpu", device_tier="cpu")]
    fine_gpu = [_m("SM8550", 30.0, tier="gpu", device_tier="gpu")]  # within 10% of 33.3
    moves = plan_tier_moves(slow_dsp + fast_cpu + fine_gpu, lambda m: m.device.tier, TIERS, margin=0.1)
    by_soc = {m.soc_model: m for m in moves}
    assert set(by_soc) == {"MT6833", "SM7325"}
    down, up = by_soc["MT6833"], by_soc["SM7325"]
    assert (down.from_tier, down.to_tier, down.measured_ms) == ("dsp", "cpu", 60.0)
    assert "misses" in down.reason and "41.7 ms" in down.reason
    # median 11 ms on the cpu model -> 22 ms on dsp's (fits 37.5) -> 55 ms on gpu's (does not): one step up
    assert (up.from_tier, up.to_tier, up.n_measurements) == ("cpu", "dsp", 2)
    assert "beats" in up.reason

    overrides = tmp_path / "overrides.yaml"
    overrides.write_text("# our header\n" + yaml.safe_dump([
        {"soc_model": "SM7325", "manufacturer": "QTI", "tier": "gpu", "reason": "old", "source": "manual", "date": "2026-01-01"},
        {"soc_model": "X1", "manufacturer": None, "tier": "cpu", "reason": "kept", "source": "manual", "date": "2026-01-01"},
    ]))
    model = FakeLatencyModel({"a0": 10.0}, {})
    report = calibrate(slow_dsp + fast_cpu + fine_gpu, latency_model=model, tiers=TIERS, device_tier=lambda m: m.device.tier,
                       calibration_path=tmp_path / "calibration.yaml", overrides_path=overrides, now=NOW)
    assert {(m.soc_model, m.to_tier) for m in report.moves} == {("MT6833", "cpu"), ("SM7325", "dsp")}
    text = overrides.read_text()
    assert text.startswith("# our header\n")
    entries = yaml.safe_load(text)
    assert [o.tier for o in parse_overrides(entries)] == ["cpu", "cpu", "dsp"]  # the classifier accepts the file
    assert [e["soc_model"] for e in entries] == ["X1", "MT6833", "SM7325"]  # the old SM7325 entry is replaced
    moved = {e["soc_model"]: e for e in entries}
    assert set(moved["MT6833"]) == {"soc_model", "manufacturer", "tier", "reason", "source", "date"}
    assert moved["MT6833"]["tier"] == "cpu" and moved["MT6833"]["manufacturer"] == "Mediatek"
    assert "misses the dsp frame budget" in moved["MT6833"]["reason"] and moved["MT6833"]["date"] == "2026-11-22"
    # scale samples count for the tier of the artifact that ran
    assert {t: f.n_measurements for t, f in report.fits.items()} == {"cpu": 2, "dsp": 1, "gpu": 1}
    # ...and for the device's (moved) tier when the artifact's tier is unknown
    unknown = [_m("MT6833", 60.0, tier=None, device_tier="dsp", manufacturer="Mediatek")]
    report = calibrate(unknown, latency_model=model, tiers=TIERS, device_tier=lambda m: m.device.tier, dry_run=True)
    assert [m.to_tier for m in report.moves] == ["cpu"] and list(report.fits) == ["cpu"]


def test_moves_are_stable_on_rerun() -> None:
    """Once moved, the same data keeps the device where it is (no flapping between tiers)."""
    measurements = [_m("MT6833", 60.0, tier="dsp"), _m("SM7325", 11.0, tier="cpu")]
    first = {m.soc_model: m.to_tier for m in plan_tier_moves(measurements, lambda m: m.tier, TIERS)}
    assert first == {"MT6833": "cpu", "SM7325": "dsp"}
    second = plan_tier_moves(measurements, lambda m: first[m.device.soc_model], TIERS)
    assert second == []


def test_lowest_tier_cannot_move_down() -> None:
    assert plan_tier_moves([_m("MT6739", 500.0, tier="cpu")], lambda m: "cpu", TIERS) == []


def test_cli_calibrate_without_measurements_says_what_to_do(tmp_path: Path, capsys) -> None:
    from mobile_pipeline.cli import main

    assert main(["bench", "calibrate", "--dry-run", "--measurements", str(tmp_path)]) == 1
    assert "bench import FILE --soc" in capsys.readouterr().err
    assert main(["bench", "calibrate", "--margin", "2"]) == 2


def test_works_with_the_real_tier_table() -> None:
    """The real TierSpec objects carry what moves need; a hopeless device ends in the smallest tier."""
    real = load_tier_table()
    smallest = min(real, key=lambda name: real[name].budgets.macs)
    largest = max(real, key=lambda name: real[name].budgets.macs)
    (move,) = plan_tier_moves([_m("SLOW1", 10_000.0, tier=largest)], lambda m: largest, real)
    assert (move.from_tier, move.to_tier) == (largest, smallest)

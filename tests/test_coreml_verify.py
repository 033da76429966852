"""Core ML verification: unverified off macOS, verify-coreml on a Mac (predict mocked), import, manifest.

Only coremltools' ``MLModel`` (the prediction runtime, macOS-only) and ``platform.system`` are
replaced; the artifact, its report, the stored reference, the parity gate, the measurement
file, ``bench import`` and the manifest build are all real.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import pytest
import torch

from mobile_pipeline.cli import main
from mobile_pipeline.config import ManifestConfig, preset_config
from mobile_pipeline.exporters import api
from mobile_pipeline.exporters.photos import bundled_photos, split_photos
from mobile_pipeline.exporters.report import PARITY_SUFFIX, load_report, report_path_for
from mobile_pipeline.exporters.validate import load_parity_reference
from mobile_pipeline.manifest.builder import ManifestBuildError, build_manifest
from mobile_pipeline.nets.generator import build_generator

SIDE = 32


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """A folder with one exported Core ML fp32 artifact of the cpu tier (built here, on Linux)."""
    torch.manual_seed(0)
    generator = build_generator("stylizer-tiny").eval()
    with torch.no_grad():
        for param in generator.heads[-1].parameters():
            param.normal_(0.0, 0.1)
    cal, val = split_photos(bundled_photos(), 2, 2)
    out = tmp_path_factory.mktemp("release") / "cpu"
    api.export_variant(generator, "coreml", "fp32", out, input_hw=(SIDE, SIDE), tier="cpu", calibration=cal,
                       validation=val)
    return out.parent


def _artifact(release: Path) -> Path:
    return release / "cpu" / "cpu_fp32.mlpackage"


class FakeMLModel:
    """coremltools.models.MLModel at its runtime boundary: predict answers from ``answer(input)``."""

    opened: list[tuple[str, object]] = []
    answer = None

    def __init__(self, path: str, compute_units=None) -> None:
        FakeMLModel.opened.append((path, compute_units))

    def predict(self, feed: dict) -> dict:
        return {"output": FakeMLModel.answer(np.asarray(feed["input"]))}


@pytest.fixture()
def on_a_mac(monkeypatch, release):
    import coremltools

    inputs, reference = load_parity_reference(_artifact(release))

    def faithful(x: np.ndarray) -> np.ndarray:  # the artifact computes what PyTorch did, to float noise
        index = next(i for i in range(len(inputs)) if np.array_equal(inputs[i: i + 1], x))
        return reference[index: index + 1] + 1e-6

    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    monkeypatch.setattr(coremltools.models, "MLModel", FakeMLModel)
    FakeMLModel.opened, FakeMLModel.answer = [], faithful
    return FakeMLModel


def test_coreml_off_macos_is_unverified_with_the_reason(release) -> None:
    report = load_report(report_path_for(_artifact(release)))
    assert report.passed and report.verified is False
    assert "needs macOS" in report.verified_reason and "verify-coreml" in report.verified_reason
    inputs, reference = load_parity_reference(_artifact(release))
    assert inputs.shape == reference.shape == (2, 3, SIDE, SIDE) and inputs.dtype == np.float32
    assert (release / "cpu" / f"cpu_fp32.mlpackage{PARITY_SUFFIX}").is_file()


def test_verify_coreml_refuses_off_macos(release, capsys) -> None:
    assert main(["export", "verify-coreml", str(release)]) == 2
    err = capsys.readouterr().err
    assert "needs macOS" in err and "bench import" in err


def test_verify_coreml_writes_an_importable_measurement(release, on_a_mac, tmp_path, capsys) -> None:
    import coremltools as ct

    out = tmp_path / "verification.json"
    code = main(["export", "verify-coreml", str(release), "--out", str(out), "--runs", "3", "--soc", "Mac14,2"])
    assert code == 0, capsys.readouterr()
    assert on_a_mac.opened == [(str(_artifact(release).resolve()), ct.ComputeUnit.ALL)]
    [item] = json.loads(out.read_text())
    report = load_report(report_path_for(_artifact(release)))
    parity = item["parity"]
    assert parity["artifact_sha256"] == report.sha256 and parity["passed"] is True
    assert parity["psnr_db"] == 100.0  # 1e-6 of float noise: MSE 1e-12, the PSNR cap
    assert parity["gate_db"] == 60 and parity["images"] == 2
    assert item["source"] == "coreml_verify" and item["device"]["soc_model"] == "Mac14,2"
    assert item["latency"]["count"] == 3 and item["tier"] == "cpu" and item["input_hw"] == [SIDE, SIDE]

    # bench import accepts it as is, and the manifest then marks the artifact verified.
    measurements = tmp_path / "measurements"
    assert main(["bench", "import", str(out), "--out", str(measurements)]) == 0
    assert "verifies cpu_fp32.mlpackage" in capsys.readouterr().out
    manifest = build_manifest(release, tmp_path / "manifest.json", release_id="r1",
                              cfg=ManifestConfig(tiers=("cpu",), require_verified={"coreml": True}),
                              measurements_dir=measurements)
    [entry] = manifest.models
    assert entry.verified is True and entry.verified_reason is None
    assert entry.verified_by.startswith("coremltools") and "100.0 dB >= gate 60 dB" in entry.verified_by


def test_failed_parity_on_the_mac_leaves_the_artifact_out(release, on_a_mac, tmp_path, capsys) -> None:
    on_a_mac.answer = lambda x: np.zeros_like(x)  # a broken conversion
    out = tmp_path / "verification.json"
    assert main(["export", "verify-coreml", str(_artifact(release)), "--out", str(out), "--runs", "1"]) == 1
    [item] = json.loads(out.read_text())
    assert item["parity"]["passed"] is False and item["parity"]["psnr_db"] < 60
    measurements = tmp_path / "measurements"
    assert main(["bench", "import", str(out), "--out", str(measurements)]) == 0
    excluded: list[str] = []
    with pytest.raises(ManifestBuildError, match="no passed artifact"):
        build_manifest(release, tmp_path / "manifest.json", release_id="r1",
                       cfg=ManifestConfig(tiers=("cpu",), require_verified={"coreml": False}),
                       measurements_dir=measurements, excluded=excluded)
    assert excluded and "failed its parity check" in excluded[0]


def test_hand_written_measurement_verifies_by_hash_only(release, tmp_path) -> None:
    """The import path with a measurement file made here (what a Mac would send back)."""
    report = load_report(report_path_for(_artifact(release)))
    item = {"source": "coreml_verify", "device": {"soc_model": "Mac15,3", "platform": "other"},
            "artifact": report.artifact, "format": "coreml", "precision": "fp32", "latency": {"avg_ms": 2.0},
            "parity": {"artifact_sha256": report.sha256, "runtime": "coremltools 9.0 predict", "psnr_db": 88.0,
                       "max_abs_err": 1e-4, "gate_db": 60.0, "images": 2, "passed": True}}
    wrong = {**item, "parity": {**item["parity"], "artifact_sha256": "0" * 64}}
    cfg_strict = ManifestConfig(tiers=("cpu",), require_verified={"coreml": True})
    cfg_lenient = ManifestConfig(tiers=("cpu",), require_verified={"coreml": False})

    (tmp_path / "other.json").write_text(json.dumps([wrong]))
    assert main(["bench", "import", str(tmp_path / "other.json"), "--out", str(tmp_path / "m")]) == 0
    lenient = build_manifest(release, tmp_path / "a.json", release_id="r1", cfg=cfg_lenient, measurements_dir=tmp_path / "m")
    assert [(m.verified, "needs macOS" in m.verified_reason) for m in lenient.models] == [(False, True)]
    excluded: list[str] = []
    with pytest.raises(ManifestBuildError):
        build_manifest(release, tmp_path / "b.json", release_id="r1", cfg=cfg_strict, measurements_dir=tmp_path / "m",
                       excluded=excluded)
    assert "require_verified.coreml is true" in excluded[0]

    (tmp_path / "mine.json").write_text(json.dumps(item))
    assert main(["bench", "import", str(tmp_path / "mine.json"), "--out", str(tmp_path / "m")]) == 0
    strict = build_manifest(release, tmp_path / "c.json", release_id="r1", cfg=cfg_strict, measurements_dir=tmp_path / "m")
    assert [m.verified for m in strict.models] == [True] and "88.0 dB" in strict.models[0].verified_by


def test_contradictory_parity_evidence_is_refused(tmp_path, capsys) -> None:
    item = {"source": "coreml_verify", "device": {"soc_model": "Mac15,3"}, "artifact": "x.mlpackage",
            "latency": {"avg_ms": 2.0},
            "parity": {"artifact_sha256": "a" * 64, "runtime": "coremltools", "psnr_db": 20.0, "max_abs_err": 0.1,
                       "gate_db": 60.0, "images": 2, "passed": True}}
    (tmp_path / "bad.json").write_text(json.dumps(item))
    assert main(["bench", "import", str(tmp_path / "bad.json"), "--out", str(tmp_path / "m")]) == 2
    assert "contradicts psnr_db" in capsys.readouterr().err


def test_calibration_ignores_mac_verification_runs() -> None:
    from mobile_pipeline.bench.calibrate import CalibrationError, calibrate
    from mobile_pipeline.bench.measurement import validate_measurement

    mac = validate_measurement({"source": "coreml_verify", "device": {"soc_model": "Mac15,3", "platform": "other"},
                                "artifact": "cpu_fp32.mlpackage", "arch": "x", "input_hw": [32, 32],
                                "latency": {"avg_ms": 2.0}}, "test")
    with pytest.raises(CalibrationError, match="no measurements"):
        calibrate(measurements=[mac], dry_run=True)


def test_presets_choose_a_verification_policy() -> None:
    for name, coreml_required in (("tiny", False), ("demo", False), ("full", True)):
        # A Core ML-delegated ExecuTorch .pte follows the same policy as Core ML.
        assert preset_config(name).manifest.require_verified == {"onnx": True, "tflite": True, "coreml": coreml_required,
                                                                 "executorch": coreml_required}


def test_release_report_shows_verification_and_policy(release) -> None:
    from mobile_pipeline.report import _tier_rows, _verification_policy

    report = load_report(report_path_for(_artifact(release)))
    policy = _verification_policy({"onnx": True, "tflite": True, "coreml": False})
    assert "unverified coreml artifacts are shipped marked verified: false" in policy
    assert "unverified onnx, tflite artifacts are left out" in policy
    tier = {"reports": [report], "rejected": [], "bench": {}}
    shipped_unverified = {"cpu-coreml-fp32": {"id": "cpu-coreml-fp32", "verified": False}}
    [row] = _tier_rows({**tier, "shipped": shipped_unverified})
    assert row[-2] == "UNVERIFIED, shipped" and "needs macOS" in row[-1]
    [row] = _tier_rows({**tier, "shipped": {}})
    assert row[-2] == "left out (unverified)"
    [row] = _tier_rows({**tier, "shipped": {"cpu-coreml-fp32": {"verified": True, "verified_by": "coremltools"}}})
    assert row[-2] == "verified after export"

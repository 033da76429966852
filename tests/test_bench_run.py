"""Local benchmark on tiny artifacts: complete records, ordered percentiles, parity, skips, noise, CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mobile_pipeline.bench.run import (
    BENCH_CHART,
    BenchError,
    bench_artifacts,
    discover_artifacts,
    latency_stats,
    noise_warning,
)
from mobile_pipeline.bench.runners import LiteRTRunner, RuntimeSpec, _Runner
from mobile_pipeline.config import BenchConfig
from mobile_pipeline.exporters.report import (
    ArtifactReport,
    OpCheck,
    ParityResult,
    TensorSpec,
    report_path_for,
)
from mobile_pipeline.utils.atomic import atomic_write_text, sha256_file

HW = (32, 32)
TIMING_FIELDS = ("load_ms", "first_inference_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms",
                 "spread_p90_p50", "peak_rss_delta_mb")
RECORD_FIELDS = ("artifact", "path", "sha256", "format", "precision", "tier", "runtime", "delegate", "threads", "status",
                 "reason", "runs", "warmup", "input_hw", "noise_warning", "parity_reference", "parity_psnr_db",
                 "parity_max_abs_err", "device", *TIMING_FIELDS)


def _tiny_net():
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3, padding=1),
                              torch.nn.Sigmoid())
    return net.eval()


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_fp32.onnx (NCHW, with a report), tiny_fp32.tflite (NHWC I/O, as the exporter ships it),
    a fake Core ML package and a rejected artifact that must be ignored."""
    import torch

    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    import litert_torch

    out = tmp_path_factory.mktemp("release")
    net = _tiny_net()
    x = torch.rand(1, 3, *HW)
    torch.onnx.export(net, (x,), str(out / "tiny_fp32.onnx"), dynamo=False, input_names=["input"], output_names=["output"])
    nhwc = litert_torch.to_channel_last_io(net, args=[0], outputs=[0]).eval()
    litert_torch.convert(nhwc, (x.permute(0, 2, 3, 1).contiguous(),)).export(str(out / "tiny_fp32.tflite"))
    spec = TensorSpec(name="input", shape=[1, 3, *HW], layout="NCHW", dtype="float32")
    report = ArtifactReport(artifact="tiny_fp32.onnx", format="onnx", precision="fp32", tier="cpu", arch="tiny-test",
                            sha256=sha256_file(out / "tiny_fp32.onnx"), bytes=(out / "tiny_fp32.onnx").stat().st_size,
                            input=spec, output=spec.model_copy(update={"name": "output"}), runtime="onnxruntime",
                            parity=ParityResult(runnable=True, psnr_db=80.0, gate_db=40.0, images=1, passed=True),
                            op_check=OpCheck(passed=True), passed=True)
    atomic_write_text(report_path_for(out / "tiny_fp32.onnx"), report.model_dump_json())
    (out / "tiny_fp32.mlpackage" / "Data").mkdir(parents=True)
    (out / "rejected").mkdir()
    (out / "rejected" / "broken_int8.onnx").write_bytes(b"not a model")
    return out


@pytest.fixture(scope="module")
def bench_doc(release_dir: Path) -> dict:
    cfg = BenchConfig(warmup=1, runs=7, threads=(1, 2))
    path = bench_artifacts([release_dir], cfg, release_dir, progress=False)
    assert path == release_dir / "bench.json"
    return json.loads(path.read_text())


def test_discovery_skips_rejected_and_rejects_non_models(release_dir: Path, tmp_path: Path) -> None:
    names = sorted(p.name for p in discover_artifacts([release_dir]))
    assert names == ["tiny_fp32.mlpackage", "tiny_fp32.onnx", "tiny_fp32.tflite"]
    with pytest.raises(BenchError, match="no artifacts"):
        discover_artifacts([tmp_path])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(BenchError, match="not a model artifact"):
        discover_artifacts([tmp_path / "notes.txt"])
    with pytest.raises(BenchError, match="no such file"):
        discover_artifacts([tmp_path / "missing.onnx"])


def test_records_are_complete_and_ordered(bench_doc: dict) -> None:
    ok = [r for r in bench_doc["results"] if r["status"] == "ok"]
    assert sorted((r["format"], r["runtime"], r["threads"]) for r in ok) == [
        ("onnx", "onnxruntime", 1), ("onnx", "onnxruntime", 2), ("tflite", "litert", 1), ("tflite", "litert", 2)]
    for r in ok:
        missing = [f for f in RECORD_FIELDS if f not in r]
        assert not missing, missing
        assert all(isinstance(r[f], float) and r[f] >= 0 for f in TIMING_FIELDS), r
        assert 0 < r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["spread_p90_p50"] == pytest.approx(r["p90_ms"] / r["p50_ms"], rel=1e-3)
        assert r["input_hw"] == list(HW) and r["runs"] == 7 and r["warmup"] == 1
        assert len(r["sha256"]) == 64
    assert {r["delegate"] for r in ok if r["runtime"] == "litert"} == {"xnnpack"}
    assert bench_doc["config"]["runs"] == 7 and bench_doc["machine"]["logical_cpus"] >= 1
    assert (Path(ok[0]["path"]).parent / BENCH_CHART).stat().st_size > 1000
    assert bench_doc["chart"] == BENCH_CHART


def test_report_facts_and_parity_against_fp32_sibling(bench_doc: dict) -> None:
    by_key = {(r["artifact"], r["threads"]): r for r in bench_doc["results"]}
    onnx = by_key[("tiny_fp32.onnx", 1)]
    assert (onnx["tier"], onnx["arch"], onnx["export_parity_psnr_db"]) == ("cpu", "tiny-test", 80.0)
    tflite = by_key[("tiny_fp32.tflite", 1)]
    assert tflite["precision"] == "fp32"  # from the file name when there is no report
    # the NHWC TFLite and the NCHW ONNX model are the same network: near-identical outputs
    assert tflite["parity_reference"].startswith("tiny_fp32.onnx")
    assert tflite["parity_psnr_db"] > 60 and tflite["parity_max_abs_err"] < 1e-3


def test_coreml_is_skipped_with_reason_off_macos(bench_doc: dict) -> None:
    (coreml,) = [r for r in bench_doc["results"] if r["format"] == "coreml"]
    if os.uname().sysname == "Darwin":
        pytest.skip("Core ML runs on macOS")
    assert coreml["status"] == "skipped" and "macOS" in coreml["reason"]
    assert "p50_ms" not in coreml


def test_noise_warning_logic() -> None:
    steady = latency_stats([10.0, 10.1, 10.2, 9.9, 10.0, 10.3, 10.1, 10.0, 10.2, 10.1])
    assert steady["p50_ms"] == pytest.approx(10.1) and steady["spread_p90_p50"] < 1.05
    assert noise_warning(steady, 1.2, "x") is None
    noisy = latency_stats([10.0] * 8 + [16.0, 18.0])
    assert noisy["p90_ms"] == pytest.approx(16.2)
    message = noise_warning(noisy, 1.2, "m.tflite on litert")
    assert message is not None and "p90/p50 = 1.62 > 1.20" in message and "m.tflite" in message
    assert noise_warning(noisy, 1.7, "x") is None  # threshold is the config's


def test_noisy_run_is_flagged_in_bench_json(release_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A runner whose every 4th call is slow produces p90/p50 > 1.2 and a warning in the file."""
    import time

    calls = {"n": 0}
    original = LiteRTRunner.invoke

    def jittery(self, native):
        calls["n"] += 1
        if calls["n"] % 4 == 0:
            time.sleep(0.02)
        return original(self, native)

    monkeypatch.setattr(LiteRTRunner, "invoke", jittery)
    cfg = BenchConfig(warmup=0, runs=12, threads=(1,))
    path = bench_artifacts([release_dir / "tiny_fp32.tflite"], cfg, tmp_path, progress=False,
                           runtimes={"tflite": [RuntimeSpec("litert", "xnnpack", 1)]})
    doc = json.loads(path.read_text())
    (record,) = doc["results"]
    assert record["spread_p90_p50"] > 1.2 and "noisy timing" in record["noise_warning"]
    assert doc["warnings"] == [record["noise_warning"]]


def test_int8_io_conversion_round_trips() -> None:
    runner = _Runner()
    runner.in_shape, runner.in_dtype, runner.in_layout = (1, 4, 4, 3), np.dtype(np.int8), "NHWC"
    runner.in_quant, runner.out_quant, runner.out_layout = (1 / 255, -128), (1 / 255, -128), "NHWC"
    x = np.random.default_rng(0).random((1, 3, 4, 4), dtype=np.float32)
    native = runner.prepare(x)
    assert native.dtype == np.int8 and native.shape == (1, 4, 4, 3)
    back = runner.to_nchw(native)
    assert back.shape == x.shape and np.max(np.abs(back - x)) <= 0.5 / 255 + 1e-6


def test_cli_benchmarks_paths_and_reports_errors(release_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from mobile_pipeline.cli import main

    code = main(["bench", str(release_dir / "tiny_fp32.onnx"), "--runs", "3", "--warmup", "0", "--threads", "1",
                 "--out", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "onnxruntime-cpu-t1" in out and "wrote" in out
    (record,) = json.loads((tmp_path / "bench.json").read_text())["results"]
    assert record["runs"] == 3 and record["threads"] == 1
    assert main(["bench"]) == 2
    assert "bench import" in capsys.readouterr().err
    assert main(["bench", str(tmp_path / "nothing.onnx")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["bench", str(release_dir), "--threads", "one"]) == 2
    assert "--threads" in capsys.readouterr().err


def test_own_reference_file_is_used_for_parity(release_dir: Path, tmp_path: Path) -> None:
    import shutil

    import torch

    shutil.copy(release_dir / "tiny_fp32.onnx", tmp_path / "tiny_fp32.onnx")
    x = np.random.default_rng(1).random((1, 3, *HW), dtype=np.float32)
    with torch.no_grad():
        y = _tiny_net()(torch.from_numpy(x)).numpy()
    np.savez(tmp_path / "tiny_fp32.onnx.reference.npz", input=x, output=y)
    cfg = BenchConfig(warmup=0, runs=2, threads=(1,))
    (record,) = json.loads(bench_artifacts([tmp_path], cfg, tmp_path, progress=False).read_text())["results"]
    assert record["parity_reference"] == "tiny_fp32.onnx.reference.npz"
    assert record["parity_psnr_db"] > 60
    np.savez(tmp_path / "tiny_fp32.onnx.reference.npz", input=x, output=np.clip(y + 0.1, 0, 1))
    (record,) = json.loads(bench_artifacts([tmp_path], cfg, tmp_path, progress=False).read_text())["results"]
    assert 15 < record["parity_psnr_db"] < 25  # a 0.1 offset is ~20 dB: the check can fail


def test_rejected_fp32_sibling_serves_as_parity_reference(release_dir: Path, tmp_path: Path) -> None:
    """int8-only tiers reject their fp32 export; it still gives the reference answer, unbenchmarked."""
    import shutil

    (tmp_path / "rejected").mkdir()
    shutil.copy(release_dir / "tiny_fp32.onnx", tmp_path / "rejected" / "tiny_fp32.onnx")
    shutil.copy(release_dir / "tiny_fp32.tflite", tmp_path / "tiny_int8-full.tflite")  # stands in for a quantized one
    cfg = BenchConfig(warmup=0, runs=2, threads=(1,))
    (record,) = json.loads(bench_artifacts([tmp_path], cfg, tmp_path, progress=False).read_text())["results"]
    assert record["artifact"] == "tiny_int8-full.tflite" and record["precision"] == "int8-full"
    assert record["parity_reference"] == "tiny_fp32.onnx on onnxruntime (export-rejected, reference only)"
    assert record["parity_psnr_db"] > 60

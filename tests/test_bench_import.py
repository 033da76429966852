"""Import of on-device results: benchmark_model logs of several tool versions, the JSON form, storage."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mobile_pipeline.bench.device_import import (
    BenchmarkOutputError,
    import_measurement,
    measurement_from_benchmark_model,
    parse_benchmark_model_output,
)
from mobile_pipeline.bench.measurement import DeviceTag, MeasurementError, load_measurements

FIXTURES = Path(__file__).parent / "fixtures" / "benchmark_model"
NOW = datetime(2026, 11, 22, 8, 30, 0, tzinfo=timezone.utc)


def _parse(name: str) -> dict:
    return parse_benchmark_model_output((FIXTURES / name).read_text(), source=name)


def test_old_format_with_peak_memory_line() -> None:
    out = _parse("v2_1_cpu_4threads_peak_memory.txt")
    assert out["init_ms"] == pytest.approx(16.242)
    assert out["first_inference_ms"] == pytest.approx(36.026)
    assert out["warmup_avg_ms"] == pytest.approx(32.4587)
    assert out["inference_avg_ms"] == pytest.approx(28.684)
    assert out["num_threads"] == 4
    assert (out["use_gpu"], out["use_xnnpack"], out["delegate"]) == (False, False, "cpu")
    assert out["model_path"] == "/data/local/tmp/stylizer-cpu-fp32.tflite"
    assert out["memory_mb"] == {"peak_init_mb": pytest.approx(4.92969), "peak_overall_mb": pytest.approx(38.809)}
    # the last count= line is the measured run, the one before it the warm-up
    assert out["inference_stats"]["count"] == 50 and out["inference_stats"]["std_ms"] == pytest.approx(1.442)
    assert out["warmup_stats"]["count"] == 3


def test_new_format_info_prefix_percentiles_and_memory_delta() -> None:
    out = _parse("v2_16_xnnpack_1thread.txt")
    assert out["inference_avg_ms"] == pytest.approx(18.5126)
    assert out["num_threads"] == 1 and out["use_xnnpack"] is True and out["delegate"] == "xnnpack"
    assert out["inference_stats"]["median_ms"] == pytest.approx(18.321)
    assert out["inference_stats"]["p95_ms"] == pytest.approx(19.866)
    assert out["memory_mb"]["init_delta_mb"] == pytest.approx(6.32422)
    assert out["memory_mb"]["overall_delta_mb"] == pytest.approx(12.4648)
    assert out["memory_mb"]["peak_monitored_mb"] == pytest.approx(15.6836)
    assert out["model_size_mb"] == pytest.approx(0.412836)


def test_gpu_delegate_logcat_prefix() -> None:
    out = _parse("v2_14_gpu_delegate_logcat.txt")
    assert out["use_gpu"] is True and out["delegate"] == "gpu"
    assert out["delegated_nodes"] == [41, 41] and out["delegate_partial"] is False
    assert out["delegate_kernel"] == "TfLiteGpuDelegateV2"
    assert out["init_ms"] == pytest.approx(1179.287)
    assert out["inference_avg_ms"] == pytest.approx(5.67239)
    assert out["model_path"].endswith("stylizer-gpu-fp16.tflite")


def test_partial_gpu_delegation_is_flagged() -> None:
    out = _parse("v2_12_gpu_partial_delegation.txt")
    assert out["delegated_nodes"] == [38, 41] and out["delegate_partial"] is True
    assert out["inference_avg_ms"] == pytest.approx(11.3429) and out["inference_stats"]["count"] == 88
    assert out["memory_mb"] == {"init_delta_mb": pytest.approx(88.1211), "overall_delta_mb": pytest.approx(90.7734)}
    m = measurement_from_benchmark_model(out, DeviceTag(soc_model="SM7325"))
    assert "38 of 41 nodes" in m.notes and m.delegate == "gpu"


def test_nnapi_scientific_notation_without_memory_lines() -> None:
    out = _parse("v1_15_nnapi_no_memory.txt")
    assert out["delegate"] == "nnapi"
    assert out["first_inference_ms"] == pytest.approx(2018.53)
    assert out["inference_avg_ms"] == pytest.approx(3.9324)
    assert out["inference_stats"]["avg_ms"] == pytest.approx(3.9324)
    assert out["memory_mb"] == {}


@pytest.mark.parametrize(("name", "expected"), [
    ("malformed_truncated.txt", "no 'Inference timings in us"),
    ("malformed_missing_inference_avg.txt", "lacks 'Inference (avg)'"),
    ("malformed_delegate_failed.txt", "Failed to apply GPU delegate"),
])
def test_malformed_outputs_give_clear_errors(name: str, expected: str) -> None:
    with pytest.raises(BenchmarkOutputError) as info:
        _parse(name)
    assert expected in str(info.value)
    assert name in str(info.value)  # the file is named


def test_empty_output_is_an_error() -> None:
    with pytest.raises(BenchmarkOutputError, match="empty"):
        parse_benchmark_model_output("  \n\n", source="x.txt")


def test_import_log_stores_tagged_measurement(tmp_path: Path) -> None:
    stored = import_measurement(FIXTURES / "v2_16_xnnpack_1thread.txt", soc_model="SM8650", manufacturer="QTI",
                                device_name="Galaxy S24", arch="s16_e24-32", tier="cpu", input_hw=(256, 256),
                                out_root=tmp_path, now=NOW)
    assert stored == [tmp_path / "SM8650" / "20261122T083000Z-stylizer-cpu-fp32.tflite.json"]
    assert not list(tmp_path.rglob("*.tmp"))
    (path, m), = load_measurements(tmp_path)
    assert path == stored[0]
    assert (m.device.soc_model, m.device.manufacturer, m.device.device_name) == ("SM8650", "QTI", "Galaxy S24")
    assert (m.source, m.format, m.delegate, m.num_threads) == ("benchmark_model", "tflite", "xnnpack", 1)
    assert m.latency.avg_ms == pytest.approx(18.5126)
    assert m.latency.typical_ms == pytest.approx(18.321)  # the median when the tool printed one
    assert m.arch == "s16_e24-32" and m.input_hw == (256, 256) and m.tier == "cpu"
    assert m.memory.peak_mb == pytest.approx(15.6836)
    # a second import in the same second does not overwrite the first
    again = import_measurement(FIXTURES / "v2_16_xnnpack_1thread.txt", soc_model="SM8650", out_root=tmp_path, now=NOW)
    assert again[0] != stored[0] and len(load_measurements(tmp_path)) == 2


def test_import_log_needs_soc(tmp_path: Path) -> None:
    with pytest.raises(MeasurementError, match="--soc"):
        import_measurement(FIXTURES / "v2_16_xnnpack_1thread.txt", out_root=tmp_path)
    assert not tmp_path.exists() or not list(tmp_path.rglob("*.json"))


def _json_form(**overrides) -> dict:
    doc = {"source": "coreml_report", "device": {"soc_model": "iPhone16,1", "platform": "ios", "device_name": "iPhone 15 Pro"},
           "artifact": "npu_fp16.mlpackage", "format": "coreml", "precision": "fp16", "arch": "s16_e24-32",
           "input_hw": [384, 384], "delegate": "ane",
           "latency": {"avg_ms": 3.1, "p50_ms": 3.0, "p90_ms": 3.4, "count": 100}}
    doc.update(overrides)
    return doc


def test_import_json_form(tmp_path: Path) -> None:
    src = tmp_path / "report.json"
    src.write_text(json.dumps(_json_form()))
    stored = import_measurement(src, out_root=tmp_path / "m", now=NOW)
    (_, m), = load_measurements(tmp_path / "m")
    assert stored[0].parent.name == "iPhone16,1"
    assert m.device.platform == "ios" and m.latency.typical_ms == 3.0 and m.imported_at == NOW
    # a list of measurements is accepted too
    src.write_text(json.dumps([_json_form(), _json_form(artifact="npu_w8.mlpackage")]))
    assert len(import_measurement(src, out_root=tmp_path / "m2", now=NOW)) == 2


@pytest.mark.parametrize(("doc", "field", "msg"), [
    (_json_form(latency={"p50_ms": 3.0}), "latency.avg_ms", "required field is missing"),
    (_json_form(avg_ms=3.0), "avg_ms", "unknown key"),
    (_json_form(latency={"avg_ms": -1}), "latency.avg_ms", "greater than 0"),
    (_json_form(latency={"avg_ms": 3, "p50_ms": 4, "p90_ms": 3}), "p50_ms <= p90_ms", ""),
])
def test_invalid_json_names_the_field(tmp_path: Path, doc: dict, field: str, msg: str) -> None:
    src = tmp_path / "bad.json"
    src.write_text(json.dumps(doc))
    with pytest.raises(MeasurementError) as info:
        import_measurement(src, out_root=tmp_path / "m")
    assert field in str(info.value) and msg in str(info.value) and "bad.json" in str(info.value)
    assert not (tmp_path / "m").exists()


def test_json_device_conflicting_with_soc_flag(tmp_path: Path) -> None:
    src = tmp_path / "m.json"
    src.write_text(json.dumps(_json_form()))
    with pytest.raises(MeasurementError, match="--soc says 'A17'"):
        import_measurement(src, soc_model="A17", out_root=tmp_path / "m")
    doc = _json_form()
    del doc["device"]
    src.write_text(json.dumps(doc))
    with pytest.raises(MeasurementError, match="device.soc_model is missing"):
        import_measurement(src, out_root=tmp_path / "m")
    assert import_measurement(src, soc_model="iPhone16,1", out_root=tmp_path / "m")


def test_corrupt_stored_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "SM8650" / "x.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    with pytest.raises(MeasurementError, match="x.json"):
        load_measurements(tmp_path)


def test_cli_import(tmp_path: Path, capsys) -> None:
    from mobile_pipeline.cli import main

    log = FIXTURES / "v2_14_gpu_delegate_logcat.txt"
    # options before and after the file both work
    assert main(["bench", "import", "--soc", "SM8550", str(log), "--manufacturer", "QTI", "--arch", "s16_e24-32",
                 "--input-hw", "320,320", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "imported stylizer-gpu-fp16.tflite on SM8550: 5.63 ms (gpu, 4 threads)" in out
    (_, m), = load_measurements(tmp_path)
    assert m.input_hw == (320, 320) and m.device.manufacturer == "QTI"
    assert main(["bench", "import", str(FIXTURES / "malformed_truncated.txt"), "--soc", "X", "--out", str(tmp_path)]) == 2
    assert "looks interrupted" in capsys.readouterr().err
    assert main(["bench", "import", str(log), "--soc", "X", "--input-hw", "320", "--out", str(tmp_path)]) == 2
    assert "--input-hw" in capsys.readouterr().err


def test_readme_json_example_is_valid(tmp_path: Path) -> None:
    """The documented JSON form (device_tiers/measurements/README.md) imports as written."""
    readme = (Path(__file__).parents[1] / "device_tiers" / "measurements" / "README.md").read_text()
    example = readme.split("```json", 1)[1].split("```", 1)[0]
    src = tmp_path / "example.json"
    src.write_text(example)
    (path,) = import_measurement(src, out_root=tmp_path / "m", now=NOW)
    (_, m), = load_measurements(tmp_path / "m")
    assert m.device.platform == "ios" and m.latency.p99_ms == 4.0 and m.input_hw == (384, 384)


def test_artifact_report_supplies_arch_tier_and_size(tmp_path: Path) -> None:
    from mobile_pipeline.exporters.report import ArtifactReport, OpCheck, ParityResult, TensorSpec, report_path_for

    artifact = tmp_path / "gpu_fp16.tflite"
    artifact.write_bytes(b"model")
    spec = TensorSpec(name="in", shape=[1, 320, 320, 3], layout="NHWC", dtype="float32")
    report = ArtifactReport(artifact=artifact.name, format="tflite", precision="fp16", tier="gpu", arch="s16_e24-32",
                            sha256="0" * 64, bytes=5, input=spec, output=spec, runtime="litert",
                            parity=ParityResult(runnable=True, gate_db=40.0, passed=True), op_check=OpCheck(passed=True),
                            passed=True)
    report_path_for(artifact).write_text(report.model_dump_json())
    import_measurement(FIXTURES / "v2_14_gpu_delegate_logcat.txt", soc_model="SM8550", artifact=artifact,
                       out_root=tmp_path / "m", now=NOW)
    (_, m), = load_measurements(tmp_path / "m")
    assert (m.artifact, m.arch, m.tier, m.precision, m.input_hw) == ("gpu_fp16.tflite", "s16_e24-32", "gpu", "fp16", (320, 320))

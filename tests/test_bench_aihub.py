"""Import of Qualcomm AI Hub profiles: perf.yaml, profile-job JSON, a single record, a wheel."""

from __future__ import annotations

import json
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mobile_pipeline.bench.aihub import (
    AIHubImportError,
    load_aihub_devices,
    model_from_path,
    parse_device_soc,
    read_aihub_file,
    read_aihub_wheel,
)
from mobile_pipeline.bench.calibrate import calibrate
from mobile_pipeline.bench.device_import import import_aihub, is_aihub_file
from mobile_pipeline.bench.measurement import load_measurements
from mobile_pipeline.cli import main as cli_main

NOW = datetime(2026, 11, 22, 8, 30, 0, tzinfo=timezone.utc)

PERF_YAML = """\
precisions:
  w8a8:
    components:
      QuickSRNetSmall:
        performance_metrics:
          Samsung Galaxy S24:
            tflite:
              estimated_peak_memory_range_mb: {max: 32, min: 1}
              inference_time_milliseconds: 0.255
              job_id: j57e6z8qp
              job_status: Passed
              layer_counts: {npu: 15, total: 15}
              primary_compute_unit: NPU
              tool_versions: {qairt: 2.50.0.260828221209}
            qnn_dlc:
              inference_time_milliseconds: 0.213
              job_id: jglyqx185
              job_status: Passed
              layer_counts: {npu: 11, total: 11}
              primary_compute_unit: NPU
              tool_versions: {qairt: 2.50.0.260828221209}
            onnx:
              inference_time_milliseconds: null
              job_id: jfailed00
              job_status: Failed
          Samsung Galaxy S22 5G:
            tflite:
              inference_time_milliseconds: 0.472
              job_id: j0000s22a
              job_status: Passed
              layer_counts: {cpu: 2, npu: 13, total: 15}
              primary_compute_unit: NPU
              tool_versions: {qairt: 2.50.0}
          Dragonwing Q-8750:
            tflite:
              inference_time_milliseconds: 0.233
              job_id: jcopied00
              job_status: Passed
              layer_counts: {npu: 15, total: 15}
              primary_compute_unit: NPU
          Galaxy Future 9:
            tflite:
              inference_time_milliseconds: 0.1
              job_id: jfuture00
              job_status: Passed
              primary_compute_unit: NPU
supported_chipsets: [qualcomm-snapdragon-8gen3]
"""

PROFILE_JOB = {
    "execution_summary": {"estimated_inference_time": 1296, "inference_memory_peak_range": [2 * 2**20, 50 * 2**20],
                          "first_load_time": 812000, "warm_load_time": 120000},
    "execution_detail": [{"name": "conv", "compute_unit": "NPU"}] * 19 + [{"name": "q", "compute_unit": "CPU"}] * 2,
}


def _perf_file(tmp_path: Path) -> Path:
    path = tmp_path / "qai_hub_models" / "models" / "quicksrnetsmall" / "perf.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(PERF_YAML, encoding="utf-8")
    return path


def test_perf_yaml_maps_devices_to_socs_and_keeps_every_fact(tmp_path):
    result = read_aihub_file(_perf_file(tmp_path))
    by_key = {(m.device.device_name, m.runtime): m for m in result.measurements}
    assert set(by_key) == {("Samsung Galaxy S24", "tflite"), ("Samsung Galaxy S24", "qnn_dlc"),
                           ("Samsung Galaxy S22 5G", "tflite")}
    s24 = by_key[("Samsung Galaxy S24", "tflite")]
    assert (s24.device.soc_model, s24.device.manufacturer) == ("SM8650", "QTI")
    assert by_key[("Samsung Galaxy S22 5G", "tflite")].device.soc_model == "SM8450"
    assert s24.source == "aihub" and s24.reference_model == "quicksrnetsmall"  # folder name; component is the same net
    assert (s24.runtime, s24.precision, s24.format, s24.compute_unit) == ("tflite", "w8a8", "tflite", "NPU")
    assert s24.latency.typical_ms == pytest.approx(0.255)
    assert s24.layer_counts == {"npu": 15, "total": 15}
    assert s24.tool_versions == {"qairt": "2.50.0.260828221209"}
    assert s24.memory.peak_mb == 32.0 and s24.raw["job_id"] == "j57e6z8qp" and s24.raw["htp"] == 75
    assert s24.origin.endswith("quicksrnetsmall/perf.yaml")
    assert by_key[("Samsung Galaxy S24", "qnn_dlc")].format is None  # a QNN DLC is not a format we export
    assert by_key[("Samsung Galaxy S22 5G", "tflite")].layer_counts["cpu"] == 2
    skipped = " | ".join(result.skipped)
    assert "jfailed00 Failed" in skipped
    assert "Dragonwing Q-8750: AI Hub copies these numbers" in skipped
    assert "unknown device 'Galaxy Future 9'" in skipped and "--device-soc" in skipped


def test_unknown_device_can_be_mapped_on_the_command_line(tmp_path):
    devices = load_aihub_devices(extra=parse_device_soc(["Galaxy Future 9=SM9999"]))
    result = read_aihub_file(_perf_file(tmp_path), devices=devices)
    assert {m.device.soc_model for m in result.measurements} == {"SM8650", "SM8450", "SM9999"}
    with pytest.raises(AIHubImportError, match="'DEVICE NAME=SOC_MODEL'"):
        parse_device_soc(["no equals sign"])


def test_profile_job_json_needs_where_it_ran_and_converts_units(tmp_path):
    path = tmp_path / "job.json"
    path.write_text(json.dumps(PROFILE_JOB), encoding="utf-8")
    assert is_aihub_file(path)
    with pytest.raises(AIHubImportError, match="--model MODEL_ID"):
        read_aihub_file(path)
    with pytest.raises(AIHubImportError, match="pass --device, --runtime"):
        read_aihub_file(path, model="dncnn", precision="w8a8")
    with pytest.raises(AIHubImportError, match="unknown device 'Pixel 99'"):
        read_aihub_file(path, model="dncnn", device="Pixel 99", runtime="tflite", precision="w8a8")
    (m,) = read_aihub_file(path, model="dncnn", device="Samsung Galaxy S24", runtime="tflite",
                           precision="w8a8").measurements
    assert m.latency.avg_ms == pytest.approx(1.296)  # microseconds -> ms
    assert m.layer_counts == {"npu": 19, "cpu": 2, "total": 21} and m.compute_unit == "NPU"
    assert m.memory.peak_mb == pytest.approx(50.0)
    assert m.raw["first_load_ms"] == pytest.approx(812.0)
    assert (m.device.soc_model, m.reference_model, m.artifact) == ("SM8650", "dncnn", "dncnn.w8a8.tflite")


def test_single_perf_record_as_json(tmp_path):
    path = tmp_path / "record.json"
    path.write_text(json.dumps({"inference_time_milliseconds": 4.5, "primary_compute_unit": "NPU",
                                "layer_counts": {"npu": 78, "total": 78}, "job_id": "jx", "job_status": "Passed"}))
    (m,) = read_aihub_file(path, model="srgan", device="Samsung Galaxy S25", runtime="qnn_dlc",
                           precision="w8a8").measurements
    assert (m.device.soc_model, m.latency.avg_ms, m.runtime) == ("SM8750", 4.5, "qnn_dlc")
    bad = tmp_path / "bad.yaml"
    bad.write_text("precisions: {w8a8: {components: {X: {performance_metrics: {Samsung Galaxy S24: "
                   "{tflite: {inference_time_milliseconds: -1, job_status: Passed}}}}}}}\n")
    with pytest.raises(AIHubImportError, match="inference_time_milliseconds must be a positive number"):
        read_aihub_file(bad, model="x")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    assert not is_aihub_file(other)


def test_wheel_is_read_as_a_zip_with_its_version(tmp_path):
    wheel = tmp_path / "qai_hub_models-9.9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("qai_hub_models/models/quicksrnetsmall/perf.yaml", PERF_YAML)
        archive.writestr("qai_hub_models/models/quicksrnetsmall/model.py", "# not read")
    assert model_from_path("qai_hub_models/models/xlsr/perf.yaml") == "xlsr"
    result = read_aihub_wheel(wheel)
    assert len(result.measurements) == 3
    assert {m.origin for m in result.measurements} == {
        "qai-hub-models 9.9.9: qai_hub_models/models/quicksrnetsmall/perf.yaml"}
    with pytest.raises(AIHubImportError, match=r"no perf.yaml for \['xlsr'\]"):
        read_aihub_wheel(wheel, ["xlsr"])


def test_cli_import_stores_one_list_file_that_the_store_reads_back(tmp_path, capsys):
    out = tmp_path / "measurements"
    assert cli_main(["bench", "import", str(_perf_file(tmp_path)), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "imported 3 AI Hub measurements of quicksrnetsmall on 2 devices" in printed
    assert "skipped:" in printed
    (stored,) = (out / "aihub").glob("*.json")
    assert isinstance(json.loads(stored.read_text()), list)
    loaded = load_measurements(out)
    assert len(loaded) == 3 and all(path == stored for path, _ in loaded)
    job = tmp_path / "job.json"
    job.write_text(json.dumps(PROFILE_JOB))
    assert cli_main(["bench", "import", str(job), "--out", str(out), "--model", "dncnn"]) == 2
    assert "pass --device, --runtime, --precision" in capsys.readouterr().err


def test_published_measurements_never_move_devices_or_scale_tiers(tmp_path):
    out = tmp_path / "measurements"
    paths, _ = import_aihub(_perf_file(tmp_path), out_root=out, now=NOW)
    assert paths[0].name == "20261122T083000Z-quicksrnetsmall.json"
    report = calibrate(measurements_dir=out, dry_run=True, latency_model=object(), tiers={})
    # three networks' worth of data is too little to fit a device, and nothing of ours was measured
    assert report.fits == {} and report.moves == [] and report.written == []
    assert any("need 9" in note for note in report.skipped)
    assert any("no measurements of our own artifacts" in note for note in report.skipped)

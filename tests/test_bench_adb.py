"""Android runner: clear skip messages without adb or device; full push/run/import flow against a fake adb."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mobile_pipeline.bench.adb import AdbUnavailable, find_adb, list_devices, run_benchmark_model
from mobile_pipeline.bench.measurement import load_measurements

FIXTURES = Path(__file__).parent / "fixtures" / "benchmark_model"

FAKE_ADB = """#!/bin/sh
# Fake adb: answers like a phone with SoC SM8650, logs every call.
echo "$@" >> "{log}"
[ "$1" = "-s" ] && shift 2
case "$1" in
  devices) printf 'List of devices attached\\n'; [ -n "{serial}" ] && printf '{serial}\\tdevice\\nOLD1\\tunauthorized\\n'; exit 0 ;;
  push) exit 0 ;;
  shell)
    case "$2" in
      getprop)
        case "$3" in
          ro.soc.model) echo SM8650 ;;
          ro.soc.manufacturer) echo QTI ;;
          ro.product.model) echo SM-S921B ;;
        esac; exit 0 ;;
      mkdir|chmod) exit 0 ;;
      *) cat "{output}"; exit 0 ;;
    esac ;;
esac
exit 1
"""


def _fake_adb(tmp_path: Path, serial: str = "R5CX1234", output: str = "v2_16_xnnpack_1thread.txt") -> tuple[Path, Path]:
    log = tmp_path / "adb_calls.log"
    script = tmp_path / "bin" / "adb"
    script.parent.mkdir(exist_ok=True)
    script.write_text(FAKE_ADB.format(log=log, serial=serial, output=FIXTURES / output))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script, log


def test_no_adb_gives_clear_skip_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ADB", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no adb anywhere
    with pytest.raises(AdbUnavailable) as info:
        find_adb()
    message = str(info.value)
    assert "skipped the Android runner" in message and "`adb` was not found" in message and "bench import" in message


def test_no_device_gives_clear_skip_message(tmp_path: Path) -> None:
    adb, _ = _fake_adb(tmp_path, serial="")
    assert list_devices(str(adb)) == []
    artifact = tmp_path / "m.tflite"
    artifact.write_bytes(b"x")
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"x")
    with pytest.raises(AdbUnavailable, match="adb sees no device"):
        run_benchmark_model(artifact, binary, adb=str(adb), out_root=tmp_path / "m")


def test_cli_reports_skip_and_exits_zero(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    from mobile_pipeline.cli import main

    monkeypatch.delenv("ADB", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    artifact = tmp_path / "m.tflite"
    artifact.write_bytes(b"x")
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"x")
    assert main(["bench", "adb", str(artifact), "--binary", str(binary)]) == 0
    assert "skipped the Android runner" in capsys.readouterr().err


def test_full_flow_pushes_runs_and_imports(tmp_path: Path) -> None:
    adb, log = _fake_adb(tmp_path)
    artifact = tmp_path / "cpu_fp32.tflite"
    artifact.write_bytes(b"model")
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"elf")
    stored, raw = run_benchmark_model(artifact, binary, adb=str(adb), threads=2, out_root=tmp_path / "m")
    assert "Inference timings in us" in raw
    calls = log.read_text().splitlines()
    assert any(c.startswith("-s R5CX1234 push") and c.endswith("/benchmark_model") for c in calls)
    assert any("push" in c and "cpu_fp32.tflite" in c for c in calls)
    (run_call,) = [c for c in calls if "--graph=" in c]
    assert "--num_threads=2" in run_call and "--use_gpu=false" in run_call
    (path, m), = load_measurements(tmp_path / "m")
    assert path == stored and path.parent.name == "SM8650"
    assert (m.device.soc_model, m.device.manufacturer, m.device.device_name) == ("SM8650", "QTI", "SM-S921B")
    assert m.artifact == "cpu_fp32.tflite" and m.latency.avg_ms == pytest.approx(18.5126)


def test_failed_device_run_is_an_error_not_an_import(tmp_path: Path) -> None:
    from mobile_pipeline.bench.device_import import BenchmarkOutputError

    adb, _ = _fake_adb(tmp_path, output="malformed_delegate_failed.txt")
    artifact = tmp_path / "dsp_int8-full.tflite"
    artifact.write_bytes(b"model")
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"elf")
    with pytest.raises(BenchmarkOutputError, match="Failed to apply GPU delegate"):
        run_benchmark_model(artifact, binary, adb=str(adb), use_gpu=True, out_root=tmp_path / "m")
    assert not (tmp_path / "m").exists()


@pytest.mark.skipif(os.name != "posix", reason="fake adb is a shell script")
def test_wrong_serial_is_named(tmp_path: Path) -> None:
    adb, _ = _fake_adb(tmp_path)
    artifact = tmp_path / "m.tflite"
    artifact.write_bytes(b"x")
    with pytest.raises(AdbUnavailable, match="'NOPE' is not attached; attached: R5CX1234"):
        run_benchmark_model(artifact, artifact, adb=str(adb), serial="NOPE")

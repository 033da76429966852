"""Optional Android runner: push an artifact and the user's ``benchmark_model`` over adb, run, import.

We do not ship ``benchmark_model`` (it is built per ABI from the TensorFlow/LiteRT tree or
downloaded from the LiteRT releases); the user passes its path. The device is tagged from
its own properties (``ro.soc.model``, ``ro.soc.manufacturer``, ``ro.product.model``), so the
import lands under the right SoC without typing it. When there is no ``adb`` on PATH (or
``$ADB``), or no device in the ``device`` state, :class:`AdbUnavailable` says exactly that and
what to do; the CLI reports it and exits 0-with-skip rather than failing a release.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mobile_pipeline.bench.device_import import measurement_from_benchmark_model, parse_benchmark_model_output, artifact_facts
from mobile_pipeline.bench.measurement import DeviceTag, store_measurement

REMOTE_DIR = "/data/local/tmp/mobile_pipeline"


class AdbUnavailable(RuntimeError):
    """No adb or no device: the Android runner is skipped; the message says why."""


class AdbError(RuntimeError):
    """adb itself failed (push, shell); the message carries adb's output."""


@dataclass(frozen=True)
class AndroidDevice:
    serial: str
    soc_model: str
    manufacturer: str | None
    device_name: str | None


def find_adb() -> str:
    """Path of the adb binary (``$ADB`` first, then PATH)."""
    candidate = os.environ.get("ADB") or shutil.which("adb")
    if not candidate or not Path(candidate).exists():
        raise AdbUnavailable("skipped the Android runner: `adb` was not found on PATH (or $ADB); install the Android "
                             "platform-tools, or run benchmark_model yourself and use `mobile-pipeline bench import`")
    return candidate


def _run(adb: str, args: list[str], serial: str | None = None, timeout: float = 600) -> str:
    cmd = [adb, *(["-s", serial] if serial else []), *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AdbError(f"`{' '.join(cmd)}` timed out after {timeout:.0f} s") from None
    if done.returncode != 0:
        raise AdbError(f"`{' '.join(cmd)}` failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-500:]}")
    return done.stdout


def list_devices(adb: str) -> list[str]:
    """Serials of attached devices in the ``device`` state (not ``unauthorized``/``offline``)."""
    out = _run(adb, ["devices"], timeout=30)
    serials = []
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[1] == "device":
            serials.append(parts[0])
    return serials


def pick_device(adb: str, serial: str | None = None) -> AndroidDevice:
    """The requested (or only) device, tagged from its properties."""
    serials = list_devices(adb)
    if not serials:
        raise AdbUnavailable("skipped the Android runner: adb sees no device (connect a phone with USB debugging "
                             "enabled and accept the prompt; `adb devices` must list it as 'device')")
    if serial is None:
        if len(serials) > 1:
            raise AdbUnavailable(f"several devices attached ({', '.join(serials)}); choose one with --serial")
        serial = serials[0]
    elif serial not in serials:
        raise AdbUnavailable(f"device {serial!r} is not attached; attached: {', '.join(serials)}")

    def prop(name: str) -> str | None:
        value = _run(adb, ["shell", "getprop", name], serial, timeout=30).strip()
        return value or None

    soc = prop("ro.soc.model") or prop("ro.board.platform") or prop("ro.hardware")
    if not soc:
        raise AdbError(f"device {serial} reports no ro.soc.model / ro.board.platform; pass --soc with `bench import`")
    return AndroidDevice(serial=serial, soc_model=soc, manufacturer=prop("ro.soc.manufacturer"),
                         device_name=prop("ro.product.model"))


def run_benchmark_model(artifact: Path, binary: Path, *, serial: str | None = None, threads: int = 4,
                        use_gpu: bool = False, use_nnapi: bool = False, extra_args: list[str] | None = None,
                        out_root: Path | None = None, adb: str | None = None) -> tuple[Path, str]:
    """Push, run, import. Returns the stored measurement path and the raw log.

    Raises:
        AdbUnavailable: no adb / no device (the caller reports a skip).
        AdbError: adb failed; BenchmarkOutputError: the run printed no timings.
    """
    artifact, binary = Path(artifact), Path(binary)
    if not binary.is_file():
        raise FileNotFoundError(f"benchmark_model binary not found: {binary} (build or download it for the phone's ABI)")
    if not artifact.is_file():
        raise FileNotFoundError(f"artifact not found: {artifact}")
    if artifact.suffix != ".tflite":
        raise ValueError(f"benchmark_model runs .tflite models only, got {artifact.name}")
    adb = adb or find_adb()
    device = pick_device(adb, serial)
    remote_bin, remote_model = f"{REMOTE_DIR}/benchmark_model", f"{REMOTE_DIR}/{artifact.name}"
    _run(adb, ["shell", "mkdir", "-p", REMOTE_DIR], device.serial, timeout=30)
    _run(adb, ["push", str(binary), remote_bin], device.serial)
    _run(adb, ["shell", "chmod", "755", remote_bin], device.serial, timeout=30)
    _run(adb, ["push", str(artifact), remote_model], device.serial)
    flags = [f"--graph={remote_model}", f"--num_threads={threads}", f"--use_gpu={str(use_gpu).lower()}",
             f"--use_nnapi={str(use_nnapi).lower()}", *(extra_args or [])]
    log = _run(adb, ["shell", " ".join(shlex.quote(part) for part in [remote_bin, *flags]) + " 2>&1"], device.serial)
    parsed = parse_benchmark_model_output(log, source=f"benchmark_model on {device.serial}")
    tag = DeviceTag(soc_model=device.soc_model, manufacturer=device.manufacturer, device_name=device.device_name)
    facts = artifact_facts(artifact)
    name = facts.pop("artifact", artifact.name)
    measurement = measurement_from_benchmark_model(parsed, tag, artifact=name, extra=facts)
    return store_measurement(measurement, out_root), log

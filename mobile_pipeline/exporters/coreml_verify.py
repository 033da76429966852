"""Verify Core ML artifacts on a Mac: ``mobile-pipeline export verify-coreml RELEASE_DIR``.

coremltools converts and compresses on Linux, but prediction needs the Core ML framework,
so a release built off macOS ships its Core ML artifacts ``verified: false``. Export stores,
beside each one, the validation inputs and the PyTorch outputs (``<artifact>.parity.npz``);
on a Mac this module runs the artifact with coremltools' ``MLModel.predict`` on those inputs,
applies the same parity gate as export (PSNR by precision), times the predictions, and
returns one :class:`~mobile_pipeline.bench.measurement.Measurement` per artifact with a
``parity`` block bound to the artifact's hash. ``mobile-pipeline bench import`` stores the
file; the next manifest build marks those artifacts verified (or leaves out one that failed).
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from mobile_pipeline.exporters.report import REPORT_SUFFIX, ArtifactReport, load_report, report_path_for

#: ``--compute-units`` spellings -> coremltools ``ComputeUnit`` names.
COMPUTE_UNITS: dict[str, str] = {"all": "ALL", "cpu": "CPU_ONLY", "cpu-gpu": "CPU_AND_GPU", "cpu-ne": "CPU_AND_NE"}
NOT_MACOS = ("verify-coreml needs macOS: Core ML prediction runs only there (coremltools converts on Linux but "
             "cannot predict). Copy the release folder to a Mac with this package installed "
             "(`pip install -c constraints-lock.txt -e .`), run `mobile-pipeline export verify-coreml RELEASE_DIR` "
             "there, then `mobile-pipeline bench import <the measurement file it writes>` on the build machine.")


class VerifyError(RuntimeError):
    """An artifact cannot be verified (missing reference, changed bytes); the message says what to do."""


def on_macos() -> bool:
    return platform.system() == "Darwin"


def find_coreml_artifacts(paths: list[Path]) -> list[tuple[Path, ArtifactReport]]:
    """Passed Core ML artifacts and their reports: under release folders, or named directly.

    ``rejected/`` is skipped: a rejected artifact never ships, so there is nothing to verify.
    """
    found: dict[Path, ArtifactReport] = {}
    for path in (Path(p) for p in paths):
        if path.suffix == ".mlpackage":
            report_path = report_path_for(path)
            if not report_path.is_file():
                raise VerifyError(f"{path}: no {report_path.name} beside it; verify artifacts exported by mobile-pipeline")
            candidates = [report_path]
        elif path.is_dir():
            candidates = [p for p in sorted(path.rglob(f"*.mlpackage{REPORT_SUFFIX}"))
                          if "rejected" not in p.relative_to(path).parts[:-1]]
        else:
            raise VerifyError(f"{path}: not a release folder or an .mlpackage")
        for report_path in candidates:
            report = load_report(report_path)
            if report.format == "coreml" and report.passed:
                found[report.artifact_path(report_path).resolve()] = report
    if not found:
        raise VerifyError(f"no passed Core ML artifact (*.mlpackage with a passed report) under {', '.join(map(str, paths))}")
    return sorted(found.items())


def mac_model() -> str:
    """The Mac's machine id (``Mac14,2``), the measurement's ``device.soc_model``."""
    try:
        out = subprocess.run(["sysctl", "-n", "hw.model"], capture_output=True, text=True, timeout=5, check=True)
        return out.stdout.strip() or "Mac"
    except (OSError, subprocess.SubprocessError):
        return "Mac"


def _predict_all(model, inputs: np.ndarray, input_kind: str, runs: int) -> tuple[np.ndarray, float, list[float]]:
    """Outputs for every input (N,3,H,W), the first prediction's ms, and ``runs`` timed ms on input 0."""
    from mobile_pipeline.exporters.torch2coreml import INPUT_NAME, OUTPUT_NAME

    def feed(image: np.ndarray):
        if input_kind == "IMAGE":
            from PIL import Image

            pixels = np.clip(np.round(image[0].transpose(1, 2, 0) * 255), 0, 255).astype(np.uint8)
            return {INPUT_NAME: Image.fromarray(pixels)}
        return {INPUT_NAME: image}

    outputs = []
    first_ms = 0.0
    for index in range(len(inputs)):
        image = inputs[index: index + 1]
        start = time.perf_counter()
        result = model.predict(feed(image))
        if index == 0:
            first_ms = (time.perf_counter() - start) * 1e3
        outputs.append(np.asarray(result[OUTPUT_NAME], dtype=np.float32).reshape(image.shape))
    times = []
    warm = feed(inputs[:1])
    for _ in range(runs):
        start = time.perf_counter()
        model.predict(warm)
        times.append((time.perf_counter() - start) * 1e3)
    return np.concatenate(outputs), first_ms, times


def verify_artifact(artifact: Path, report: ArtifactReport, *, compute_units: str = "all", runs: int = 10,
                    soc_model: str | None = None):
    """Run one Core ML artifact against its export reference; returns the Measurement to import.

    Raises:
        VerifyError: the artifact changed since export or has no stored reference.
    """
    import coremltools as ct

    from mobile_pipeline.bench.measurement import DeviceTag, LatencyStats, Measurement, ParityEvidence
    from mobile_pipeline.exporters.formats import parity_gate_db
    from mobile_pipeline.exporters.torch2coreml import INPUT_NAME, inspect_program
    from mobile_pipeline.exporters.validate import artifact_digest, load_parity_reference
    from mobile_pipeline.quality.image import psnr

    if compute_units not in COMPUTE_UNITS:
        raise VerifyError(f"unknown compute units {compute_units!r}; choose from {list(COMPUTE_UNITS)}")
    digest, _ = artifact_digest(artifact)
    if digest != report.sha256:
        raise VerifyError(f"{artifact} changed after export (sha256 {digest[:12]}..., report says {report.sha256[:12]}...); "
                          "copy the release folder unmodified")
    try:
        inputs, reference = load_parity_reference(artifact)
    except (FileNotFoundError, ValueError) as err:
        raise VerifyError(str(err)) from None
    _, input_kind = inspect_program(artifact)["inputs"][INPUT_NAME]
    model = ct.models.MLModel(str(artifact), compute_units=getattr(ct.ComputeUnit, COMPUTE_UNITS[compute_units]))
    outputs, first_ms, times = _predict_all(model, inputs, input_kind, runs)
    psnr_db = max_err = problem = None
    if outputs.shape != reference.shape or not np.all(np.isfinite(outputs)):
        problem = f"bad output: shape {outputs.shape} (expected {reference.shape}), finite {bool(np.all(np.isfinite(outputs)))}"
    else:
        psnr_db = round(psnr(outputs, reference), 3)
        max_err = float(np.max(np.abs(outputs.astype(np.float64) - reference)))
    gate = parity_gate_db(report.precision)
    version = getattr(ct, "__version__", "?")
    host = f"macOS {platform.mac_ver()[0] or '?'} {platform.machine()}"
    evidence = ParityEvidence(
        artifact_sha256=report.sha256, runtime=f"coremltools {version} predict, compute units {COMPUTE_UNITS[compute_units]}",
        host=host, psnr_db=psnr_db, max_abs_err=max_err, gate_db=gate, images=len(inputs),
        passed=psnr_db is not None and psnr_db >= gate, problem=problem)
    ordered = sorted(times)
    latency = LatencyStats(avg_ms=statistics.fmean(times), p50_ms=statistics.median(times),
                           p90_ms=ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))],
                           min_ms=ordered[0], max_ms=ordered[-1], count=len(times),
                           std_ms=statistics.pstdev(times))
    shape = report.input.shape
    input_hw = (shape[2], shape[3]) if report.input.layout == "NCHW" else (shape[1], shape[2])
    soc = soc_model or mac_model()
    return Measurement(
        source="coreml_verify", device=DeviceTag(soc_model=soc, manufacturer="Apple", device_name=host, platform="other"),
        artifact=report.artifact, arch=report.arch, tier=report.tier, format="coreml", precision=report.precision,
        input_hw=input_hw, delegate=f"coreml-{compute_units}", latency=latency, first_inference_ms=first_ms,
        measured_at=datetime.now(timezone.utc),
        notes=f"export verify-coreml: {problem or f'parity {psnr_db:.2f} dB'} (gate {gate:.0f} dB), {len(inputs)} image(s)",
        parity=evidence)


def verify_release(paths: list[Path], *, compute_units: str = "all", runs: int = 10, soc_model: str | None = None,
                   progress=print) -> list:
    """Verify every passed Core ML artifact under ``paths``; returns their Measurements."""
    if runs < 1:
        raise VerifyError(f"runs must be at least 1, got {runs}")
    measurements = []
    for artifact, report in find_coreml_artifacts(paths):
        m = verify_artifact(artifact, report, compute_units=compute_units, runs=runs, soc_model=soc_model)
        p = m.parity
        parity = p.problem or f"{p.psnr_db:7.2f} dB (gate {p.gate_db:.0f}), max err {p.max_abs_err:.4g}"
        progress(f"{'ok      ' if p.passed else 'FAILED  '} {artifact.name:32s} {parity}  {m.latency.p50_ms:.2f} ms p50")
        measurements.append(m)
    return measurements

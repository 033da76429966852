"""The gate every exported artifact passes through before it may enter a release.

Three checks, each recorded in ``<artifact>.report.json`` (:class:`ArtifactReport`):

* parity: the artifact is run on the validation photos with its own runtime and compared
  with the PyTorch output: PSNR (gate by precision: fp32 60 dB, fp16 45 dB, int8 and
  compressed 30 dB) and max abs error. Core ML cannot be run off macOS; there the parity is
  recorded as not runnable and the ML Program itself is checked instead (I/O shapes and
  dtypes, compute dtype, that the requested weight compression is present); the report then
  says ``verified: false`` with the reason. ExecuTorch ``.pte`` files run through
  ``executorch.runtime``; a Core ML-delegated one is handled like Core ML (its embedded ML
  Program is checked);
* op support: no op in the tier's ``forbidden_ops`` for the format; for ``int8_only``
  tiers no float compute op (TFLite: op codes + tensor types from the flatbuffer; ONNX:
  compute nodes outside the QDQ pattern);
* size and sha256 (of the file, or of a package folder's files in sorted order).

:func:`place_artifact` then moves the staged artifact and its report either next to the
passed ones or into ``rejected/``, never both, so a failing variant can be inspected but is
never picked up by the manifest.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
from pathlib import Path

import numpy as np

from mobile_pipeline.exporters.formats import FormatInfo, parity_gate_db
from mobile_pipeline.exporters.report import ArtifactReport, OpCheck, ParityResult, report_path_for
from mobile_pipeline.utils.atomic import atomic_output, atomic_write_json, sha256_file

REJECTED_DIR = "rejected"
PSNR_CAP_DB = 200.0  # identical outputs: JSON has no infinity, and 200 dB reads as "exact".


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two arrays in [0,1] over all their elements, capped at 200 dB."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    if mse <= 10 ** (-PSNR_CAP_DB / 10):
        return PSNR_CAP_DB
    return 10.0 * math.log10(1.0 / mse)


def artifact_digest(path: Path) -> tuple[str, int]:
    """(sha256, bytes) of a file, or of a folder (sha256 over 'relpath\\0filehash\\n' lines)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path), path.stat().st_size
    digest, total = hashlib.sha256(), 0
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = item.relative_to(path).as_posix()
        digest.update(f"{rel}\0{sha256_file(item)}\n".encode())
        total += item.stat().st_size
    return digest.hexdigest(), total


def check_parity(artifact: Path, precision: str, validation: np.ndarray, reference: np.ndarray) -> ParityResult:
    """Run ``artifact`` on ``validation`` (N,3,H,W) and compare with ``reference`` outputs."""
    from mobile_pipeline.exporters.runtimes import load_runner

    gate = parity_gate_db(precision)
    try:
        runner = load_runner(artifact)
    except Exception as err:  # a corrupt artifact must be rejected, not crash the release
        return ParityResult(runnable=False, not_runnable_reason=f"failed to load: {type(err).__name__}: {err}",
                            gate_db=gate, passed=False)
    if not runner.runnable:
        # Not a failure of the artifact: the program checks decide (Core ML off macOS).
        return ParityResult(runnable=False, not_runnable_reason=runner.reason, gate_db=gate, passed=True)
    try:
        output = runner.run(validation)
    except Exception as err:
        return ParityResult(runnable=False, not_runnable_reason=f"failed to run: {type(err).__name__}: {err}",
                            gate_db=gate, passed=False)
    if output.shape != reference.shape or not np.all(np.isfinite(output)):
        return ParityResult(runnable=True, not_runnable_reason=f"bad output: shape {output.shape}, finite "
                            f"{bool(np.all(np.isfinite(output)))}", gate_db=gate, images=len(validation), passed=False)
    psnr = psnr_db(output, reference)
    max_err = float(np.max(np.abs(output.astype(np.float64) - reference)))
    return ParityResult(runnable=True, psnr_db=round(psnr, 3), max_abs_err=max_err, gate_db=gate,
                        images=len(validation), passed=psnr >= gate)


def check_ops(artifact: Path, info: FormatInfo, forbidden: list[str], int8_required: bool,
              program_problems: list[str] | None = None) -> OpCheck:
    """Forbidden ops and float islands; ``program_problems`` adds Core ML program findings."""
    try:
        if info.name == "onnx":
            from mobile_pipeline.exporters.torch2onnx import list_ops
        elif info.name == "tflite":
            from mobile_pipeline.exporters.torch2tflite import list_ops
        elif info.name == "executorch":
            from mobile_pipeline.exporters.torch2executorch import list_ops
        else:
            list_ops = _coreml_ops
        ops, float_ops = list_ops(artifact)
    except Exception as err:
        return OpCheck(violations=[f"cannot read the graph: {type(err).__name__}: {err}"], passed=False)
    banned = set(forbidden)
    violations = sorted({f"forbidden op {op} (delegate lacks it)" for op in ops if op in banned})
    violations += list(program_problems or [])
    if not int8_required:
        float_ops_reported = float_ops if info.name != "coreml" else []
    else:
        float_ops_reported = float_ops
        if float_ops:
            violations.append(f"{len(float_ops)} float compute op(s) in an int8-only tier: {', '.join(float_ops[:8])}")
    unique_ops = list(dict.fromkeys(ops))
    return OpCheck(ops=unique_ops, violations=violations, float_ops=float_ops_reported, passed=not violations)


def _coreml_ops(artifact: Path) -> tuple[list[str], list[str]]:
    from mobile_pipeline.exporters.torch2coreml import inspect_program

    return inspect_program(artifact)["ops"], []


def build_report(artifact: Path, *, info: FormatInfo, precision: str, parity: ParityResult, op_check: OpCheck,
                 **fields) -> ArtifactReport:
    """Assemble the report; ``passed`` and ``reasons`` follow from the checks."""
    sha, size = artifact_digest(artifact)
    reasons: list[str] = []
    if not parity.passed:
        if parity.psnr_db is not None:
            reasons.append(f"parity {parity.psnr_db:.2f} dB below the {precision} gate {parity.gate_db:.0f} dB "
                           f"(max abs err {parity.max_abs_err:.4g})")
        else:
            reasons.append(f"parity not measured: {parity.not_runnable_reason}")
    reasons += [f"op check: {v}" for v in op_check.violations]
    if size == 0:
        reasons.append("artifact is empty")
    # Unverified = the gate could not run the artifact (Core ML, Core ML-delegated .pte off
    # Apple): it passed on its program checks alone, which the report must not hide.
    verified = parity.runnable and parity.psnr_db is not None
    return ArtifactReport(
        artifact=Path(artifact).name, format=info.name, precision=precision, sha256=sha, bytes=size,
        runtime=info.runtime, parity=parity, op_check=op_check, passed=not reasons, reasons=reasons,
        verified=verified, verified_reason=None if verified else parity.not_runnable_reason, **fields,
    )


def place_artifact(staged: Path, report: ArtifactReport, out_dir: Path) -> Path:
    """Move a validated artifact into ``out_dir`` (passed) or ``out_dir/rejected`` and write its report.

    The artifact is renamed into place first and its report written last (atomically), so
    a report on disk always describes a complete artifact. A stale copy with the same name
    on the other side (a rerun whose verdict changed) is removed.
    """
    out_dir = Path(out_dir)
    name = Path(staged).name
    target_dir = out_dir if report.passed else out_dir / REJECTED_DIR
    other_dir = out_dir / REJECTED_DIR if report.passed else out_dir
    for stale in (other_dir / name, report_path_for(other_dir / name)):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    final = target_dir / name
    target_dir.mkdir(parents=True, exist_ok=True)
    if Path(staged).is_dir():
        with atomic_output(final, is_dir=True) as tmp:
            for child in Path(staged).iterdir():
                shutil.move(str(child), str(tmp / child.name))
        shutil.rmtree(staged, ignore_errors=True)
    else:
        os.replace(staged, final)
    atomic_write_json(report_path_for(final), report.model_dump(mode="json"))
    return final

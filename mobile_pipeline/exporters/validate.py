"""The gate every exported artifact passes through before it may enter a release.

Three checks, each recorded in ``<artifact>.report.json`` (:class:`ArtifactReport`):

* parity: the artifact is run on the validation photos with its own runtime and compared
  with the PyTorch output: PSNR (:func:`mobile_pipeline.quality.image.psnr`: mean over the
  photos, capped at 100 dB; gate by precision: fp32 60 dB, fp16 45 dB, int8 and
  compressed 30 dB) and max abs error. Core ML cannot be run off macOS; there the parity is
  recorded as not runnable and the ML Program itself is checked instead (I/O shapes and
  dtypes, compute dtype, that the requested weight compression is present); the report then
  says ``verified: false`` with the reason. ExecuTorch ``.pte`` files run through
  ``executorch.runtime``; a Core ML-delegated one is handled like Core ML (its embedded ML
  Program is checked);
* op support: no op in the tier's ``forbidden_ops`` for the format; for ``int8_only``
  tiers no float compute op (TFLite: op codes + tensor types from the flatbuffer; ONNX:
  compute nodes outside the QDQ pattern); and the generator's architecture within the
  tier's ``arch_constraints`` (constraints on op *attributes*, such as dilation, that no op
  name can express: checked on the generator's ArchSpec, see :func:`check_arch`);
* size and sha256 (of the file, or of a package folder's files in sorted order).

:func:`place_artifact` then moves the staged artifact and its report either next to the
passed ones or into ``rejected/``, never both, so a failing variant can be inspected but is
never picked up by the manifest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np

from mobile_pipeline.exporters.formats import FormatInfo, parity_gate_db
from mobile_pipeline.exporters.report import PARITY_SUFFIX, ArtifactReport, OpCheck, ParityResult, report_path_for
from mobile_pipeline.utils.atomic import atomic_output, atomic_write_json, sha256_file

REJECTED_DIR = "rejected"


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
    from mobile_pipeline.quality.image import psnr as image_psnr

    psnr = image_psnr(output, reference)
    max_err = float(np.max(np.abs(output.astype(np.float64) - reference)))
    return ParityResult(runnable=True, psnr_db=round(psnr, 3), max_abs_err=max_err, gate_db=gate,
                        images=len(validation), passed=psnr >= gate)


def check_arch(spec, tier_spec) -> list[str]:
    """Violations of ``tier_spec.arch_constraints`` by a generator's ArchSpec (empty = allowed).

    A generator without an ArchSpec cannot be checked; when the tier has constraints that
    is a violation too (the gate must not pass what it could not look at).
    """
    if not tier_spec.arch_constraints:
        return []
    if spec is None or not hasattr(spec, "to_string"):
        fields = ", ".join(sorted(tier_spec.arch_constraints))
        return [f"arch: tier {tier_spec.name} constrains {fields} (device_tiers/tiers.yaml arch_constraints) but the "
                "generator has no ArchSpec to check; export a generator built from a spec"]
    return [f"arch: {problem} (device_tiers/tiers.yaml arch_constraints)" for problem in tier_spec.allows_arch(spec)]


def check_ops(artifact: Path, info: FormatInfo, forbidden: list[str], int8_required: bool,
              program_problems: list[str] | None = None, arch_violations: list[str] | None = None) -> OpCheck:
    """Forbidden ops and float islands; ``program_problems`` adds Core ML program findings,
    ``arch_violations`` the tier's architecture constraints (:func:`check_arch`)."""
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
    violations += list(arch_violations or [])
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
    verified = parity.runnable and parity.passed
    verified_reason = None
    if not verified:
        verified_reason = parity.not_runnable_reason or "parity below the gate"
        if info.name == "coreml" and not parity.runnable and parity.passed:
            verified_reason += ("; the ML Program was checked instead (ops, shapes, dtypes). To verify it, run "
                                "`mobile-pipeline export verify-coreml <release folder>` on a Mac and "
                                "`mobile-pipeline bench import <its measurement file>` here")
        elif info.name == "executorch" and not parity.runnable and parity.passed:
            verified_reason += "; the Core ML program inside the .pte was checked instead (ops, I/O, compute dtype)"
    return ArtifactReport(
        artifact=Path(artifact).name, format=info.name, precision=precision, sha256=sha, bytes=size,
        runtime=info.runtime, parity=parity, op_check=op_check, passed=not reasons, reasons=reasons,
        verified=verified, verified_reason=verified_reason, **fields,
    )


def write_parity_reference(generator, validation: np.ndarray, staged: Path) -> Path:
    """``<artifact>.parity.npz`` beside a staged artifact: inputs and PyTorch outputs to verify it later.

    Core ML cannot run off macOS, so its parity is checked on a Mac after export
    (``mobile-pipeline export verify-coreml``) against these arrays. Inputs are stored as
    uint8 (N,3,H,W; a quarter of the float size) and the reference is recomputed from exactly
    those values, so the check compares like with like; outputs stay float32.
    """
    import torch

    pixels = np.clip(np.round(np.asarray(validation, np.float32) * 255.0), 0, 255).astype(np.uint8)
    with torch.no_grad():
        output = generator(torch.from_numpy(pixels.astype(np.float32) / 255.0)).numpy().astype(np.float32)
    path = Path(staged).with_name(Path(staged).name + PARITY_SUFFIX)
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, input=pixels, output=output)
    return path


def load_parity_reference(artifact: Path) -> tuple[np.ndarray, np.ndarray]:
    """(inputs N,3,H,W float32 in [0,1], reference outputs) stored beside ``artifact`` at export."""
    path = Path(artifact).with_name(Path(artifact).name + PARITY_SUFFIX)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the artifact was exported before parity references were "
                                "stored; re-export it (or rerun the release) to verify it")
    with np.load(path) as data:
        if "input" not in data or "output" not in data:
            raise ValueError(f"{path}: expected arrays 'input' and 'output'; re-export the artifact")
        pixels, output = data["input"], data["output"]
    inputs = pixels.astype(np.float32) / 255.0 if pixels.dtype == np.uint8 else pixels.astype(np.float32)
    return inputs, output.astype(np.float32)


def place_artifact(staged: Path, report: ArtifactReport, out_dir: Path, companions: tuple[Path, ...] = ()) -> Path:
    """Move a validated artifact into ``out_dir`` (passed) or ``out_dir/rejected`` and write its report.

    The artifact (and its ``companions``, staged side files such as ``<artifact>.parity.npz``)
    is renamed into place first and its report written last (atomically), so a report on
    disk always describes a complete artifact. A stale copy with the same name on the other
    side (a rerun whose verdict changed) is removed.
    """
    out_dir = Path(out_dir)
    name = Path(staged).name
    target_dir = out_dir if report.passed else out_dir / REJECTED_DIR
    other_dir = out_dir / REJECTED_DIR if report.passed else out_dir
    stale_names = [name, report_path_for(Path(name)).name, *(Path(c).name for c in companions)]
    for stale in (other_dir / n for n in stale_names):
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
    for companion in companions:
        os.replace(companion, target_dir / Path(companion).name)
    atomic_write_json(report_path_for(final), report.model_dump(mode="json"))
    return final

"""Export step for Qualcomm phones: one precompiled, gated model per Hexagon architecture.

For a tier whose Qualcomm delegate is QNN (``vendor_delegates: {qualcomm: qnn}`` in
``device_tiers/tiers.yaml``), every passed QDQ ONNX variant (int8, w8a16) is compiled for
each HTP architecture of the tier's catalog SoCs (``tiers.htp.tier_htp_socs``) with CPU
fallback disabled. Each result is a variant of its own, gated like the others:

* it compiles fully, or it is rejected for that architecture with the refused nodes named
  (``rejected/<name>.report.json``; there is no model file to keep);
* the compiled graph, run on the HTP emulator, meets the precision's parity gate against
  the PyTorch (fp32) output on the validation photos;

and it lands next to the other artifacts as ``<stem>_<precision>_htp-<arch>_ctx.onnx`` (an
EPContext model with the context binary embedded) with its ``.report.json`` (``qnn``: compile
seconds, context bytes, node coverage, emulated parity and frame time, versions).

``qnn_summary.json`` in the tier folder says in one line what happened (compiled, skipped
because onnxruntime-qnn is missing here, or nothing to compile); the release report shows it.
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import tempfile
from pathlib import Path

import numpy as np

from mobile_pipeline.exporters.formats import FORMATS, parity_gate_db
from mobile_pipeline.exporters.qnn import QDQ_PRECISIONS, CompileOutcome, HtpEmulatorRunner, compile_htp, qnn_versions
from mobile_pipeline.exporters.report import ArtifactReport, OpCheck, ParityResult, QnnCompileReport, report_path_for
from mobile_pipeline.exporters.validate import REJECTED_DIR, build_report, place_artifact
from mobile_pipeline.quality.image import psnr as psnr_db
from mobile_pipeline.utils.atomic import atomic_write_json, sha256_bytes

SUMMARY_FILE = "qnn_summary.json"
RUNTIME = "onnxruntime-qnn"
_STAGING = ".staging"


@dataclasses.dataclass(frozen=True)
class QnnPlan:
    """What to precompile for a tier: QDQ precisions x Hexagon archs (with their SoCs)."""

    tier: str
    precisions: tuple[str, ...]
    socs: dict[str, list[str]]
    reason: str | None = None  # why there is nothing to do, when there is nothing

    @property
    def archs(self) -> tuple[str, ...]:
        return tuple(self.socs)


def qnn_plan(tier: str) -> QnnPlan:
    """The tier's QNN work, from the tier table and the catalog (no onnxruntime-qnn needed)."""
    from mobile_pipeline.tiers.htp import tier_htp_socs
    from mobile_pipeline.tiers.table import load_tier_table

    spec = load_tier_table()[tier]
    if spec.vendor_delegates.get("qualcomm") != "qnn":
        return QnnPlan(tier, (), {}, f"tier {tier} does not use QNN on Qualcomm phones (vendor_delegates)")
    precisions = tuple(dict.fromkeys(v.precision for v in spec.variants if v.format == "onnx"
                                     and v.precision in QDQ_PRECISIONS and v.platform in ("android", "any")))
    if not precisions:
        return QnnPlan(tier, (), {}, f"tier {tier} ships no QDQ ONNX variant (int8 / w8a16)")
    socs = tier_htp_socs(tier)
    if not socs:
        return QnnPlan(tier, precisions, {}, f"no Qualcomm SoC of tier {tier} has an HTP architecture in the catalog")
    return QnnPlan(tier, precisions, socs)


def context_name(source_artifact: str, htp_arch: str) -> str:
    """``npu_int8.onnx`` -> ``npu_int8_htp-v75_ctx.onnx``."""
    stem = source_artifact[:-len(".onnx")] if source_artifact.endswith(".onnx") else source_artifact
    return f"{stem}_htp-{htp_arch}_ctx.onnx"


def write_summary(out_dir: Path, status: str, line: str, **extra) -> None:
    """``qnn_summary.json``: ``status`` (compiled / skipped / none) and the one line to show."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(out_dir) / SUMMARY_FILE, {"status": status, "line": line, **extra})


def precompile_tier(generator, tier: str, out_dir: Path, reports: list[ArtifactReport], *, validation,
                    input_hw: tuple[int, int], progress: bool = True) -> list[ArtifactReport]:
    """Compile, emulate and gate every passed QDQ ONNX variant in ``reports`` for the tier's archs.

    Args:
        generator: the PyTorch model the variants came from (its output is the parity reference).
        reports: the tier's export reports; the QDQ ONNX ones that passed are compiled.
        validation: the validation photos every variant was gated on (any form
            ``photos.prepare_photos`` takes).
        input_hw: the export resolution.

    Returns the reports of the precompiled models (passed and rejected), [] when skipped.
    """
    from mobile_pipeline.exporters.qnn import qnn_unavailable_reason

    out_dir = Path(out_dir)
    plan = qnn_plan(tier)
    if plan.reason:
        write_summary(out_dir, "none", f"QNN precompile: nothing to do ({plan.reason})")
        return []
    sources = [r for r in reports if r.passed and r.format == "onnx" and r.precision in plan.precisions and r.qnn is None]
    if not sources:
        write_summary(out_dir, "none", f"QNN precompile: no passed {'/'.join(plan.precisions)} ONNX variant to compile")
        return []
    unavailable = qnn_unavailable_reason()
    if unavailable:
        if progress:
            print(f"[export {tier}] {unavailable}", flush=True)
        write_summary(out_dir, "skipped", unavailable, archs=list(plan.archs))
        return []
    import torch

    from mobile_pipeline.exporters.photos import prepare_photos
    from mobile_pipeline.exporters.runtimes import OnnxRunner

    val = prepare_photos(validation, input_hw)
    with torch.no_grad():
        reference = generator.eval()(torch.from_numpy(val)).numpy().astype(np.float32)
    versions = qnn_versions()
    made: list[ArtifactReport] = []
    for source in sources:
        source_path = out_dir / source.artifact
        cpu_out = OnnxRunner(source_path).run(val)  # the QDQ model on onnxruntime's CPU kernels
        for arch, socs in plan.socs.items():
            if progress:
                print(f"[export {tier}] qnn htp-{arch} {source.precision} ({', '.join(socs)}) ...", flush=True)
            report = precompile_one(source_path, source, arch, socs, val, reference, cpu_out, out_dir, versions)
            made.append(report)
            if progress:
                print("    " + describe(report), flush=True)
    passed = sum(r.passed for r in made)
    write_summary(out_dir, "compiled", f"QNN precompile: {passed} of {len(made)} passed for HTP "
                  f"{', '.join(plan.archs)} (onnxruntime-qnn {versions['onnxruntime_qnn']}, QNN {versions['qnn_sdk']})",
                  archs=plan.socs, versions=versions, artifacts={r.artifact: r.passed for r in made})
    return made


def describe(report: ArtifactReport) -> str:
    """One progress line for a precompiled model."""
    qnn = report.qnn
    if qnn is None or not qnn.compiled:
        return f"REJECTED {report.artifact}: {'; '.join(report.reasons)}"
    parity = report.parity
    psnr = f"{parity.psnr_db:.1f} dB (gate {parity.gate_db:.0f})" if parity.psnr_db is not None else "parity n/a"
    status = "ok      " if report.passed else "REJECTED"
    return (f"{status} {report.artifact} {report.bytes / 1024:.0f} KiB, {psnr}, compile {qnn.compile_seconds:.1f}s, "
            f"{qnn.nodes_on_htp}/{qnn.nodes_total} nodes on HTP, emulator {qnn.emulated_frame_ms or 0:.0f} ms/frame"
            + ("" if report.passed else f": {'; '.join(report.reasons)}"))


def precompile_one(source_path: Path, source: ArtifactReport, arch: str, socs: list[str], val: np.ndarray,
                   reference: np.ndarray, cpu_out: np.ndarray, out_dir: Path,
                   versions: dict[str, str]) -> ArtifactReport:
    """Compile ``source_path`` for ``arch``, emulate, gate, place; returns the written report."""
    name = context_name(source.artifact, arch)
    staging_root = out_dir / _STAGING
    staging_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="qnn_", dir=staging_root))
    try:
        staged = staging / name
        outcome = compile_htp(source_path, arch, staged)
        if not outcome.ok:
            return _reject_uncompiled(name, source, outcome, socs, out_dir, versions)
        gate = parity_gate_db(source.precision)
        frame_ms = psnr_cpu = None
        try:
            runner = HtpEmulatorRunner(staged, arch)
            output = runner.run(val)
            frame_ms = round(statistics.median(runner.frame_seconds) * 1e3, 1)
            del runner
            psnr = psnr_db(output, reference)
            psnr_cpu = round(psnr_db(output, cpu_out), 3)
            parity = ParityResult(runnable=True, psnr_db=round(psnr, 3), gate_db=gate, images=len(val),
                                  max_abs_err=float(np.max(np.abs(output.astype(np.float64) - reference))),
                                  passed=psnr >= gate and bool(np.all(np.isfinite(output))))
        except Exception as err:  # an emulator failure rejects this arch, it does not stop the release
            parity = ParityResult(runnable=False, not_runnable_reason=f"HTP emulator failed: {type(err).__name__}: {err}",
                                  gate_db=gate, passed=False)
        qnn = _qnn_report(source, arch, socs, outcome, versions, frame_ms, psnr_cpu)
        info = dataclasses.replace(FORMATS["onnx"], runtime=RUNTIME)
        report = build_report(
            staged, info=info, precision=source.precision, parity=parity,
            op_check=OpCheck(ops=["EPContext"], passed=True), tier=source.tier, arch=source.arch,
            recipe={**source.recipe, "qnn": {"backend_type": "htp", "htp_arch": arch, "disable_cpu_ep_fallback": True,
                                             "ep.context_embed_mode": 1}},
            input=source.input, output=source.output, delegate_hint="qnn",
            export_seconds=round(outcome.seconds, 3), qnn=qnn,
        )
        place_artifact(staged, report, out_dir)
        return report
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        try:
            staging_root.rmdir()
        except OSError:
            pass


def _qnn_report(source: ArtifactReport, arch: str, socs: list[str], outcome: CompileOutcome, versions: dict[str, str],
                frame_ms: float | None = None, psnr_cpu: float | None = None) -> QnnCompileReport:
    return QnnCompileReport(
        htp_arch=arch, source_artifact=source.artifact, socs=list(socs), compiled=outcome.ok,
        compile_seconds=round(outcome.seconds, 3), context_bytes=outcome.context_bytes,
        nodes_total=outcome.nodes_total, nodes_on_htp=outcome.nodes_on_htp,
        unsupported_nodes=[f"{n}: {n.reason}" for n in outcome.unsupported],
        emulated_frame_ms=frame_ms, psnr_vs_cpu_qdq_db=psnr_cpu, versions=versions,
    )


def _reject_uncompiled(name: str, source: ArtifactReport, outcome: CompileOutcome, socs: list[str], out_dir: Path,
                       versions: dict[str, str]) -> ArtifactReport:
    """No model file exists: write the report alone under ``rejected/``, naming the refused nodes."""
    reason = outcome.failure_text()
    report = ArtifactReport(
        artifact=name, format="onnx", precision=source.precision, tier=source.tier, arch=source.arch,
        recipe=source.recipe, sha256=sha256_bytes(b""), bytes=0, input=source.input, output=source.output,
        runtime=RUNTIME, delegate_hint="qnn",
        parity=ParityResult(runnable=False, not_runnable_reason="not compiled", gate_db=parity_gate_db(source.precision),
                            passed=False),
        op_check=OpCheck(ops=sorted({n.op_type for n in outcome.unsupported}), violations=[reason], passed=False),
        export_seconds=round(outcome.seconds, 3), qnn=_qnn_report(source, outcome.htp_arch, socs, outcome, versions),
        passed=False, reasons=[reason],
    )
    for stale in (out_dir / name, report_path_for(out_dir / name)):
        if stale.exists():
            stale.unlink()
    target = out_dir / REJECTED_DIR / name
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(report_path_for(target), report.model_dump(mode="json"))
    return report

"""The validation report written next to every exported artifact (``<artifact>.report.json``).

This is the contract between export (writes it), bench (adds latency), manifest (reads it)
and the release report. Only artifacts with ``passed=True`` may enter a manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

REPORT_SUFFIX = ".report.json"
#: Next to each Core ML artifact: the validation inputs and the PyTorch outputs (NCHW float32,
#: arrays ``input`` and ``output``) that ``mobile-pipeline export verify-coreml`` checks
#: the artifact against on a Mac.
PARITY_SUFFIX = ".parity.npz"


class TensorSpec(BaseModel):
    """One model input or output, as the runtime sees it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    shape: list[int]
    layout: Literal["NCHW", "NHWC"]
    dtype: Literal["float32", "float16", "int8", "uint8"]
    value_range: tuple[float, float] = (0.0, 1.0)
    # For int8/uint8 I/O: real = (q - zero_point) * scale.
    scale: float | None = None
    zero_point: int | None = None


class ParityResult(BaseModel):
    """Artifact output vs the PyTorch output on the validation photos."""

    model_config = ConfigDict(extra="forbid")

    runnable: bool
    not_runnable_reason: str | None = None
    psnr_db: float | None = None
    max_abs_err: float | None = None
    gate_db: float
    images: int = 0
    passed: bool


class OpCheck(BaseModel):
    """Ops in the artifact vs what the tier's delegate supports."""

    model_config = ConfigDict(extra="forbid")

    ops: list[str] = Field(default_factory=list)
    violations: list[str] = Field(default_factory=list)
    float_ops: list[str] = Field(default_factory=list, description="Non-int8 compute ops (must be empty for dsp/npu).")
    passed: bool


class QnnCompileReport(BaseModel):
    """A model precompiled for one Hexagon architecture (``exporters/qnn_export.py``).

    ``passed`` on the artifact report then also means: every node compiled for the HTP with
    CPU fallback disabled, and the compiled graph, run on the HTP emulator, met the parity gate.
    """

    model_config = ConfigDict(extra="forbid")

    htp_arch: str = Field(description="Hexagon Tensor Processor architecture, v68 ... v81.")
    source_artifact: str = Field(description="The QDQ model it was compiled from (same folder).")
    socs: list[str] = Field(default_factory=list, description="Catalog SoCs of the tier with this architecture.")
    compiled: bool
    compile_seconds: float
    context_bytes: int | None = Field(None, description="Size of the compiled context binary in the EPContext model.")
    nodes_total: int | None = Field(None, description="ONNX nodes after onnxruntime's graph optimisation.")
    nodes_on_htp: int | None = None
    unsupported_nodes: list[str] = Field(default_factory=list, description="'OpType name: reason' of refused nodes.")
    emulated_frame_ms: float | None = Field(None, description="HTP emulator wall time per frame (x86, not a phone).")
    psnr_vs_cpu_qdq_db: float | None = Field(None, description="Emulated output vs onnxruntime CPU on the QDQ model.")
    versions: dict[str, str] = Field(default_factory=dict, description="onnxruntime_qnn, qnn_sdk, onnxruntime.")


class ArtifactReport(BaseModel):
    """Everything later stages need to know about one artifact."""

    model_config = ConfigDict(extra="forbid")

    artifact: str = Field(description="File name, relative to the report's folder.")
    format: Literal["onnx", "tflite", "coreml", "executorch"]
    precision: str = Field(description="fp32, fp16, int8, int8-dynamic, int8-full, w8, w6-palette, w4-palette ...")
    tier: str | None = None
    arch: str | None = Field(None, description="Architecture string of the generator.")
    recipe: dict = Field(default_factory=dict, description="The quantization recipe, as validated.")
    sha256: str
    bytes: int
    input: TensorSpec
    output: TensorSpec
    runtime: str = Field(description="Runtime that validates and runs it: onnxruntime, litert, coreml, onnxruntime-qnn, "
                                     "executorch.")
    delegate_hint: str | None = Field(None, description="xnnpack, gpu, nnapi, hexagon, qnn, coreml-ane, ...; for "
                                      "executorch the backend baked into the .pte (xnnpack, coreml).")
    parity: ParityResult
    op_check: OpCheck
    export_seconds: float | None = None
    quality: dict | None = Field(
        None, description="Held-out quality against the teacher on whole images (quality.heldout: psnr_db, ssim, "
                          "ink_recall, ink_precision, texture_kept, ...); None when not measured or not runnable here.")
    qnn: QnnCompileReport | None = Field(None, description="Set on models precompiled for a Hexagon NPU.")
    passed: bool
    reasons: list[str] = Field(default_factory=list, description="Why it failed; empty when passed.")
    verified: bool | None = Field(
        None, description="True when the artifact was run by its own runtime and matched the reference (parity "
                          "measured and passed). Core ML off macOS: false, with the reason; `export verify-coreml` "
                          "on a Mac plus `bench import` verify it later; a Core ML-delegated ExecuTorch .pte: false, its embedded "
                          "ML Program checked instead. Derived from parity when absent.")
    verified_reason: str | None = Field(None, description="Why it is not verified (None when verified).")

    @model_validator(mode="after")
    def _derive_verified(self) -> "ArtifactReport":
        # Reports written before this field existed: verified exactly when parity ran and passed.
        if self.verified is None:
            self.verified = bool(self.parity.runnable and self.parity.passed)
        if not self.verified and self.verified_reason is None:
            self.verified_reason = self.parity.not_runnable_reason or "parity not passed"
        if self.verified:
            self.verified_reason = None
        return self

    def artifact_path(self, report_path: Path) -> Path:
        return report_path.parent / self.artifact


def report_path_for(artifact: Path) -> Path:
    """``foo.tflite`` -> ``foo.tflite.report.json`` (works for ``.mlpackage`` folders too)."""
    return artifact.with_name(artifact.name + REPORT_SUFFIX)


def load_report(path: Path) -> ArtifactReport:
    return ArtifactReport.model_validate_json(Path(path).read_text(encoding="utf-8"))

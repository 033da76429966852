"""The export formats as data: names, aliases, suffixes, precisions, validating runtime.

One table answers every "what does format X support" question (CLI help, recipe
validation, the tier matrix, the benchmark table), so adding a format or a precision is an
edit here plus one ``torch2<format>`` module. User spellings are resolved explicitly through
the alias tables below; anything else is an error that names the closest valid choice.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Literal

Layout = Literal["NCHW", "NHWC"]


class FormatError(ValueError):
    """An unknown format or a precision the format does not support."""


@dataclass(frozen=True)
class FormatInfo:
    """One export format.

    Args:
        name: canonical name used in reports, manifests and file names.
        aliases: other spellings accepted from users (CLI, recipes, tier tables).
        suffix: artifact suffix (``.mlpackage`` is a folder).
        precisions: canonical precision names, the first is the default.
        precision_aliases: user spelling -> canonical precision for this format.
        runtime: runtime that validates and runs the artifact.
        layout: I/O layout of the exported model (mobile runtimes prefer NHWC for TFLite).
        is_dir: True when the artifact is a folder (Core ML ``.mlpackage``).
        default_delegates: precision -> the backend a variant of that precision is lowered
            to, for formats whose artifact carries its delegate (ExecuTorch ``.pte``).
    """

    name: str
    aliases: tuple[str, ...]
    suffix: str
    precisions: tuple[str, ...]
    precision_aliases: dict[str, str] = field(default_factory=dict)
    runtime: str = ""
    layout: Layout = "NCHW"
    is_dir: bool = False
    default_delegates: dict[str, str] = field(default_factory=dict)

    @property
    def default_precision(self) -> str:
        return self.precisions[0]


FORMATS: dict[str, FormatInfo] = {
    "onnx": FormatInfo(
        name="onnx",
        aliases=("onnxruntime", "ort"),
        suffix=".onnx",
        # w8a16: int8 weights, int16 activations (QDQ), the precision Qualcomm AI Hub uses for
        # image-to-image models on the Hexagon NPU; slower than int8 there, closer to float.
        precisions=("fp32", "fp16", "int8", "w8a16"),
        precision_aliases={"float32": "fp32", "float16": "fp16", "half": "fp16", "qdq": "int8", "int8-qdq": "int8",
                           "int8-static": "int8", "a16w8": "w8a16", "w8a16-qdq": "w8a16", "int16": "w8a16"},
        runtime="onnxruntime",
        layout="NCHW",
    ),
    "tflite": FormatInfo(
        name="tflite",
        aliases=("tfl", "litert", "tensorflow-lite"),
        suffix=".tflite",
        precisions=("fp32", "fp16", "int8-dynamic", "int8-full"),
        # Plain "int8" means full integer (what DSP/NPU delegates need), as in most tool chains.
        precision_aliases={"float32": "fp32", "float16": "fp16", "half": "fp16", "int8": "int8-full",
                           "int8-static": "int8-full", "dynamic": "int8-dynamic", "int8-dyn": "int8-dynamic"},
        runtime="litert",
        layout="NHWC",
    ),
    "coreml": FormatInfo(
        name="coreml",
        aliases=("mlpackage", "mlmodel", "core-ml", "mlprogram"),
        suffix=".mlpackage",
        precisions=("fp32", "fp16", "w8", "w6-palette", "w4-palette"),
        precision_aliases={"float32": "fp32", "float16": "fp16", "half": "fp16", "int8": "w8", "w8-linear": "w8",
                           "w6": "w6-palette", "w4": "w4-palette"},
        runtime="coreml",
        layout="NCHW",
        is_dir=True,
    ),
    # ExecuTorch lowers one torch.export graph to a delegate baked into the .pte: XNNPACK for
    # the CPU (fp32, and 8-bit through PT2E), Core ML (fp16 compute) for Apple tiers.
    "executorch": FormatInfo(
        name="executorch",
        aliases=("pte", "et", "exir"),
        suffix=".pte",
        precisions=("fp32", "int8", "fp16"),
        precision_aliases={"float32": "fp32", "float16": "fp16", "half": "fp16", "int8-static": "int8",
                           "pt2e": "int8", "qdq": "int8"},
        runtime="executorch",
        layout="NCHW",
        default_delegates={"fp32": "xnnpack", "int8": "xnnpack", "fp16": "coreml"},
    ),
}

# Parity gates (PSNR of artifact output vs PyTorch output, dB). Weight-compressed Core ML
# variants compute in fp16 with approximated weights, so they share the int8 gate.
PARITY_GATES_DB: dict[str, float] = {
    "fp32": 60.0,
    "fp16": 45.0,
    "int8": 30.0,
    "int8-dynamic": 30.0,
    "int8-full": 30.0,
    "w8a16": 30.0,  # the weights are int8: the same gate as int8 (activations add little error)
    "w8": 30.0,
    "w6-palette": 30.0,
    "w4-palette": 30.0,
}


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.4)
    return f"; did you mean {close[0]!r}?" if close else ""


def resolve_format(name: str) -> FormatInfo:
    """The format for a user spelling (``tfl``, ``mlpackage`` ...); FormatError otherwise."""
    key = str(name).strip().lower().lstrip(".")
    if key in FORMATS:
        return FORMATS[key]
    for info in FORMATS.values():
        if key in info.aliases:
            return info
    choices = sorted(list(FORMATS) + [a for info in FORMATS.values() for a in info.aliases])
    raise FormatError(
        f"unknown export format {name!r}{_did_you_mean(key, choices)} (valid formats: {', '.join(FORMATS)})"
    )


def resolve_precision(format: str | FormatInfo, precision: str | None) -> str:
    """The canonical precision name for a format; None gives the format's default."""
    info = format if isinstance(format, FormatInfo) else resolve_format(format)
    if precision is None:
        return info.default_precision
    key = str(precision).strip().lower().replace("_", "-")
    if key in info.precisions:
        return key
    if key in info.precision_aliases:
        return info.precision_aliases[key]
    choices = list(info.precisions) + list(info.precision_aliases)
    raise FormatError(
        f"precision {precision!r} is not supported for {info.name}{_did_you_mean(key, choices)} "
        f"(supported: {', '.join(info.precisions)})"
    )


def parity_gate_db(precision: str) -> float:
    """Minimum PSNR (dB) an artifact of this precision must reach against PyTorch."""
    return PARITY_GATES_DB.get(precision, 30.0)


def artifact_name(stem: str, format: str, precision: str) -> str:
    """``<stem>_<precision>.<suffix>``, e.g. ``npu_int8-full.tflite``."""
    info = resolve_format(format)
    return f"{stem}_{precision}{info.suffix}"

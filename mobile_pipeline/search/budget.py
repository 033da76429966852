"""Tier budgets: measure a candidate (MACs, params, latency, peak memory, ops) and check it.

MACs come from the project's one counter, :func:`mobile_pipeline.nets.complexity.count_macs`
(conv / transposed-conv / linear multiply-accumulates). It used to be NNI's FlopsProfiler
with formulas registered for the ops NNI lacks; the two agreed exactly on every registered
spec and on sampled search specs, and ``count_macs`` shares one cached run per spec with the
parameter and peak-memory counts the budget check needs anyway (30 sampled wide-space specs
at 64 px: 13 ms per new spec against NNI's 44 ms, one thread on a shared machine). The
latency model's per-op sizes (:attr:`mobile_pipeline.search.ops.Op.macs`) are a third view of
the same network; a test checks that their conv/deconv sum equals ``count_macs``.

Op constraints: each tier lists, per export format, the delegate ops that must not appear
(TFLite builtin names, ONNX op types, Core ML MIL ops). A traced runtime op maps to its
name in each vocabulary below, so a constraint is checked before anything is exported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mobile_pipeline.search.ops import Op

# Runtime op kind -> op name per export format's vocabulary.
OP_NAMES: dict[str, dict[str, str]] = {
    "conv": {"tflite": "CONV_2D", "onnx": "Conv", "coreml": "conv"},
    "dwconv": {"tflite": "DEPTHWISE_CONV_2D", "onnx": "Conv", "coreml": "conv"},
    "deconv": {"tflite": "TRANSPOSE_CONV", "onnx": "ConvTranspose", "coreml": "conv_transpose"},
    "add": {"tflite": "ADD", "onnx": "Add", "coreml": "add"},
    "mul": {"tflite": "MUL", "onnx": "Mul", "coreml": "mul"},
    "sigmoid": {"tflite": "LOGISTIC", "onnx": "Sigmoid", "coreml": "sigmoid"},
    "concat": {"tflite": "CONCATENATION", "onnx": "Concat", "coreml": "concat"},
    "resize_nearest": {"tflite": "RESIZE_NEAREST_NEIGHBOR", "onnx": "Resize", "coreml": "upsample_nearest_neighbor"},
    "resize_bilinear": {"tflite": "RESIZE_BILINEAR", "onnx": "Resize", "coreml": "upsample_bilinear"},
    "clamp": {"tflite": "MINIMUM", "onnx": "Clip", "coreml": "clip"},
    "act": {"tflite": "RELU", "onnx": "Relu", "coreml": "relu"},
}


def op_vocabulary(ops: list[Op]) -> dict[str, set[str]]:
    """The op names each export format would contain, from a traced op list."""
    names: dict[str, set[str]] = {"tflite": set(), "onnx": set(), "coreml": set()}
    for op in ops:
        kind = op.kind
        if kind == "conv" and op.attr("g") > 1 and op.attr("g") == op.shape[0]:
            kind = "dwconv"
        for fmt, name in OP_NAMES.get(kind, {}).items():
            names[fmt].add(name)
    return names


def forbidden_found(ops: list[Op], forbidden: dict[str, list[str]]) -> list[str]:
    """``format:OP`` for every forbidden op of a tier that the network would contain."""
    present = op_vocabulary(ops)
    found = []
    for fmt, banned in (forbidden or {}).items():
        for name in banned:
            if name in present.get(fmt, set()):
                found.append(f"{fmt}:{name}")
    return sorted(found)


# ------------------------------------------------------------------ budget check
@dataclass
class CandidateMetrics:
    """Everything a tier budget constrains, for one spec at the tier's resolution."""

    spec: str
    input_hw: tuple[int, int]
    macs: int
    params: int
    peak_activation_bytes: int
    latency_ms: float
    forbidden: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def budget_violations(metrics: CandidateMetrics, tier: Any) -> list[str]:
    """Human-readable violations of ``tier.budgets`` and op constraints (empty = within budget)."""
    budgets = tier.budgets
    out = []
    if metrics.macs > budgets.macs:
        out.append(f"macs {metrics.macs / 1e9:.3f} G > {budgets.macs / 1e9:.3f} G")
    if metrics.params > budgets.params:
        out.append(f"params {metrics.params} > {budgets.params}")
    if metrics.latency_ms > budgets.latency_ms:
        out.append(f"latency_ms {metrics.latency_ms:.2f} > {budgets.latency_ms:.2f}")
    if metrics.peak_activation_bytes > budgets.peak_activation_bytes:
        out.append(f"peak_activation_bytes {metrics.peak_activation_bytes} > {budgets.peak_activation_bytes}")
    out += [f"forbidden op {name}" for name in metrics.forbidden]
    return out


def violation_ratio(metrics: CandidateMetrics, tier: Any) -> float:
    """How far over budget (max over constraints of value/budget; <= 1 inside): the penalty
    evolution sees for an over-budget candidate, so it is pushed back toward the budget."""
    budgets = tier.budgets
    ratios = [metrics.macs / budgets.macs, metrics.params / budgets.params, metrics.latency_ms / budgets.latency_ms,
              metrics.peak_activation_bytes / budgets.peak_activation_bytes]
    return max(ratios) + (1.0 if metrics.forbidden else 0.0)

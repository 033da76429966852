"""Tier budgets: measure a candidate (MACs, params, latency, peak memory, ops) and check it.

MACs come from NNI's :class:`~nni.nas.profiler.pytorch.flops.FlopsProfiler` (bias, norm and
activation counting off, so FLOPs = conv multiply-accumulates), with the shape and FLOP
formulas NNI lacks registered here: ``nn.Upsample`` / ``F.interpolate`` (counted like
``nets.complexity.count_macs`` counts them), ``nn.ConvTranspose2d`` and a few aten ops the
generator's functional code uses. The test suite cross-checks it against ``count_macs``.

Op constraints: each tier lists, per export format, the delegate ops that must not appear
(TFLite builtin names, ONNX op types, Core ML MIL ops). A traced runtime op maps to its
name in each vocabulary below, so a constraint is checked before anything is exported.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from mobile_pipeline.search.ops import Op

_log = logging.getLogger(__name__)

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


# ------------------------------------------------------------------ NNI FlopsProfiler
_registered = False


def _register_nni_formulas() -> None:
    """Shape and FLOP formulas NNI 3.0 lacks for the generator's ops (idempotent)."""
    global _registered
    if _registered:
        return
    from nni.mutable import MutableExpression  # noqa: F401 - imported for side effects in formulas
    from nni.nas.profiler.pytorch.flops import FlopsResult, count_flops_params, register_flops_formula
    from nni.nas.profiler.pytorch.utils import concat_name
    from nni.nas.profiler.pytorch.utils.shape import MutableShape
    from nni.nas.profiler.pytorch.utils.shape_formula import (
        _safe_register_aten_formula,
        keep_first_shape_formula,
        keep_shape_formula,
        register_shape_inference_formula,
    )

    def real_shape(tensor: Any) -> MutableShape:
        return MutableShape(*tensor.shape)

    def upsample_shape(module: nn.Upsample, input: Any) -> MutableShape:
        # Computed, not run: calling the module here would re-enter NNI's shape hooks.
        n, c, h, w = (int(v) for v in input.shape)
        if module.size is not None:
            size = module.size if isinstance(module.size, tuple) else (module.size, module.size)
            return MutableShape(n, c, *size)
        scale = module.scale_factor if isinstance(module.scale_factor, tuple) else (module.scale_factor,) * 2
        return MutableShape(n, c, int(h * scale[0]), int(w * scale[1]))

    def interpolate_aten_shape(func: Any, input: Any, *args: Any, **kwargs: Any) -> MutableShape:
        out = func(input.elem if hasattr(input, "elem") else input, *args, **kwargs)
        return real_shape(out)

    def deconv_shape(module: nn.ConvTranspose2d, input: Any) -> MutableShape:
        n, _, h, w = (int(v) for v in input.shape)
        sides = []
        for i, side in enumerate((h, w)):
            sides.append((side - 1) * module.stride[i] - 2 * module.padding[i]
                         + module.dilation[i] * (module.kernel_size[i] - 1) + module.output_padding[i] + 1)
        return MutableShape(n, module.out_channels, *sides)

    def upsample_flops(module: nn.Upsample, inputs: Any, outputs: Any) -> FlopsResult:
        # count_macs convention: bilinear = 4 MACs per output element, nearest = 0 (a copy).
        out = outputs[0] if isinstance(outputs, tuple) else outputs
        per = 4 if getattr(module, "mode", "nearest") == "bilinear" else 0
        return FlopsResult(per * int(out[1:].numel()), 0)

    def deconv_flops(module: nn.ConvTranspose2d, inputs: Any, outputs: Any, count_bias: bool = True) -> FlopsResult:
        x = inputs[0]
        k = module.kernel_size[0] * module.kernel_size[1]
        macs = int(x[2:].numel()) * module.in_channels * (module.out_channels // module.groups) * k
        params = module.in_channels * (module.out_channels // module.groups) * k + (module.out_channels if module.bias is not None else 0)
        return FlopsResult(macs, params)

    def visited_children(module: nn.Module, inputs: Any, outputs: Any, name: str, shapes: dict,
                         config: Any) -> FlopsResult:
        # The generator owns one RGB head per scale but forward() runs only the finest (the
        # exported graph); NNI would fail on the never-called ones. Count what ran.
        total = FlopsResult(0, 0)
        for child_name, child in module.named_children():
            full = concat_name(name, child_name)
            if full in shapes:
                total = total + count_flops_params(full, child, shapes, config)
            elif next(child.children(), None) is not None:
                total = total + visited_children(child, None, None, full, shapes, config)
        return total

    from mobile_pipeline.nets.generator import Generator

    register_flops_formula(Generator, visited_children)
    register_shape_inference_formula(nn.Upsample, upsample_shape)
    register_shape_inference_formula(nn.ConvTranspose2d, deconv_shape)
    register_shape_inference_formula(nn.ReLU6, keep_shape_formula)
    register_shape_inference_formula(nn.ReLU, keep_shape_formula)
    register_shape_inference_formula(nn.Sigmoid, keep_shape_formula)
    register_shape_inference_formula(nn.Identity, keep_shape_formula)
    register_flops_formula(nn.Upsample, upsample_flops)
    register_flops_formula(nn.ConvTranspose2d, deconv_flops)
    for name in ("upsample_nearest2d.vec", "upsample_bilinear2d.vec", "upsample_nearest2d.default",
                 "upsample_bilinear2d.default", "convolution.default", "convolution_transpose.default"):
        _safe_register_aten_formula(name, interpolate_aten_shape)
    for name in ("sigmoid.default", "clamp.default", "hardtanh.default", "add_.Tensor", "mul_.Tensor",
                 "relu6.default", "sub.Tensor", "clone.default", "_native_batch_norm_legit_no_training.default"):
        _safe_register_aten_formula(name, keep_first_shape_formula)
    _registered = True


def nni_macs(model: nn.Module, input_hw: tuple[int, int]) -> int:
    """MACs of ``model`` at 1x3xHxW counted by NNI's FlopsProfiler (convs + resizes)."""
    from nni.nas.profiler.pytorch.flops import FlopsProfiler

    _register_nni_formulas()
    nni_logger = logging.getLogger("nni")
    level = nni_logger.level
    nni_logger.setLevel(logging.ERROR)  # NNI warns once per leaf module it does not count
    try:
        profiler = FlopsProfiler(model.eval(), torch.zeros(1, 3, *input_hw), count_bias=False,
                                 count_normalization=False, count_activation=False)
    finally:
        nni_logger.setLevel(level)
    return int(round(float(profiler.expression)))


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

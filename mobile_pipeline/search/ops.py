"""A network as a list of runtime ops: what the latency lookup table is keyed on.

The latency model (FBNet-style) predicts a network's time as the sum of its ops' measured
times, so the op list must look like what the TFLite converter emits, not like the PyTorch
call graph: a conv followed by its BatchNorm and ReLU/ReLU6 is one fused ``CONV_2D``; an add
followed by a ReLU is one ``ADD`` with a fused activation. We trace the generator's
``forward`` with a :class:`~torch.overrides.TorchFunctionMode` on the ``meta`` device, so
tracing costs no arithmetic (milliseconds even at 512 px) and works for any module code
the model engineer writes, without knowing its class names.

An :class:`Op` key is the dedupe key of the LUT: op kind + every shape/attribute that
changes its cost (cin, cout, kernel, stride, dilation, groups, H, W ...).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

# Ops whose cost we look up. Everything else that returns a tensor is reported as 'other'.
# The last five occur in the published reference networks the device latency model is fitted
# on (pixel shuffle in super-resolution nets, pooling in classifiers, reflection padding), not
# in our generator; they extend the vocabulary without changing any generator op's key.
OP_KINDS: tuple[str, ...] = (
    "conv", "deconv", "add", "mul", "sigmoid", "concat", "resize_nearest", "resize_bilinear", "clamp", "act",
    "depth_to_space", "space_to_depth", "pool", "global_pool", "pad",
)

_BINARY = {"add": "add", "__add__": "add", "__radd__": "add", "add_": "add", "__iadd__": "add",
           "mul": "mul", "__mul__": "mul", "__rmul__": "mul", "mul_": "mul", "__imul__": "mul",
           "sub": "add", "__sub__": "add", "__rsub__": "add", "sub_": "add"}
_ACTS = {"relu", "relu_", "relu6", "hardtanh", "hardtanh_"}
_CLAMPS = {"clamp", "clamp_", "clip", "clip_"}
_SIGMOID = {"sigmoid", "sigmoid_"}
# Activations the converters do not fuse into the producing conv: their own op, named by ``fn``
# (a plain ReLU stays ``act`` without attributes, so existing LUT keys are unchanged).
_OTHER_ACTS = {"prelu": "prelu", "leaky_relu": "leaky", "leaky_relu_": "leaky", "hardswish": "hswish",
               "hardswish_": "hswish", "hardsigmoid": "hsigmoid", "hardsigmoid_": "hsigmoid", "silu": "silu",
               "silu_": "silu", "tanh": "tanh", "tanh_": "tanh", "gelu": "gelu"}
_POOLS = {"max_pool2d": "max", "avg_pool2d": "avg"}
# Calls that return tensors but are free at run time (views, metadata) or no-ops in export.
_FREE = {"__get__", "size", "dim", "contiguous", "detach", "clone", "to", "float", "__getitem__",
         "view", "reshape", "flatten", "numel", "type", "__len__", "__format__", "__bool__", "__setitem__",
         "requires_grad_", "new_empty", "new_zeros", "dropout", "identity"}


@dataclass(frozen=True)
class Op:
    """One runtime op with everything that changes its cost.

    ``shape`` is (C, H, W) of the (first) input; ``attrs`` holds kind-specific integers
    (conv: cout, kernel, stride, padding, dilation, groups; concat: the channel split;
    resize: output H, W).
    """

    kind: str
    shape: tuple[int, int, int]
    attrs: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> str:
        """Stable text key, e.g. ``conv|c16|h64|w64|cout=24|k=3|s=2|p=1|d=1|g=1``."""
        c, h, w = self.shape
        parts = [self.kind, f"c{c}", f"h{h}", f"w{w}"]
        parts += [f"{name}={_fmt(value)}" for name, value in self.attrs]
        return "|".join(parts)

    def attr(self, name: str, default: Any = None) -> Any:
        return dict(self.attrs).get(name, default)

    def with_hw(self, h: int, w: int) -> "Op":
        """The same op at another resolution (used to extrapolate a missing LUT entry)."""
        attrs = self.attrs
        if self.kind.startswith("resize") or self.kind in ("pool", "pad"):
            sh, sw = self.attr("oh") / self.shape[1], self.attr("ow") / self.shape[2]
            attrs = tuple((n, int(round(h * sh)) if n == "oh" else int(round(w * sw)) if n == "ow" else v)
                          for n, v in attrs)
        return dataclasses.replace(self, shape=(self.shape[0], h, w), attrs=attrs)

    @property
    def macs(self) -> int:
        """Multiply-accumulates (convs) or element operations (the rest): the fallback's size."""
        c, h, w = self.shape
        if self.kind == "conv":
            s = self.attr("s")
            return (h // s) * (w // s) * self.attr("cout") * (c // self.attr("g")) * self.attr("k") ** 2
        if self.kind == "deconv":
            return h * w * self.attr("cout") * (c // self.attr("g")) * self.attr("k") ** 2
        if self.kind == "concat":
            return sum(self.attr("split")) * h * w
        if self.kind.startswith("resize") or self.kind == "pad":
            return c * self.attr("oh") * self.attr("ow")
        if self.kind == "pool":
            return c * self.attr("oh") * self.attr("ow") * self.attr("k") ** 2
        return c * h * w

    @classmethod
    def from_key(cls, key: str) -> "Op":
        kind, c, h, w, *rest = key.split("|")
        attrs = []
        for part in rest:
            name, _, value = part.partition("=")
            attrs.append((name, _parse(value)))
        return cls(kind, (int(c[1:]), int(h[1:]), int(w[1:])), tuple(attrs))


def _fmt(value: Any) -> str:
    if isinstance(value, tuple):
        return "-".join(str(v) for v in value)
    return str(value)


def _parse(text: str) -> Any:
    if "-" in text:
        return tuple(int(v) for v in text.split("-"))
    try:
        return int(text)
    except ValueError:
        return text


def _pair(value: Any) -> int:
    """Square kernels/strides only in this search space; a pair is reduced to one int."""
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise ValueError(f"non-square conv attribute {value} is outside the latency model")
        return int(value[0])
    return int(value)


class _OpRecorder(TorchFunctionMode):
    """Records top-level tensor functions and fuses BN/activations into their producer."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[Op] = []
        self.other: list[str] = []
        self._last_out: torch.Tensor | None = None  # output of the last fusable producer
        self._keep: list[torch.Tensor] = []  # keep outputs alive so id() is never reused

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: D401 - torch API
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if name == "batch_norm" and args and args[0].device.type == "meta":
            # Shape-preserving; the meta kernel runs a slow Python decomposition, skip it.
            out = args[0]
        else:
            out = func(*args, **kwargs)
        if not isinstance(out, torch.Tensor) or name in _FREE:
            return out
        first = args[0] if args else None
        fusable_input = first is not None and first is self._last_out
        if name == "conv2d":
            x, weight = args[0], args[1]
            stride = _pair(kwargs.get("stride", args[3] if len(args) > 3 else 1))
            padding = kwargs.get("padding", args[4] if len(args) > 4 else 0)
            dilation = _pair(kwargs.get("dilation", args[5] if len(args) > 5 else 1))
            groups = int(kwargs.get("groups", args[6] if len(args) > 6 else 1))
            pad = padding if isinstance(padding, str) else _pair(padding)
            self._record(Op("conv", _chw(x), (("cout", int(weight.shape[0])), ("k", int(weight.shape[-1])),
                                              ("s", stride), ("p", pad), ("d", dilation), ("g", groups))), out)
        elif name == "conv_transpose2d":
            x, weight = args[0], args[1]
            stride = _pair(kwargs.get("stride", args[3] if len(args) > 3 else 1))
            groups = int(kwargs.get("groups", args[6] if len(args) > 6 else 1))
            self._record(Op("deconv", _chw(x), (("cout", int(weight.shape[1]) * groups),
                                                ("k", int(weight.shape[-1])), ("s", stride), ("g", groups),
                                                ("oh", int(out.shape[2])), ("ow", int(out.shape[3])))), out)
        elif name == "batch_norm" or (name in _ACTS and fusable_input):
            # Folded into the producing conv / add by the converter: free.
            self._last_out = out if fusable_input else None
            if not fusable_input:
                self._record(Op("act", _chw(out)), out)
        elif name in _ACTS:
            self._record(Op("act", _chw(out)), out)
        elif name in _BINARY and isinstance(first, torch.Tensor) and len(args) > 1:
            other = args[1]
            kind = _BINARY[name]
            if isinstance(other, torch.Tensor) and other.dim() == 4 and first.dim() == 4:
                self._record(Op(kind, _chw(out)), out, fusable=True)
            # Scalar arithmetic (x * 2 - 1) is an elementwise op too, but cheap and rare; keep it.
            elif first.dim() == 4:
                self._record(Op(kind, _chw(out), (("scalar", 1),)), out, fusable=True)
        elif name in _SIGMOID:
            self._record(Op("sigmoid", _chw(out)), out)
        elif name in _CLAMPS:
            self._record(Op("clamp", _chw(out)), out)
        elif name in ("cat", "concat", "concatenate"):
            tensors = args[0] if args else kwargs["tensors"]
            split = tuple(int(t.shape[1]) for t in tensors)
            self._record(Op("concat", _chw(out), (("split", split),)), out)
        elif name == "interpolate":
            x = args[0]
            mode = kwargs.get("mode", args[4] if len(args) > 4 else "nearest")
            kind = "resize_bilinear" if mode == "bilinear" else "resize_nearest"
            if mode not in ("nearest", "bilinear"):
                raise ValueError(f"interpolate mode {mode!r} is outside the latency model")
            self._record(Op(kind, _chw(x), (("oh", int(out.shape[2])), ("ow", int(out.shape[3])))), out)
        elif name in _OTHER_ACTS and isinstance(first, torch.Tensor) and first.dim() in (2, 4):
            # (N, C) after a fully connected layer counts as a C x 1 x 1 map, as the layer does
            chw = _chw(out) if out.dim() == 4 else (int(out.shape[1]), 1, 1)
            self._record(Op("act", chw, (("fn", _OTHER_ACTS[name]),)), out)
        elif name in ("pixel_shuffle", "pixel_unshuffle"):
            factor = int(args[1] if len(args) > 1 else kwargs.get("upscale_factor", kwargs.get("downscale_factor")))
            kind = "depth_to_space" if name == "pixel_shuffle" else "space_to_depth"
            self._record(Op(kind, _chw(args[0]), (("r", factor),)), out)
        elif name in _POOLS:
            x = args[0]
            k = _pair(kwargs.get("kernel_size", args[1] if len(args) > 1 else None))
            stride = kwargs.get("stride", args[2] if len(args) > 2 else None)
            s = _pair(stride) if stride not in (None, [], ()) else k
            self._record(Op("pool", _chw(x), (("fn", _POOLS[name]), ("k", k), ("s", s),
                                               ("oh", int(out.shape[2])), ("ow", int(out.shape[3])))), out)
        elif _is_global_pool(name, first, out):
            self._record(Op("global_pool", _chw(first)), out)
        elif name == "linear":
            x, weight = args[0], args[1]
            # A fully connected layer is a 1x1 conv on a 1x1 map, which is how NPUs run it.
            self._record(Op("conv", (int(weight.shape[1]), 1, 1), (("cout", int(weight.shape[0])), ("k", 1), ("s", 1),
                                                                    ("p", 0), ("d", 1), ("g", 1))), out)
        elif name == "pad" and isinstance(first, torch.Tensor) and first.dim() == 4:
            if tuple(out.shape) != tuple(first.shape):  # a zero pad (U-Net's size match) is free
                self._record(Op("pad", _chw(first), (("oh", int(out.shape[2])), ("ow", int(out.shape[3])))), out)
        else:
            self.other.append(name)
        return out

    def _record(self, op: Op, out: torch.Tensor, fusable: bool = True) -> None:
        self.ops.append(op)
        self._keep.append(out)
        self._last_out = out if op.kind in ("conv", "deconv", "add") and fusable else None


def _is_global_pool(name: str, first: Any, out: torch.Tensor) -> bool:
    """Adaptive pooling to 1x1, or a spatial mean (SE blocks, classifier heads)."""
    if not isinstance(first, torch.Tensor) or first.dim() != 4:
        return False
    if name in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
        if tuple(out.shape[2:]) != (1, 1):
            raise ValueError(f"adaptive pooling to {tuple(out.shape[2:])} is outside the latency model")
        return True
    # mean over H and W: the output keeps N and C (and 1x1 with keepdim)
    return name == "mean" and out.dim() in (2, 4) and out.shape[1] == first.shape[1] and out.numel() == first.shape[0] * first.shape[1]


def _chw(x: torch.Tensor) -> tuple[int, int, int]:
    if x.dim() != 4:
        raise ValueError(f"expected an N,C,H,W tensor, got shape {tuple(x.shape)}")
    return int(x.shape[1]), int(x.shape[2]), int(x.shape[3])


def trace_ops(model: nn.Module, input_hw: tuple[int, int], in_channels: int = 3) -> tuple[list[Op], list[str]]:
    """Runtime ops of ``model.forward`` on a 1 x in_channels x H x W input, traced on the meta device.

    Returns the op list and the names of traced tensor functions the latency model does not
    know (an empty list means every op is covered by the LUT vocabulary).
    """
    meta_model = _to_meta(model)
    x = torch.empty(1, in_channels, *input_hw, device="meta")
    recorder = _OpRecorder()
    with torch.no_grad(), recorder:
        meta_model(x)
    return recorder.ops, recorder.other


def _to_meta(model: nn.Module) -> nn.Module:
    """A meta-device copy, so tracing never touches (or allocates) real weights."""
    if all(p.device.type == "meta" for p in model.parameters()):
        return model.eval()
    import copy

    clone = copy.deepcopy(model).to("meta")
    return clone.eval()


# ------------------------------------------------------------------ measurement modules
class _Unary(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class _Binary(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y if self.kind == "add" else x * y


class _Concat(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=1)


_ACT_MODULES = {
    "relu": lambda c: nn.ReLU(), "prelu": lambda c: nn.PReLU(c), "leaky": lambda c: nn.LeakyReLU(0.2),
    "hswish": lambda c: nn.Hardswish(), "hsigmoid": lambda c: nn.Hardsigmoid(), "silu": lambda c: nn.SiLU(),
    "tanh": lambda c: nn.Tanh(), "gelu": lambda c: nn.GELU(),
}


def op_module(op: Op) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """A single-op PyTorch module and its NCHW example inputs, for LUT measurement.

    Convs carry a fused ReLU (as in the network); scalar and elementwise ops take their
    traced shape.
    """
    c, h, w = op.shape
    x = torch.rand(1, c, h, w)
    if op.kind == "conv":
        pad = op.attr("p")
        conv = nn.Conv2d(c, op.attr("cout"), op.attr("k"), stride=op.attr("s"), padding=pad,
                         dilation=op.attr("d"), groups=op.attr("g"))
        return nn.Sequential(conv, nn.ReLU()), (x,)
    if op.kind == "deconv":
        k, s = op.attr("k"), op.attr("s")
        deconv = nn.ConvTranspose2d(c, op.attr("cout"), k, stride=s, groups=op.attr("g"))
        # padding chosen so the output has the traced size
        out_h = (h - 1) * s + k
        extra = out_h - op.attr("oh")
        if extra != 0:
            pad = max(extra // 2, 0)
            deconv = nn.ConvTranspose2d(c, op.attr("cout"), k, stride=s, groups=op.attr("g"), padding=pad,
                                        output_padding=max(op.attr("oh") - ((h - 1) * s - 2 * pad + k), 0))
        return nn.Sequential(deconv, nn.ReLU()), (x,)
    if op.kind in ("add", "mul"):
        if op.attr("scalar"):
            return _Unary((lambda t: t + 1.0) if op.kind == "add" else (lambda t: t * 2.0)), (x,)
        return _Binary(op.kind), (x, torch.rand(1, c, h, w))
    if op.kind == "sigmoid":
        return _Unary(torch.sigmoid), (x,)
    if op.kind == "clamp":
        return _Unary(lambda t: torch.clamp(t, 0.0, 1.0)), (x,)
    if op.kind == "act":
        return _ACT_MODULES[op.attr("fn", "relu")](c), (x,)
    if op.kind in ("depth_to_space", "space_to_depth"):
        cls = nn.PixelShuffle if op.kind == "depth_to_space" else nn.PixelUnshuffle
        return cls(op.attr("r")), (x,)
    if op.kind == "pool":
        k, s = op.attr("k"), op.attr("s")
        pad = max(((op.attr("oh") - 1) * s + k - h + 1) // 2, 0)
        cls = nn.MaxPool2d if op.attr("fn") == "max" else nn.AvgPool2d
        return cls(k, s, pad), (x,)
    if op.kind == "global_pool":
        return nn.AdaptiveAvgPool2d(1), (x,)
    if op.kind == "pad":
        dh, dw = op.attr("oh") - h, op.attr("ow") - w
        pads = (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)
        return _Unary(lambda t: F.pad(t, pads, mode="reflect")), (x,)
    if op.kind == "concat":
        return _Concat(), tuple(torch.rand(1, part, h, w) for part in op.attr("split"))
    if op.kind.startswith("resize"):
        mode = "bilinear" if op.kind == "resize_bilinear" else "nearest"
        size = (op.attr("oh"), op.attr("ow"))
        kwargs = {"align_corners": False} if mode == "bilinear" else {}
        return _Unary(lambda t: F.interpolate(t, size=size, mode=mode, **kwargs)), (x,)
    raise ValueError(f"no measurement module for op kind {op.kind!r}")

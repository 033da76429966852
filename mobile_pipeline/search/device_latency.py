"""Per-device latency models fitted to measured phones (Qualcomm AI Hub profiles).

The LUT (:mod:`mobile_pipeline.search.latency`) times ops on this machine's CPU; an NPU's cost
structure is different (fixed per-layer dispatch, output channels padded to the tensor unit's
width, tensors larger than the on-chip memory spilling to DRAM), so a CPU time times a
datasheet ratio ranks networks the NPU's way only by luck. Here a network's time on one
device, runtime and precision is a non-negative linear model of op-class work, fitted on
published networks that AI Hub measured on that device (``benchmarks/bench_latency_model.py
--devices`` prints the fit's leave-one-model-out error and the alternatives it beat)::

    ms = c0 + c1 * conv_gmacs + c2 * activation_mb + c3 * spill_mb + c4 * weight_mb + c5 * ops + c6 * io_melems

* ``conv_gmacs``: conv / deconv / fully-connected MACs with the output channels rounded up to
  32 (the HTP's tensor unit computes 32 output channels at a time: a 3-channel RGB head costs
  like a 32-channel one); grouped and depthwise convs count their plain MACs.
* ``activation_mb``: every op's input + output tensors in the HTP's channel-tiled layout
  (channels rounded up to 32), in the precision's element size.
* ``spill_mb``: the part of that traffic in tensors larger than 16 MiB, which cannot stay in
  on-chip memory and go through DRAM. Below 16 MiB the leave-one-out error rises (8 MiB, the
  v73 / v75 VTCM: tflite w8a8 24% instead of 18.5%); 16, 32 and 64 MiB fit alike, because no
  profiled tensor falls between them. The threshold was picked on the same data.
* ``weight_mb``: conv weights, read once per inference.
* ``ops``: runtime ops (each costs a dispatch).
* ``io_melems``: network input + output elements: the float <-> int8 conversion and layout
  change at the graph's boundary (a 512x512x3 super-resolution output costs more than a
  1000-class vector).

The fitted coefficients live in ``device_tiers/device_latency.json`` (written by
``mobile-pipeline bench calibrate`` from ``device_tiers/measurements/``). Predicting is a dot
product over a feature vector computed once per (architecture, input size), so the search can
call it thousands of times.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mobile_pipeline.search.ops import Op
from mobile_pipeline.utils.atomic import atomic_write_text
from mobile_pipeline.utils.paths import device_tiers_dir

DEVICE_LATENCY_FILENAME = "device_latency.json"
DEVICE_LATENCY_VERSION = 1
FEATURES: tuple[str, ...] = ("intercept", "conv_gmacs", "activation_mb", "spill_mb", "weight_mb", "ops", "io_melems")
METHOD = "per-op-class throughput (non-negative least squares on relative error)"
CHANNEL_TILE = 32
SPILL_BYTES = 16 * 2**20
UNCALIBRATED = "uncalibrated (datasheet)"
FITTED = "fitted to measured phones"

# AI Hub precision -> bytes per activation on the NPU ("float" runs in fp16 on the HTP)
_ELEMENT_BYTES = {"w8a8": 1, "int8": 1, "float": 2, "fp16": 2, "w8a16": 2, "w8a16_mixed_int16": 2, "fp32": 4}


def element_bytes(precision: str) -> int | None:
    """Activation element size of an AI Hub precision; None for ones the model does not cover (w4a16 ...)."""
    return _ELEMENT_BYTES.get(precision)


def _ceil(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _out_hw(op: Op) -> tuple[int, int]:
    c, h, w = op.shape
    if op.kind == "conv":
        pad = op.attr("p")
        pad = op.attr("d") * (op.attr("k") - 1) // 2 if isinstance(pad, str) else pad  # 'same'
        span = op.attr("d") * (op.attr("k") - 1) + 1
        s = op.attr("s")
        return (h + 2 * pad - span) // s + 1, (w + 2 * pad - span) // s + 1
    if op.attr("oh") is not None:
        return op.attr("oh"), op.attr("ow")
    if op.kind == "depth_to_space":
        return h * op.attr("r"), w * op.attr("r")
    if op.kind == "space_to_depth":
        return h // op.attr("r"), w // op.attr("r")
    if op.kind == "global_pool":
        return 1, 1
    return h, w


def _out_channels(op: Op) -> int:
    c = op.shape[0]
    if op.kind in ("conv", "deconv"):
        return op.attr("cout")
    if op.kind == "concat":
        return sum(op.attr("split"))
    if op.kind == "depth_to_space":
        return c // op.attr("r") ** 2
    if op.kind == "space_to_depth":
        return c * op.attr("r") ** 2
    return c


def op_features(ops: Sequence[Op], element_size: int) -> tuple[float, ...]:
    """The feature vector of :data:`FEATURES` for a network's ops (units: GMACs, MB, ops, M elements)."""
    macs = act = spill = weights = 0.0
    for op in ops:
        c, h, w = op.shape
        oh, ow = _out_hw(op)
        cout = _out_channels(op)
        tile_in = (sum(_ceil(part, CHANNEL_TILE) for part in op.attr("split")) if op.kind == "concat"
                   else _ceil(c, CHANNEL_TILE)) * h * w
        tile_out = _ceil(cout, CHANNEL_TILE) * oh * ow
        if op.kind in ("conv", "deconv"):
            g, k = op.attr("g"), op.attr("k")
            out_pixels = oh * ow if op.kind == "conv" else h * w
            macs += out_pixels * k * k * (c // g) * (_ceil(cout, CHANNEL_TILE) if g == 1 else cout)
            weights += cout * (c // g) * k * k
        binary = op.kind in ("add", "mul") and not op.attr("scalar")
        act += tile_in * (2 if binary else 1) + tile_out
        for tensor in (tile_in, tile_out):
            if tensor * element_size > SPILL_BYTES:
                spill += tensor
    io = 0.0
    if ops:
        first, last = ops[0], ops[-1]
        lh, lw = _out_hw(last)
        io = first.shape[0] * first.shape[1] * first.shape[2] + _out_channels(last) * lh * lw
    mb = element_size / 1e6
    return (1.0, macs / 1e9, act * mb, spill * mb, weights * mb, float(len(ops)), io / 1e6)


@dataclass(frozen=True)
class DeviceFit:
    """One device x runtime x precision: coefficients and how well they predict held-out networks."""

    device: str
    soc_model: str
    tier_soc: str
    form_factor: str
    runtime: str
    precision: str
    compute_unit: str
    coefficients: tuple[float, ...]
    models: tuple[str, ...]
    loo_mape_pct: float
    loo_spearman: float
    fit_mape_pct: float
    origin: str
    tool_versions: tuple[str, ...] = ()

    @property
    def is_phone(self) -> bool:
        """Phones, tablets and proxies of a phone SoC stand for a tier; dev kits and cars do not."""
        return self.form_factor in ("phone", "tablet") or self.tier_soc != self.soc_model

    @property
    def element_size(self) -> int:
        return element_bytes(self.precision) or 1

    def predict_ms(self, features: Sequence[float]) -> float:
        return sum(c * f for c, f in zip(self.coefficients, features))

    def label(self) -> str:
        return f"{self.device} ({self.soc_model}) {self.runtime} {self.precision}"

    def source(self) -> str:
        """Human-readable provenance, as shown next to a fitted prediction."""
        return (f"{FITTED}: {self.label()}, {len(self.models)} AI Hub-profiled networks ({self.origin}), "
                f"leave-one-model-out MAPE {self.loo_mape_pct:.1f}%")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["coefficients"] = dict(zip(FEATURES, self.coefficients))
        data["models"], data["tool_versions"] = list(self.models), list(self.tool_versions)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DeviceFit":
        coefficients = data["coefficients"]
        if set(coefficients) != set(FEATURES):
            raise ValueError(f"coefficients must name {FEATURES}, got {sorted(coefficients)}")
        return cls(**{**data, "coefficients": tuple(float(coefficients[name]) for name in FEATURES),
                      "models": tuple(data["models"]), "tool_versions": tuple(data.get("tool_versions", ()))})


@dataclass
class DeviceLatencyTable:
    """Every fitted device; what ``device_tiers/device_latency.json`` holds."""

    fits: list[DeviceFit] = field(default_factory=list)
    method: str = METHOD
    notes: str = ""
    path: Path | None = None

    def select(self, runtime: str, precision: str, compute_unit: str = "NPU", phones_only: bool = True) -> list[DeviceFit]:
        return [f for f in self.fits if f.runtime == runtime and f.precision == precision
                and f.compute_unit == compute_unit and (f.is_phone or not phones_only)]

    def to_json(self) -> str:
        doc = {"version": DEVICE_LATENCY_VERSION, "method": self.method, "features": list(FEATURES),
               "channel_tile": CHANNEL_TILE, "spill_bytes": SPILL_BYTES, "notes": self.notes,
               "fits": [fit.to_dict() for fit in self.fits]}
        return json.dumps(doc, indent=1, sort_keys=False) + "\n"

    def write(self, path: Path | None = None) -> Path:
        path = Path(path) if path else default_device_latency_path()
        return atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: Path | None = None) -> "DeviceLatencyTable":
        """The fitted table; an empty one when the file does not exist (nothing measured yet)."""
        path = Path(path) if path else default_device_latency_path()
        if not path.is_file():
            return cls(path=path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("version") != DEVICE_LATENCY_VERSION or list(doc.get("features", [])) != list(FEATURES):
                raise ValueError(f"version {doc.get('version')} / features {doc.get('features')} are not this code's "
                                 f"({DEVICE_LATENCY_VERSION}, {list(FEATURES)})")
            fits = [DeviceFit.from_dict(item) for item in doc.get("fits", [])]
        except (ValueError, KeyError, TypeError) as err:
            raise DeviceLatencyError(f"{path} is unusable ({err}); refit it with `mobile-pipeline bench calibrate`") from None
        return cls(fits=fits, method=doc.get("method", METHOD), notes=doc.get("notes", ""), path=path)


class DeviceLatencyError(RuntimeError):
    """The fitted device table is unreadable; the message says how to rebuild it."""


def default_device_latency_path() -> Path:
    return device_tiers_dir() / DEVICE_LATENCY_FILENAME


# ----------------------------------------------------------------------- tier -> device
_UNIT_OF_DELEGATE = {"xnnpack": "CPU", "cpu": "CPU", "gpu": "GPU", "nnapi": "NPU", "qnn": "NPU", "hexagon": "NPU",
                     "neuron": "NPU"}
_AIHUB_PRECISION = {"int8-full": "w8a8", "int8": "w8a8", "fp16": "float", "fp32": "float"}


def tier_target(tier: Any) -> tuple[str, str, str] | None:
    """(runtime, AI Hub precision, compute unit) the tier's first Android variant runs as; None if unmapped."""
    for variant in getattr(tier, "variants", []):
        if variant.platform in ("android", "any") and variant.format in ("tflite", "onnx"):
            precision = _AIHUB_PRECISION.get(variant.precision)
            unit = _UNIT_OF_DELEGATE.get(str(getattr(tier, "delegate", "")).lower())
            if precision and unit:
                return variant.format, precision, unit
            return None
    return None


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN for fewer than 3 points."""
    if len(a) < 3:
        return float("nan")
    ra, rb = _ranks(a), _ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    var = math.sqrt(sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb))
    return cov / var if var else float("nan")


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0
        i = j + 1
    return ranks

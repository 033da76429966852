"""PyTorch -> ONNX (torch.onnx dynamo exporter), then fp16 or int8 static QDQ.

I/O convention: input ``input`` float32 (1,3,H,W) NCHW in [0,1], output ``output`` float32
(1,3,H,W) NCHW in [0,1]; fixed shapes (the tier's resolution), so runtimes plan memory once.

* fp32: the dynamo export, weights embedded (one self-contained file: no ``.onnx.data``).
* fp16: ``onnxruntime.transformers.float16`` converts weights and compute to fp16; the
  graph I/O stays float32 (``keep_io_float32``) with Cast nodes at the boundary.
* int8: ``onnxruntime.quantization.quantize_static`` in QDQ format, per-channel weights,
  activations calibrated on the calibration photos.
* w8a16: the same with 16-bit activations and 8-bit weights (the quantizer raises the opset
  to 21, where QuantizeLinear takes 16-bit types); what the Hexagon NPU runs at int8 weight
  size with far less activation error (``exporters/qnn.py`` compiles both).

All three are deterministic: same module + recipe + calibration -> same bytes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from mobile_pipeline.exporters.recipes import OnnxRecipe
from mobile_pipeline.exporters.report import TensorSpec

INPUT_NAME = "input"
OUTPUT_NAME = "output"


def io_specs(input_hw: tuple[int, int]) -> tuple[TensorSpec, TensorSpec]:
    """Input and output tensor specs of every ONNX variant (float32 I/O for all precisions)."""
    shape = [1, 3, int(input_hw[0]), int(input_hw[1])]
    return (TensorSpec(name=INPUT_NAME, shape=shape, layout="NCHW", dtype="float32"),
            TensorSpec(name=OUTPUT_NAME, shape=shape, layout="NCHW", dtype="float32"))


def export_float(model, input_hw: tuple[int, int], opset: int = 18) -> bytes:
    """The fp32 ONNX model as bytes (the base every quantized variant is derived from)."""
    import onnx
    import torch

    from mobile_pipeline.exporters._quiet import quiet

    sample = torch.rand(1, 3, *input_hw, generator=torch.Generator().manual_seed(0))
    with quiet(), torch.no_grad():
        program = torch.onnx.export(
            model.eval(), (sample,), None, dynamo=True, opset_version=opset,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], verbose=False, optimize=True,
        )
    proto = program.model_proto
    # Self-contained file: the exporter keeps large initializers external by default.
    onnx.checker.check_model(proto)
    return proto.SerializeToString(deterministic=True)


def to_fp16(float_bytes: bytes, recipe: OnnxRecipe) -> bytes:
    """fp16 weights and compute; float32 I/O when ``recipe.keep_io_float32``."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from mobile_pipeline.exporters._quiet import quiet

    proto = onnx.load_from_string(float_bytes)
    with quiet():
        half = convert_float_to_float16(proto, keep_io_types=recipe.keep_io_float32)
    _drop_duplicate_nodes(half.graph)
    _topological_sort(half.graph)
    onnx.checker.check_model(half)
    return half.SerializeToString(deterministic=True)


def _topological_sort(graph) -> None:
    """Stable topological order: the fp16 converter appends its input Casts at the end."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        ready = [n for n in pending if all(name in available for name in n.input)]
        if not ready:
            raise ValueError("ONNX graph has a cycle or a dangling input after fp16 conversion")
        for node in ready:
            available.update(node.output)
        ordered += ready
        pending = [n for n in pending if all(n is not r for r in ready)]
    copies = [type(n)() for n in ordered]
    for copy, node in zip(copies, ordered):
        copy.CopyFrom(node)
    del graph.node[:]
    graph.node.extend(copies)


def _drop_duplicate_nodes(graph) -> None:
    """Remove exact duplicate nodes. The fp16 converter inserts one float32 Cast of a shared
    float initializer (e.g. the scales of every Resize) per consumer, all with the same name
    and output, which breaks SSA and onnxruntime refuses to load the model."""
    seen: set[bytes] = set()
    kept = []
    for node in graph.node:
        key = node.SerializeToString(deterministic=True)
        if key in seen:
            continue
        seen.add(key)
        kept.append(node)
    if len(kept) != len(graph.node):
        copies = [type(n)() for n in kept]
        for copy, node in zip(copies, kept):
            copy.CopyFrom(node)
        del graph.node[:]
        graph.node.extend(copies)


class _PhotoReader:
    """CalibrationDataReader over N,3,H,W float32 photos, one image per call."""

    def __init__(self, photos: np.ndarray) -> None:
        self._photos = photos
        self._index = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._index >= len(self._photos):
            return None
        batch = self._photos[self._index:self._index + 1].astype(np.float32)
        self._index += 1
        return {INPUT_NAME: batch}

    def rewind(self) -> None:
        self._index = 0


def to_int8(float_bytes: bytes, recipe: OnnxRecipe, calibration: np.ndarray) -> bytes:
    """Static QDQ (int8 or w8a16): per-channel weights, activations calibrated on ``calibration``."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from mobile_pipeline.exporters._quiet import quiet

    if calibration is None or len(calibration) == 0:
        raise ValueError(f"ONNX {recipe.precision} needs calibration photos (N,3,H,W float32 in [0,1]); none were given")
    qtype = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8, "int16": QuantType.QInt16, "uint16": QuantType.QUInt16}
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[recipe.calibration_method]
    with tempfile.TemporaryDirectory(prefix="mp_onnx_q_") as tmp:
        src, pre, dst = Path(tmp, "float.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(float_bytes)
        with quiet():
            # Shape inference + graph cleanup first, as onnxruntime recommends for QDQ.
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            quantize_static(
                str(pre), str(dst), _PhotoReader(calibration), quant_format=QuantFormat.QDQ,
                per_channel=recipe.per_channel, activation_type=qtype[recipe.activation_type],
                weight_type=qtype[recipe.weight_type], calibrate_method=method,
                calibration_providers=["CPUExecutionProvider"],
            )
        proto = onnx.load(str(dst))
    return proto.SerializeToString(deterministic=True)


def convert(float_bytes: bytes, recipe: OnnxRecipe, calibration: np.ndarray | None) -> bytes:
    """Derive the variant ``recipe.precision`` from the fp32 model bytes."""
    if recipe.precision == "fp32":
        return float_bytes
    if recipe.precision == "fp16":
        return to_fp16(float_bytes, recipe)
    return to_int8(float_bytes, recipe, calibration)


def list_ops(artifact: Path | bytes) -> tuple[list[str], list[str]]:
    """(op types in graph order, float compute ops) of an ONNX model.

    A "float compute op" is a node outside the QDQ pattern that computes on float tensors:
    in a fully quantized QDQ graph every compute node's inputs come from DequantizeLinear and
    its outputs go to QuantizeLinear (the runtime fuses them into int8 kernels). Boundary
    Quantize/Dequantize/Cast nodes are not compute.
    """
    import onnx

    proto = onnx.load_from_string(artifact) if isinstance(artifact, bytes) else onnx.load(str(artifact))
    graph = proto.graph
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    initializers = {init.name for init in graph.initializer}
    constants = {out for node in graph.node if node.op_type == "Constant" for out in node.output}
    boundary = {"QuantizeLinear", "DequantizeLinear", "Cast", "Constant", "Identity", "Shape", "Reshape"}
    ops, float_ops = [], []
    for node in graph.node:
        ops.append(node.op_type)
        if node.op_type in boundary:
            continue
        act_inputs = [n for n in node.input if n and n not in initializers and n not in constants]
        inputs_quantized = all(
            producers.get(n) is not None and producers[n].op_type == "DequantizeLinear" for n in act_inputs
        )
        outputs_quantized = all(
            any(c.op_type == "QuantizeLinear" for c in consumers.get(out, [])) for out in node.output
        )
        if not (inputs_quantized and outputs_quantized):
            float_ops.append(f"{node.op_type}:{node.name}")
    return ops, float_ops

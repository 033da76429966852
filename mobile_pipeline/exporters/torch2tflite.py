"""PyTorch -> TFLite (litert-torch), quantized variants through ai-edge-quantizer.

I/O convention (``channel_last_io``, the default): input (1,H,W,3) NHWC, output (1,H,W,3)
NHWC, value range [0,1]; the camera pipelines on Android hand over NHWC buffers and the
NHWC<->NCHW transposes are folded away by the converter instead of costing a pass on device.

* fp32: ``litert_torch.convert`` of the module wrapped by ``litert_torch.to_channel_last_io``.
* fp16: fp16 weights (ai-edge-quantizer FLOAT_CASTING, weight-only); compute in float, the
  GPU delegate runs fp16 natively.
* int8-dynamic: int8 per-channel weights, activations quantized on the fly (CPU/XNNPACK).
* int8-full: static int8 weights and activations calibrated on the calibration photos; with
  ``int8_io`` the graph input/output are int8 too (scale 1/255-ish, zero point -128), as
  DSP/NPU delegates want; otherwise float32 I/O with boundary QUANTIZE/DEQUANTIZE.

Deterministic: the converter and the quantizer give the same bytes for the same inputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mobile_pipeline.exporters.recipes import TfliteRecipe
from mobile_pipeline.exporters.report import TensorSpec

# Ops that only move data between float and int8 at the graph boundary (or re-scale int8).
_CONVERSION_OPS = {"QUANTIZE", "DEQUANTIZE"}
# Ops with no arithmetic: they never make a float island on their own.
_SHAPE_OPS = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SHAPE"}


def export_float(model, input_hw: tuple[int, int], channel_last_io: bool = True, int8_friendly: bool = False) -> bytes:
    """The fp32 flatbuffer (the base for every quantized variant).

    Args:
        int8_friendly: rewrite ``clamp(x, 0, 1)`` as ``relu(x) - relu(x - 1)`` (equal in
            exact arithmetic). The converter lowers the clamp to RELU_0_TO_1, which
            ai-edge-quantizer leaves in float: a DEQUANTIZE -> float RELU_0_TO_1 island at the
            output of every full-int8 model. RELU and SUB quantize.
    """
    import litert_torch
    import torch

    from mobile_pipeline.exporters._quiet import quiet

    sample = torch.rand(1, 3, *input_hw, generator=torch.Generator().manual_seed(0))
    module = model.eval()
    if channel_last_io:
        module = litert_torch.to_channel_last_io(module, args=[0], outputs=[0]).eval()
        sample = sample.permute(0, 2, 3, 1).contiguous()
    with quiet(), torch.no_grad():
        if int8_friendly:
            module = _clamp_as_relus(module, sample)
        edge = litert_torch.convert(module, (sample,))
        return flatten_transpose_conv_bias(bytes(edge.model_content()))


def flatten_transpose_conv_bias(buf: bytes) -> bytes:
    """Reshape every constant TRANSPOSE_CONV bias from (1,1,1,C) to the canonical (C,).

    litert-torch emits the folded BatchNorm bias of a ConvTranspose2d as a 4-D constant.
    Float kernels do not care, but ai-edge-quantizer quantizes that bias per channel along
    axis 0 (length 1) with C scales, and the interpreter then refuses the whole int8 model
    ("num_scales must be 1 ... but got C"). Same values, same order: only the shape changes.
    """
    from ai_edge_litert import schema_py_generated as schema
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(bytearray(buf), 0)
    transpose_conv = schema.BuiltinOperator.TRANSPOSE_CONV
    changed = False
    for graph in model.subgraphs:
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) != transpose_conv or len(op.inputs) < 4:
                continue
            bias_index = int(op.inputs[3])
            if bias_index < 0:
                continue
            bias = graph.tensors[bias_index]
            shape = [int(s) for s in bias.shape]
            if len(shape) > 1 and all(s == 1 for s in shape[:-1]):
                bias.shape = [shape[-1]]
                bias.shapeSignature = None
                changed = True
    if not changed:
        return buf
    builder = flatbuffers.Builder(len(buf) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _clamp_as_relus(module, sample):
    """torch.export the module and replace every clamp(x, 0, 1) by relu(x) - relu(x - 1)."""
    import torch

    program = torch.export.export(module, (sample,))
    graph = program.graph_module.graph
    aten = torch.ops.aten
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in (aten.clamp.default, aten.hardtanh.default):
            continue
        low, high = (list(node.args[1:3]) + [None, None])[:2]
        if node.target == aten.hardtanh.default:
            low, high = (low if low is not None else -1.0), (high if high is not None else 1.0)
        if low != 0.0 or high != 1.0 or node.kwargs:
            continue
        with graph.inserting_before(node):
            x = node.args[0]
            low_part = graph.call_function(aten.relu.default, (x,))
            shifted = graph.call_function(aten.sub.Tensor, (x, 1.0))
            high_part = graph.call_function(aten.relu.default, (shifted,))
            replacement = graph.call_function(aten.sub.Tensor, (low_part, high_part))
        node.replace_all_uses_with(replacement)
        graph.erase_node(node)
    graph.lint()
    program.graph_module.recompile()
    return program.module()


def _signature_input(buf: bytes) -> tuple[str, str]:
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_content=buf).get_signature_list()
    key = sorted(signatures)[0]
    return key, signatures[key]["inputs"][0]


def convert(float_bytes: bytes, recipe: TfliteRecipe, calibration: np.ndarray | None) -> bytes:
    """Derive ``recipe.precision`` from the fp32 flatbuffer.

    Args:
        float_bytes: output of :func:`export_float`.
        recipe: the validated TFLite recipe.
        calibration: N,3,H,W float32 photos in [0,1] (int8-full only).
    """
    if recipe.precision == "fp32":
        return float_bytes
    from ai_edge_quantizer import qtyping, quantizer, recipe as aeq_recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    from mobile_pipeline.exporters._quiet import quiet

    granularity = (qtyping.QuantGranularity.CHANNELWISE if recipe.weight_granularity == "channelwise"
                   else qtyping.QuantGranularity.TENSORWISE)
    every_op = qtyping.TFLOperationName.ALL_SUPPORTED
    quant = quantizer.Quantizer(bytearray(float_bytes))
    calibration_result = None
    with quiet():
        if recipe.precision == "fp16":
            quant.add_weight_only_config(regex=".*", operation_name=every_op, num_bits=16,
                                         algorithm_key=AlgorithmName.FLOAT_CASTING)
        elif recipe.precision == "int8-dynamic":
            quant.add_dynamic_config(regex=".*", operation_name=every_op, num_bits=8, granularity=granularity)
        else:
            if calibration is None or len(calibration) == 0:
                raise ValueError("TFLite int8-full needs calibration photos (N,3,H,W float32 in [0,1]); none given")
            quant.load_quantization_recipe(aeq_recipe.static_wi8_ai8())
            if recipe.weight_granularity != "channelwise":
                quant.add_static_config(regex=".*", operation_name=every_op, activation_num_bits=8,
                                        weight_num_bits=8, weight_granularity=granularity)
            if not recipe.int8_io:
                for boundary in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):
                    quant.update_quantization_recipe(regex=".*", operation_name=boundary,
                                                     algorithm_key=AlgorithmName.NO_QUANTIZE)
            signature, input_name = _signature_input(float_bytes)
            photos = np.asarray(calibration, dtype=np.float32)
            if recipe.channel_last_io:
                photos = photos.transpose(0, 2, 3, 1)
            samples = [{input_name: photos[i:i + 1]} for i in range(len(photos))]
            calibration_result = quant.calibrate({signature: samples}, num_threads=1)
            _pin_io_range(calibration_result, float_bytes)
        result = quant.quantize(calibration_result, enable_progress_report=False)
    return bytes(result.quantized_model)


def _pin_io_range(calibration_result: dict, float_bytes: bytes) -> None:
    """Set the graph input and output ranges to exactly [0, 1] instead of the calibrated
    min/max of a few photos: the value range is a contract (the output is clamped), and with
    scale 1/255 and zero point -128 an app maps uint8 pixels to int8 by subtracting 128."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=float_bytes)
    for detail in (interp.get_input_details()[0], interp.get_output_details()[0]):
        qsv = calibration_result.get(detail["name"])
        if qsv and "min" in qsv and "max" in qsv:
            qsv["min"] = np.zeros_like(qsv["min"])
            qsv["max"] = np.ones_like(qsv["max"])


def io_specs(buf: bytes) -> tuple[TensorSpec, TensorSpec]:
    """Input/output specs read back from the flatbuffer (dtype, scale and zero point)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=buf)
    specs = []
    for detail in (interp.get_input_details()[0], interp.get_output_details()[0]):
        shape = [int(s) for s in detail["shape"]]
        dtype = np.dtype(detail["dtype"]).name
        scale, zero = detail["quantization"]
        layout = "NHWC" if shape[-1] == 3 and shape[1] != 3 else "NCHW"
        quantized = dtype in ("int8", "uint8")
        specs.append(TensorSpec(
            name=detail["name"], shape=shape, layout=layout, dtype=dtype,
            scale=float(scale) if quantized else None, zero_point=int(zero) if quantized else None,
        ))
    return specs[0], specs[1]


def requested_io_specs(input_hw: tuple[int, int], recipe: TfliteRecipe) -> tuple[TensorSpec, TensorSpec]:
    """The I/O the recipe asks for, for a flatbuffer the interpreter refuses to load (the
    gate then rejects it with the interpreter's message; the report still needs specs)."""
    shape = [1, *input_hw, 3] if recipe.channel_last_io else [1, 3, *input_hw]
    int8 = recipe.precision == "int8-full" and recipe.int8_io
    quant = {"dtype": "int8", "scale": 1 / 255, "zero_point": -128} if int8 else {"dtype": "float32"}
    layout = "NHWC" if recipe.channel_last_io else "NCHW"
    return (TensorSpec(name="input", shape=shape, layout=layout, **quant),
            TensorSpec(name="output", shape=shape, layout=layout, **quant))


def list_ops(artifact: Path | bytes) -> tuple[list[str], list[str]]:
    """(builtin op names in graph order, float compute ops) of a .tflite flatbuffer.

    Read from the flatbuffer itself (op codes + tensor types), not from the interpreter, so it
    sees exactly what a delegate would be handed. A compute op is a float island when any of
    its activation inputs/outputs is not int8/int16/int32; QUANTIZE/DEQUANTIZE count only when
    they are not at the graph boundary (a dequantize feeding float compute mid-graph).
    """
    from ai_edge_litert import schema_py_generated as schema

    buf = artifact if isinstance(artifact, bytes) else Path(artifact).read_bytes()
    model = schema.ModelT.InitFromPackedBuf(bytearray(buf), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    int_types = {schema.TensorType.INT8, schema.TensorType.INT16, schema.TensorType.INT32,
                 schema.TensorType.UINT8}
    ops: list[str] = []
    float_ops: list[str] = []
    for graph_index, graph in enumerate(model.subgraphs):
        boundary = set(int(i) for i in graph.inputs) | set(int(i) for i in graph.outputs)
        constant = {i for i, t in enumerate(graph.tensors)
                    if model.buffers[t.buffer].data is not None and len(model.buffers[t.buffer].data)}
        for op_index, op in enumerate(graph.operators):
            code = model.operatorCodes[op.opcodeIndex]
            name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), f"CUSTOM_{code.customCode}")
            ops.append(name)
            tensors = [int(i) for i in list(op.inputs) + list(op.outputs) if i >= 0]
            if name in _SHAPE_OPS:
                continue
            if name in _CONVERSION_OPS:
                if any(t in boundary for t in tensors):
                    continue  # graph-boundary conversion, not compute
                if name == "QUANTIZE" and all(graph.tensors[t].type in int_types for t in tensors):
                    continue  # int8 -> int8 requantize
                float_ops.append(f"{name}#{graph_index}.{op_index}")
                continue
            activations = [t for t in tensors if t not in constant]
            if any(graph.tensors[t].type not in int_types for t in activations):
                float_ops.append(f"{name}#{graph_index}.{op_index}")
    return ops, float_ops

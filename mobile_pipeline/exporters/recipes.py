"""Quantization / conversion recipes as validated config objects.

One pydantic model per format, ``extra="forbid"`` so a typo (``per_chanel: true``) is an
error naming the field instead of a silently ignored option (the failure mode of
string-keyed ``extra_options``). A recipe is what the report records, so two exports with
equal recipes and equal checkpoints should give equal artifacts.

Load from a dict (``make_recipe("tflite", "int8-full", {"int8_io": False})``) or from YAML
(``load_recipe(path)``, a mapping with ``format`` and ``precision`` keys).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mobile_pipeline.exporters.formats import FormatError, resolve_format, resolve_precision
from mobile_pipeline.utils.validation import field_messages


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the field."""


class _Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    calibration_images: int | None = Field(
        None, ge=1, description="Use at most this many calibration photos (None = all given)."
    )


#: Activation / weight types each ONNX QDQ precision allows; the first is its default.
ONNX_QDQ_TYPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "int8": (("uint8", "int8"), ("int8", "uint8")),
    # The QNN HTP compiles 16-bit activations with *unsigned* 8-bit weights (QNN EP docs'
    # QUInt16/QUInt8 recipe); int16 activations with int8 weights leave its Convs unsupported.
    "w8a16": (("uint16", "int16"), ("uint8", "int8")),
}


class OnnxRecipe(_Recipe):
    """ONNX: fp32, fp16 (weights + compute, float32 I/O kept), int8 and w8a16 static QDQ."""

    format: Literal["onnx"] = "onnx"
    precision: Literal["fp32", "fp16", "int8", "w8a16"] = "fp32"
    opset: int = Field(18, ge=17, le=23, description="ONNX opset of the dynamo exporter.")
    # fp16: keep the graph inputs/outputs float32 (Cast nodes at the boundary) so callers
    # never handle half floats; the whole interior computes in fp16.
    keep_io_float32: bool = True
    # int8 / w8a16 (onnxruntime.quantization.quantize_static, QDQ format); the types default
    # per precision (ONNX_QDQ_TYPES): int8 -> uint8 activations, int8 weights; w8a16 ->
    # uint16 activations, uint8 weights.
    per_channel: bool = True
    activation_type: Literal["int8", "uint8", "int16", "uint16"] = "uint8"
    weight_type: Literal["int8", "uint8"] = "int8"
    calibration_method: Literal["minmax", "entropy", "percentile"] = "minmax"

    @model_validator(mode="before")
    @classmethod
    def _qdq_type_defaults(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and raw.get("precision") in ONNX_QDQ_TYPES:
            acts, weights = ONNX_QDQ_TYPES[raw["precision"]]
            raw = {"activation_type": acts[0], "weight_type": weights[0], **raw}
        return raw

    @model_validator(mode="after")
    def _qdq_types_fit(self) -> "OnnxRecipe":
        if self.precision in ONNX_QDQ_TYPES:
            acts, _ = ONNX_QDQ_TYPES[self.precision]
            if self.activation_type not in acts:
                raise ValueError(f"activation_type {self.activation_type!r} does not fit precision {self.precision!r}; "
                                 f"use one of {list(acts)}")
        return self


class TfliteRecipe(_Recipe):
    """TFLite via litert-torch; quantized variants via ai-edge-quantizer recipes."""

    format: Literal["tflite"] = "tflite"
    precision: Literal["fp32", "fp16", "int8-dynamic", "int8-full"] = "fp32"
    channel_last_io: bool = Field(True, description="NHWC model input/output (what mobile camera pipelines hand over).")
    # int8-full only: int8 graph input/output (no QUANTIZE/DEQUANTIZE at the boundary, what
    # DSP/NPU delegates want); False keeps float32 I/O with boundary (de)quantize ops.
    int8_io: bool = True  # ignored by the other precisions
    weight_granularity: Literal["channelwise", "tensorwise"] = "channelwise"


class CoremlRecipe(_Recipe):
    """Core ML ML Program; weight compression through coremltools.optimize.coreml."""

    format: Literal["coreml"] = "coreml"
    precision: Literal["fp32", "fp16", "w8", "w6-palette", "w4-palette"] = "fp32"
    minimum_deployment_target: Literal["iOS16", "iOS17", "iOS18"] = "iOS17"
    # "tensor": MLMultiArray float32 NCHW in [0,1]. "image": CVPixelBuffer RGB input (uint8,
    # scaled by 1/255 inside the model); the output stays a float32 NCHW tensor in [0,1].
    io: Literal["tensor", "image"] = "tensor"
    palette_mode: Literal["kmeans", "uniform"] = "kmeans"
    weight_threshold: int = Field(
        0, ge=0, description="Compress only weights with at least this many elements (0 = all)."
    )


class ExecutorchRecipe(_Recipe):
    """ExecuTorch ``.pte``: torch.export -> to_edge_transform_and_lower(partitioner) -> to_executorch.

    The delegate is part of the artifact: ``xnnpack`` (CPU, fp32 or 8-bit PT2E static
    quantization) or ``coreml`` (Core ML partitioner, fp16 or fp32 compute, Apple only).
    Left out, it follows the precision: fp32/int8 -> xnnpack, fp16 -> coreml.
    """

    format: Literal["executorch"] = "executorch"
    precision: Literal["fp32", "int8", "fp16"] = "fp32"
    delegate: Literal["xnnpack", "coreml"] = "xnnpack"
    # int8 (XNNPACKQuantizer): symmetric int8 weights per output channel (False: per tensor),
    # activations calibrated on the calibration photos.
    per_channel: bool = True
    # coreml only: the Core ML program's OS floor (the ExecuTorch Core ML backend needs iOS 16+).
    minimum_deployment_target: Literal["iOS16", "iOS17", "iOS18"] = "iOS17"
    compute_unit: Literal["all", "cpu_and_ne", "cpu_and_gpu", "cpu_only"] = "all"

    @model_validator(mode="before")
    @classmethod
    def _default_delegate(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and raw.get("delegate") is None:
            from mobile_pipeline.exporters.formats import FORMATS

            precision = raw.get("precision", "fp32")
            raw = {**raw, "delegate": FORMATS["executorch"].default_delegates.get(precision, "xnnpack")}
        return raw

    @model_validator(mode="after")
    def _delegate_supports_precision(self) -> "ExecutorchRecipe":
        if self.delegate == "xnnpack" and self.precision == "fp16":
            raise ValueError("delegate: xnnpack variants are fp32 or int8 here; fp16 .pte files are lowered to Core ML "
                             "(delegate: coreml)")
        if self.delegate == "coreml" and self.precision == "int8":
            raise ValueError("delegate: coreml takes fp16 or fp32; for 8-bit Core ML weights export the coreml format "
                             "with precision w8, or use delegate: xnnpack for an int8 .pte")
        return self


Recipe = Union[OnnxRecipe, TfliteRecipe, CoremlRecipe, ExecutorchRecipe]
RECIPE_CLASSES: dict[str, type[_Recipe]] = {"onnx": OnnxRecipe, "tflite": TfliteRecipe, "coreml": CoremlRecipe,
                                            "executorch": ExecutorchRecipe}


def _format_error(err: ValidationError, origin: str) -> str:
    lines = field_messages(err, unknown_key="unknown key (check the spelling; see mobile_pipeline/exporters/recipes.py)")
    return "\n  ".join([f"invalid export recipe ({origin}):", *lines])


def make_recipe(format: str, precision: str | None = None, overrides: dict[str, Any] | None = None,
                origin: str = "<dict>") -> Recipe:
    """Build and validate the recipe for ``format`` x ``precision`` plus ``overrides``.

    Format and precision spellings are resolved through the formats table (``tfl``,
    ``int8`` ...). ``overrides`` may repeat ``format``/``precision`` only if they agree.
    """
    try:
        info = resolve_format(format)
        canonical = resolve_precision(info, precision)
    except FormatError as err:
        raise RecipeError(str(err)) from None
    raw = dict(overrides or {})
    for key, expected in (("format", info.name), ("precision", canonical)):
        if key in raw:
            given = raw[key]
            try:
                value = resolve_format(given).name if key == "format" else resolve_precision(info, given)
            except FormatError as err:
                raise RecipeError(f"invalid export recipe ({origin}): {key}: {err}") from None
            if value != expected:
                raise RecipeError(f"invalid export recipe ({origin}): {key} is {given!r} but {expected!r} was requested")
    raw["format"], raw["precision"] = info.name, canonical
    try:
        return RECIPE_CLASSES[info.name].model_validate(raw)  # type: ignore[return-value]
    except ValidationError as err:
        raise RecipeError(_format_error(err, origin)) from None


def recipe_from_dict(raw: dict[str, Any], origin: str = "<dict>") -> Recipe:
    """A recipe from a mapping that names its ``format`` (and optionally ``precision``)."""
    if not isinstance(raw, dict) or "format" not in raw:
        raise RecipeError(f"invalid export recipe ({origin}): a mapping with a 'format' key is required")
    return make_recipe(raw["format"], raw.get("precision"), raw, origin=origin)


def load_recipe(path: str | Path) -> Recipe:
    """Load a recipe from a YAML (or JSON) file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe file {path} is not valid YAML: {err}") from None
    return recipe_from_dict(raw, origin=str(path))

"""PyTorch -> Core ML ML Program (coremltools), weight compression via coremltools.optimize.

I/O convention: ``io="tensor"`` (default) takes an MLMultiArray float32 (1,3,H,W) NCHW in
[0,1] and returns the same; NCHW is Core ML's native tensor layout for conv, so no
transposes are inserted. ``io="image"`` takes an RGB CVPixelBuffer (uint8 0..255, scaled by
1/255 inside the model), convenient for camera frames; the output stays a float32 tensor.

* fp32 / fp16: ``ct.convert(torch.jit.trace(...), convert_to="mlprogram",
  compute_precision=...)``; fp16 keeps float32 I/O (Core ML casts at the boundary).
* w8: fp16 program with int8 linear-symmetric per-channel weights
  (``linear_quantize_weights``).
* w6-palette / w4-palette: fp16 program with 6/4-bit look-up-table weights
  (``palettize_weights``, k-means per tensor).

Prediction needs macOS; on Linux the exported program is still checked (ops, I/O shapes and
dtypes, that compression really happened). Determinism: model.mlmodel and weight.bin are
byte-identical across runs; coremltools writes random UUIDs into Manifest.json, which
:func:`normalize_manifest` replaces with name-derived ones, so the whole package is stable.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

from mobile_pipeline.exporters.recipes import CoremlRecipe
from mobile_pipeline.exporters.report import TensorSpec

INPUT_NAME = "input"
OUTPUT_NAME = "output"
_COMPRESSION_OPS = {
    "w8": ("constexpr_affine_dequantize", "constexpr_blockwise_shift_scale"),
    "w6-palette": ("constexpr_lut_to_dense",),
    "w4-palette": ("constexpr_lut_to_dense",),
}


def io_specs(input_hw: tuple[int, int], recipe: CoremlRecipe) -> tuple[TensorSpec, TensorSpec]:
    shape = [1, 3, int(input_hw[0]), int(input_hw[1])]
    if recipe.io == "image":
        inp = TensorSpec(name=INPUT_NAME, shape=shape, layout="NCHW", dtype="uint8", value_range=(0.0, 255.0),
                         scale=1.0 / 255.0, zero_point=0)
    else:
        inp = TensorSpec(name=INPUT_NAME, shape=shape, layout="NCHW", dtype="float32")
    return inp, TensorSpec(name=OUTPUT_NAME, shape=shape, layout="NCHW", dtype="float32")


def convert(model, input_hw: tuple[int, int], recipe: CoremlRecipe, base=None):
    """The ``MLModel`` for ``recipe`` (not yet saved).

    Args:
        model: the generator (eval mode).
        input_hw: fixed input side.
        recipe: validated Core ML recipe.
        base: optional fp16 ``MLModel`` of the same generator to compress (saves a
            conversion when several compressed variants are made).
    """
    import coremltools.optimize.coreml as cto

    from mobile_pipeline.exporters._quiet import quiet

    with quiet():
        if recipe.precision in ("fp32", "fp16") or base is None:
            mlmodel = convert_program(model, input_hw, recipe,
                                      precision="fp32" if recipe.precision == "fp32" else "fp16")
        else:
            mlmodel = base
        if recipe.precision == "w8":
            op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel",
                                             weight_threshold=recipe.weight_threshold)
            mlmodel = cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=op))
        elif recipe.precision in ("w6-palette", "w4-palette"):
            nbits = 6 if recipe.precision == "w6-palette" else 4
            op = cto.OpPalettizerConfig(mode=recipe.palette_mode, nbits=nbits, granularity="per_tensor",
                                        weight_threshold=recipe.weight_threshold)
            mlmodel = cto.palettize_weights(mlmodel, cto.OptimizationConfig(global_config=op))
    return mlmodel


def convert_program(model, input_hw: tuple[int, int], recipe: CoremlRecipe, precision: str = "fp32"):
    """Trace and convert to an ML Program at fp32 or fp16 compute precision.

    I/O dtypes are pinned to float32: from iOS 16 on, coremltools would otherwise make the
    I/O of an fp16 program fp16 too, and callers would have to handle half floats.
    """
    import coremltools as ct
    import numpy as np
    import torch

    sample = torch.rand(1, 3, *input_hw, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        traced = torch.jit.trace(model.eval(), sample)
    shape = (1, 3, int(input_hw[0]), int(input_hw[1]))
    if recipe.io == "image":
        inputs = [ct.ImageType(name=INPUT_NAME, shape=shape, scale=1.0 / 255.0, color_layout=ct.colorlayout.RGB)]
    else:
        inputs = [ct.TensorType(name=INPUT_NAME, shape=shape, dtype=np.float32)]
    return ct.convert(
        traced, inputs=inputs, outputs=[ct.TensorType(name=OUTPUT_NAME, dtype=np.float32)], convert_to="mlprogram",
        minimum_deployment_target=getattr(ct.target, recipe.minimum_deployment_target),
        compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16,
        skip_model_load=True,
    )


def save(mlmodel, path: Path) -> None:
    """Save the package to ``path`` (a folder) and make its manifest deterministic."""
    from mobile_pipeline.exporters._quiet import quiet

    if path.exists():
        shutil.rmtree(path)
    with quiet():
        mlmodel.save(str(path))
    normalize_manifest(path)


def normalize_manifest(package: Path) -> None:
    """Replace the random item UUIDs in ``Manifest.json`` by ones derived from each item's path."""
    manifest_path = package / "Manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    mapping = {old: str(uuid.uuid5(uuid.NAMESPACE_URL, "mobile-pipeline/" + entry["path"])).upper()
               for old, entry in manifest.get("itemInfoEntries", {}).items()}
    manifest["itemInfoEntries"] = {mapping[k]: v for k, v in manifest["itemInfoEntries"].items()}
    if manifest.get("rootModelIdentifier") in mapping:
        manifest["rootModelIdentifier"] = mapping[manifest["rootModelIdentifier"]]
    manifest_path.write_text(json.dumps(manifest, indent=4, sort_keys=True) + "\n", encoding="utf-8")


def inspect_program(package: Path) -> dict:
    """Ops, I/O and compute dtypes of a saved ML Program, readable on any OS.

    Returns a dict with ``ops`` (MIL op types in order), ``inputs``/``outputs``
    (name -> (shape, dtype)), ``compute_dtypes`` (dtypes of conv outputs) and
    ``spec_version``.
    """
    import coremltools as ct

    from mobile_pipeline.exporters._quiet import quiet

    with quiet():
        spec = ct.utils.load_spec(str(package))
    if not spec.HasField("mlProgram"):
        raise ValueError(f"{package} is not an ML Program (neural networks are not exported any more)")
    array_types = {v: k for k, v in ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.items()}
    mil_types = {v: k for k, v in ct.proto.MIL_pb2.DataType.items()}

    def describe(feature) -> tuple[list[int], str]:
        kind = feature.type.WhichOneof("Type")
        if kind == "multiArrayType":
            arr = feature.type.multiArrayType
            return [int(s) for s in arr.shape], array_types.get(arr.dataType, str(arr.dataType))
        if kind == "imageType":
            img = feature.type.imageType
            return [1, 3, int(img.height), int(img.width)], "IMAGE"
        return [], kind or "?"

    ops: list[str] = []
    compute_dtypes: set[str] = set()

    def walk(block) -> None:
        for op in block.operations:
            ops.append(op.type)
            if op.type == "conv" and op.outputs:
                compute_dtypes.add(mil_types.get(op.outputs[0].type.tensorType.dataType, "?"))
            for inner in op.blocks:
                walk(inner)

    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            walk(block)
    return {
        "ops": ops,
        "inputs": {f.name: describe(f) for f in spec.description.input},
        "outputs": {f.name: describe(f) for f in spec.description.output},
        "compute_dtypes": sorted(compute_dtypes),
        "spec_version": int(spec.specificationVersion),
    }


def check_program(package: Path, precision: str, input_hw: tuple[int, int], recipe: CoremlRecipe) -> list[str]:
    """Problems found in the saved program (empty when it is what the recipe asked for)."""
    info = inspect_program(package)
    problems: list[str] = []
    expected = [1, 3, int(input_hw[0]), int(input_hw[1])]
    for kind, name in (("input", INPUT_NAME), ("output", OUTPUT_NAME)):
        table = info[kind + "s"]
        if name not in table:
            problems.append(f"{kind} {name!r} missing (has {sorted(table)})")
            continue
        shape, dtype = table[name]
        if shape != expected:
            problems.append(f"{kind} {name!r} shape {shape} != {expected}")
        want = "IMAGE" if (kind == "input" and recipe.io == "image") else "FLOAT32"
        if dtype != want:
            problems.append(f"{kind} {name!r} dtype {dtype} != {want}")
    want_compute = "FLOAT32" if precision == "fp32" else "FLOAT16"
    if info["compute_dtypes"] and info["compute_dtypes"] != [want_compute]:
        problems.append(f"conv compute dtypes {info['compute_dtypes']} != [{want_compute}]")
    if not info["compute_dtypes"]:
        problems.append("program has no conv op: not a stylizer generator")
    markers = _COMPRESSION_OPS.get(precision)
    if markers and not any(op in markers for op in info["ops"]):
        problems.append(f"{precision}: no compressed weights found (expected one of {list(markers)} ops)")
    return problems

"""Formats table, spelling resolution and recipe validation (no conversions: fast)."""

from __future__ import annotations

import pytest

from mobile_pipeline.exporters.formats import FORMATS, FormatError, artifact_name, resolve_format, resolve_precision
from mobile_pipeline.exporters.recipes import (
    CoremlRecipe,
    OnnxRecipe,
    RecipeError,
    TfliteRecipe,
    load_recipe,
    make_recipe,
    recipe_from_dict,
)


@pytest.mark.parametrize("spelling,name", [
    ("onnx", "onnx"), ("TFL", "tflite"), ("litert", "tflite"), (".tflite", "tflite"),
    ("mlpackage", "coreml"), ("coreml", "coreml"), ("mlmodel", "coreml"),
])
def test_format_aliases(spelling, name):
    assert resolve_format(spelling).name == name


def test_unknown_format_suggests_closest():
    with pytest.raises(FormatError, match="did you mean 'tflite'") as err:
        resolve_format("tflight")
    assert "valid formats: onnx, tflite, coreml" in str(err.value)
    with pytest.raises(FormatError, match="did you mean 'coreml'"):
        resolve_format("corml")


@pytest.mark.parametrize("fmt,given,canonical", [
    ("tflite", "int8", "int8-full"), ("tflite", "dynamic", "int8-dynamic"), ("onnx", "int8", "int8"),
    ("onnx", "qdq", "int8"), ("coreml", "int8", "w8"), ("coreml", "w4", "w4-palette"),
    ("coreml", "W6_PALETTE", "w6-palette"), ("onnx", None, "fp32"), ("tflite", "half", "fp16"),
])
def test_precision_aliases(fmt, given, canonical):
    assert resolve_precision(fmt, given) == canonical


def test_unsupported_precision_names_supported_ones():
    with pytest.raises(FormatError) as err:
        resolve_precision("onnx", "w8")
    assert "not supported for onnx" in str(err.value) and "fp32, fp16, int8" in str(err.value)
    with pytest.raises(FormatError, match="did you mean 'int8-full'"):
        resolve_precision("tflite", "int8-ful")


def test_table_is_consistent_with_tier_vocabulary():
    from mobile_pipeline.tiers.table import load_tier_table

    for tier in load_tier_table().values():
        for variant in tier.variants:
            assert variant.precision in FORMATS[variant.format].precisions
    assert artifact_name("npu", "tfl", "int8-full") == "npu_int8-full.tflite"
    assert FORMATS["coreml"].is_dir and FORMATS["tflite"].layout == "NHWC"


def test_recipe_defaults_and_overrides():
    recipe = make_recipe("tfl", "int8", {"int8_io": False})
    assert isinstance(recipe, TfliteRecipe) and recipe.precision == "int8-full" and not recipe.int8_io
    assert isinstance(make_recipe("onnx", "int8"), OnnxRecipe) and make_recipe("onnx", "int8").per_channel
    assert isinstance(make_recipe("mlpackage", "w6"), CoremlRecipe)


def test_recipe_unknown_key_rejected():
    with pytest.raises(RecipeError, match="per_chanel: unknown key"):
        make_recipe("onnx", "int8", {"per_chanel": False})
    with pytest.raises(RecipeError, match="opset"):
        make_recipe("onnx", "fp32", {"opset": 3})
    with pytest.raises(RecipeError, match="precision is 'fp16' but 'int8' was requested"):
        make_recipe("onnx", "int8", {"precision": "fp16"})
    with pytest.raises(RecipeError, match="'format' key"):
        recipe_from_dict({"precision": "fp16"})


def test_recipe_from_yaml(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("format: coreml\nprecision: w4\npalette_mode: uniform\n")
    recipe = load_recipe(path)
    assert recipe.precision == "w4-palette" and recipe.palette_mode == "uniform"
    path.write_text("format: coreml\nprecision: w4\npalete_mode: uniform\n")
    with pytest.raises(RecipeError, match=r"recipe.yaml.*\n.*palete_mode: unknown key"):
        load_recipe(path)
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "missing.yaml")

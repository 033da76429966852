"""The QNN HTP compile step: tiny models compiled for a Hexagon arch in about a second.

Tests that need the compiler are skipped where onnxruntime-qnn has no wheel; the ones that
check the skip itself, the recipes and the probe data run everywhere.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mobile_pipeline.exporters import qnn
from mobile_pipeline.exporters.recipes import RecipeError, make_recipe
from mobile_pipeline.exporters.report import ArtifactReport, load_report, report_path_for

UNAVAILABLE = qnn.qnn_unavailable_reason()
needs_qnn = pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or "")
SIDE = 32


def _tiny_qdq(tmp_path, precision: str = "int8"):
    """A conv-relu-resize-conv-sigmoid net built with onnx.helper and quantized the exporter's way
    (no torch export: a second), NCHW float I/O named like the exporter's."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from mobile_pipeline.exporters import torch2onnx

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) / 5).astype(np.float32), "w1"),
             numpy_helper.from_array((rng.standard_normal(8) / 10).astype(np.float32), "b1"),
             numpy_helper.from_array((rng.standard_normal((3, 8, 3, 3)) / 8).astype(np.float32), "w2"),
             numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Resize", ["r1", "", "scales"], ["u1"], mode="nearest"),
             helper.make_node("Conv", ["u1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["c2"], ["output"])]
    shape = [1, 3, SIDE, SIDE]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    calibration = rng.random((2, 3, SIDE, SIDE), dtype=np.float32)
    data = torch2onnx.convert(model.SerializeToString(), make_recipe("onnx", precision), calibration)
    path = tmp_path / f"tiny_{precision}.onnx"
    path.write_bytes(data)
    onnx.checker.check_model(str(path))
    return path


def _unsupported_model(path):
    """A float model whose Erf and Det nodes the QNN EP does not take."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", ["x"], ["r"], name="ok_relu"), helper.make_node("Erf", ["r"], ["e"], name="my_erf"),
             helper.make_node("Det", ["e"], ["y"], name="my_det")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


@needs_qnn
def test_tiny_qdq_compiles_fully_and_emulates_close_to_cpu(tmp_path):
    from mobile_pipeline.exporters.runtimes import OnnxRunner, load_runner

    source = _tiny_qdq(tmp_path)
    ctx = tmp_path / "tiny_ctx.onnx"
    outcome = qnn.compile_htp(source, "v75", ctx)
    assert outcome.ok, outcome.failure_text()
    assert outcome.nodes_total and outcome.nodes_on_htp == outcome.nodes_total and outcome.coverage == 1.0
    assert outcome.context_bytes and 0 < outcome.context_bytes < ctx.stat().st_size
    assert qnn.is_ep_context(ctx) and not qnn.is_ep_context(source)
    x = np.random.default_rng(0).random((2, 3, SIDE, SIDE), dtype=np.float32)
    emulated = qnn.HtpEmulatorRunner(ctx, "v75").run(x)
    cpu = OnnxRunner(source).run(x)
    assert emulated.shape == cpu.shape == x.shape
    assert 10 * np.log10(1 / np.mean((emulated - cpu) ** 2)) > 35  # same QDQ graph, HTP kernels
    # A CPU runtime cannot run a context binary: it says so instead of crashing.
    runner = load_runner(ctx)
    assert not runner.runnable and "Qualcomm NPU" in runner.reason


@needs_qnn
def test_unsupported_nodes_are_named(tmp_path):
    outcome = qnn.compile_htp(_unsupported_model(tmp_path / "bad.onnx"), "v73", tmp_path / "bad_ctx.onnx")
    assert not outcome.ok and not (tmp_path / "bad_ctx.onnx").exists()
    assert {(n.op_type, n.name) for n in outcome.unsupported} == {("Erf", "my_erf"), ("Det", "my_det")}
    assert (outcome.nodes_total, outcome.nodes_on_htp) == (3, 1)
    text = outcome.failure_text()
    assert "HTP v73 does not compile 2 of 3 node(s)" in text and "Erf 'my_erf'" in text and "Det 'my_det'" in text


@needs_qnn
def test_uncompilable_variant_is_rejected_for_that_arch(tmp_path):
    from mobile_pipeline.exporters.qnn_export import context_name, precompile_one

    bad = _unsupported_model(tmp_path / "npu_int8.onnx")
    tensor = {"name": "x", "shape": [1, 1, 4, 4], "layout": "NCHW", "dtype": "float32"}
    source = ArtifactReport(artifact=bad.name, format="onnx", precision="int8", tier="npu", sha256="0" * 64, bytes=1,
                            input=tensor, output=tensor, runtime="onnxruntime", parity={"gate_db": 30, "runnable": True,
                            "passed": True}, op_check={"passed": True}, passed=True)
    x = np.zeros((1, 1, 4, 4), np.float32)
    report = precompile_one(bad, source, "v75", ["SM8650"], x, x, x, tmp_path, qnn.qnn_versions())
    name = context_name(bad.name, "v75")
    assert name == "npu_int8_htp-v75_ctx.onnx"
    assert not report.passed and not (tmp_path / name).exists()
    assert load_report(report_path_for(tmp_path / "rejected" / name)) == report
    assert "Erf 'my_erf'" in report.reasons[0] and report.qnn.unsupported_nodes and not report.qnn.compiled


def test_qnn_steps_skip_with_one_line_when_the_wheel_is_missing(tmp_path, monkeypatch):
    from mobile_pipeline.exporters import qnn_export

    line = "QNN steps skipped: onnxruntime-qnn is not installed (test)"
    monkeypatch.setattr(qnn, "_state", {"error": line})
    tensor = {"name": "input", "shape": [1, 3, SIDE, SIDE], "layout": "NCHW", "dtype": "float32"}
    source = ArtifactReport(artifact="npu_int8.onnx", format="onnx", precision="int8", tier="npu", sha256="0" * 64,
                            bytes=1, input=tensor, output=tensor, runtime="onnxruntime",
                            parity={"gate_db": 30, "runnable": True, "passed": True}, op_check={"passed": True}, passed=True)
    made = qnn_export.precompile_tier(None, "npu", tmp_path, [source], validation=None, input_hw=(SIDE, SIDE),
                                      progress=False)
    assert made == []
    summary = json.loads((tmp_path / qnn_export.SUMMARY_FILE).read_text())
    assert summary["status"] == "skipped" and summary["line"] == line
    assert qnn.qnn_unavailable_reason() == line


def test_tiers_without_qnn_work_say_why(tmp_path):
    from mobile_pipeline.exporters.qnn_export import precompile_tier, qnn_plan

    assert "vendor_delegates" in qnn_plan("gpu").reason and "vendor_delegates" in qnn_plan("cpu").reason
    plan = qnn_plan("npu")
    assert plan.reason is None and plan.precisions == ("int8",) and "SM8650" in plan.socs["v75"]
    assert precompile_tier(None, "gpu", tmp_path, [], validation=None, input_hw=(SIDE, SIDE), progress=False) == []
    assert json.loads((tmp_path / "qnn_summary.json").read_text())["status"] == "none"


def test_w8a16_recipe_defaults_and_checks():
    recipe = make_recipe("onnx", "w8a16")
    assert (recipe.activation_type, recipe.weight_type) == ("uint16", "uint8")
    assert make_recipe("onnx", "a16w8").precision == "w8a16"
    assert (make_recipe("onnx", "int8").activation_type, make_recipe("onnx", "int8").weight_type) == ("uint8", "int8")
    with pytest.raises(RecipeError, match="activation_type 'uint8' does not fit precision 'w8a16'"):
        make_recipe("onnx", "w8a16", {"activation_type": "uint8"})
    with pytest.raises(RecipeError, match="activation_type 'int16' does not fit precision 'int8'"):
        make_recipe("onnx", "int8", {"activation_type": "int16"})


@needs_qnn
def test_w8a16_variant_passes_the_int8_only_gate_and_compiles(tmp_path):
    import onnx

    from mobile_pipeline.exporters import api
    from mobile_pipeline.exporters.photos import bundled_photos, split_photos
    from mobile_pipeline.nets.generator import build_generator, trained_like

    cal, val = split_photos(bundled_photos(), 2, 2)
    report = api.export_variant(trained_like(build_generator("stylizer-tiny")), "onnx", "w8a16", tmp_path,
                                input_hw=(SIDE, SIDE), tier="dsp", calibration=cal, validation=val, stem="tiny")
    assert report.passed, report.reasons
    assert report.recipe["activation_type"] == "uint16" and not report.op_check.float_ops
    model = onnx.load(str(tmp_path / report.artifact))
    zero_points = {i.name: i.data_type for i in model.graph.initializer}
    q_types = {zero_points[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2}
    assert onnx.TensorProto.UINT16 in q_types  # 16-bit activations
    outcome = qnn.compile_htp(tmp_path / report.artifact, "v73", tmp_path / "w8a16_ctx.onnx")
    assert outcome.ok, outcome.failure_text()

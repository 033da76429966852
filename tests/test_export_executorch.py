"""ExecuTorch: a small generator exports to .pte, passes parity through executorch.runtime,
is benchmarked and stylizes like the other formats; the Core ML-delegated .pte is checked
(not run) and marked unverified.

One small searched-style architecture (an FS block, STA fusion, nearest upsampling: the ops
the demo's generators use) at 32 px keeps the three lowerings to a few seconds each.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mobile_pipeline.exporters import api
from mobile_pipeline.exporters.formats import resolve_format, resolve_precision
from mobile_pipeline.exporters.photos import bundled_photos, prepare_photos, split_photos
from mobile_pipeline.exporters.recipes import RecipeError, make_recipe
from mobile_pipeline.exporters.report import load_report, report_path_for
from mobile_pipeline.exporters.runtimes import ExecutorchRunner, RunnerError, load_runner
from mobile_pipeline.exporters.validate import REJECTED_DIR, artifact_digest, check_parity
from mobile_pipeline.quality.image import psnr as psnr_db

SIDE = 32
ARCH = "s8_e16-16_b1xfs_br-dw3_f-sta.add_u-nearest_a-relu"


@pytest.fixture(scope="module")
def generator():
    from mobile_pipeline.nets.generator import build_generator, trained_like

    torch.set_num_threads(1)
    return trained_like(build_generator(ARCH), seed=0).eval()


@pytest.fixture(scope="module")
def photos():
    return split_photos(bundled_photos(), 3, 2)


@pytest.fixture(scope="module")
def exported(generator, photos, tmp_path_factory):
    """fp32 + int8 on XNNPACK for the cpu tier, fp16 on Core ML for the npu tier."""
    out = tmp_path_factory.mktemp("pte")
    cal, val = photos
    reports = {}
    for precision, tier in (("fp32", "cpu"), ("int8", "cpu"), ("fp16", "npu")):
        reports[precision] = api.export_variant(generator, "executorch", precision, out, input_hw=(SIDE, SIDE),
                                                tier=tier, calibration=cal, validation=val, stem=tier)
    return out, reports


def _reference(generator, photos):
    batch = prepare_photos(photos[1], (SIDE, SIDE))
    with torch.no_grad():
        return batch, generator(torch.from_numpy(batch)).numpy()


def test_spellings_resolve():
    assert resolve_format("pte").name == resolve_format("ExecuTorch").name == "executorch"
    assert resolve_precision("executorch", "pt2e") == "int8"
    assert make_recipe("executorch", "fp16").delegate == "coreml"
    assert make_recipe("executorch", "int8").delegate == "xnnpack"


@pytest.mark.parametrize("precision, overrides, words", [
    ("fp16", {"delegate": "xnnpack"}, "delegate: coreml"),
    ("int8", {"delegate": "coreml"}, "w8"),
    ("fp32", {"delegat": "xnnpack"}, "delegat"),
])
def test_bad_recipes_are_refused_with_the_field(precision, overrides, words):
    with pytest.raises(RecipeError, match=words):
        make_recipe("executorch", precision, overrides)


def test_fp32_pte_passes_parity_through_the_executorch_runtime(exported, generator, photos):
    out, reports = exported
    report = reports["fp32"]
    assert report.passed, report.reasons
    artifact = out / report.artifact
    assert artifact.name == "cpu_fp32.pte" and load_report(report_path_for(artifact)) == report
    assert (report.sha256, report.bytes) == artifact_digest(artifact)
    assert report.runtime == "executorch" and report.delegate_hint == "xnnpack" and report.tier == "cpu"
    assert report.verified and report.verified_reason is None
    assert report.parity.runnable and report.parity.images == 2 and report.parity.psnr_db >= 60
    assert "delegate:XnnpackBackend" in report.op_check.ops
    # Independently of the gate: executorch.runtime itself, the file as written.
    from executorch.runtime import Runtime

    batch, reference = _reference(generator, photos)
    method = Runtime.get().load_program(artifact).load_method("forward")
    direct = method.execute([torch.from_numpy(batch[:1])])[0].numpy()
    assert direct.shape == (1, 3, SIDE, SIDE)
    assert psnr_db(direct, reference[:1]) >= 60
    runner = load_runner(artifact)
    assert isinstance(runner, ExecutorchRunner) and runner.runnable and runner.input_hw == (SIDE, SIDE)
    assert psnr_db(runner.run(batch), reference) == pytest.approx(report.parity.psnr_db, abs=0.01)
    with pytest.raises(RunnerError, match="--tile"):
        runner.run(np.zeros((1, 3, SIDE * 2, SIDE), np.float32))


def test_int8_pte_is_quantized_and_within_its_gate(exported, generator, photos):
    out, reports = exported
    fp32, int8 = reports["fp32"], reports["int8"]
    assert int8.passed, int8.reasons
    assert 30 <= int8.parity.psnr_db < fp32.parity.psnr_db - 10  # really quantized, still above the gate
    assert int8.bytes < fp32.bytes  # int8 weights (the tiny net is mostly program overhead)
    assert int8.recipe["per_channel"] is True and int8.delegate_hint == "xnnpack"


def test_coreml_pte_is_checked_not_run_and_marked_unverified(exported):
    out, reports = exported
    report = reports["fp16"]
    assert report.passed, report.reasons
    assert report.delegate_hint == "coreml" and report.tier == "npu"
    assert not report.parity.runnable and report.parity.psnr_db is None
    assert report.verified is False and "Core ML" in report.verified_reason
    # The ML Program inside the delegate was read: MIL ops, the whole graph in Core ML.
    assert {"delegate:CoreMLBackend", "conv"} <= set(report.op_check.ops)
    assert not any(op.startswith("aten::") for op in report.op_check.ops)
    runner = load_runner(out / report.artifact)
    assert not runner.runnable and "Core ML" in runner.reason


def test_program_check_catches_a_wrong_delegate(exported):
    from mobile_pipeline.exporters.torch2executorch import check_program

    out, reports = exported
    as_coreml = make_recipe("executorch", "fp16")
    problems = check_program(out / reports["fp32"].artifact, as_coreml, (SIDE, SIDE))
    assert any("no CoreMLBackend delegate" in p for p in problems)
    assert any("outside the Core ML delegate" in p for p in problems)
    problems = check_program(out / reports["fp32"].artifact, make_recipe("executorch", "fp32"), (SIDE * 2, SIDE))
    assert any("input [1, 3, 32, 32]" in p for p in problems)


def test_corrupt_pte_fails_its_gate(exported, generator, photos, tmp_path):
    out, reports = exported
    batch, reference = _reference(generator, photos)
    broken = tmp_path / "broken.pte"
    data = bytearray((out / reports["fp32"].artifact).read_bytes())
    broken.write_bytes(bytes(data[: len(data) // 2]))
    parity = check_parity(broken, "fp32", batch, reference)
    assert not parity.passed and "failed to load" in parity.not_runnable_reason
    assert not (tmp_path / REJECTED_DIR).exists()


def test_bench_times_the_pte_and_skips_coreml(exported):
    from mobile_pipeline.bench.run import bench_one
    from mobile_pipeline.bench.runners import artifact_format, runtimes_for
    from mobile_pipeline.config import BenchConfig

    out, reports = exported
    cfg = BenchConfig(warmup=1, runs=3, threads=(1,))
    [runtime] = runtimes_for(artifact_format(out / reports["fp32"].artifact), (1,))
    record, outputs = bench_one(out / reports["fp32"].artifact, runtime, cfg)
    assert record["status"] == "ok" and record["runtime"] == "executorch" and record["p50_ms"] > 0
    assert outputs["sample"].shape == (1, 3, SIDE, SIDE)
    record, _ = bench_one(out / reports["fp16"].artifact, runtime, cfg)
    assert record["status"] == "skipped" and "Core ML" in record["reason"]


def test_stylize_uses_a_pte(exported, generator, tmp_path):
    import cv2

    from mobile_pipeline.exporters.stylize import StylizeError, stylize_path

    out, reports = exported
    rng = np.random.default_rng(0)
    photo = (rng.random((48, 40, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "photo.png"), photo)
    result = stylize_path(tmp_path / "photo.png", out / reports["fp32"].artifact, tmp_path / "styled.png",
                          progress=False)
    styled = cv2.imread(str(result.outputs[0]))
    assert styled.shape == photo.shape and result.frames == 1
    with pytest.raises(StylizeError, match="Core ML"):
        stylize_path(tmp_path / "photo.png", out / reports["fp16"].artifact, tmp_path / "x.png", progress=False)

"""The flicker measure: exact compensation, ranks noisy above clean, sees shift variance and smoothing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mobile_pipeline.quality.flicker import (
    ClipSpec,
    ReferenceCache,
    bundled_clips,
    clip_flicker,
    flicker_score,
    format_table,
    model_flicker,
    pan_clip,
)

SPEC = ClipSpec(frames=4)


@pytest.fixture(scope="module")
def photo():
    import skimage.data

    return skimage.data.astronaut()


def test_pan_moves_content_by_the_velocity(photo):
    noisy, clean = pan_clip(photo, (48, 64), ClipSpec(frames=3, velocity=(2.0, 1.0), noise_sigma=2.0))
    assert noisy.shape == clean.shape == (3, 48, 64, 3) and noisy.dtype == np.uint8
    # Frame t+1 at p is frame t at p + (dx, dy): exact for whole pixels.
    np.testing.assert_array_equal(clean[1][:-1, :-2], clean[0][1:, 2:])
    noise = noisy.astype(float) - clean
    assert 1.5 < noise.std() < 2.5  # fresh sigma-2 noise (rounded, clipped)
    assert not np.array_equal(noise[0], noise[1])


def test_noisy_clip_flickers_more_than_clean(photo):
    noisy, clean = pan_clip(photo, (64, 64), SPEC)
    still = flicker_score(clean, SPEC)
    shaky = flicker_score(noisy, SPEC)
    assert still.mad == 0.0 and still.flips_pct == 0.0  # exact compensation: the measure's floor is 0
    # Two independent sigma-2 noises: E|n1 - n2| = 2 * sqrt(2) * sqrt(2 / pi) = 2.26 grey levels.
    assert 1.9 < shaky.mad < 2.6
    assert shaky.pairs == SPEC.frames - 1


def test_measure_sees_shift_variance_and_smoothing(photo):
    clips = bundled_clips(64, SPEC, photos=[photo])

    def stride2(frame):  # a crude stride-2 model: what moves by one pixel changes its output
        small = frame[::2, ::2]
        return cv2.resize(small, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_NEAREST)

    def smooth(frame):  # shift-equivariant and averages the noise away
        return cv2.GaussianBlur(frame, (0, 0), 1.5)

    identity = clip_flicker(lambda f: f, clips)
    assert clip_flicker(stride2, clips, clean=True).mad > 1.0  # flickers on a noise-free clip
    assert clip_flicker(smooth, clips).mad < 0.5 * identity.mad
    # A whole-pixel pan moves content exactly, so any shift-equivariant filter is 0 on clean clips.
    assert clip_flicker(smooth, clips, clean=True).mad < 1e-3


def test_rows_compare_with_input_and_teacher(photo):
    cache = ReferenceCache(SPEC, photos=[photo])
    row = model_flicker("blur", lambda f: cv2.GaussianBlur(f, (0, 0), 1.0), (64, 64), cache, tier="cpu")
    assert row.refs.input.mad > row.score.mad and row.steadier_than_input
    assert row.refs.teacher.mad > 0 and row.refs.input_clean.mad == 0.0
    assert row.vs_input == pytest.approx(row.score.mad / row.refs.input.mad)
    assert cache.get((64, 64))[1] is row.refs  # references are made once per size
    table = format_table([row], markdown=True)
    assert table.splitlines()[2].startswith("| cpu | blur | 64x64 |")


def test_bad_inputs_are_refused(photo):
    with pytest.raises(ValueError, match="at least 2 frames"):
        ClipSpec(frames=1)
    with pytest.raises(ValueError, match="margin"):
        ClipSpec(velocity=(0.5, 0.0), margin=3)
    with pytest.raises(ValueError, match="T x H x W x 3"):
        flicker_score(np.zeros((1, 32, 32, 3)))
    clips = bundled_clips(32, SPEC, photos=[photo])
    with pytest.raises(ValueError, match="keep the size"):
        clip_flicker(lambda f: f[:16], clips)


def _tiny_onnx_release(root):
    """root/cpu/: a hand-made 32 px ONNX model (a 1x1 colour conv) and its passed report.json."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from mobile_pipeline.exporters.report import ArtifactReport, OpCheck, ParityResult, TensorSpec
    from mobile_pipeline.utils.atomic import sha256_file

    weight = numpy_helper.from_array((np.eye(3, dtype=np.float32) * 0.8)[:, :, None, None], "w")
    graph = helper.make_graph([helper.make_node("Conv", ["image", "w"], ["out"])], "g",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 32, 32])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (root / "cpu").mkdir(parents=True)
    path = root / "cpu" / "cpu_fp32.onnx"
    onnx.save(model, str(path))
    spec = TensorSpec(name="image", shape=[1, 3, 32, 32], layout="NCHW", dtype="float32")
    report = ArtifactReport(artifact=path.name, format="onnx", precision="fp32", tier="cpu", sha256=sha256_file(path),
                            bytes=path.stat().st_size, input=spec, output=spec.model_copy(update={"name": "out"}),
                            runtime="onnxruntime", parity=ParityResult(runnable=True, gate_db=30.0, passed=True),
                            op_check=OpCheck(passed=True), passed=True)
    (root / "cpu" / "cpu_fp32.onnx.report.json").write_text(report.model_dump_json())


def test_release_flicker_and_report_section(tmp_path):
    """A release folder with a passed artifact: the report section and the bench text."""
    from mobile_pipeline.quality.flicker import release_report
    from mobile_pipeline.report import flicker_section

    _tiny_onnx_release(tmp_path)
    section = flicker_section(tmp_path, ["cpu", "gpu"])  # gpu has no folder: nothing to measure there
    assert "<h2>Flicker on video</h2>" in section["html"] and "<td>onnx fp32</td>" in section["html"]
    assert "| cpu | onnx fp32 | 32x32 |" in section["md"]
    # A per-pixel colour map passes the noise through (x0.8): steadier than the input, by that factor.
    text = release_report(tmp_path)
    assert "onnx fp32" in text and "flicker-v1" in text and "every model is steadier than its input" in text

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

"""The default cartoon teacher: deterministic, flat colours, dark lines at edges."""

from __future__ import annotations

import numpy as np
import pytest

from mobile_pipeline.data.teachers import CartoonParams, cartoon_filter, quantize_levels


def _two_regions(seed: int = 0) -> np.ndarray:
    """Left half orange, right half blue, with sensor-like noise."""
    rng = np.random.default_rng(seed)
    image = np.zeros((64, 96, 3), np.float32)
    image[:, :48] = (220, 120, 40)
    image[:, 48:] = (40, 80, 200)
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def test_shape_dtype_and_byte_determinism() -> None:
    photo = _two_regions()
    first = cartoon_filter(photo)
    second = cartoon_filter(photo.copy())
    assert first.dtype == np.uint8 and first.shape == photo.shape
    assert first.tobytes() == second.tobytes()


def test_regions_become_flat_and_keep_their_colour() -> None:
    photo = _two_regions()
    out = cartoon_filter(photo).astype(np.float32)
    inner_left, inner_right = out[8:56, 8:36], out[8:56, 60:88]
    assert inner_left.std(axis=(0, 1)).max() < photo[8:56, 8:36].std(axis=(0, 1)).min() / 3
    assert inner_left.mean(axis=(0, 1))[0] > inner_left.mean(axis=(0, 1))[2]  # still orange
    assert inner_right.mean(axis=(0, 1))[2] > inner_right.mean(axis=(0, 1))[0]  # still blue


def test_dark_line_on_the_boundary() -> None:
    out = cartoon_filter(_two_regions()).astype(np.float32).mean(axis=2)
    boundary = out[8:56, 46:50].min(axis=1)  # darkest pixel across the edge, per row
    assert (boundary < 0.5 * out[8:56, 60:88].mean()).mean() > 0.9


def test_no_lines_when_darkness_is_zero() -> None:
    photo = _two_regions()
    plain = cartoon_filter(photo, CartoonParams(line_darkness=0.0))
    assert plain.astype(float).mean(axis=2)[8:56, 46:50].min() > 40


def test_tone_quantisation_gives_few_levels_at_cluster_means() -> None:
    channel = np.concatenate([np.full(100, 20), np.full(100, 22), np.full(50, 200), np.arange(0, 256)]).astype(np.uint8)
    flat = quantize_levels(channel, levels=4, iters=50)
    assert flat.dtype == np.uint8 and flat.shape == channel.shape
    assert len(np.unique(flat)) <= 4
    assert abs(int(flat[0]) - int(flat[100])) <= 1  # 20 and 22 share a band
    for level in np.unique(flat):  # converged k-means: each level is the mean of its members
        assert abs(channel[flat == level].mean() - level) <= 1.0


def test_hues_survive() -> None:
    """A small green patch inside a large beige area stays green (full k-means lost it)."""
    image = np.full((64, 64, 3), (200, 170, 130), np.uint8)
    image[24:40, 24:40] = (90, 160, 60)
    out = cartoon_filter(image)
    r, g, b = out[30:34, 30:34].reshape(-1, 3).mean(axis=0)
    assert g > r + 30 and g > b + 30


def test_rejects_non_rgb_input() -> None:
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        cartoon_filter(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        cartoon_filter(np.zeros((8, 8, 3), np.float32))

"""Whole-image split, keyframe region split, and the deterministic patch sampler."""

from __future__ import annotations

import numpy as np
import pytest

from mobile_pipeline.data.sampler import PatchSampler
from mobile_pipeline.data.split import SplitError, region_split, split_ids

IDS = [f"img{i:02d}" for i in range(20)]


def test_split_is_disjoint_complete_and_seeded() -> None:
    split = split_ids(IDS, val_fraction=0.25, min_val_images=1, seed=0)
    val = {i for i, s in split.items() if s == "val"}
    train = {i for i, s in split.items() if s == "train"}
    assert val.isdisjoint(train) and val | train == set(IDS)
    assert len(val) == 5
    assert split == split_ids(list(reversed(IDS)), 0.25, 1, seed=0)  # order-independent
    assert split != split_ids(IDS, 0.25, 1, seed=1)


def test_split_minimums() -> None:
    split = split_ids(["a", "b", "c"], val_fraction=0.1, min_val_images=2, seed=0)
    assert sorted(split.values()) == ["train", "val", "val"]
    split = split_ids(["a", "b"], val_fraction=0.9, min_val_images=1, seed=0)
    assert sorted(split.values()) == ["train", "val"]  # never leaves train empty


def test_split_too_few_images_is_a_clear_error() -> None:
    with pytest.raises(SplitError, match=r"only 1 valid photos; need at least 2"):
        split_ids(["a"], 0.25, 1, seed=0)
    with pytest.raises(SplitError, match="min_val_images=3"):
        split_ids(["a", "b", "c"], 0.25, 3, seed=0)


def test_adding_an_image_moves_few_others() -> None:
    before = split_ids(IDS, 0.25, 1, seed=0)
    after = split_ids(IDS + ["img99"], 0.25, 1, seed=0)
    moved = [i for i in IDS if before[i] != after[i]]
    assert len(moved) <= 2


@pytest.mark.parametrize(("height", "width"), [(60, 100), (100, 60)])
def test_region_split_is_disjoint_and_covers(height: int, width: int) -> None:
    train, val = region_split(height, width, val_fraction=0.25, min_side=16)
    mask = np.zeros((height, width), np.int32)
    for x0, y0, x1, y1 in (train, val):
        mask[y0:y1, x0:x1] += 1
    assert (mask == 1).all()
    longer = max(height, width)
    val_len = (val[2] - val[0]) if width >= height else (val[3] - val[1])
    assert val_len == 25 and longer - val_len == 75


def test_region_split_too_small() -> None:
    with pytest.raises(SplitError, match="too small"):
        region_split(40, 40, val_fraction=0.25, min_side=32)


def _gradient_pair(height: int = 40, width: int = 50) -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(0, 255, width).astype(np.uint8)
    photo = np.repeat(np.repeat(x[None, :, None], height, 0), 3, 2).copy()
    photo[..., 1] = np.linspace(0, 255, height).astype(np.uint8)[:, None]
    return photo, 255 - photo


def test_sampler_shapes_range_and_alignment() -> None:
    sampler = PatchSampler([_gradient_pair(), _gradient_pair(70, 30)], patch_size=24, seed=3)
    photos, targets = sampler.sample(16)
    assert photos.shape == targets.shape == (16, 3, 24, 24)
    assert photos.dtype == np.float32 and 0.0 <= photos.min() and photos.max() <= 1.0
    np.testing.assert_allclose(targets, 1.0 - photos, atol=1e-6)  # same crop and flip on both


def test_sampler_is_a_pure_function_of_seed_rank_step() -> None:
    pairs = [_gradient_pair()]
    a = PatchSampler(pairs, 16, seed=7)
    b = PatchSampler(pairs, 16, seed=7)
    seq_a = [a.sample(4)[0] for _ in range(3)]
    assert all(np.array_equal(x, b.batch_at(i, 4)[0]) for i, x in enumerate(seq_a))
    assert not np.array_equal(PatchSampler(pairs, 16, seed=8).sample(4)[0], seq_a[0])
    assert not np.array_equal(PatchSampler(pairs, 16, seed=7, rank=1).sample(4)[0], seq_a[0])


def test_sampler_resume_from_state_dict() -> None:
    pairs = [_gradient_pair()]
    run = PatchSampler(pairs, 16, seed=1)
    run.sample(8)
    run.sample(8)
    state = run.state_dict()
    expected = run.sample(8)
    resumed = PatchSampler(pairs, 16, seed=1)
    resumed.load_state_dict(state)
    assert state["step"] == 2
    assert all(np.array_equal(x, y) for x, y in zip(resumed.sample(8), expected))
    with pytest.raises(ValueError, match="seed"):
        PatchSampler(pairs, 16, seed=2).load_state_dict(state)


def test_flips() -> None:
    pairs = [_gradient_pair()]

    def direction(batch: np.ndarray) -> np.ndarray:  # +1: red grows left->right, -1: mirrored
        return np.sign(batch[:, 0, 0, -1] - batch[:, 0, 0, 0])

    no_flip, _ = PatchSampler(pairs, 16, seed=0, flips=False).sample(64)
    assert (direction(no_flip) > 0).all()
    flipped, _ = PatchSampler(pairs, 16, seed=0, flips=True).sample(64)
    assert 10 < (direction(flipped) < 0).sum() < 54
    vert, _ = PatchSampler(pairs, 16, seed=0, flips=False, vflips=True).sample(64)
    assert (direction(vert) > 0).all() and (np.sign(vert[:, 1, -1, 0] - vert[:, 1, 0, 0]) < 0).any()


def test_small_images_are_reflection_padded() -> None:
    photo, target = _gradient_pair(10, 12)
    photos, targets = PatchSampler([(photo, target)], patch_size=32, seed=0).sample(2)
    assert photos.shape == (2, 3, 32, 32)
    np.testing.assert_allclose(targets, 1.0 - photos, atol=1e-6)


def test_sampler_rejects_bad_pairs() -> None:
    photo, target = _gradient_pair()
    with pytest.raises(ValueError, match="at least one"):
        PatchSampler([], 16, seed=0)
    with pytest.raises(ValueError, match="differ in size"):
        PatchSampler([(photo, target[:-1])], 16, seed=0)
    with pytest.raises(ValueError, match="uint8"):
        PatchSampler([(photo.astype(np.float32), target)], 16, seed=0)

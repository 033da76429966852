"""Ranking measurement helpers and the distillation crop stream."""

from __future__ import annotations

import numpy as np
import pytest

from mobile_pipeline.nets.complexity import count_macs
from mobile_pipeline.search.ranking import kendall_tau, spread_architectures
from mobile_pipeline.search.space import TINY_CHOICES, largest_spec, smallest_spec


def test_kendall_tau_known_values() -> None:
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="equal-length"):
        kendall_tau([1.0], [1.0])


def test_spread_architectures_cover_the_mac_range() -> None:
    macs = lambda s: count_macs(s, (32, 32))  # noqa: E731
    picks = spread_architectures(TINY_CHOICES, 6, macs, seed=1, pool=60)
    assert len(picks) == 6 == len({p.to_string() for p in picks})
    values = [macs(p) for p in picks]
    assert values == sorted(values)
    # The sandwich extremes are in the sampled pool, so the picks span at least their range.
    assert values[0] <= macs(smallest_spec(TINY_CHOICES)) and values[-1] >= macs(largest_spec(TINY_CHOICES))
    only_resnet = spread_architectures(TINY_CHOICES, 3, macs, pool=30, allowed=lambda s: s.block == "resnet")
    assert all(p.block == "resnet" for p in only_resnet)


def test_unpaired_crops_are_reproducible_augmented_and_in_range() -> None:
    from mobile_pipeline.data.sampler import UnpairedSampler

    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, (80, 120, 3), dtype=np.uint8), rng.integers(0, 256, (60, 60, 3), dtype=np.uint8)]
    sampler = UnpairedSampler(photos, 32, seed=3)
    a, b = sampler.batch_at(7, 4), sampler.batch_at(7, 4)
    assert a.shape == (4, 3, 32, 32) and a.dtype == np.float32 and np.array_equal(a, b)
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert not np.array_equal(a, sampler.batch_at(8, 4))
    plain = UnpairedSampler(photos, 32, seed=3, min_scale=1.0, photometric=False).batch_at(7, 4)
    assert not np.allclose(plain, a)  # zoom and photometric changes do change the crops
    with pytest.raises(ValueError, match="min_scale"):
        UnpairedSampler(photos, 32, seed=0, min_scale=0.0)


def test_winner_is_the_largest_candidate_inside_the_score_band() -> None:
    from mobile_pipeline.search.driver import select_winner

    cands = [{"spec": "a", "psnr_db": 19.0, "macs": 100, "latency_ms": 3.0},
             {"spec": "b", "psnr_db": 18.8, "macs": 300, "latency_ms": 5.0},
             {"spec": "c", "psnr_db": 18.5, "macs": 900, "latency_ms": 9.0}]
    best, how = select_winner(cands, 0.3)
    assert best["spec"] == "b" and how["candidates_in_band"] == 2 and how["best_score_db"] == 19.0
    assert select_winner(cands, 0.0)[0]["spec"] == "a"
    assert select_winner(cands, 1.0)[0]["spec"] == "c"

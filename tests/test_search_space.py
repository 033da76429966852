"""Search space: NNI samples map to valid specs inside the grid; budgets and op constraints."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mobile_pipeline.nets.complexity import count_macs
from mobile_pipeline.nets.spec import ArchSpec, SpecError
from mobile_pipeline.nets.registry import get_spec, list_specs
from mobile_pipeline.search.budget import CandidateMetrics, budget_violations, forbidden_found, violation_ratio
from mobile_pipeline.search.latency import spec_ops
from mobile_pipeline.search.space import (SPACES, TINY_CHOICES, SpaceChoices, StylizerSpace, largest_spec, random_spec,
                                          sample_to_spec, smallest_spec, spec_to_sample)
from mobile_pipeline.tiers.table import load_tier_table


def test_nni_space_samples_are_valid_specs_inside_the_grid():
    space = StylizerSpace(SpaceChoices(), build=False)
    choices = SpaceChoices()
    for seed in range(25):
        sample = {}
        space.random(memo=sample, random_state=np.random.RandomState(seed))
        frozen = space.freeze(sample)
        spec = frozen.spec
        assert isinstance(spec, ArchSpec)
        spec.validate()
        assert spec == sample_to_spec(sample)
        assert len(spec.fusion) == len(spec.encoder_widths) == sample["num_stages"]
        back = spec_to_sample(spec, choices)  # inside the grid, so it maps back
        assert sample_to_spec(back) == spec


def test_frozen_space_builds_the_generator():
    space = StylizerSpace(TINY_CHOICES)
    sample = {}
    space.random(memo=sample, random_state=np.random.RandomState(3))
    frozen = space.freeze(sample)
    assert frozen.generator.spec == frozen.spec


def test_spec_outside_grid_is_rejected_with_field_name():
    spec = ArchSpec(stem_width=20, encoder_widths=(16, 24), fusion=("sta", "sta"))
    with pytest.raises(SpecError, match="stem_width"):
        spec_to_sample(spec, SpaceChoices())


def test_sandwich_extremes_bound_the_grid_in_macs():
    choices = SpaceChoices()
    rng = random.Random(0)
    big, small = count_macs(largest_spec(choices)), count_macs(smallest_spec(choices))
    for _ in range(10):
        macs = count_macs(random_spec(choices, rng))
        assert small <= macs
    assert big > 3 * small
    assert choices.size() > 10_000


def _op_trace_macs(spec, side: int) -> int:
    """The latency model's view: conv / transposed-conv MACs of the traced runtime ops."""
    from mobile_pipeline.search.latency import spec_ops

    return sum(op.macs for op in spec_ops(spec, (side, side)) if op.kind in ("conv", "deconv"))


@pytest.mark.parametrize("name", list_specs())
def test_mac_counters_agree_on_registered_specs(name):
    # count_macs is the one counter (search budgets, reports, tiers.yaml units); the op trace
    # that keys the latency LUT must see the same network.
    for side in (32, 64):
        assert _op_trace_macs(get_spec(name), side) == count_macs(name, (side, side)), (name, side)


@pytest.mark.parametrize("space,seed", [("tiny", 0), ("default", 1), ("wide", 2), ("wide", 3)])
def test_mac_counters_agree_on_search_specs(space, seed):
    spec = random_spec(SPACES[space], random.Random(seed))
    assert _op_trace_macs(spec, 64) == count_macs(spec, (64, 64))


def test_mac_counters_agree_on_every_upsample():
    base = dict(stem_width=8, encoder_widths=(16, 24), num_blocks=1, fusion=("add", "add"))
    for up in ("deconv", "bilinear", "nearest"):
        spec = ArchSpec(upsample=up, **base)
        assert _op_trace_macs(spec, 32) == count_macs(spec, (32, 32)), up


def _metrics(**overrides):
    values = dict(spec="x", input_hw=(256, 256), macs=1, params=1, peak_activation_bytes=1, latency_ms=0.1)
    values.update(overrides)
    return CandidateMetrics(**values)


def test_budget_filter_rejects_over_budget_and_names_the_budget():
    cpu = load_tier_table()["cpu"]
    assert budget_violations(_metrics(), cpu) == []
    over = budget_violations(_metrics(macs=cpu.budgets.macs + 1), cpu)
    assert len(over) == 1 and over[0].startswith("macs")
    slow = budget_violations(_metrics(latency_ms=cpu.budgets.latency_ms * 2), cpu)
    assert slow[0].startswith("latency_ms")
    assert violation_ratio(_metrics(latency_ms=cpu.budgets.latency_ms * 2), cpu) == pytest.approx(2.0)


def test_forbidden_ops_found_from_traced_ops():
    deconv = ArchSpec(stem_width=8, encoder_widths=(16, 24), num_blocks=1, fusion=("sta", "concat"), upsample="deconv")
    ops = spec_ops(deconv, (64, 64))
    found = forbidden_found(ops, {"tflite": ["TRANSPOSE_CONV", "GATHER"], "onnx": ["Loop"]})
    assert found == ["tflite:TRANSPOSE_CONV"]
    nearest = ArchSpec(stem_width=8, encoder_widths=(16, 24), num_blocks=1, fusion=("add", "add"))
    assert forbidden_found(spec_ops(nearest, (64, 64)), {"tflite": ["TRANSPOSE_CONV", "LOGISTIC"]}) == []
    assert "tflite:LOGISTIC" in forbidden_found(ops, {"tflite": ["LOGISTIC"]})  # STA's sigmoid gate


def test_every_tier_budget_binds_inside_the_default_grid():
    """The demo's grid reaches past every tier's MAC budget, so no two tiers are bounded by
    the grid's edge alone (three tiers got one architecture when it stopped at 0.43 GMACs)."""
    table = load_tier_table()
    big, small = largest_spec(SpaceChoices()), smallest_spec(SpaceChoices())
    for name, tier in table.items():
        side = (tier.resolution, tier.resolution)
        assert count_macs(big, side) > tier.budgets.macs, name
        assert count_macs(small, side) <= tier.budgets.macs, name


def test_every_tier_budget_binds_inside_the_wide_grid():
    """On the full preset's grid the tier budgets, not the grid's edge, decide a winner's size:
    the largest network exceeds every tier's MAC budget and the smallest meets it."""
    from mobile_pipeline.search.space import SPACES, WIDE_CHOICES

    assert SPACES["wide"] is WIDE_CHOICES
    table = load_tier_table()
    big, small = largest_spec(WIDE_CHOICES), smallest_spec(WIDE_CHOICES)
    for name, tier in table.items():
        side = (tier.resolution, tier.resolution)
        assert count_macs(big, side) > tier.budgets.macs, name
        assert count_macs(small, side) <= tier.budgets.macs, name
    assert WIDE_CHOICES.size() > SpaceChoices().size()

"""Supernet: sub-networks share weights; extraction reproduces the sub-network exactly."""

from __future__ import annotations

import random

import pytest
import torch

from mobile_pipeline.nets.spec import ArchSpec
from mobile_pipeline.search.space import TINY_CHOICES, largest_spec, random_spec, smallest_spec
from mobile_pipeline.search.supernet import Supernet, paired_loss, recalibrate_bn, train_supernet


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    net = Supernet(TINY_CHOICES, coverage_samples=4)
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    train_supernet(net, lambda step: (x, y), steps=2, progress=False)  # BN stats and weights move
    return net


def test_extracted_generator_reproduces_the_subnetwork_exactly(supernet):
    supernet.eval()
    x = torch.rand(2, 3, 32, 32)
    specs = [largest_spec(TINY_CHOICES), smallest_spec(TINY_CHOICES)]
    rng = random.Random(1)
    specs += [random_spec(TINY_CHOICES, rng) for _ in range(3)]
    for spec in specs:
        with torch.no_grad():
            expected = supernet(x, spec)
            extracted = supernet.extract(spec)
            assert extracted.spec == spec
            assert torch.equal(extracted(x), expected), spec.to_string()
            pyramid = supernet.forward_pyramid(x, spec)
            assert all(torch.equal(a, b) for a, b in zip(extracted.forward_pyramid(x), pyramid))


def test_subnetworks_share_and_train_the_bank(supernet):
    small, big = smallest_spec(TINY_CHOICES), largest_spec(TINY_CHOICES)
    supernet.train()
    supernet.zero_grad()
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    paired_loss(supernet.forward_pyramid(x, small), y).backward()
    stem = supernet.sub_state(big)["stem.0.weight"]
    grads = {name: p.grad for name, p in supernet.named_parameters() if p.grad is not None}
    assert grads, "no gradient reached the bank"
    bank_stem = next(p for p in supernet.parameters() if p.shape == stem.shape and torch.equal(p, stem))
    assert bank_stem.grad is not None
    used = small.stem_width
    assert bank_stem.grad[:used].abs().sum() > 0  # the small net's slice learns ...
    assert bank_stem.grad[used:].abs().sum() == 0  # ... the rest of the big net's channels do not
    supernet.eval()


def test_bn_recalibration_replaces_shared_statistics(supernet):
    spec = random_spec(TINY_CHOICES, random.Random(5))
    model = supernet.extract(spec)
    before = [m.running_mean.clone() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    recalibrate_bn(model, [torch.rand(2, 3, 32, 32) for _ in range(2)])
    after = [m.running_mean for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert not model.training
    assert any(not torch.allclose(a, b) for a, b in zip(before, after))


def test_spec_outside_the_bank_is_a_clear_error(supernet):
    from mobile_pipeline.nets.spec import ArchSpec

    outside = ArchSpec(stem_width=8, encoder_widths=(16, 24, 32), num_blocks=1, fusion=("sta", "sta", "sta"))
    with pytest.raises(KeyError, match="outside the grid"):
        supernet(torch.rand(1, 3, 32, 32), outside)


def test_warm_start_writes_a_trained_generator_into_the_bank(supernet):
    """Once-for-all's start: the reference's sub-network is reproduced exactly, the others share its slices."""
    from mobile_pipeline.nets.generator import build_generator, trained_like

    spec = random_spec(TINY_CHOICES, __import__("random").Random(3))
    reference = trained_like(build_generator(spec), seed=5)
    supernet.warm_start(reference)
    extracted = supernet.extract(spec)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(extracted(x), reference(x), atol=1e-6)
    outside = ArchSpec(stem_width=64, encoder_widths=(16, 24), fusion=("sta", "sta"))
    assert not supernet.contains(outside)
    with pytest.raises(ValueError, match="outside the supernet's grid"):
        supernet.warm_start(build_generator(outside))

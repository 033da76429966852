"""The temporal consistency term: a real gradient, deterministic per step, wired into training."""

from __future__ import annotations

import csv

import pytest
import torch

from mobile_pipeline.nets.generator import build_generator
from mobile_pipeline.train.losses import PairedWeights, paired_loss
from mobile_pipeline.train.temporal import temporal_consistency_loss

ARCH = "s8_e8-8_b1xfs_br-dw3.dil3_f-sta.add_u-nearest_a-relu"  # downsample factor 4, as test_train_run


@pytest.fixture()
def batch():
    torch.manual_seed(0)
    generator = build_generator(ARCH)
    with torch.no_grad():  # a generator that is not (almost) the identity, like a trained one
        for param in generator.heads[-1].parameters():
            param.normal_(0.0, 0.3)
    photos = torch.rand(4, 3, 32, 32)
    targets = torch.rand(4, 3, 32, 32)
    return generator, photos, targets


def _grads(generator, photos, targets, weight: float, step: int = 5) -> torch.Tensor:
    generator.zero_grad()
    pyramid = generator.forward_pyramid(photos)
    loss = paired_loss(pyramid, targets, PairedWeights())["loss"]
    if weight:
        loss = loss + weight * temporal_consistency_loss(generator, photos, step=step)
    loss.backward()
    return torch.cat([p.grad.flatten() for p in generator.parameters() if p.grad is not None])


def test_term_changes_the_gradient(batch):
    generator, photos, targets = batch
    term = temporal_consistency_loss(generator, photos, step=5)
    assert term.item() > 1e-3 and term.requires_grad
    plain, with_term = _grads(generator, photos, targets, 0.0), _grads(generator, photos, targets, 1.0)
    assert plain.shape == with_term.shape
    assert (with_term - plain).norm() > 1e-3 * plain.norm()


def test_running_statistics_are_left_untouched(batch):
    """The term's extra train-mode passes leave BatchNorm's running statistics as they were."""
    generator, photos, _ = batch
    generator.train()
    before = {k: v.clone() for k, v in generator.state_dict().items() if "running" in k}
    temporal_consistency_loss(generator, photos, step=1).backward()
    assert generator.training
    after = generator.state_dict()
    assert before and all(torch.equal(v, after[k]) for k, v in before.items())


def test_deterministic_per_step(batch):
    generator, photos, _ = batch
    with torch.no_grad():
        a = temporal_consistency_loss(generator, photos, step=3, seed=1)
        b = temporal_consistency_loss(generator, photos, step=3, seed=1)
        c = temporal_consistency_loss(generator, photos, step=4, seed=1)
    assert a.item() == b.item() and a.item() != c.item()


def test_shift_equivariant_noise_free_model_scores_zero(batch):
    """A per-pixel model (1x1 colour map) is shift-equivariant: only noise can make it disagree."""
    _, photos, _ = batch

    class PerPixel(torch.nn.Module):
        spec = build_generator(ARCH).spec

        def forward(self, x):
            return x.mean(dim=1, keepdim=True).expand_as(x)

    model = PerPixel()
    with torch.no_grad():
        loss = temporal_consistency_loss(model, photos, step=2, noise_max=0.0)
    assert loss.item() < 1e-6


def test_bad_shapes_are_refused(batch):
    generator, photos, _ = batch
    with pytest.raises(ValueError, match="N,3,H,W"):
        temporal_consistency_loss(generator, photos[0], step=0)
    with pytest.raises(ValueError, match="too small"):
        temporal_consistency_loss(generator, photos[..., :4, :4], step=0)


def test_training_logs_the_term(tmp_path):
    """weight_temporal in the config reaches StylizerModule and is logged as train/temporal."""
    from mobile_pipeline.config import preset_config
    from mobile_pipeline.data.dataset import build_dataset
    from mobile_pipeline.train.runner import train_stylizer
    from tests.test_train_run import make_photos

    cfg = preset_config("tiny", data={"source": str(make_photos(tmp_path / "photos")), "max_side": 64, "min_side": 16},
                        train={"arch": ARCH, "patch_size": 16, "batch_size": 4, "checkpoint_every": 3,
                               "val_every": 3, "num_threads": 1, "weight_temporal": 0.5})
    build_dataset(cfg.data, tmp_path / "data", progress=False)
    train_stylizer(cfg, tmp_path / "data", tmp_path / "run", paired_steps=3, adversarial_steps=0, progress=False)
    rows = list(csv.DictReader((tmp_path / "run" / "logs" / "version_0" / "metrics.csv").open()))
    values = [float(r["train/temporal"]) for r in rows if r.get("train/temporal")]
    assert values and all(v > 0 for v in values)

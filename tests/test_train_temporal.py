"""The temporal consistency term: exact views, a real gradient, deterministic per step, wired into training."""

from __future__ import annotations

import csv

import pytest
import torch

from mobile_pipeline.nets.generator import build_generator
from mobile_pipeline.train.losses import PairedWeights, paired_loss
from mobile_pipeline.train.temporal import add_temporal_views

ARCH = "s8_e8-8_b1xfs_br-dw3.dil3_f-sta.add_u-nearest_a-relu"  # downsample factor 4, as test_train_run
FACTOR = 4


@pytest.fixture()
def batch():
    torch.manual_seed(0)
    generator = build_generator(ARCH)
    with torch.no_grad():  # a generator that is not (almost) the identity, like a trained one
        for param in generator.heads[-1].parameters():
            param.normal_(0.0, 0.3)
    return generator, torch.rand(4, 3, 32, 32), torch.rand(4, 3, 32, 32)


def test_views_show_the_same_content_moved(batch):
    _, photos, targets = batch
    out_p, out_t, views = add_temporal_views(photos, targets, factor=FACTOR, step=3, noise_max=0.0)
    assert out_p.shape == out_t.shape == (5, 3, 32, 32) and views.count == 1
    torch.testing.assert_close(out_p[:4], photos)  # the batch itself is trained unchanged
    torch.testing.assert_close(out_t[:4], targets)
    dy, dx = views.dy, views.dx
    assert (dy, dx) != (0, 0) and 0 <= dy < FACTOR and 0 <= dx < FACTOR
    # Without noise, a view is its patch moved by (dy, dx): an identity "model" scores exactly 0.
    assert views.consistency(out_p).item() == 0.0
    # The view's target is moved the same way.
    torch.testing.assert_close(out_t[-1][:, :32 - dy, :32 - dx], targets[0, :, dy:, dx:])
    noisy, _, _ = add_temporal_views(photos, targets, factor=FACTOR, step=3)
    assert (noisy[-1] - out_p[-1]).abs().max() > 0  # fresh noise on the view only
    torch.testing.assert_close(noisy[:4], out_p[:4])


def _grads(generator, photos, targets, weight: float, step: int = 5) -> torch.Tensor:
    generator.zero_grad()
    photos, targets, views = add_temporal_views(photos, targets, factor=FACTOR, step=step)
    pyramid = generator.forward_pyramid(photos)
    loss = paired_loss(pyramid, targets, PairedWeights())["loss"] + weight * views.consistency(pyramid[-1])
    loss.backward()
    return torch.cat([p.grad.flatten() for p in generator.parameters() if p.grad is not None])


def test_term_changes_the_gradient(batch):
    generator, photos, targets = batch
    out_p, _, views = add_temporal_views(photos, targets, factor=FACTOR, step=5)
    term = views.consistency(generator(out_p))
    assert term.item() > 1e-3 and term.requires_grad
    plain, with_term = _grads(generator, photos, targets, 0.0), _grads(generator, photos, targets, 1.0)
    assert (with_term - plain).norm() > 1e-3 * plain.norm()


def test_clean_outputs_are_the_anchor(batch):
    """Only the shifted, noisy views are pulled: the patches' own outputs get no gradient from the term."""
    generator, photos, targets = batch
    out_p, _, views = add_temporal_views(photos, targets, factor=FACTOR, step=1)
    output = generator(out_p).detach().requires_grad_(True)
    views.consistency(output).backward()
    assert output.grad[: len(out_p) - views.count].abs().sum() == 0
    assert output.grad[len(out_p) - views.count:].abs().sum() > 0


def test_deterministic_per_step(batch):
    _, photos, targets = batch
    a = add_temporal_views(photos, targets, factor=FACTOR, step=3, seed=1)
    b = add_temporal_views(photos, targets, factor=FACTOR, step=3, seed=1)
    c = add_temporal_views(photos, targets, factor=FACTOR, step=4, seed=1)
    torch.testing.assert_close(a[0], b[0])
    assert a[2] == b[2] and not torch.equal(a[0], c[0])


def test_bad_shapes_are_refused(batch):
    _, photos, targets = batch
    with pytest.raises(ValueError, match="equal N,3,H,W"):
        add_temporal_views(photos, targets[:2], factor=FACTOR, step=0)
    with pytest.raises(ValueError, match="weight_temporal: 0"):
        add_temporal_views(photos[..., :6, :6], targets[..., :6, :6], factor=FACTOR, step=0)


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
    train_stylizer(cfg, tmp_path / "data", tmp_path / "run", paired_steps=2, adversarial_steps=1, progress=False)
    rows = list(csv.DictReader((tmp_path / "run" / "logs" / "version_0" / "metrics.csv").open()))
    values = [float(r["train/temporal"]) for r in rows if r.get("train/temporal")]
    assert values and all(v > 0 for v in values)


def test_term_and_distillation_train_together(tmp_path):
    """Tier training (distilling, target-less crops in the batch) with the term on: both are logged."""
    from mobile_pipeline.config import preset_config
    from mobile_pipeline.data.dataset import build_dataset
    from mobile_pipeline.train.runner import train_stylizer
    from tests.test_train_run import make_photos

    cfg = preset_config("tiny", data={"source": str(make_photos(tmp_path / "photos")), "max_side": 64, "min_side": 16},
                        train={"arch": ARCH, "patch_size": 16, "batch_size": 4, "checkpoint_every": 3,
                               "val_every": 3, "num_threads": 1, "weight_temporal": 0.5, "distill_batch_size": 2})
    build_dataset(cfg.data, tmp_path / "data", progress=False)
    reference = train_stylizer(cfg, tmp_path / "data", tmp_path / "ref", paired_steps=1, adversarial_steps=0,
                               progress=False).checkpoint
    train_stylizer(cfg, tmp_path / "data", tmp_path / "run", paired_steps=2, adversarial_steps=1, progress=False,
                   reference_checkpoint=reference)
    rows = list(csv.DictReader((tmp_path / "run" / "logs" / "version_0" / "metrics.csv").open()))
    for term in ("train/temporal", "train/distill"):
        values = [float(r[term]) for r in rows if r.get(term)]
        assert values and all(v > 0 for v in values), term

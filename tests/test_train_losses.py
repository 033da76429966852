"""Losses, metrics, sample grids and train config validation: known inputs, known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mobile_pipeline.config import ConfigError, preset_config
from mobile_pipeline.train.callbacks import sample_grid, write_sample_grid
from mobile_pipeline.train.losses import (
    PairedWeights,
    discriminator_loss,
    edge_loss,
    generator_adversarial_loss,
    l1_loss,
    multiscale_l1,
    paired_loss,
)
from mobile_pipeline.quality.image import PSNR_CAP_DB, psnr, ssim


def _images(seed: int = 0, shape: tuple[int, ...] = (2, 3, 16, 16)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ paired losses
def test_l1_known_value_and_shape_check() -> None:
    a = torch.zeros(1, 3, 4, 4)
    assert l1_loss(a, a + 0.25).item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="differ"):
        l1_loss(a, torch.zeros(1, 3, 4, 5))


def test_edge_loss_zero_for_identical_and_flat_shift() -> None:
    x = _images()
    assert edge_loss(x, x).item() == 0.0
    # A constant brightness offset changes no gradient: edges agree, L1 does not.
    assert edge_loss(x, x + 0.1).item() == pytest.approx(0.0, abs=1e-6)
    assert l1_loss(x, x + 0.1).item() == pytest.approx(0.1)


def test_edge_loss_sees_a_missing_edge() -> None:
    step = torch.zeros(1, 1, 8, 8)
    step[..., 4:] = 1.0
    flat = torch.full_like(step, 0.5)
    # Sobel (normalised by 8) of a unit step: |gx| = 0.5 on the two columns beside the edge.
    expected = 0.5 * (0.5 * 2 * 8 / 64)
    assert edge_loss(step, flat).item() == pytest.approx(expected, rel=1e-5)


def test_multiscale_l1_zero_on_area_pyramid_and_positive_otherwise() -> None:
    target = _images(shape=(1, 3, 16, 16))
    pyramid = [F.interpolate(target, size=(s, s), mode="area") for s in (4, 8)] + [target]
    assert multiscale_l1(pyramid, target).item() == pytest.approx(0.0, abs=1e-7)
    pyramid[0] = pyramid[0] + 0.2
    # Two coarse levels averaged; the finest is left to l1_loss.
    assert multiscale_l1(pyramid, target).item() == pytest.approx(0.1, rel=1e-5)


def test_paired_loss_weights_terms() -> None:
    target = _images(shape=(1, 3, 8, 8))
    pyramid = [F.interpolate(target, size=(4, 4), mode="area"), target + 0.1]
    terms = paired_loss(pyramid, target, PairedWeights(l1=2.0, multiscale=0.0, edge=0.0))
    assert terms["loss"].item() == pytest.approx(0.2, rel=1e-5)
    assert set(terms) == {"l1", "multiscale", "edge", "loss"}


# ------------------------------------------------------------------ adversarial losses
def test_hinge_values() -> None:
    real, fake = torch.full((2, 1, 3, 3), 2.0), torch.full((2, 1, 3, 3), -2.0)
    assert discriminator_loss(real, fake, "hinge").item() == 0.0  # both beyond the margin
    zeros = torch.zeros(2, 1, 3, 3)
    assert discriminator_loss(zeros, zeros, "hinge").item() == pytest.approx(2.0)
    assert discriminator_loss(real * 0.25, fake * 0.25, "hinge").item() == pytest.approx(1.0)
    assert generator_adversarial_loss(torch.full((1, 1, 2, 2), 0.7), "hinge").item() == pytest.approx(-0.7)


def test_lsgan_values_and_multiscale_average() -> None:
    ones, zeros = torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    assert discriminator_loss(ones, zeros, "lsgan").item() == 0.0
    assert discriminator_loss(zeros, ones, "lsgan").item() == pytest.approx(1.0)
    assert generator_adversarial_loss(zeros, "lsgan").item() == pytest.approx(0.5)
    # A list of scales counts each scale equally.
    mixed = discriminator_loss([ones, zeros], [zeros, ones], "lsgan")
    assert mixed.item() == pytest.approx(0.5)


def test_adversarial_errors() -> None:
    x = torch.zeros(1, 1, 2, 2)
    with pytest.raises(ValueError, match="unknown adversarial loss 'wgan'"):
        discriminator_loss(x, x, "wgan")
    with pytest.raises(ValueError, match="scale counts"):
        discriminator_loss([x, x], [x], "hinge")


# ------------------------------------------------------------------ metrics
def test_psnr_known_values() -> None:
    a = np.zeros((8, 8, 3))
    assert psnr(a, a + 0.1) == pytest.approx(20.0, rel=1e-6)
    assert psnr(a, a) == PSNR_CAP_DB
    # CHW tensors, HWC arrays and batches agree.
    t = torch.rand(3, 10, 12)
    u = (t + 0.05).clamp(0, 1)
    hwc = psnr(t.permute(1, 2, 0).numpy(), u.permute(1, 2, 0).numpy())
    assert psnr(t, u) == pytest.approx(hwc) == pytest.approx(psnr(t[None], u[None]))
    assert math.isfinite(psnr(t, u))


def test_ssim_identity_noise_and_errors() -> None:
    x = _images(shape=(1, 3, 32, 32))
    assert ssim(x, x) == pytest.approx(1.0)
    noise = _images(1, (1, 3, 32, 32)) - 0.5
    slightly, very = (x + 0.1 * noise).clamp(0, 1), (x + 0.8 * noise).clamp(0, 1)
    assert 1.0 > ssim(x, slightly) > ssim(x, very) > 0.0
    noisy = very
    assert 0.0 < ssim(x[..., :8, :8], noisy[..., :8, :8]) < 1.0  # tiny images use a smaller window
    with pytest.raises(ValueError, match="differ in shape"):
        ssim(x, x[..., :16])


# ------------------------------------------------------------------ sample grid
def test_sample_grid_layout_and_png(tmp_path) -> None:
    import cv2

    samples = [(torch.rand(3, 20, 40), torch.rand(3, 20, 40), torch.rand(3, 20, 40)),
               (np.random.rand(30, 30, 3), np.random.rand(30, 30, 3), np.random.rand(30, 30, 3))]
    grid = sample_grid(samples, cell_height=16)
    assert grid.dtype == np.uint8 and grid.shape[0] == 2 * (16 + 4)
    assert grid.shape[1] == 3 * 32 + 2 * 4  # the widest row: three 32-px cells and two gaps
    path = write_sample_grid(samples, tmp_path / "grid.png")
    assert cv2.imread(str(path)).shape == sample_grid(samples).shape
    with pytest.raises(ValueError, match="at least one"):
        sample_grid([])


# ------------------------------------------------------------------ config
@pytest.mark.parametrize(("overrides", "message"), [
    ({"devices": 0}, "train.devices"),
    ({"checkpoint_every": 0}, "train.checkpoint_every"),
    ({"adv_loss": "wgan"}, "train.adv_loss"),
    ({"batchsize": 4}, "train.batchsize: unknown key"),
    ({"few_shot_patch_size": 8}, "train.few_shot_patch_size"),
    ({"num_threads": 0}, "train.num_threads"),
])
def test_train_config_validation(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        preset_config("tiny", train=overrides)


def test_presets_have_valid_train_sections() -> None:
    for name in ("tiny", "demo", "full"):
        cfg = preset_config(name)
        assert cfg.train.paired_steps + cfg.train.adversarial_steps > 0
    assert preset_config("tiny", train={"devices": "auto"}).train.devices == "auto"

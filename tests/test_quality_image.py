"""quality.image: one PSNR / SSIM convention (per-image mean, 100 dB cap) for numpy and torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

from mobile_pipeline.quality.image import PSNR_CAP_DB, psnr, psnr_per_image, ssim


def test_psnr_values_cap_and_scikit_image_agreement() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((16, 16, 3))
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0))
    assert psnr(np.zeros((8, 8)), np.full((8, 8), 0.1)) == pytest.approx(20.0)
    assert psnr(a, a) == PSNR_CAP_DB == 100.0
    assert psnr(a, a + 1e-7) == PSNR_CAP_DB  # float rounding noise reads as exact, never inf


def test_batch_is_the_mean_of_per_image_values() -> None:
    clean = np.zeros((2, 3, 8, 8))
    noisy = clean.copy()
    noisy[0] += 0.1  # 20 dB
    noisy[1] += 0.01  # 40 dB
    assert psnr_per_image(clean, noisy) == pytest.approx([20.0, 40.0])
    assert psnr(clean, noisy) == pytest.approx(30.0)  # not the pooled-MSE value (~23 dB)


def test_numpy_torch_and_layouts_agree() -> None:
    torch.manual_seed(0)
    t, u = torch.rand(3, 12, 12), torch.rand(3, 12, 12)
    hwc = psnr(t.permute(1, 2, 0).numpy(), u.permute(1, 2, 0).numpy())
    assert psnr(t, u) == pytest.approx(hwc) == pytest.approx(psnr(t[None], u[None]))
    assert ssim(t, u) == pytest.approx(ssim(t.numpy(), u.numpy()))
    assert psnr(t.requires_grad_(), u) == pytest.approx(hwc)  # detached, not an autograd error


def test_ssim_orders_noise_and_rejects_bad_shapes() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((3, 24, 24))
    assert ssim(x, x) == pytest.approx(1.0)
    assert 1.0 > ssim(x, np.clip(x + 0.05, 0, 1)) > ssim(x, rng.random(x.shape)) > -1.0
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(x, x[:, :16])
    with pytest.raises(ValueError, match="N,C,H,W"):
        psnr(np.zeros((1, 5, 4, 4)), np.zeros((1, 5, 4, 4)))

"""Image quality metrics against the teacher: PSNR and SSIM on [0, 1] images.

Both accept numpy arrays or torch tensors shaped ``H,W,3`` (HWC, what images are on disk),
``3,H,W`` (CHW) or ``N,3,H,W`` (a batch: the mean of the per-image values, so one bad image
is not drowned by a large one). PSNR is capped at :data:`PSNR_CAP_DB` for identical images
so JSON never holds ``inf``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: PSNR reported for identical images (an infinite value would not survive JSON).
PSNR_CAP_DB = 100.0


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, imported lazily so metrics stay torch-free
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float64)


def _as_hwc_batch(x: Any, name: str) -> np.ndarray:
    """N,H,W,C float64 from HWC, CHW or NCHW input."""
    arr = _to_numpy(x)
    if arr.ndim == 4:
        if arr.shape[1] not in (1, 3):
            raise ValueError(f"{name}: batched input must be N,C,H,W with C in (1, 3), got {arr.shape}")
        return arr.transpose(0, 2, 3, 1)
    if arr.ndim == 3:
        if arr.shape[-1] in (1, 3):
            return arr[None]
        if arr.shape[0] in (1, 3):
            return arr.transpose(1, 2, 0)[None]
        raise ValueError(f"{name}: expected H,W,3 or 3,H,W, got {arr.shape}")
    if arr.ndim == 2:
        return arr[None, :, :, None]
    raise ValueError(f"{name}: expected an image or a batch of images, got shape {arr.shape}")


def _pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    xa, xb = _as_hwc_batch(a, "a"), _as_hwc_batch(b, "b")
    if xa.shape != xb.shape:
        raise ValueError(f"images differ in shape: {xa.shape} vs {xb.shape}")
    return xa, xb


def psnr(a: Any, b: Any) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1] (mean over a batch)."""
    xa, xb = _pair(a, b)
    values = []
    for ia, ib in zip(xa, xb):
        mse = float(np.mean((ia - ib) ** 2))
        values.append(PSNR_CAP_DB if mse <= 10 ** (-PSNR_CAP_DB / 10) else 10.0 * math.log10(1.0 / mse))
    return float(np.mean(values))


def ssim(a: Any, b: Any) -> float:
    """Structural similarity (Wang et al. 2004, Gaussian window) for images in [0, 1]."""
    from skimage.metrics import structural_similarity

    xa, xb = _pair(a, b)
    values = []
    for ia, ib in zip(xa, xb):
        side = min(ia.shape[:2])
        if side >= 11:  # the standard Gaussian window (sigma 1.5) spans 11 px
            value = structural_similarity(ia, ib, data_range=1.0, channel_axis=-1, gaussian_weights=True,
                                          sigma=1.5, use_sample_covariance=False)
        else:  # tiny images (tests): the largest odd uniform window that fits
            win = side if side % 2 else side - 1
            if win < 3:
                raise ValueError(f"ssim needs images of at least 3x3 pixels, got {ia.shape[:2]}")
            value = structural_similarity(ia, ib, data_range=1.0, channel_axis=-1, win_size=win)
        values.append(value)
    return float(np.mean(values))

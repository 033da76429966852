"""PSNR and SSIM: the one definition every stage uses (training, search, export gates, bench).

Built on :mod:`skimage.metrics` (``peak_signal_noise_ratio``, ``structural_similarity``), with
one convention, so a number means the same thing in a training log, a search score, an export
gate and a report:

* Images are in [0, 1] (``data_range=1``). Inputs may be numpy arrays or torch tensors
  (detached and moved to the CPU here), shaped ``H,W,C`` (what images are on disk),
  ``C,H,W``, ``N,C,H,W`` (a batch) or ``H,W``, with C in (1, 3). Values are compared in
  float64.
* A batch is scored image by image and the **mean of the per-image values** is returned,
  so one bad image is not drowned by a large or easy one.
* PSNR is **capped at** :data:`PSNR_CAP_DB` (100 dB, reached at MSE <= 1e-10): identical
  images would be infinite, which JSON cannot hold. 100 dB is far above every gate (fp32
  parity needs 60 dB) and below nothing a real difference produces (one 8-bit step,
  1/255, over the whole image is 48 dB).
* SSIM uses the standard Gaussian window (sigma 1.5, 11 px, Wang et al. 2004); images with
  a side under 11 px fall back to the largest odd uniform window that fits (at least 3).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: PSNR reported for identical images (an infinite value would not survive JSON).
PSNR_CAP_DB = 100.0
_MSE_FLOOR = 10 ** (-PSNR_CAP_DB / 10)

__all__ = ["PSNR_CAP_DB", "psnr", "psnr_per_image", "ssim"]


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor; torch itself is not imported here
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float64)


def _as_hwc_batch(x: Any, name: str) -> np.ndarray:
    """N,H,W,C float64 from HWC, CHW, NCHW or HW input."""
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


def psnr_per_image(a: Any, b: Any) -> list[float]:
    """PSNR in dB of each image of a batch (capped at :data:`PSNR_CAP_DB`)."""
    from skimage.metrics import mean_squared_error, peak_signal_noise_ratio

    xa, xb = _pair(a, b)
    values = []
    for ia, ib in zip(xa, xb):
        if mean_squared_error(ia, ib) <= _MSE_FLOOR:
            values.append(PSNR_CAP_DB)
        else:
            values.append(min(float(peak_signal_noise_ratio(ia, ib, data_range=1.0)), PSNR_CAP_DB))
    return values


def psnr(a: Any, b: Any) -> float:
    """Peak signal-to-noise ratio in dB of images in [0, 1]: mean over a batch, capped at 100 dB."""
    return float(np.mean(psnr_per_image(a, b)))


def ssim(a: Any, b: Any) -> float:
    """Structural similarity of images in [0, 1] (Gaussian window; mean over a batch)."""
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

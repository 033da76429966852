"""Calibration and validation photos for export: bundled, from a dataset, or given.

Quantization is calibrated and every artifact is validated on real photos (not noise):
activation ranges and parity on noise say little about photos. Without a dataset the
colour photos bundled with scikit-image are used (no download). Photos are centre-cropped
to the export aspect and resized with area interpolation, then stacked as N,3,H,W float32
in [0,1], the generator's input convention.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Colour photos shipped inside scikit-image (no network). Calibration takes from the front,
# validation from the back, so the two sets are disjoint whenever enough photos exist.
_BUNDLED = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
            "colorwheel", "retina")


def bundled_photos() -> list[np.ndarray]:
    """scikit-image's colour sample photos, uint8 H x W x 3 RGB."""
    import skimage.data

    return [np.ascontiguousarray(getattr(skimage.data, name)()[..., :3]) for name in _BUNDLED]


def dataset_photos(dataset_dir: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(calibration = train photos, validation = val photos) of a dataset built by ``data``."""
    from mobile_pipeline.data.manifest import load_dataset

    dataset = load_dataset(dataset_dir)
    train = [photo for photo, _ in dataset.pairs("train")]
    val = [photo for photo, _ in dataset.pairs("val")]
    if not val:
        val = train[-1:]
    return train or val, val


def split_photos(photos: list[np.ndarray], calibration: int, validation: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Disjoint calibration / validation subsets when possible (overlap only if too few)."""
    if not photos:
        raise ValueError("no photos to calibrate/validate with")
    val = photos[-validation:] if len(photos) > validation else list(photos)
    rest = photos[: max(len(photos) - validation, 0)] or list(photos)
    return rest[:calibration], val


def prepare_photos(images: list[np.ndarray] | np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    """Stack images as N,3,H,W float32 in [0,1] at ``input_hw``.

    Accepts uint8 or float ([0,1]) H x W x 3 RGB images, or an N,3,H,W float array (returned
    unchanged if it already has the right size).
    """
    import cv2

    if isinstance(images, np.ndarray) and images.ndim == 4 and images.shape[1] == 3:
        if tuple(images.shape[2:]) == tuple(input_hw):
            return np.ascontiguousarray(images, dtype=np.float32)
        images = [img.transpose(1, 2, 0) for img in images]
    height, width = int(input_hw[0]), int(input_hw[1])
    out = []
    for index, img in enumerate(images):
        img = np.asarray(img)
        if img.ndim != 3 or img.shape[2] < 3:
            raise ValueError(f"photo {index}: expected H x W x 3 RGB, got shape {img.shape}")
        img = img[..., :3]
        if img.dtype == np.uint8:
            img = img.astype(np.float32) / 255.0
        else:
            img = img.astype(np.float32)
        h, w = img.shape[:2]
        # Centre crop to the target aspect, then resize (area interpolation when shrinking).
        target_aspect = width / height
        if w / h > target_aspect:
            new_w = max(1, round(h * target_aspect))
            x0 = (w - new_w) // 2
            img = img[:, x0:x0 + new_w]
        else:
            new_h = max(1, round(w / target_aspect))
            y0 = (h - new_h) // 2
            img = img[y0:y0 + new_h]
        interp = cv2.INTER_AREA if img.shape[0] > height else cv2.INTER_LINEAR
        img = cv2.resize(img, (width, height), interpolation=interp)
        out.append(np.clip(img, 0.0, 1.0).transpose(2, 0, 1))
    if not out:
        raise ValueError("no photos given")
    return np.ascontiguousarray(np.stack(out), dtype=np.float32)

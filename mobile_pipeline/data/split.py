"""Train/validation split that holds whole images out.

Patches of one image on both sides of the split would let validation reward memorising
that image, so the unit of the split is the image id, never the patch. The assignment is
by a seeded hash of each id (not a shuffle of the list): adding one photo to a folder moves
at most a few others across the split, and the result does not depend on file order.

Few-shot keyframes are the exception: with one to three pairs, holding a whole pair out
would remove a third to all of the training signal. Each keyframe is instead cut into two
disjoint regions, a training region and a validation strip along its longer side (see
:func:`region_split`); no pixel is on both sides.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Literal

Split = Literal["train", "val"]
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive ends)


class SplitError(ValueError):
    """Too few images (or pixels) to form both a training and a validation set."""


def _rank_key(seed: int, image_id: str) -> str:
    return hashlib.sha256(f"{seed}:{image_id}".encode()).hexdigest()


def num_val(count: int, val_fraction: float, min_val_images: int) -> int:
    """How many of ``count`` images go to validation (rounded half up, at least the minimum)."""
    return max(min_val_images, int(math.floor(count * val_fraction + 0.5)))


def split_ids(
    ids: Sequence[str], val_fraction: float, min_val_images: int, seed: int, what: str = "photos"
) -> dict[str, Split]:
    """Assign each id to ``train`` or ``val``.

    Raises:
        SplitError: fewer than ``min_val_images + 1`` ids, or duplicate ids.
    """
    if len(set(ids)) != len(ids):
        raise SplitError("image ids must be unique")
    needed = min_val_images + 1
    if len(ids) < needed:
        raise SplitError(
            f"only {len(ids)} valid {what}; need at least {needed} "
            f"(data.min_val_images={min_val_images} for validation plus 1 for training). "
            "Add more images or lower data.min_val_images."
        )
    n_val = min(num_val(len(ids), val_fraction, min_val_images), len(ids) - 1)
    ranked = sorted(ids, key=lambda image_id: _rank_key(seed, image_id))
    val = set(ranked[:n_val])
    return {image_id: ("val" if image_id in val else "train") for image_id in ids}


def region_split(height: int, width: int, val_fraction: float, min_side: int) -> tuple[Box, Box]:
    """Cut one image into a training region and a validation strip along its longer side.

    The strip is the last ``val_fraction`` of the longer side (at least ``min_side`` pixels);
    the training region is the rest. Both keep the full shorter side.

    Raises:
        SplitError: the image is too small for both regions to be at least ``min_side``.
    """
    longer = max(height, width)
    strip = max(min_side, int(math.floor(longer * val_fraction + 0.5)))
    if longer - strip < min_side or min(height, width) < min_side:
        raise SplitError(
            f"{width}x{height} is too small to cut into a training region and a validation strip "
            f"of at least data.min_side={min_side} px each"
        )
    cut = longer - strip
    if width >= height:
        return (0, 0, cut, height), (cut, 0, width, height)
    return (0, 0, width, cut), (0, cut, width, height)

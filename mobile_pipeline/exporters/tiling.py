"""HD tiling: run a fixed-size model over a large image in overlapping tiles, blended.

Mobile artifacts take one fixed square (the tier's resolution). To stylize a 4K photo the
image is cut into tiles of that size that overlap by ``overlap`` pixels; each output tile
is weighted by a separable window that rises smoothly (raised cosine) across the overlap
and is flat elsewhere, and the weighted sum is divided by the summed weights. Every pixel
is thus a convex combination of its tiles' outputs whose weights change gradually across
the overlap, so there is no step where one tile ends: the seam that naive tiling shows
(each tile sees a different context near its border) is spread over the overlap.

Image borders get full weight up to the edge (no neighbour to blend with), and images
smaller than a tile are reflect-padded.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

BatchFn = Callable[[np.ndarray], np.ndarray]  # N,3,t,t float32 [0,1] -> N,3,t,t


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``[0, length)`` with tiles of ``tile`` overlapping >= ``overlap``."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    count = math.ceil((length - overlap) / stride)
    if count <= 1:
        return [0, length - tile]
    # Spread the tiles evenly so every overlap is at least ``overlap`` (the last one is not
    # squeezed against the border as with a fixed stride).
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def _ramp(n: int) -> np.ndarray:
    """Raised-cosine ramp from ~0 to ~1 over n pixels, strictly positive."""
    i = np.arange(n, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(math.pi * (i + 0.5) / n)


def _window_1d(start: int, tile: int, length: int, starts: list[int], blend: str) -> np.ndarray:
    """Weights of one tile along one axis, given where its neighbours begin and end."""
    window = np.ones(tile, dtype=np.float64)
    index = starts.index(start)
    if index > 0:  # overlap with the previous tile: [start, prev_end)
        left = starts[index - 1] + tile - start
        if blend == "cosine":
            window[:left] = np.minimum(window[:left], _ramp(left))
        else:  # hard cut in the middle of the overlap (for comparison / tests)
            window[: left // 2] = 0.0
    if index < len(starts) - 1:  # overlap with the next tile: [next_start, end)
        right = start + tile - starts[index + 1]
        if blend == "cosine":
            window[tile - right:] = np.minimum(window[tile - right:], _ramp(right)[::-1])
        else:
            window[tile - right + right // 2:] = 0.0
    return window


def stylize_tiled(run: BatchFn, image: np.ndarray, tile: int, overlap: int = 32, batch: int = 4,
                  blend: str = "cosine", progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Stylize ``image`` (H x W x 3 float32 [0,1]) tile by tile with a ``tile`` x ``tile`` model.

    Args:
        run: batch function N,3,tile,tile -> N,3,tile,tile (a Runner's ``run``).
        tile: the model's input side.
        overlap: pixels shared by neighbouring tiles (>= 1/8 of the tile is a good default;
            larger hides context effects better, at more tiles).
        batch: tiles per call to ``run``.
        blend: ``cosine`` (seamless) or ``none`` (hard cuts, to measure what blending buys).
        progress: optional callback(done_tiles, total_tiles).
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be H x W x 3, got {image.shape}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile={tile}), got {overlap}")
    if blend not in ("cosine", "none"):
        raise ValueError(f"blend must be 'cosine' or 'none', got {blend!r}")
    height, width = image.shape[:2]
    pad_h, pad_w = max(0, tile - height), max(0, tile - width)
    padded = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect" if min(height, width) > 1 else "edge")
    full_h, full_w = padded.shape[:2]
    ys, xs = tile_starts(full_h, tile, overlap), tile_starts(full_w, tile, overlap)
    acc = np.zeros((full_h, full_w, 3), dtype=np.float64)
    weight_sum = np.zeros((full_h, full_w, 1), dtype=np.float64)
    positions = [(y, x) for y in ys for x in xs]
    for first in range(0, len(positions), batch):
        chunk = positions[first:first + batch]
        tiles = np.stack([padded[y:y + tile, x:x + tile].transpose(2, 0, 1) for y, x in chunk]).astype(np.float32)
        outputs = run(tiles)
        for (y, x), out in zip(chunk, outputs):
            w = np.outer(_window_1d(y, tile, full_h, ys, blend), _window_1d(x, tile, full_w, xs, blend))[..., None]
            acc[y:y + tile, x:x + tile] += out.transpose(1, 2, 0) * w
            weight_sum[y:y + tile, x:x + tile] += w
        if progress:
            progress(min(first + batch, len(positions)), len(positions))
    result = acc / np.maximum(weight_sum, 1e-12)
    return np.clip(result[:height, :width], 0.0, 1.0).astype(np.float32)


def seam_ratio(image: np.ndarray, starts: list[int], tile: int, axis: int = 1) -> float:
    """Step across tile borders / step elsewhere along ``axis`` (about 1.0: no visible seam).

    The step at index c is the mean of |I[c] - I[c-1]| over the other axes. Seams can sit
    where a tile begins, where the previous one ends, or in the middle of their overlap
    (where naive tiling cuts), so each of the three line sets is averaged separately and the
    worst one is compared with the mean step over all other lines.
    """
    other_axes = tuple(a for a in range(image.ndim) if a != axis)
    step = np.abs(np.diff(image.astype(np.float64), axis=axis)).mean(axis=other_axes)  # step[c-1] = |I[c]-I[c-1]|
    pairs = list(zip(starts, starts[1:]))
    kinds = {
        "start": [b for a, b in pairs],
        "end": [a + tile for a, b in pairs],
        "middle": [b + (a + tile - b) // 2 for a, b in pairs],
    }
    lines = {name: [c - 1 for c in cols if 0 < c < image.shape[axis]] for name, cols in kinds.items()}
    used = sorted({c for cols in lines.values() for c in cols})
    if not used:
        return 1.0
    baseline = np.delete(step, used).mean()
    worst = max(step[cols].mean() for cols in lines.values() if cols)
    return float(worst / max(baseline, 1e-12))

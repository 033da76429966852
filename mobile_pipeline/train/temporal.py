"""Temporal consistency: the output of a shifted, re-noised input should be the shifted output.

Why: a camera effect runs on video. Between two frames the scene moves a little and the
sensor noise is new; a stylizer that is steady on video gives the same output for the moved
content. The residual generator (output = input + head) passes sensor noise straight
through, and its stride-2 encoder is not shift-equivariant, so without this the models
flicker about twice as much as the camera itself (``quality/flicker.py`` measures it).

How (``train.weight_temporal`` > 0; a few lines in ``StylizerModule.training_step``):

* :func:`add_temporal_views` crops every patch of the step's batch ``factor`` pixels
  smaller (``factor`` = the generator's downsample factor, so the crop is a valid input
  size) and appends *views*: for a part of the batch (``fraction``, a quarter), the same
  patch cropped at a random offset ``(dy, dx)`` in ``[0, factor)`` (the content moves
  against every stride-2 grid of the network) plus fresh Gaussian noise of a random
  strength up to ``noise_max`` (4 grey levels; the flicker benchmark's sensor noise is 2),
  each with its exact target crop;
* the generator runs once on the whole enlarged batch: the views are paired samples like
  any other (noisy input, clean teacher target: the model learns to drop the noise);
* :meth:`TemporalViews.consistency` pulls each view's output (L1) towards the same window of
  its clean patch's output, which is detached (the clean output stays what the paired
  losses make it), leaving out a ``margin`` at the borders, where a crop's padding sees
  other context than the full patch.

One forward pass, so BatchNorm normalises views and clean patches with the same batch
statistics: two earlier designs ran the views as separate passes and were measured worse
on stylizer-small (demo recipe, 950 steps): separate train-mode passes on the sub-batch
normalise with two patches' statistics, and the term (weight 3) cost 1.7 dB of held-out
PSNR; eval-mode passes let the term be met by driving the running statistics away from the
batch statistics (the eval output of stylizer-tiny collapsed to a flat image). The shared
pass also makes the term cheap: (8 + 2) crops of 88 px cost ~5% more than 8 patches of 96.

Whole-pixel offsets keep the comparison exact (no interpolation blur in the target). The
offsets and the noise of step ``s`` are a pure function of ``(seed, s)``, like the data
stream, so a resumed run is identical to an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

#: Default share of the batch that gets a shifted, noisy view.
TEMPORAL_FRACTION = 0.25
#: Default upper bound of the views' noise std, in [0, 1] units (4 grey levels).
TEMPORAL_NOISE_MAX = 4.0 / 255.0
#: Default border pixels of a view left out of the comparison.
TEMPORAL_MARGIN = 8
#: Mixes the step into the seed so different runs' streams do not overlap.
_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class TemporalViews:
    """Where the views sit in the enlarged batch, to compare their outputs with the clean ones.

    Attributes:
        count: views appended after the ``len(batch) - count`` clean crops; view ``i`` shows
            clean patch ``i``.
        dy, dx: the views' offset against the clean crops, pixels.
        margin: border pixels left out of the comparison.
    """

    count: int
    dy: int
    dx: int
    margin: int

    def consistency(self, output: Tensor) -> Tensor:
        """Mean L1 between each view's output and the same window of its clean crop's (detached) output."""
        clean, moved = output[: self.count], output[output.shape[0] - self.count:]
        height, width = output.shape[-2:]
        m, dy, dx = self.margin, self.dy, self.dx
        # Clean-crop pixel (y, x) shows what view pixel (y - dy, x - dx) shows.
        anchor = clean[..., dy + m:height - m, dx + m:width - m].detach()
        seen = moved[..., m:height - m - dy, m:width - m - dx]
        return (seen - anchor).abs().mean()


def add_temporal_views(photos: Tensor, targets: Tensor, *, factor: int, step: int, seed: int = 0,
                       fraction: float = TEMPORAL_FRACTION, noise_max: float = TEMPORAL_NOISE_MAX,
                       margin: int = TEMPORAL_MARGIN, max_shift: int | None = None
                       ) -> tuple[Tensor, Tensor, TemporalViews]:
    """The step's batch cropped ``factor`` px smaller, with shifted, noisy views appended.

    Args:
        photos, targets: the step's paired patches, N,3,H,W in [0, 1]; H and W multiples of
            ``factor``.
        factor: the generator's downsample factor.
        step: the training step; with ``seed`` it fixes the offset and the noise.
        fraction: share of the batch that gets a view (at least one patch).
        noise_max: each view's noise std is drawn uniformly in ``[0, noise_max]``.
        margin: border pixels left out of the comparison (capped so some pixels remain).
        max_shift: offsets are drawn in ``[0, max_shift)`` (default ``factor``); 1 = no
            motion, noise only (for ablations).

    Returns:
        ``(photos, targets, views)``: N + count crops of (H - factor) x (W - factor).

    Raises:
        ValueError: mismatched shapes, or patches smaller than twice ``factor``.
    """
    if photos.ndim != 4 or photos.shape[1] != 3 or photos.shape != targets.shape:
        raise ValueError(f"photos {tuple(photos.shape)} and targets {tuple(targets.shape)} must be equal N,3,H,W batches")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    height, width = photos.shape[-2:]
    crop_h, crop_w = height - factor, width - factor
    if crop_h < factor or crop_w < factor:
        raise ValueError(f"patches of {height}x{width} px are too small for the temporal views; they need at least "
                         f"{2 * factor} px (twice the downsample factor {factor})")
    count = max(1, round(photos.shape[0] * fraction))
    rng = torch.Generator().manual_seed(int(seed) * _SEED_STRIDE + int(step))
    limit = factor if max_shift is None else max(1, min(int(max_shift), factor))
    dy, dx = (int(v) for v in torch.randint(0, limit, (2,), generator=rng))
    if dy == 0 and dx == 0 and limit > 1:  # no motion would test the noise only; move one pixel
        dx = 1
    sigma = torch.rand(count, 1, 1, 1, generator=rng) * noise_max
    noise = (torch.randn(count, 3, crop_h, crop_w, generator=rng) * sigma).to(photos.device, photos.dtype)
    view_photos = (photos[:count, :, dy:dy + crop_h, dx:dx + crop_w] + noise).clamp(0.0, 1.0)
    view_targets = targets[:count, :, dy:dy + crop_h, dx:dx + crop_w]
    m = max(0, min(int(margin), (crop_h - dy) // 4, (crop_w - dx) // 4))
    out_photos = torch.cat([photos[..., :crop_h, :crop_w], view_photos])
    out_targets = torch.cat([targets[..., :crop_h, :crop_w], view_targets])
    return out_photos, out_targets, TemporalViews(count=count, dy=dy, dx=dx, margin=m)

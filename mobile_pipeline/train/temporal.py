"""Temporal consistency: the output of a shifted, re-noised input should be the shifted output.

Why: a camera effect runs on video. Between two frames the scene moves a little and the
sensor noise is new; a stylizer that is steady on video gives the same output for the moved
content. The residual generator (output = input + head) passes sensor noise straight
through, and its stride-2 encoder is not shift-equivariant, so without this the models
flicker about twice as much as the camera itself (``quality/flicker.py`` measures it).

How (``train.weight_temporal`` > 0; a few lines in ``StylizerModule.training_step``):

* :func:`add_temporal_views` appends *views* to the step's batch: for a part of it
  (``fraction``, an eighth: one view per 8 patches in the demo recipe), the same patch
  moved by a random offset ``(dy, dx)`` in ``[0, factor)`` (``factor`` = the generator's
  downsample factor, so the content moves
  against every stride-2 grid of the network; the strip that moves in is filled by edge
  replication and never compared) plus fresh Gaussian noise of a random strength up to
  ``noise_max`` (4 grey levels; the flicker benchmark's sensor noise is 2), each with its
  target moved the same way;
* the generator runs once on the enlarged batch: the views are paired samples like any
  other (noisy input, clean teacher target: the model learns to drop the noise), and the
  original patches are trained exactly as without the term;
* :meth:`TemporalViews.consistency` pulls each view's output (L1) towards the same window of
  its original patch's output, which is detached (that output stays what the paired losses
  make it), leaving out a ``margin`` at the borders, where the two see different context.

One forward pass, so BatchNorm normalises views and patches with the same batch
statistics. Two earlier designs ran the views as separate passes and were measured worse on
stylizer-small (demo recipe, 950 steps): separate train-mode passes normalise with two
patches' statistics, and at weight 3 the term cost 1.7 dB of held-out PSNR (0.5 dB here);
eval-mode passes let the term be met by driving the running statistics away from the batch
statistics (the eval output of stylizer-tiny collapsed to a flat image). A third design
cropped every patch ``factor`` px smaller to make room for the offset: cheap, but it took a
quarter of the pixels from 16 px few-shot patches and the few-shot test stopped learning.
The cost is the views' share of the batch: +12.5% of the generator's compute at an eighth;
a quarter measured the same flicker and still-image quality (benchmarks/bench_temporal.py,
docs/benchmarks.md) at twice the cost.

Whole-pixel offsets keep the comparison exact (no interpolation blur in the target). The
offsets and the noise of step ``s`` are a pure function of ``(seed, s)``, like the data
stream, so a resumed run is identical to an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

#: Default share of the batch that gets a shifted, noisy view.
TEMPORAL_FRACTION = 0.125
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
        count: views appended after the ``len(batch) - count`` original patches; view ``i``
            shows patch ``i`` moved.
        dy, dx: the views' offset against the original patches, pixels.
        margin: border pixels left out of the comparison.
    """

    count: int
    dy: int
    dx: int
    margin: int

    def consistency(self, output: Tensor) -> Tensor:
        """Mean L1 between each view's output and the same window of its patch's (detached) output."""
        clean, moved = output[: self.count], output[output.shape[0] - self.count:]
        height, width = output.shape[-2:]
        m, dy, dx = self.margin, self.dy, self.dx
        # Patch pixel (y, x) shows what view pixel (y - dy, x - dx) shows.
        anchor = clean[..., dy + m:height - m, dx + m:width - m].detach()
        seen = moved[..., m:height - m - dy, m:width - m - dx]
        return (seen - anchor).abs().mean()


def add_temporal_views(photos: Tensor, targets: Tensor, *, factor: int, step: int, seed: int = 0,
                       fraction: float = TEMPORAL_FRACTION, noise_max: float = TEMPORAL_NOISE_MAX,
                       margin: int = TEMPORAL_MARGIN, max_shift: int | None = None
                       ) -> tuple[Tensor, Tensor, TemporalViews]:
    """The step's batch with shifted, noisy views of a part of it appended.

    Args:
        photos, targets: the step's paired patches, N,3,H,W in [0, 1].
        factor: the generator's downsample factor (offsets are drawn below it).
        step: the training step; with ``seed`` it fixes the offset and the noise.
        fraction: share of the batch that gets a view (at least one patch).
        noise_max: each view's noise std is drawn uniformly in ``[0, noise_max]``.
        margin: border pixels left out of the comparison (capped so some pixels remain).
        max_shift: offsets are drawn in ``[0, max_shift)`` (default ``factor``); 1 = no
            motion, noise only (for ablations).

    Returns:
        ``(photos, targets, views)``: N + count patches of the input size; the first N are
        the inputs unchanged.

    Raises:
        ValueError: mismatched shapes, or patches smaller than twice ``factor``.
    """
    import torch.nn.functional as F

    if photos.ndim != 4 or photos.shape[1] != 3 or photos.shape != targets.shape:
        raise ValueError(f"photos {tuple(photos.shape)} and targets {tuple(targets.shape)} must be equal N,3,H,W batches")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    height, width = photos.shape[-2:]
    if min(height, width) < 2 * factor:
        raise ValueError(f"patches of {height}x{width} px are too small for the temporal views (train.weight_temporal); "
                         f"they need at least {2 * factor} px (twice the downsample factor {factor}): use a larger "
                         f"patch size or set train.weight_temporal: 0")
    count = max(1, round(photos.shape[0] * fraction))
    rng = torch.Generator().manual_seed(int(seed) * _SEED_STRIDE + int(step))
    limit = factor if max_shift is None else max(1, min(int(max_shift), factor))
    dy, dx = (int(v) for v in torch.randint(0, limit, (2,), generator=rng))
    if dy == 0 and dx == 0 and limit > 1:  # no motion would test the noise only; move one pixel
        dx = 1
    sigma = torch.rand(count, 1, 1, 1, generator=rng) * noise_max
    noise = (torch.randn(count, 3, height, width, generator=rng) * sigma).to(photos.device, photos.dtype)

    def moved(x: Tensor) -> Tensor:  # content moves up-left by (dy, dx); the strip that comes in is replicated
        return F.pad(x[:count, :, dy:, dx:], (0, dx, 0, dy), mode="replicate")

    view_photos = (moved(photos) + noise).clamp(0.0, 1.0)
    m = max(0, min(int(margin), (height - dy) // 4, (width - dx) // 4))
    return (torch.cat([photos, view_photos]), torch.cat([targets, moved(targets)]),
            TemporalViews(count=count, dy=dy, dx=dx, margin=m))

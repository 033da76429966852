"""Temporal consistency term: the output of a shifted, re-noised input should be the shifted output.

Why: a camera effect runs on video. Between two frames the scene moves a little and the
sensor noise is new; a stylizer that is steady on video gives the same output for the moved
content. The residual generator (output = input + head) passes sensor noise straight
through, and its stride-2 encoder is not shift-equivariant, so without this term the
models flicker more than the camera itself (``quality/flicker.py`` measures it).

How (cheap by design, a few lines in ``StylizerModule.training_step``):

* a part of the batch (``fraction``, default a quarter) gets a second view: the same patch
  cropped ``factor`` pixels smaller at a random offset ``(dy, dx)`` in ``[0, factor)``
  (``factor`` = the generator's downsample factor, so the crop is a valid input size and the
  content moves against every stride-2 grid), plus fresh Gaussian noise of a random
  strength up to ``noise_max`` (4 grey levels: the flicker benchmark's sensor noise is 2);
* the generator runs on the view and its output is pulled (L1) towards the same window of
  its output on the clean patch, which is detached: the clean output stays what the paired
  losses make it, only the noisy, moved view is taught to agree with it;
* both of these passes run on the same sub-batch in train mode, so BatchNorm normalises
  them with (almost) the same statistics, and BatchNorm's running statistics are restored
  afterwards, so the extra passes leave no trace in them. Two designs measured worse on
  stylizer-tiny (600 demo steps): comparing with the main batch's output (normalised with
  the whole batch's statistics) made the outputs differ by the statistics of two patches
  rather than by the motion, and cost 1.8 dB of held-out PSNR; running both passes in eval
  mode let the term be satisfied by driving the running statistics away from the batch
  statistics (at weight 3 the eval-mode output collapsed to a flat image, 6.6 dB);
* a ``margin`` is left out at the view's borders, where its padding sees other context than
  the full patch does (agreement there is neither possible nor wanted).

Whole-pixel offsets keep the comparison exact (no interpolation blur in the target). The
offsets and noise of step ``s`` are a pure function of ``(seed, s)``, like the data stream,
so a resumed run is identical to an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

#: Default share of the batch that gets the shifted, noisy view (the term's cost).
TEMPORAL_FRACTION = 0.25
#: Default upper bound of the view's noise std, in [0, 1] units (4 grey levels).
TEMPORAL_NOISE_MAX = 4.0 / 255.0
#: Default border pixels of the view left out of the comparison.
TEMPORAL_MARGIN = 8
#: Mixes the step into the seed so different runs' streams do not overlap.
_SEED_STRIDE = 1_000_003


def temporal_consistency_loss(generator: nn.Module, photos: Tensor, *, step: int, seed: int = 0,
                              fraction: float = TEMPORAL_FRACTION, noise_max: float = TEMPORAL_NOISE_MAX,
                              margin: int = TEMPORAL_MARGIN) -> Tensor:
    """L1 between the generator's output on a shifted, re-noised crop and the same crop of its clean output.

    Args:
        generator: the generator being trained (``generator.spec.downsample_factor`` is read).
        photos: the step's input patches, N,3,H,W in [0, 1]; H and W multiples of the factor.
        step: the training step; with ``seed`` it fixes the offsets and the noise.
        fraction: share of the batch that gets the second view (at least one patch).
        noise_max: the view's noise std is drawn uniformly in ``[0, noise_max]`` per patch.
        margin: border pixels of the view left out (capped at a quarter of the view's side).

    Raises:
        ValueError: not an N,3,H,W batch, or patches smaller than twice the downsample factor.
    """
    if photos.ndim != 4 or photos.shape[1] != 3:
        raise ValueError(f"photos must be an N,3,H,W batch, got shape {tuple(photos.shape)}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    factor = int(generator.spec.downsample_factor)
    height, width = photos.shape[-2:]
    view_h, view_w = height - factor, width - factor
    if view_h < factor or view_w < factor:
        raise ValueError(f"patches of {height}x{width} px are too small for the temporal term; it needs at least "
                         f"{2 * factor} px (twice the downsample factor {factor})")
    count = max(1, round(photos.shape[0] * fraction))
    rng = torch.Generator().manual_seed(int(seed) * _SEED_STRIDE + int(step))
    dy, dx = (int(v) for v in torch.randint(0, factor, (2,), generator=rng))
    if dy == 0 and dx == 0:  # no motion would test noise only; move one pixel
        dx = 1
    sigma = torch.rand(count, 1, 1, 1, generator=rng) * noise_max
    noise = torch.randn(count, 3, view_h, view_w, generator=rng) * sigma
    clean = photos[:count]
    view = clean[:, :, dy:dy + view_h, dx:dx + view_w]
    view = (view + noise.to(device=photos.device, dtype=photos.dtype)).clamp(0.0, 1.0)
    with _frozen_batchnorm_statistics(generator):  # see the module docstring
        with torch.no_grad():
            anchor = generator(clean)[:, :, dy:dy + view_h, dx:dx + view_w]
        moved = generator(view)
    m = min(int(margin), view_h // 4, view_w // 4)
    if m:
        moved, anchor = moved[..., m:-m, m:-m], anchor[..., m:-m, m:-m]
    return (moved - anchor).abs().mean()


@contextmanager
def _frozen_batchnorm_statistics(module: nn.Module) -> Iterator[None]:
    """BatchNorm's running statistics stay as they are during train-mode passes.

    Momentum 0 makes each pass's update a no-op (``(1 - 0) * running + 0 * batch``); the
    statistics are not copied back afterwards because autograd keeps them for the backward
    pass and would refuse a tensor changed after it was saved. The batch counter (not used
    in backward) is restored.
    """
    norms = [bn for bn in module.modules()
             if isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.track_running_stats and bn.running_mean is not None]
    saved = [(bn.momentum, bn.num_batches_tracked.clone()) for bn in norms]
    for bn in norms:
        bn.momentum = 0.0
    try:
        yield
    finally:
        with torch.no_grad():
            for bn, (momentum, count) in zip(norms, saved):
                bn.momentum = momentum
                bn.num_batches_tracked.copy_(count)

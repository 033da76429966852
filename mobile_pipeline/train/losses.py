"""Training losses: paired reconstruction terms and the adversarial pair.

Stage 1 (paired) uses L1 on the finest output, L1 on every coarser pyramid level against
area-downsampled targets (cheap deep supervision that gives the coarse heads a signal of
their own), and an edge term on Sobel gradients: the cartoon look lives in its dark, crisp
outlines, which plain L1 under-weights because edges cover few pixels.

Stage 2 adds an adversarial loss (hinge or LSGAN). The discriminator may answer with one
logit map or a list of them (multi-scale); every loss here averages over the list so the
scales count equally whatever their resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

Logits = Tensor | Sequence[Tensor]

ADV_LOSSES: tuple[str, ...] = ("hinge", "lsgan")

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0


def l1_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error; shapes must match exactly (no silent broadcasting)."""
    if pred.shape != target.shape:
        raise ValueError(f"l1_loss: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    return (pred - target).abs().mean()


def area_downsample(target: Tensor, size: tuple[int, int]) -> Tensor:
    """Area (box-filter) resize of ``target`` to ``size``; identity when already that size."""
    if tuple(target.shape[-2:]) == tuple(size):
        return target
    return F.interpolate(target, size=size, mode="area")


def multiscale_l1(pyramid: Sequence[Tensor], target: Tensor, *, include_finest: bool = False) -> Tensor:
    """Mean L1 of every pyramid level against the target area-downsampled to that level.

    Args:
        pyramid: generator outputs coarse -> fine (``Generator.forward_pyramid``).
        target: full-resolution target N,3,H,W.
        include_finest: also count the finest level (normally covered by :func:`l1_loss`).
    """
    levels = list(pyramid) if include_finest else list(pyramid)[:-1]
    if not levels:
        return target.new_zeros(())
    return torch.stack([l1_loss(level, area_downsample(target, tuple(level.shape[-2:]))) for level in levels]).mean()


def sobel_gradients(images: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel horizontal and vertical Sobel responses (replicate padding keeps the size)."""
    channels = images.shape[1]
    kx = _SOBEL_X.to(images.device, images.dtype).view(1, 1, 3, 3).repeat(channels, 1, 1, 1)
    ky = kx.transpose(-1, -2)
    padded = F.pad(images, (1, 1, 1, 1), mode="replicate")
    return F.conv2d(padded, kx, groups=channels), F.conv2d(padded, ky, groups=channels)


def edge_loss(pred: Tensor, target: Tensor) -> Tensor:
    """L1 between the Sobel gradients of prediction and target: zero iff edges agree."""
    if pred.shape != target.shape:
        raise ValueError(f"edge_loss: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    pgx, pgy = sobel_gradients(pred)
    tgx, tgy = sobel_gradients(target)
    return 0.5 * ((pgx - tgx).abs().mean() + (pgy - tgy).abs().mean())


@dataclass(frozen=True)
class PairedWeights:
    """Weights of the stage-1 terms (from ``TrainConfig.weight_*``)."""

    l1: float = 1.0
    multiscale: float = 0.5
    edge: float = 0.5


def paired_loss(pyramid: Sequence[Tensor], target: Tensor, weights: PairedWeights) -> dict[str, Tensor]:
    """All stage-1 terms and their weighted sum (key ``loss``), for logging and backward."""
    finest = pyramid[-1]
    terms = {
        "l1": l1_loss(finest, target),
        "multiscale": multiscale_l1(pyramid, target),
        "edge": edge_loss(finest, target),
    }
    terms["loss"] = weights.l1 * terms["l1"] + weights.multiscale * terms["multiscale"] + weights.edge * terms["edge"]
    return terms


# ------------------------------------------------------------------ adversarial
def _as_list(logits: Logits) -> list[Tensor]:
    if isinstance(logits, Tensor):
        return [logits]
    out = list(logits)
    if not out:
        raise ValueError("discriminator returned no logits")
    return out


def _mean_over_scales(values: list[Tensor]) -> Tensor:
    return torch.stack(values).mean()


def discriminator_loss(real: Logits, fake: Logits, kind: str = "hinge") -> Tensor:
    """Discriminator loss for real (style) and fake (generated) logits.

    hinge: ``E[relu(1 - D(real))] + E[relu(1 + D(fake))]``;
    lsgan: ``0.5 * (E[(D(real) - 1)^2] + E[D(fake)^2])``.
    """
    reals, fakes = _as_list(real), _as_list(fake)
    if len(reals) != len(fakes):
        raise ValueError(f"real and fake logits have different scale counts: {len(reals)} vs {len(fakes)}")
    if kind == "hinge":
        return _mean_over_scales([F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(reals, fakes)])
    if kind == "lsgan":
        return _mean_over_scales([0.5 * ((r - 1).pow(2).mean() + f.pow(2).mean()) for r, f in zip(reals, fakes)])
    raise ValueError(f"adv_loss: unknown adversarial loss {kind!r}; choose from {list(ADV_LOSSES)}")


def generator_adversarial_loss(fake: Logits, kind: str = "hinge") -> Tensor:
    """Generator side: hinge ``-E[D(fake)]``; lsgan ``0.5 * E[(D(fake) - 1)^2]``."""
    fakes = _as_list(fake)
    if kind == "hinge":
        return _mean_over_scales([-f.mean() for f in fakes])
    if kind == "lsgan":
        return _mean_over_scales([0.5 * (f - 1).pow(2).mean() for f in fakes])
    raise ValueError(f"adv_loss: unknown adversarial loss {kind!r}; choose from {list(ADV_LOSSES)}")

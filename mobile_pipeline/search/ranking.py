"""Does the supernet rank architectures like stand-alone training would?

A weight-sharing search is only as good as the ranking of its inherited scores: if the
supernet's best sub-network is not among the best when trained alone, the search picks at
random. This module measures it the way the NAS literature does (Kendall tau between
inherited and stand-alone scores, e.g. "Evaluating the search phase of NAS", Yu et al. 2020):

* :func:`spread_architectures` draws architectures spread evenly over the grid's MAC range
  (quantiles of a large random sample), so the ranking is tested across sizes, not among
  near-twins whose true scores differ by noise;
* :func:`train_standalone` trains one from scratch with the supernet's own batches, loss and
  optimiser for a fixed number of steps (equal budgets for all);
* scores are held-out PSNR on the same crops the search uses;
* :func:`kendall_tau` compares the two rankings.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np
import torch

from mobile_pipeline.nets.spec import ArchSpec
from mobile_pipeline.search.space import SpaceChoices, largest_spec, random_spec, smallest_spec


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b of two score lists (ties counted as neither concordant nor discordant)."""
    from scipy.stats import kendalltau

    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"kendall_tau needs two equal-length lists of >= 2 scores, got {len(a)} and {len(b)}")
    return float(kendalltau(a, b).statistic)


def spread_architectures(choices: SpaceChoices, count: int, macs_of: Callable[[ArchSpec], int], seed: int = 0,
                         pool: int = 400, allowed: Callable[[ArchSpec], bool] | None = None) -> list[ArchSpec]:
    """``count`` distinct architectures at evenly spaced MAC quantiles of a random sample.

    The grid's smallest and largest networks are always included (the extremes the sandwich
    rule trains every step); ``allowed`` filters candidates (e.g. a tier's op constraints).
    """
    if count < 2:
        raise ValueError(f"count must be >= 2, got {count}")
    rng = random.Random(seed)
    seen: dict[str, ArchSpec] = {}
    for spec in [smallest_spec(choices), largest_spec(choices)] + [random_spec(choices, rng) for _ in range(pool)]:
        if allowed is None or allowed(spec):
            seen.setdefault(spec.to_string(), spec)
    ranked = sorted(seen.values(), key=macs_of)
    picks: list[ArchSpec] = []
    for q in np.linspace(0, len(ranked) - 1, count):
        index = int(round(q))
        while ranked[index] in picks and index + 1 < len(ranked):
            index += 1
        if ranked[index] not in picks:
            picks.append(ranked[index])
    return picks


def train_standalone(spec: ArchSpec, batches: Callable[[int], tuple[torch.Tensor, torch.Tensor]], steps: int, *,
                     loss_fn: Callable[[list[torch.Tensor], torch.Tensor], torch.Tensor], lr: float,
                     seed: int = 0) -> torch.nn.Module:
    """``spec`` trained alone from scratch: Adam, cosine to 10 %, gradient clip 5 (the supernet's recipe)."""
    from mobile_pipeline.nets.generator import build_generator

    torch.manual_seed(seed)
    model = build_generator(spec).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s / max(steps, 1), 1.0))))
    for step in range(steps):
        photos, targets = batches(step)
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model.forward_pyramid(photos), targets).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        schedule.step()
    return model.eval()

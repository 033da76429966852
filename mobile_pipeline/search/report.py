"""Search outputs that people read: the Pareto plot and the search log.

The plot has one panel per tier: every candidate evaluated for that tier as (predicted
latency on the tier's reference device, supernet PSNR), over-budget ones greyed, the winner
starred, the tier's latency budget drawn as a vertical line. Over-budget candidates were
never scored (their quality is not needed to reject them); they sit on the panel's floor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mobile_pipeline.utils.atomic import atomic_output, atomic_write_text


def write_log(path: Path, events: list[dict[str, Any]]) -> Path:
    """The whole event list as JSON lines, written atomically (rewritten as it grows)."""
    text = "".join(json.dumps(event, sort_keys=True, default=str) + "\n" for event in events)
    return atomic_write_text(path, text)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated by another (lower latency and higher quality), by latency."""
    front, best = [], float("-inf")
    for latency, quality in sorted(points, key=lambda p: (p[0], -p[1])):
        if quality > best:
            front.append((latency, quality))
            best = quality
    return front


def plot_pareto(path: Path, candidates: dict[str, list[dict[str, Any]]], winners: dict[str, dict[str, Any]],
                budgets_ms: dict[str, float]) -> Path:
    """Write the Pareto PNG (see the module docstring) atomically.

    Args:
        path: output PNG.
        candidates: tier -> list of {latency_ms, psnr_db (None if not scored), within_budget}.
        winners: tier -> the winning candidate (same keys).
        budgets_ms: tier -> latency budget.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tiers = list(candidates)
    cols = min(len(tiers), 2) or 1
    rows = (len(tiers) + cols - 1) // cols or 1
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 4.2 * rows), squeeze=False)
    for ax in axes.flat[len(tiers):]:
        ax.set_visible(False)
    for ax, tier in zip(axes.flat, tiers):
        items = candidates[tier]
        scored = [c for c in items if c.get("psnr_db") is not None]
        floor = min((c["psnr_db"] for c in scored), default=0.0) - 0.5
        inside = [c for c in scored if c["within_budget"]]
        outside = [c for c in items if not c["within_budget"]]
        ax.scatter([c["latency_ms"] for c in inside], [c["psnr_db"] for c in inside], s=18, color="tab:blue",
                   label=f"within budget ({len(inside)})")
        ax.scatter([c["latency_ms"] for c in outside], [c["psnr_db"] if c.get("psnr_db") is not None else floor
                                                         for c in outside],
                   s=18, marker="x", color="0.6", label=f"over budget ({len(outside)}, unscored)")
        front = pareto_front([(c["latency_ms"], c["psnr_db"]) for c in inside])
        if len(front) > 1:
            ax.plot(*zip(*front), color="tab:blue", lw=1, alpha=0.6)
        if tier in budgets_ms:
            ax.axvline(budgets_ms[tier], color="tab:red", ls="--", lw=1, label=f"budget {budgets_ms[tier]:.0f} ms")
        if tier in winners:
            w = winners[tier]
            ax.scatter([w["latency_ms"]], [w["psnr_db"]], s=160, marker="*", color="tab:orange", zorder=5,
                       label="winner")
        ax.set_title(f"tier {tier}")
        ax.set_xlabel("predicted latency on reference device (ms)")
        ax.set_ylabel("supernet PSNR vs teacher (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path

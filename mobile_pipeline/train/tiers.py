"""Tier training: each tier's searched architecture trained with the full recipe.

The search only *ranks* architectures: its weight-sharing supernet trains every sub-network a
little. What ships must be trained properly, so this stage takes each tier's winner and runs
the same Lightning recipe as ``mobile-pipeline train`` on it (paired stage with multi-scale
supervision, then the mixed adversarial stage), starting from the architecture's supernet
weights and distilled from the reference model the ``train`` stage produced (its outputs are
extra targets, also on augmented crops that have no teacher target).

Tiers whose searches picked the same architecture share one training run. Output layout::

    <out_dir>/<tier>.pt        the trained generator export ships (lean checkpoint + provenance)
    <out_dir>/<tier>.json      the search's <tier>.json plus a ``training`` block (provenance,
                               held-out PSNR/SSIM and look measures, steps, seconds)
    <out_dir>/runs/<arch-id>/  the training run (checkpoints, samples, metrics) per architecture

A killed stage resumes: finished runs are reused, an interrupted one continues from its
``last.ckpt``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobile_pipeline.nets.spec import ArchSpec
from mobile_pipeline.utils.atomic import atomic_write_json

RUNS_DIR = "runs"
#: ``provenance.source`` of a checkpoint this stage wrote (export checks it).
TIER_TRAINING_SOURCE = "tier_training"


@dataclass
class TierModel:
    """One tier's shipped model: where it is and how it was made."""

    tier: str
    spec: ArchSpec
    checkpoint: Path
    json_path: Path
    metrics: dict[str, Any]


def arch_id(spec: ArchSpec) -> str:
    """Short stable folder name of an architecture (its string can exceed path limits)."""
    return hashlib.sha256(spec.to_string().encode()).hexdigest()[:12]


def spec_from_arch_file(path: Path) -> ArchSpec:
    """The architecture of a tier JSON (``search/<tier>.json``, ``models/<preset>/<tier>.json``)."""
    from mobile_pipeline.nets.spec import SpecError

    if not Path(path).is_file():
        raise SpecError(f"arch: {path} is not a file; pass a tier JSON such as models/demo/npu.json")
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise SpecError(f"arch: {path} is not valid JSON ({err})") from None
    if isinstance(document, dict) and isinstance(document.get("spec"), dict):
        return ArchSpec.from_dict(document["spec"])
    if isinstance(document, dict) and isinstance(document.get("arch"), str):
        return ArchSpec.from_string(document["arch"])
    raise SpecError(f"arch: {path} has neither a 'spec' object nor an 'arch' string (a search result has both)")


def tier_train_config(cfg: Any, spec: ArchSpec) -> Any:
    """``cfg.train`` with the tier-training steps and learning rate, for ``spec``."""
    t = cfg.tier_train
    return cfg.train.model_copy(update={
        "arch": spec.to_string(), "paired_steps": t.paired_steps, "adversarial_steps": t.adversarial_steps,
        "lr": t.lr if t.lr is not None else cfg.train.lr,
    })


def _say(message: str, progress: bool) -> None:
    if progress:
        print(f"[tiers] {message}", file=sys.stderr, flush=True)


def group_by_architecture(search_dir: Path, tiers: list[str]) -> dict[str, tuple[ArchSpec, list[str]]]:
    """Architecture string -> (spec, the tiers whose search picked it), in tier order."""
    groups: dict[str, tuple[ArchSpec, list[str]]] = {}
    for tier in tiers:
        path = Path(search_dir) / f"{tier}.json"
        if not path.is_file():
            raise FileNotFoundError(f"no search result {path}; run the search stage for tier {tier!r} first")
        document = json.loads(path.read_text(encoding="utf-8"))
        spec = ArchSpec.from_dict(document["spec"])
        groups.setdefault(spec.to_string(), (spec, []))[1].append(tier)
    return groups


def train_tiers(cfg: Any, dataset_dir: Path, search_dir: Path, out_dir: Path, *, reference: Path | None,
                tiers: list[str] | None = None, resume: bool = False, progress: bool = True) -> dict[str, TierModel]:
    """Train every tier's searched architecture once and write ``<tier>.pt`` / ``<tier>.json``.

    Args:
        cfg: the release config (``tier_train`` steps and switches, ``train`` recipe).
        dataset_dir: the data stage's dataset.
        search_dir: the search stage's outputs (``<tier>.json``, ``<tier>.pt`` = supernet slice).
        out_dir: where this stage writes (layout in the module docstring).
        reference: the ``train`` stage's generator to distill from (None or
            ``tier_train.distill: false`` = no distillation).
        tiers: tiers to train (default ``cfg.search.tiers``).
        resume: continue interrupted runs from their last checkpoint.
        progress: per-architecture lines and Lightning's progress bar.
    """
    from mobile_pipeline.data.dataset import load_dataset
    from mobile_pipeline.quality.heldout import evaluate_generator
    from mobile_pipeline.train.checkpoint import load_generator, read_generator_state, save_generator
    from mobile_pipeline.train.runner import GENERATOR_FILE, METRICS_FILE, train_stylizer

    out_dir, search_dir = Path(out_dir), Path(search_dir)
    heldout = load_dataset(dataset_dir).heldout_pairs()  # the look measures' images, read once
    tiers = list(tiers or cfg.search.tiers)
    groups = group_by_architecture(search_dir, tiers)
    distill_from = reference if (reference is not None and cfg.tier_train.distill) else None
    _say(f"{len(groups)} architecture(s) for {len(tiers)} tier(s): "
         + "; ".join(f"{', '.join(ts)}" for _, ts in groups.values()), progress)
    results: dict[str, TierModel] = {}
    for index, (text, (spec, group)) in enumerate(groups.items(), start=1):
        run_dir = out_dir / RUNS_DIR / arch_id(spec)
        finished = (run_dir / GENERATOR_FILE).is_file() and (run_dir / METRICS_FILE).is_file()
        started = time.perf_counter()
        if finished:
            _say(f"[{index}/{len(groups)}] {', '.join(group)}: reusing the finished run {run_dir.name}", progress)
            metrics = json.loads((run_dir / METRICS_FILE).read_text(encoding="utf-8"))
        else:
            init = None
            if cfg.tier_train.init == "supernet":
                init_spec, init = read_generator_state(search_dir / f"{group[0]}.pt")
                if init_spec != spec:
                    raise ValueError(f"{search_dir / (group[0] + '.pt')} holds {init_spec.to_string()}, "
                                     f"but {group[0]}.json names {text}; rerun the search stage")
            _say(f"[{index}/{len(groups)}] {', '.join(group)}: training {text}", progress)
            result = train_stylizer(cfg, dataset_dir, run_dir, spec=spec, init_state_dict=init, resume=resume,
                                    progress=progress, train_cfg=tier_train_config(cfg, spec),
                                    reference_checkpoint=distill_from)
            metrics = result.metrics
        generator = load_generator(run_dir / GENERATOR_FILE)
        look = evaluate_generator(generator, heldout).look.to_dict()
        for tier in group:
            provenance = {"source": TIER_TRAINING_SOURCE, "tier": tier, "arch": text, "run": f"{RUNS_DIR}/{run_dir.name}",
                          "init": cfg.tier_train.init, "distilled_from": str(distill_from) if distill_from else None}
            checkpoint = save_generator(generator, out_dir / f"{tier}.pt", provenance=provenance)
            document = json.loads((search_dir / f"{tier}.json").read_text(encoding="utf-8"))
            document["checkpoint"] = checkpoint.name
            document["training"] = {
                **provenance, "shared_with": [t for t in group if t != tier],
                "paired_steps": metrics.get("paired_steps"), "adversarial_steps": metrics.get("adversarial_steps"),
                "train_seconds": metrics.get("train_seconds"),
                "seconds_this_run": round(time.perf_counter() - started, 2) if not finished else None,
                "heldout": {"psnr_db": metrics.get("psnr_db"), "ssim": metrics.get("ssim"),
                            "images": metrics.get("val_images"), **look},
            }
            json_path = atomic_write_json(out_dir / f"{tier}.json", document)
            results[tier] = TierModel(tier, spec, checkpoint, json_path, document["training"])
        _say(f"[{index}/{len(groups)}] {', '.join(group)}: held-out {metrics.get('psnr_db', float('nan')):.2f} dB, "
             f"ink recall {look['ink_recall']:.2f}, texture kept {look['texture_kept']:.2f}", progress)
    return results

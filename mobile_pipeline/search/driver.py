"""The search stage: supernet once, NNI regularized evolution per tier, fine-tune winners.

Cost model of the whole stage (why it fits minutes on a CPU): the supernet is trained once
(sandwich rule); a candidate costs a MAC count (NNI FlopsProfiler at a quarter resolution,
scaled exactly), a LUT latency lookup and, only if it is within the tier's budget, a
weight-inherited inference on a few held-out crops (BatchNorm re-estimated first). Scores
are cached per architecture across tiers. Each tier's winner is then fine-tuned briefly.

NNI is driven the documented way: ``NasExperiment(StylizerSpace, FunctionalEvaluator,
RegularizedEvolution)`` with ``SequentialEngineConfig`` (in-process trials, no NNI manager).
Over-budget candidates report a negative score (minus how far over budget they are), so
evolution's tournaments steer back inside the budget without spending inference on them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mobile_pipeline.nets.spec import ArchSpec
from mobile_pipeline.search.budget import CandidateMetrics, budget_violations, forbidden_found, violation_ratio
from mobile_pipeline.search.space import SPACES, SpaceChoices
from mobile_pipeline.utils.atomic import atomic_output, atomic_write_json

_log = logging.getLogger(__name__)


class TierSearchError(RuntimeError):
    """No candidate met a tier's budget; the message names the budget(s) nobody met."""


@dataclass
class TierResult:
    """One tier's winner and where its files are."""

    tier: str
    spec: ArchSpec
    macs: int
    params: int
    latency_ms: float
    supernet_psnr_db: float
    psnr_db: float
    json_path: Path
    checkpoint: Path


def build_default_lut(progress: bool = True, max_seconds: float | None = None, space: str = "default",
                      resolutions: tuple[int, ...] = (256,)) -> Path:
    """Measure the LUT's missing entries for ``space`` (``scripts/build_latency_lut.py`` does the same)."""
    from mobile_pipeline.search.lut_build import build_lut, default_lut_specs

    specs, reference = default_lut_specs(space=space)
    return build_lut(specs, list(resolutions), reference=reference, progress=progress, max_seconds=max_seconds)


# ------------------------------------------------------------------ data
def _dataset_tensors(dataset_dir: Path, cfg: Any) -> tuple[Any, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Patch sampler over the training pairs, and the held-out (photo, target) tensors
    candidates are scored on: whole images (``search.eval_size`` None) or center crops."""
    from mobile_pipeline.data.dataset import load_dataset
    from mobile_pipeline.data.sampler import PatchSampler

    dataset = load_dataset(dataset_dir)
    train = dataset.pairs("train")
    val = dataset.pairs("val") or train
    if not train:
        raise TierSearchError(f"dataset {dataset_dir} has no training pairs; rebuild it with `mobile-pipeline data`")
    s = cfg.search
    sampler = PatchSampler(train, patch_size=s.patch_size, seed=s.seed)
    chosen = val[: s.eval_images]
    if s.eval_size is not None:
        side = min(s.eval_size, *(min(p.shape[0], p.shape[1]) for p, _ in chosen))
        side -= side % 8
        if side < 8:
            raise TierSearchError(f"held-out images of {dataset_dir} are too small to score candidates (< 8 px)")
        crops = []
        for photo, target in chosen:
            top, left = (photo.shape[0] - side) // 2, (photo.shape[1] - side) // 2
            crops.append((photo[top:top + side, left:left + side], target[top:top + side, left:left + side]))
        chosen = crops

    def to_tensor(image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(255.0)

    return sampler, [(to_tensor(photo), to_tensor(target)) for photo, target in chosen]


def heldout_psnr(model: torch.nn.Module, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Mean PSNR (dB) of ``model`` over held-out (photo, target) tensors, each image once."""
    from mobile_pipeline.quality.image import psnr

    with torch.no_grad():
        return float(np.mean([psnr(model(x), y) for x, y in pairs]))


# ------------------------------------------------------------------ the searcher
class _Searcher:
    """State shared by all tiers of one run: supernet, caches, the event log."""

    def __init__(self, cfg: Any, dataset_dir: Path, out_dir: Path, table: dict, latency: Any, progress: bool):
        from mobile_pipeline.search.supernet import Supernet

        self.cfg, self.s, self.out_dir, self.table = cfg, cfg.search, out_dir, table
        self.latency, self.progress = latency, progress
        self.choices = SPACES[self.s.space]
        self.sampler, self.val_pairs = _dataset_tensors(dataset_dir, cfg)
        self.events: list[dict[str, Any]] = []
        self.scores: dict[str, float] = {}
        self.metrics: dict[tuple[str, str], CandidateMetrics] = {}
        self.candidates: dict[str, list[dict[str, Any]]] = {}
        torch.manual_seed(self.s.seed)
        self.supernet = Supernet(self.choices, seed=self.s.seed)
        self.loss_fn = _paired_loss_fn(cfg)
        # The train stage's model: a distillation target for the supernet (set by run_search).
        self.reference: torch.nn.Module | None = None
        self.reference_sha: str | None = None

    def log(self, event: dict[str, Any]) -> None:
        event = {"time": round(time.time(), 3), **event}
        self.events.append(event)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        photos, targets = self.sampler.batch_at(step, self.s.batch_size)
        return torch.from_numpy(photos), torch.from_numpy(targets)

    # ---------------------------------------------------------- supernet
    def train_supernet(self, dataset_dir: Path) -> None:
        """Train once, or load the cached bank of an identical earlier run."""
        from mobile_pipeline.search.supernet import train_supernet

        key = _supernet_key(self.cfg, self.choices, dataset_dir, self.reference_sha)
        # The trained bank is a cache (content-addressed by config + dataset), not an output.
        path = Path(self.cfg.cache_dir) / "search" / f"supernet-{key[:16]}.pt"
        if path.is_file():
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if saved.get("key") == key:
                self.supernet.load_state_dict(saved["state_dict"])
                self.supernet.eval()
                self.log({"event": "supernet_loaded", "path": str(path)})
                return
        if self.reference is not None and self.s.warm_start:
            if self.supernet.contains(self.reference.spec):
                written = self.supernet.warm_start(self.reference)
                self.log({"event": "supernet_warm_start", "arch": self.reference.spec.to_string(), "tensors": written})
            else:
                self.log({"event": "supernet_cold_start", "reason": f"the reference {self.reference.spec.to_string()} "
                                                                   f"is outside the '{self.s.space}' grid"})
        start = time.monotonic()
        losses = train_supernet(self.supernet, self.batch, self.s.supernet_steps, lr=self.s.lr,
                                n_random=self.s.n_random, seed=self.s.seed, progress=self.progress,
                                loss_fn=self.loss_fn, reference=self.reference,
                                weight_reference=self.s.weight_reference, weight_inplace=self.s.weight_inplace)
        self.log({"event": "supernet_trained", "steps": self.s.supernet_steps, "seconds": time.monotonic() - start,
                  "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None})
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as tmp:
            torch.save({"key": key, "state_dict": self.supernet.state_dict()}, tmp)

    # ---------------------------------------------------------- candidates
    def candidate_metrics(self, spec: ArchSpec, tier: str) -> CandidateMetrics:
        key = (spec.to_string(), tier)
        if key not in self.metrics:
            from mobile_pipeline.nets.complexity import count_macs, count_params, peak_activation_bytes

            t = self.table[tier]
            side = t.resolution
            hw = (side, side)
            # The project's one MAC counter; MACs, params and peak memory come from one cached run per spec.
            macs = count_macs(spec, hw)
            ops = self.latency.ops_for(spec, hw)
            forbidden = forbidden_found(ops, t.forbidden_ops) + t.allows_arch(spec)
            self.metrics[key] = CandidateMetrics(
                spec=spec.to_string(), input_hw=hw, macs=macs, params=count_params(spec),
                peak_activation_bytes=peak_activation_bytes(spec, hw),
                latency_ms=self.latency.predict_ms(spec, tier, hw), forbidden=forbidden)
        return self.metrics[key]

    def quality(self, spec: ArchSpec) -> float:
        """Held-out PSNR of the sub-network with inherited weights (BN re-estimated)."""
        from mobile_pipeline.search.supernet import recalibrate_bn

        text = spec.to_string()
        if text not in self.scores:
            model = self.supernet.extract(spec)
            recalibrate_bn(model, (self.batch(100_000 + i)[0] for i in range(self.s.bn_batches)))
            self.scores[text] = heldout_psnr(model, self.val_pairs)
        return self.scores[text]

    def evaluate(self, tier: str, spec: ArchSpec) -> float:
        """NNI's trial: the score evolution maximises (negative = over budget)."""
        metrics = self.candidate_metrics(spec, tier)
        violations = budget_violations(metrics, self.table[tier])
        psnr = None if violations else self.quality(spec)
        score = psnr if psnr is not None else -violation_ratio(metrics, self.table[tier])
        record = {"tier": tier, "spec": spec.to_string(), "macs": metrics.macs, "params": metrics.params,
                  "peak_activation_bytes": metrics.peak_activation_bytes, "latency_ms": metrics.latency_ms,
                  "violations": violations, "within_budget": not violations, "psnr_db": psnr, "score": score}
        self.candidates.setdefault(tier, []).append(record)
        self.log({"event": "candidate", **record})
        return score

    # ---------------------------------------------------------- NNI
    def evolve(self, tier: str) -> None:
        """One NNI experiment: RegularizedEvolution over StylizerSpace, sequential engine."""
        import nni
        from nni.nas.evaluator import FunctionalEvaluator
        from nni.nas.experiment import NasExperiment
        from nni.nas.experiment.config import SequentialEngineConfig
        from nni.nas.strategy import RegularizedEvolution

        from mobile_pipeline.search.space import StylizerSpace

        def trial(model: StylizerSpace) -> None:
            nni.report_final_result(self.evaluate(tier, model.spec))

        space = StylizerSpace(self.choices, build=False)
        dims = len(self.choices.mutables())
        strategy = RegularizedEvolution(population_size=self.s.population, sample_size=self.s.sample_size,
                                        mutation_prob=min(0.5, 2.0 / dims), seed=self.s.seed, dedup=True)
        with tempfile.TemporaryDirectory(prefix="nni-") as workdir, _quiet_nni():
            experiment = NasExperiment(space, FunctionalEvaluator(trial), strategy)
            experiment.config.execution_engine = SequentialEngineConfig(max_model_count=self.s.trials)
            experiment.config.experiment_working_directory = workdir
            experiment.config.max_trial_number = self.s.trials
            experiment.run()
            experiment.stop()  # now, while the working directory exists (NNI would do it at exit)

    # ---------------------------------------------------------- finetune
    def finetune(self, spec: ArchSpec) -> tuple[torch.nn.Module, float]:
        """Inherited weights, BN re-estimated, then ``finetune_steps`` paired steps."""
        from mobile_pipeline.search.supernet import recalibrate_bn

        model = self.supernet.extract(spec)
        recalibrate_bn(model, (self.batch(100_000 + i)[0] for i in range(self.s.bn_batches)))
        if self.s.finetune_steps:
            model.train()
            optimizer = torch.optim.Adam(model.parameters(), lr=self.s.lr * 0.5)
            for step in range(self.s.finetune_steps):
                photos, targets = self.batch(200_000 + step)
                optimizer.zero_grad(set_to_none=True)
                loss = self.loss_fn(model.forward_pyramid(photos), targets)
                loss.backward()
                optimizer.step()
        model.eval()
        return model, heldout_psnr(model, self.val_pairs)

    def finetune_or_keep(self, spec: ArchSpec, inherited_psnr: float) -> tuple[torch.nn.Module, float, bool]:
        """Fine-tune; keep the inherited weights instead if a (too) short fine-tune made the
        held-out PSNR worse. Returns (model, psnr, fine_tuned)."""
        from mobile_pipeline.search.supernet import recalibrate_bn

        model, tuned = self.finetune(spec)
        if tuned >= inherited_psnr or not self.s.finetune_steps:
            return model, tuned, bool(self.s.finetune_steps)
        model = self.supernet.extract(spec)
        recalibrate_bn(model, (self.batch(100_000 + i)[0] for i in range(self.s.bn_batches)))
        return model, inherited_psnr, False


def _paired_loss_fn(cfg: Any):
    """The training stage's stage-1 loss (L1 + multiscale + edge), same weights as `train`."""
    try:
        from mobile_pipeline.train.losses import PairedWeights, paired_loss

        weights = PairedWeights(l1=cfg.train.weight_l1, multiscale=cfg.train.weight_multiscale,
                                edge=cfg.train.weight_edge)
        return lambda pyramid, target: paired_loss(pyramid, target, weights)["loss"]
    except ImportError:  # train stage not installed: the supernet's own L1 + multiscale
        from mobile_pipeline.search.supernet import paired_loss

        return lambda pyramid, target: paired_loss(pyramid, target, cfg.train.weight_multiscale)


def _supernet_key(cfg: Any, choices: SpaceChoices, dataset_dir: Path, reference_sha: str | None = None) -> str:
    manifest = Path(dataset_dir) / "manifest.json"
    payload = {"search": cfg.search.model_dump(mode="json", exclude={"tiers", "trials", "population", "sample_size",
                                                                    "finetune_steps", "resolution"}),
               "reference": reference_sha if (cfg.search.weight_reference > 0 or cfg.search.warm_start) else None,
               "train_weights": [cfg.train.weight_l1, cfg.train.weight_multiscale, cfg.train.weight_edge],
               "choices": repr(choices),
               "data": hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else None}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class _quiet_nni:
    """NNI logs every trial at INFO with colours; keep our progress output readable."""

    def __enter__(self) -> None:
        self._loggers = [logging.getLogger(name) for name in ("nni", "nni.nas", "nni.runtime")]
        self._levels = [lg.level for lg in self._loggers]
        for lg in self._loggers:
            lg.setLevel(logging.ERROR)

    def __exit__(self, *exc: Any) -> None:
        for lg, level in zip(self._loggers, self._levels):
            lg.setLevel(level)


def _failure_message(tier: str, spec_table: Any, candidates: list[dict[str, Any]]) -> str:
    """Name the budget(s) no candidate met, with the closest value seen."""
    budgets = spec_table.budgets
    checks = [("macs", budgets.macs), ("params", budgets.params), ("latency_ms", budgets.latency_ms),
              ("peak_activation_bytes", budgets.peak_activation_bytes)]
    parts = []
    for name, limit in checks:
        best = min(c[name] for c in candidates)
        if best > limit:
            parts.append(f"{name} <= {limit} (best candidate: {best:.4g})")
    forbidden = [c for c in candidates if any(v.startswith("forbidden") or "not allowed" in v for v in c["violations"])]
    if not parts and len(forbidden) == len(candidates):
        parts.append("op constraints (every candidate used a forbidden op)")
    if not parts:
        parts.append("all budgets jointly (each budget was met by some candidate, never all at once)")
    return (f"tier {tier}: no candidate among {len(candidates)} met " + "; ".join(parts)
            + ". Raise search.trials, widen the space or relax device_tiers/tiers.yaml.")


def select_winner(inside: list[dict[str, Any]], tolerance_db: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tier's winner among within-budget candidates, and how it was chosen.

    Candidates whose supernet score is within ``tolerance_db`` of the best one are treated as
    tied: the supernet cannot rank them (``benchmarks/bench_search.py --ranking`` measures how
    well it ranks at all), and among tied candidates the one with the most MACs is taken,
    because the tier-training stage that follows turns capacity into quality (a larger
    within-budget model is the better bet for a stronger phone). ``tolerance_db=0`` is the
    plain argmax of the score (lower latency breaks exact ties).
    """
    top = max(c["psnr_db"] for c in inside)
    band = [c for c in inside if c["psnr_db"] >= top - tolerance_db]
    if tolerance_db > 0:
        best = max(band, key=lambda c: (c["macs"], c["psnr_db"]))
    else:
        best = max(band, key=lambda c: (c["psnr_db"], -c["latency_ms"]))
    return best, {"rule": "largest MACs within the score band" if tolerance_db > 0 else "best score",
                  "score_tolerance_db": tolerance_db, "best_score_db": top, "candidates_in_band": len(band)}


# ------------------------------------------------------------------ entry point
def run_search(cfg: Any, dataset_dir: Path, out_dir: Path, *, tiers: list[str] | None = None,
               teacher_checkpoint: Path | None = None, progress: bool = True,
               latency_model: Any = None, tier_table: dict | None = None) -> dict[str, TierResult]:
    """Search one architecture per tier and write the outputs (see the module docstring).

    Args:
        cfg: the release config (``cfg.search`` drives the search).
        dataset_dir: dataset written by the data stage.
        out_dir: where ``<tier>.json``, ``<tier>.pt``, ``pareto.png``, ``search_log.jsonl`` go.
        tiers: tiers to search (default ``cfg.search.tiers``).
        teacher_checkpoint: the train stage's generator: a distillation target of the supernet
            (``search.weight_reference``); its held-out PSNR is logged as the reference
            the candidates' scores can be read against.
        progress: progress bars / per-stage lines.
        latency_model: a loaded :class:`LatencyModel` (default: the committed LUT).
        tier_table: tier table (default ``load_tier_table()``).

    Raises:
        TierSearchError: some tier had no candidate within budget (the other tiers' outputs
            are still written); the message names the budget nobody met.
    """
    from mobile_pipeline.search.latency import LatencyModel
    from mobile_pipeline.search.report import plot_pareto, write_log
    from mobile_pipeline.tiers.table import load_tier_table
    from mobile_pipeline.train.checkpoint import save_generator

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = tier_table or load_tier_table()
    tiers = list(tiers or cfg.search.tiers)
    unknown = [t for t in tiers if t not in table]
    if unknown:
        raise TierSearchError(f"unknown tier(s) {unknown}; the tier table defines {sorted(table)}")
    latency = latency_model or LatencyModel.load(tiers=table)
    say = print if progress else (lambda *a, **k: None)
    started = time.monotonic()
    searcher = _Searcher(cfg, Path(dataset_dir), out_dir, table, latency, progress)
    searcher.log({"event": "start", "tiers": tiers, "space_size": searcher.choices.size(),
                  "search": cfg.search.model_dump(mode="json"), "tier_scales": latency.tier_scales,
                  "scale_sources": getattr(latency, "scale_sources", {})})
    if teacher_checkpoint is not None:
        from mobile_pipeline.train.checkpoint import load_generator
        from mobile_pipeline.utils.atomic import sha256_file

        teacher = load_generator(Path(teacher_checkpoint)).requires_grad_(False)
        searcher.reference, searcher.reference_sha = teacher, sha256_file(Path(teacher_checkpoint))
        searcher.log({"event": "teacher_reference", "checkpoint": str(teacher_checkpoint),
                      "psnr_db": heldout_psnr(teacher, searcher.val_pairs)})
    say(f"[search] supernet: {cfg.search.supernet_steps} sandwich steps over {searcher.choices.size():,} architectures")
    searcher.train_supernet(Path(dataset_dir))
    results: dict[str, TierResult] = {}
    failures: list[str] = []
    winners: dict[str, dict[str, Any]] = {}
    for tier in tiers:
        t0 = time.monotonic()
        say(f"[search] tier {tier}: NNI RegularizedEvolution, {cfg.search.trials} trials "
            f"(budget {table[tier].budgets.macs / 1e9:.2f} GMACs, {table[tier].budgets.latency_ms:.0f} ms "
            f"at {table[tier].resolution} px)")
        searcher.evolve(tier)
        cands = searcher.candidates.get(tier, [])
        inside = [c for c in cands if c["within_budget"]]
        if not inside:
            message = _failure_message(tier, table[tier], cands) if cands else f"tier {tier}: no candidate evaluated"
            failures.append(message)
            searcher.log({"event": "tier_failed", "tier": tier, "message": message})
            write_log(out_dir / "search_log.jsonl", searcher.events)
            continue
        best, selection = select_winner(inside, cfg.search.score_tolerance_db)
        winners[tier] = best
        spec = ArchSpec.from_string(best["spec"])
        model, tuned_psnr, fine_tuned = searcher.finetune_or_keep(spec, best["psnr_db"])
        checkpoint = save_generator(model, out_dir / f"{tier}.pt")
        predicted = {name: latency.predict_ms(spec, name, (table[name].resolution,) * 2)
                     for name in table if name in latency.tier_scales}
        side = cfg.search.resolution
        document = {
            "tier": tier, "arch": spec.to_string(), "spec": spec.to_dict(), "resolution": table[tier].resolution,
            "macs": best["macs"], "params": best["params"], "peak_activation_bytes": best["peak_activation_bytes"],
            f"macs_at_{side}": int(best["macs"] * (side / table[tier].resolution) ** 2),
            "predicted_latency_ms": predicted,
            "predicted_local_ms": latency.predict_local_ms(spec, (table[tier].resolution,) * 2),
            "budgets": table[tier].budgets.model_dump(), "within_budget": True,
            "latency_source": latency.scale_sources.get(tier),
            "supernet_psnr_db": best["psnr_db"], "finetuned_psnr_db": tuned_psnr, "selection": selection,
            "finetune_steps": cfg.search.finetune_steps, "fine_tuned": fine_tuned, "checkpoint": checkpoint.name,
            "search": {"trials": len(cands), "within_budget": len(inside), "seed": cfg.search.seed,
                       "strategy": "nni.nas.strategy.RegularizedEvolution", "engine": "SequentialEngineConfig",
                       "seconds": round(time.monotonic() - t0, 2)},
        }
        json_path = atomic_write_json(out_dir / f"{tier}.json", document)
        results[tier] = TierResult(tier, spec, best["macs"], best["params"], best["latency_ms"], best["psnr_db"],
                                   tuned_psnr, json_path, checkpoint)
        searcher.log({"event": "winner", "tier": tier, "spec": spec.to_string(), "finetuned_psnr_db": tuned_psnr,
                      "fine_tuned": fine_tuned})
        say(f"[search] tier {tier}: {spec.to_string()}  {best['macs'] / 1e9:.3f} GMACs  "
            f"{best['latency_ms']:.1f} ms  {best['psnr_db']:.2f} dB"
            + (f" -> {tuned_psnr:.2f} dB after fine-tune" if fine_tuned else " (supernet score; the tiers stage trains it)"))
        write_log(out_dir / "search_log.jsonl", searcher.events)
    searcher.log({"event": "done", "seconds": round(time.monotonic() - started, 2),
                  "scored_architectures": len(searcher.scores), "failed_tiers": len(failures)})
    plot_pareto(out_dir / "pareto.png", {t: searcher.candidates.get(t, []) for t in tiers}, winners,
                {t: table[t].budgets.latency_ms for t in tiers})
    write_log(out_dir / "search_log.jsonl", searcher.events)
    if failures:
        raise TierSearchError("\n".join(failures))
    return results

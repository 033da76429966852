"""``mobile-pipeline release``: data -> train -> search -> export -> bench -> manifest -> report.

Each stage is a :class:`~mobile_pipeline.stage_cache.Stage` whose key hashes the config
sections it reads, the ``device_tiers/`` files it declares in ``reads``, the package version
and its upstream outputs' bytes, so an unchanged rerun is all cache hits and a change reruns
only what depends on it. :func:`plan_release` says which stages would run, and why. The
finished release is assembled in a temporary folder and renamed to ``export/<release-id>/`` in one step.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobile_pipeline.config import ReleaseConfig, config_hash
from mobile_pipeline.stage_cache import Stage, StageCache, StageContext, StageResult
from mobile_pipeline.stage_plan import PlanRow
from mobile_pipeline.utils.atomic import atomic_output, atomic_write_json

STAGE_ORDER: tuple[str, ...] = ("data", "train", "search", "tiers", "export", "bench", "manifest", "report")

# The device_tiers/ files each stage reads (part of its cache key). The search reads budgets
# and constraints, the latency LUT and its calibration; export the variants and op/arch
# constraints; the manifest the classifier's data (catalog, overrides, tier table), the
# latency model (predicted ms) and the imported measurements (Core ML verification).
SEARCH_READS: tuple[str, ...] = ("tiers.yaml", "latency_lut.json", "calibration.yaml")
EXPORT_READS: tuple[str, ...] = ("tiers.yaml",)
MANIFEST_READS: tuple[str, ...] = ("tiers.yaml", "catalog.yaml", "families.yaml", "overrides.yaml",
                                   "latency_lut.json", "calibration.yaml", "measurements")


@dataclass
class ReleaseOutcome:
    release_id: str
    release_dir: Path
    results: dict[str, StageResult]
    seconds: float


def release_id_for(cfg: ReleaseConfig) -> str:
    """``cfg.release_id`` or ``<preset>-<first 8 hex of the config hash>``."""
    return cfg.release_id or f"{cfg.preset}-{config_hash(cfg)[:8]}"


# ----------------------------------------------------------------------------- stages
def _data_stage(cfg: ReleaseConfig) -> Stage:
    def run(ctx: StageContext) -> dict[str, Any]:
        from mobile_pipeline.data.dataset import build_dataset

        manifest = build_dataset(cfg.data, ctx.out_dir / "dataset", progress=True)
        return _summary_of(manifest)

    external = tuple(p for p in (cfg.data.source, cfg.data.paired_dir, cfg.data.style_dir, cfg.data.keyframes_dir) if p)
    return Stage("data", run, config={"data": cfg.data.model_dump(mode="json")}, external=external)


def _train_stage(cfg: ReleaseConfig) -> Stage:
    def run(ctx: StageContext) -> dict[str, Any]:
        from mobile_pipeline.train.runner import train_stylizer

        result = train_stylizer(cfg, ctx.inputs["data"] / "dataset", ctx.out_dir, resume=ctx.resume, progress=True)
        return {"checkpoint": str(result.checkpoint.relative_to(ctx.out_dir)), "arch": result.spec.to_string(),
                **{k: v for k, v in result.metrics.items() if isinstance(v, (int, float, str))}}

    return Stage("train", run, deps=("data",), config={"train": cfg.train.model_dump(mode="json"), "seed": cfg.seed})


def _search_stage(cfg: ReleaseConfig) -> Stage:
    def run(ctx: StageContext) -> dict[str, Any]:
        from mobile_pipeline.search.driver import run_search

        teacher = ctx.inputs["train"] / _load_summary(ctx.inputs["train"])["checkpoint"]
        results = run_search(cfg, ctx.inputs["data"] / "dataset", ctx.out_dir, tiers=list(cfg.search.tiers),
                             teacher_checkpoint=teacher, progress=True)
        return {"tiers": sorted(results)}

    config = {"search": cfg.search.model_dump(mode="json"), "train": cfg.train.model_dump(mode="json")}
    return Stage("search", run, deps=("data", "train"), config=config, reads=SEARCH_READS)


def _tiers_stage(cfg: ReleaseConfig) -> Stage:
    def run(ctx: StageContext) -> dict[str, Any]:
        from mobile_pipeline.train.tiers import train_tiers

        reference = ctx.inputs["train"] / _load_summary(ctx.inputs["train"])["checkpoint"]
        models = train_tiers(cfg, ctx.inputs["data"] / "dataset", ctx.inputs["search"], ctx.out_dir,
                             reference=reference, tiers=list(cfg.search.tiers), resume=ctx.resume, progress=True)
        return {"architectures": len({m.spec.to_string() for m in models.values()}),
                "psnr_db": {tier: m.metrics["heldout"]["psnr_db"] for tier, m in models.items()}}

    config = {"tier_train": cfg.tier_train.model_dump(mode="json"), "train": cfg.train.model_dump(mode="json"),
              "seed": cfg.seed}
    return Stage("tiers", run, deps=("data", "train", "search"), config=config)


def _export_stage(cfg: ReleaseConfig) -> Stage:
    def run(ctx: StageContext) -> dict[str, Any]:
        from mobile_pipeline.exporters.api import export_tier
        from mobile_pipeline.train.checkpoint import load_generator

        calibration, validation, heldout = _export_images(cfg, ctx.inputs["data"] / "dataset")
        counts: dict[str, Any] = {}
        for tier in cfg.search.tiers:
            tier_dir = ctx.out_dir / tier
            if ctx.resume and (tier_dir / "_tier_done").is_file():
                counts[tier] = "resumed"
                continue
            if tier_dir.exists():
                shutil.rmtree(tier_dir)
            # The tier-trained model ships, never the search's supernet slice.
            generator = load_generator(ctx.inputs["tiers"] / f"{tier}.pt")
            reports = export_tier(generator, tier, tier_dir, calibration=calibration, validation=validation,
                                  jobs=cfg.export.jobs, qnn_emulation_images=cfg.export.qnn_emulation_images,
                                  **_resolution_override(cfg))
            _measure_quality(tier_dir, reports, heldout)
            counts[tier] = {"passed": sum(r.passed for r in reports), "rejected": sum(not r.passed for r in reports)}
            (tier_dir / "_tier_done").write_text("ok")
        return {"tiers": counts}

    config = {"export": cfg.export.model_dump(mode="json")}
    return Stage("export", run, deps=("data", "tiers"), config=config, reads=EXPORT_READS, version="2")


def _bench_stage(cfg: ReleaseConfig) -> Stage:
    def run(ctx: StageContext) -> dict[str, Any]:
        from mobile_pipeline.bench.run import bench_artifacts

        artifacts = sorted(p for p in _passed_artifacts(ctx.inputs["export"]))
        bench_json = bench_artifacts(artifacts, cfg.bench, ctx.out_dir, progress=True)
        return {"bench_json": str(Path(bench_json).relative_to(ctx.out_dir)), "artifacts": len(artifacts)}

    # Latency numbers are measurements, not functions of the inputs: cached like any other
    # stage so a rerun is instant; change bench settings (or clear the cache) to re-measure.
    return Stage("bench", run, deps=("export",), config={"bench": cfg.bench.model_dump(mode="json")})


def _manifest_stage(cfg: ReleaseConfig, release_id: str) -> Stage:
    def run(ctx: StageContext) -> dict[str, Any]:
        from mobile_pipeline.manifest.builder import build_manifest
        from mobile_pipeline.manifest.play import write_play_config

        bench_dir = ctx.inputs["bench"]
        bench_json = bench_dir / _load_summary(bench_dir)["bench_json"]
        manifest = build_manifest(ctx.inputs["export"], ctx.out_dir / "manifest.json", release_id=release_id,
                                  cfg=cfg.manifest, bench_json=bench_json)
        write_play_config(manifest, ctx.out_dir / "play_device_targeting.json")
        from mobile_pipeline.manifest.ai_packs import OUT_DIR, write_ai_packs

        packs = write_ai_packs(manifest, ctx.inputs["export"], ctx.out_dir / OUT_DIR, pack=cfg.manifest.ai_pack_name,
                               delivery=cfg.manifest.ai_pack_delivery)
        return {"models": len(manifest.models), "ai_pack_groups": len(packs.groups)}

    return Stage("manifest", run, deps=("export", "bench"),
                 config={"manifest": cfg.manifest.model_dump(mode="json"), "release_id": release_id},
                 reads=MANIFEST_READS)


def _report_stage(cfg: ReleaseConfig, release_id: str) -> Stage:
    def run(ctx: StageContext) -> dict[str, Any]:
        from mobile_pipeline.report import write_report

        write_report(ctx.out_dir, release_id=release_id, inputs=ctx.inputs, cfg=cfg)
        return {"report": "report.html"}

    return Stage("report", run, deps=("data", "train", "search", "tiers", "export", "bench", "manifest"),
                 config={"release_id": release_id, "preset": cfg.preset, "tiers": list(cfg.search.tiers)}, version="2")


# ----------------------------------------------------------------------------- driver
def build_stages(cfg: ReleaseConfig) -> list[Stage]:
    release_id = release_id_for(cfg)
    return [_data_stage(cfg), _train_stage(cfg), _search_stage(cfg), _tiers_stage(cfg), _export_stage(cfg),
            _bench_stage(cfg), _manifest_stage(cfg, release_id), _report_stage(cfg, release_id)]


def plan_release(cfg: ReleaseConfig, stages: list[Stage] | None = None) -> list[PlanRow]:
    """Which stages ``run_release(cfg)`` would run and why; runs nothing, writes nothing."""
    from mobile_pipeline.stage_plan import plan

    return plan(StageCache(cfg.cache_dir, log=lambda _: None), stages if stages is not None else build_stages(cfg))


def run_release(cfg: ReleaseConfig, log=print) -> ReleaseOutcome:
    """Run (or reuse) every stage, then publish ``<output_root>/<release-id>/`` atomically."""
    start = time.perf_counter()
    release_id = release_id_for(cfg)
    cache = StageCache(cfg.cache_dir, log=log)
    stages = build_stages(cfg)
    for index, stage in enumerate(stages, start=1):
        cache.run(stage, index, len(stages))
    release_dir = Path(cfg.output_root) / release_id
    _publish(cache.results, release_dir, release_id)
    outcome = ReleaseOutcome(release_id, release_dir, cache.results, time.perf_counter() - start)
    log(format_summary(outcome))
    return outcome


def _publish(results: dict[str, StageResult], release_dir: Path, release_id: str) -> None:
    """Assemble the release folder from cached stage outputs in a temp dir, rename at the end."""
    for stale in release_dir.parent.glob(f".{release_id}.*.tmp"):  # a killed earlier publish
        shutil.rmtree(stale, ignore_errors=True)
    with atomic_output(release_dir, is_dir=True) as tmp:
        export_dir = results["export"].out_dir
        for tier_dir in sorted(p for p in export_dir.iterdir() if p.is_dir()):
            shutil.copytree(tier_dir, tmp / tier_dir.name, ignore=shutil.ignore_patterns("_tier_done"))
        for name in ("manifest.json", "play_device_targeting.json"):
            shutil.copy2(results["manifest"].out_dir / name, tmp / name)
        shutil.copytree(results["manifest"].out_dir / "play_ai_packs", tmp / "play_ai_packs")  # manifest.ai_packs.OUT_DIR
        # The searched architecture per tier (spec, MACs, budgets, scores), its checkpoint, the
        # Pareto plot and the search log: what `mobile-pipeline search` writes to models/.
        shutil.copytree(results["search"].out_dir, tmp / "search", ignore=shutil.ignore_patterns("_*"))
        # The shipped (tier-trained) checkpoints and their provenance, and the reference model
        # they were distilled from (kept for evaluation and retraining; no phone downloads it).
        (tmp / "models").mkdir()
        for path in sorted(results["tiers"].out_dir.glob("*.*")):
            if path.is_file() and path.suffix in (".pt", ".json") and not path.name.startswith("_"):
                shutil.copy2(path, tmp / "models" / path.name)
        train_dir = results["train"].out_dir
        shutil.copy2(train_dir / results["train"].summary["checkpoint"], tmp / "models" / "reference.pt")
        if (train_dir / "metrics.json").is_file():
            shutil.copy2(train_dir / "metrics.json", tmp / "models" / "reference.json")
        bench_dir = results["bench"].out_dir
        for path in bench_dir.iterdir():
            if path.is_file() and not path.name.startswith("_"):
                shutil.copy2(path, tmp / path.name)
        report_dir = results["report"].out_dir
        for path in report_dir.iterdir():
            if path.name.startswith("_"):
                continue
            if path.is_dir():
                shutil.copytree(path, tmp / path.name)
            else:
                shutil.copy2(path, tmp / path.name)
        atomic_write_json(tmp / "stages.json", {
            "release_id": release_id,
            "stages": {name: {"key": r.key, "cached": r.cached, "seconds": round(r.seconds, 2), "summary": r.summary}
                       for name, r in results.items()},
        })


def format_summary(outcome: ReleaseOutcome) -> str:
    lines = ["", f"release {outcome.release_id}: {outcome.seconds:.1f} s", f"{'stage':<10} {'status':<8} {'seconds':>8}  summary"]
    for name in STAGE_ORDER:
        result = outcome.results.get(name)
        if result is None:
            continue
        status = "cached" if result.cached else "ran"
        brief = ", ".join(f"{k}={v}" for k, v in result.summary.items() if not isinstance(v, (dict, list)))
        lines.append(f"{name:<10} {status:<8} {result.seconds:8.1f}  {brief[:70]}")
    lines += [
        "",
        f"report:   {outcome.release_dir / 'report.html'}",
        f"manifest: {outcome.release_dir / 'manifest.json'}",
        f"serve it: mobile-pipeline serve --manifest {outcome.release_dir / 'manifest.json'}",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- helpers
def _load_summary(stage_dir: Path) -> dict[str, Any]:
    import json

    from mobile_pipeline.stage_cache import DONE_FILE

    return json.loads((stage_dir / DONE_FILE).read_text(encoding="utf-8"))["summary"]


def _summary_of(manifest: Any) -> dict[str, Any]:
    if hasattr(manifest, "summary"):
        return manifest.summary()
    return {}


def _export_images(cfg: ReleaseConfig, dataset_dir: Path) -> tuple[list, list, list]:
    """Calibration photos (training split), validation photos and the held-out (photo, target)
    pairs shipped quality is measured on (whole images), from one read of the dataset."""
    from mobile_pipeline.data.dataset import load_dataset

    dataset = load_dataset(dataset_dir)
    train = [photo for photo, _ in dataset.pairs("train")]
    heldout = dataset.heldout_pairs()
    validation = [photo for photo, _ in heldout][: cfg.export.validation_images]
    return train[: cfg.export.calibration_images], validation, heldout


def _measure_quality(tier_dir: Path, reports: list, pairs: list) -> None:
    """Held-out quality of every passed, runnable artifact, written into its report."""
    from mobile_pipeline.exporters.report import report_path_for
    from mobile_pipeline.quality.heldout import evaluate_artifact

    for report in reports:
        if not report.passed:
            continue
        artifact = tier_dir / report.artifact
        quality = evaluate_artifact(artifact, pairs)
        if quality is None:
            continue
        report.quality = quality.to_dict()
        atomic_write_json(report_path_for(artifact), report.model_dump(mode="json"))


def _resolution_override(cfg: ReleaseConfig) -> dict[str, Any]:
    return {"resolution": cfg.export.resolution} if cfg.export.resolution else {}


def _passed_artifacts(export_dir: Path) -> list[Path]:
    from mobile_pipeline.exporters.report import REPORT_SUFFIX, load_report

    artifacts = []
    for report_path in export_dir.glob(f"*/*{REPORT_SUFFIX}"):
        report = load_report(report_path)
        if report.passed:
            artifacts.append(report.artifact_path(report_path))
    return artifacts

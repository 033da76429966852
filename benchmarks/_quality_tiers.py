"""Quality of what ships, per tier: ``bench_quality.py --release`` and ``--tiers`` (issue 12).

``--release export/<id>``: every tier's shipped checkpoint and each of its artifacts, scored on
the whole held-out photos against the teacher (PSNR, SSIM, ink-line recall / precision,
texture kept: :mod:`mobile_pipeline.quality`), framed by the photo itself, the release's
reference model and the teacher. Target: every tier's shipped model within 0.3 dB of the
reference model, or better.

``--tiers``: the longer CPU run. The release's first stages (data, reference training,
search, tier training) with ``--tier-steps`` paired steps per tier instead of the demo's,
then the same table in budget order (cpu, dsp, gpu, npu). Target: the npu tier beats the
cpu tier by >= 0.5 dB; the table says whether capacity separates at this budget at all.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from mobile_pipeline.utils.text_table import text_table

BUDGET_ORDER = ("cpu", "dsp", "gpu", "npu")
WITHIN_REFERENCE_DB = 0.3
NPU_OVER_CPU_DB = 0.5


def _heldout_pairs(release_dir: Path, preset: str, data: Path | None, work: Path) -> tuple[list, str]:
    """The release's held-out pairs: a given dataset, the stage cache's, or rebuilt (deterministic)."""
    from mobile_pipeline.config import preset_config
    from mobile_pipeline.data.dataset import build_dataset, load_dataset

    if data is not None:
        dataset = load_dataset(data)
        return dataset.heldout_pairs(), str(data)
    stages = json.loads((release_dir / "stages.json").read_text(encoding="utf-8"))["stages"]
    cached = Path(".mp_cache") / "data" / stages["data"]["key"] / "dataset"
    if (cached / "manifest.json").is_file():
        dataset = load_dataset(cached)
        return dataset.heldout_pairs(), str(cached)
    cfg = preset_config(preset)
    build_dataset(cfg.data, work / "data", progress=False)
    dataset = load_dataset(work / "data")
    return dataset.heldout_pairs(), f"rebuilt with preset {preset}"


def bench_release(release_dir: Path, preset: str, data: Path | None, work: Path) -> int:
    """Print the per-tier, per-artifact held-out table of a published release."""
    from mobile_pipeline.exporters.report import REPORT_SUFFIX, load_report
    from mobile_pipeline.quality.release_view import COLUMNS, quality_rows

    models = release_dir / "models"
    tiers = [t for t in BUDGET_ORDER if (models / f"{t}.json").is_file()]
    if not tiers:
        raise SystemExit(f"{release_dir}: no models/<tier>.json; is this a release folder (export/<id>)?")
    pairs, source = _heldout_pairs(release_dir, preset, data, work)
    reports = {t: [load_report(p) for p in sorted((release_dir / t).glob(f"*{REPORT_SUFFIX}"))] for t in tiers}
    reference = models / "reference.pt"
    started = time.perf_counter()
    rows = quality_rows(pairs, models, reference if reference.is_file() else None, tiers, reports)
    print(f"\n== shipped quality of {release_dir.name}: {len(pairs)} whole held-out images ({source}); "
          f"{time.perf_counter() - started:.0f} s")
    print(text_table(COLUMNS, rows))
    return _check_against_reference(rows, tiers)


def _check_against_reference(rows: list[list[str]], tiers: list[str]) -> int:
    psnr = {row[0]: float(row[3]) for row in rows if row[3] not in ("–", "")}
    reference = psnr.get("reference (train stage)")
    if reference is None:
        print("\nno reference model in the release: the within-0.3 dB check cannot run")
        return 0
    misses = []
    for tier in tiers:
        value = psnr[f"{tier} checkpoint"]
        ok = value >= reference - WITHIN_REFERENCE_DB
        print(f"{tier:4}: {value:.2f} dB vs reference {reference:.2f} dB ({value - reference:+.2f}): "
              f"{'within 0.3 dB or better' if ok else 'MISSED'}")
        misses += [] if ok else [tier]
    return 1 if misses else 0


def bench_tiers(preset: str, tier_steps: int, adversarial_steps: int, threads: int, work: Path) -> int:
    """The longer run: data, reference, search, tier training with more steps; budget-order table."""
    from mobile_pipeline.config import preset_config
    from mobile_pipeline.data.dataset import load_dataset
    from mobile_pipeline.nets.complexity import count_macs
    from mobile_pipeline.release import build_stages
    from mobile_pipeline.stage_cache import StageCache
    from mobile_pipeline.train.checkpoint import load_generator
    from mobile_pipeline.quality.heldout import evaluate_generator, score_outputs

    cfg = preset_config(preset, tier_train={"paired_steps": tier_steps, "adversarial_steps": adversarial_steps},
                        train={"num_threads": threads}).model_copy(update={"cache_dir": work / "cache"})
    cache = StageCache(cfg.cache_dir)
    started = time.perf_counter()
    for index, stage in enumerate(build_stages(cfg)[:4], start=1):  # data, train, search, tiers
        cache.run(stage, index, 4)
    seconds = {name: round(r.seconds) for name, r in cache.results.items()}
    dataset = load_dataset(cache.results["data"].out_dir / "dataset")
    pairs = dataset.heldout_pairs()
    tiers_dir = cache.results["tiers"].out_dir
    summary = json.loads((cache.results["train"].out_dir / "_stage.json").read_text())["summary"]
    reference = evaluate_generator(load_generator(cache.results["train"].out_dir / summary["checkpoint"]), pairs)
    identity = score_outputs(pairs, [p for p, _ in pairs])
    rows, psnr = [], {}
    for tier in [t for t in BUDGET_ORDER if t in cfg.search.tiers]:
        generator = load_generator(tiers_dir / f"{tier}.pt")
        quality = evaluate_generator(generator, pairs)
        psnr[tier] = quality.psnr_db
        q = quality.to_dict()
        rows.append([tier, generator.spec.to_string(), f"{count_macs(generator.spec, (256, 256)) / 1e9:.3f}",
                     f"{q['psnr_db']:.2f}", f"{q['ssim']:.3f}", f"{q['ink_recall']:.2f}",
                     "–" if q["ink_precision"] is None else f"{q['ink_precision']:.2f}", f"{q['texture_kept']:.2f}"])
    wall = time.perf_counter() - started
    print(f"\n== tiers after {tier_steps} paired + {adversarial_steps} adversarial steps each (preset {preset}, "
          f"{threads} threads, {len(pairs)} whole held-out images); wall {wall / 60:.1f} min, stages {seconds}")
    print(f"identity {identity.psnr_db:.2f} dB; reference ({summary.get('arch')}) {reference.psnr_db:.2f} dB, "
          f"ink recall {reference.look.ink_recall:.2f}, texture kept {reference.look.texture_kept:.2f}")
    print(text_table(["tier", "architecture", "GMACs@256", "PSNR dB", "SSIM", "ink recall", "ink precision",
                       "texture kept"], rows))
    if "npu" in psnr and "cpu" in psnr:
        gap = psnr["npu"] - psnr["cpu"]
        print(f"\ntarget: npu beats cpu by >= {NPU_OVER_CPU_DB} dB: {'met' if gap >= NPU_OVER_CPU_DB else 'MISSED'} "
              f"({gap:+.2f} dB)")
        return 0 if gap >= NPU_OVER_CPU_DB else 1
    return 0

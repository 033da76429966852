"""Hardware-aware architecture search: one generator architecture per compute tier.

Trains one weight-sharing supernet over the search space, runs NNI's regularized evolution
per tier (candidates filtered by the tier's MACs / params / latency / memory budgets and op
constraints, scored by inference with inherited weights), fine-tunes each winner briefly,
and writes <out>/<tier>.json, <tier>.pt, pareto.png and search_log.jsonl.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mobile_pipeline.commands._common import add_config_arguments, load_release_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--tiers", default=None,
                        help="comma-separated tiers to search, e.g. cpu,gpu,dsp,npu (default: the config's)")
    parser.add_argument("--data", default=Path("runs/data"), type=Path,
                        help="dataset folder written by `mobile-pipeline data` (default: runs/data)")
    parser.add_argument("--out", default=None, type=Path, help="output folder (default: models/<preset>/, where the searched architectures are kept as data)")
    parser.add_argument("--teacher", default=None, type=Path,
                        help="trained generator checkpoint; its held-out PSNR is logged as the reference")
    parser.add_argument("--build-lut", action="store_true",
                        help="measure the latency LUT entries the config's search.space lacks at the tiers' resolutions "
                             "first (LiteRT, 1 thread; resumable; minutes for the default grid, longer for 'wide')")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    cfg = load_release_config(args)
    tiers = None
    if args.tiers:
        from mobile_pipeline.config import TIER_NAMES

        tiers = [t.strip() for t in args.tiers.split(",") if t.strip()]
        unknown = [t for t in tiers if t not in TIER_NAMES]
        if unknown:
            print(f"error: --tiers: unknown tier(s) {unknown}; choose from {list(TIER_NAMES)}", file=sys.stderr)
            return 2
    data_dir = args.data
    if not (data_dir / "manifest.json").is_file():
        print(f"error: --data: no dataset manifest at {data_dir / 'manifest.json'}; "
              f"run `mobile-pipeline data --out {data_dir}` first or pass --data DIR", file=sys.stderr)
        return 2
    if args.teacher is not None and not args.teacher.is_file():
        print(f"error: --teacher: checkpoint not found: {args.teacher}", file=sys.stderr)
        return 2

    from mobile_pipeline.search.driver import TierSearchError, run_search
    from mobile_pipeline.search.latency import LatencyModelError
    from mobile_pipeline.train.checkpoint import CheckpointError
    from mobile_pipeline.utils.paths import models_dir

    if args.build_lut:
        from mobile_pipeline.search.driver import build_default_lut

        from mobile_pipeline.tiers.table import load_tier_table

        table = load_tier_table()
        sides = tuple(sorted({table[t].resolution for t in (tiers or cfg.search.tiers) if t in table}))
        build_default_lut(progress=not args.no_progress, space=cfg.search.space, resolutions=sides)
    out_dir = args.out or models_dir() / cfg.preset
    try:
        results = run_search(cfg, data_dir, out_dir, tiers=tiers, teacher_checkpoint=args.teacher,
                             progress=not args.no_progress)
    except (TierSearchError, LatencyModelError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for tier, result in results.items():
        print(f"{tier:4s} {result.spec.to_string():60s} {result.macs / 1e9:6.3f} GMACs "
              f"{result.latency_ms:7.2f} ms  PSNR {result.psnr_db:5.2f} dB  -> {result.json_path}")
    return 0

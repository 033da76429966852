"""Time the release end to end, per stage, and an unchanged rerun.

Targets (demo preset, 2 CPU cores): end to end <= 15 min; unchanged rerun <= 10 s.

    .venv/bin/python benchmarks/bench_release.py --preset demo
    .venv/bin/python benchmarks/bench_release.py --preset tiny
    .venv/bin/python benchmarks/bench_release.py --reuse-cache      # time against .mp_cache as it is

The first run is cold (an empty temporary cache, deleted afterwards) unless ``--reuse-cache``;
a verdict against the end-to-end target is only printed for a cold run.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from mobile_pipeline.config import preset_config
from mobile_pipeline.release import STAGE_ORDER, run_release

TARGETS_S = {"demo": (15 * 60, 10.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--reuse-cache", action="store_true",
                        help="use the config's cache (.mp_cache) instead of a cold temporary one")
    args = parser.parse_args()

    cfg = preset_config(args.preset)
    workdir = None if args.reuse_cache else Path(tempfile.mkdtemp(prefix="bench_release_"))
    if workdir:
        cfg = cfg.model_validate({**cfg.model_dump(), "cache_dir": workdir / "cache", "output_root": workdir / "export"})
    try:
        first_start = time.perf_counter()
        first = run_release(cfg, log=print)
        first_s = time.perf_counter() - first_start
        rerun_start = time.perf_counter()
        second = run_release(cfg, log=lambda _: None)
        rerun_s = time.perf_counter() - rerun_start
    finally:
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    cold = workdir is not None
    print(f"\nrelease benchmark, preset {args.preset} ({'cold' if cold else 'with existing cache'})")
    print(f"{'stage':<10} {'first run s':>12} {'cached?':>8} {'rerun s':>9}")
    for name in STAGE_ORDER:
        a, b = first.results[name], second.results[name]
        print(f"{name:<10} {a.seconds:12.1f} {str(a.cached):>8} {b.seconds:9.2f}")
    print(f"{'total':<10} {first_s:12.1f} {'':>8} {rerun_s:9.2f}")
    if args.preset in TARGETS_S:
        full_target, rerun_target = TARGETS_S[args.preset]
        first_text = (f"end to end <= {full_target} s: {'ok' if first_s <= full_target else 'MISS'} "
                      f"({first_s / full_target:.2f}x of budget)" if cold else
                      "end to end: not judged (warm cache; run without --reuse-cache)")
        print(f"targets: {first_text}; unchanged rerun <= {rerun_target} s: "
              f"{'ok' if rerun_s <= rerun_target else 'MISS'} ({rerun_s / rerun_target:.2f}x of budget)")


if __name__ == "__main__":
    main()

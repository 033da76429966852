"""Run the whole pipeline (data -> train -> search -> export -> bench -> manifest -> report).

Stages are cached by content hash: a rerun with nothing changed takes seconds, a change reruns
only what depends on it, and a killed release resumes where it stopped.

--plan prints, for each stage, "cached" or "will run" and why (the config field, the
device_tiers/ file, the package version or the upstream output that changed since the
stage's last cached run), and "may rerun" for stages below one that will run (their inputs
are known only once it has). Nothing is run.
"""

from __future__ import annotations

import argparse

from mobile_pipeline.commands._common import add_config_arguments, load_release_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, default_preset="demo")
    parser.add_argument("--output-root", default=None, help="where releases are published (default export/)")
    parser.add_argument("--cache-dir", default=None, help="stage cache folder (default .mp_cache/)")
    parser.add_argument("--plan", action="store_true",
                        help="print which stages are cached and which would run, and why; run nothing")


def run(args: argparse.Namespace) -> int:
    cfg = load_release_config(args)
    updates = {}
    if args.output_root:
        updates["output_root"] = args.output_root
    if args.cache_dir:
        updates["cache_dir"] = args.cache_dir
    if updates:
        cfg = cfg.model_validate({**cfg.model_dump(), **updates})
    if args.plan:
        from mobile_pipeline.release import plan_release, release_id_for
        from mobile_pipeline.stage_plan import format_plan

        print(f"release {release_id_for(cfg)} (cache {cfg.cache_dir}):")
        print(format_plan(plan_release(cfg)))
        return 0
    from mobile_pipeline.release import run_release

    run_release(cfg)
    return 0

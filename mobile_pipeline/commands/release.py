"""Run the whole pipeline (data -> train -> search -> export -> bench -> manifest -> report).

Stages are cached by content hash: a rerun with nothing changed takes seconds, a change reruns
only what depends on it, and a killed release resumes where it stopped.
"""

from __future__ import annotations

import argparse

from mobile_pipeline.commands._common import add_config_arguments, load_release_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, default_preset="demo")
    parser.add_argument("--output-root", default=None, help="where releases are published (default export/)")
    parser.add_argument("--cache-dir", default=None, help="stage cache folder (default .mp_cache/)")


def run(args: argparse.Namespace) -> int:
    cfg = load_release_config(args)
    updates = {}
    if args.output_root:
        updates["output_root"] = args.output_root
    if args.cache_dir:
        updates["cache_dir"] = args.cache_dir
    if updates:
        cfg = cfg.model_validate({**cfg.model_dump(), **updates})
    from mobile_pipeline.release import run_release

    run_release(cfg)
    return 0

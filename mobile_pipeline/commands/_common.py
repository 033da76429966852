"""Helpers shared by sub-commands: config options and the 'not built yet' answer."""

from __future__ import annotations

import argparse
import sys


def add_config_arguments(parser: argparse.ArgumentParser, default_preset: str = "demo") -> None:
    """``--preset`` and ``--config``: the release config every stage reads."""
    parser.add_argument("--preset", default=None, help=f"config preset: tiny, demo, full (default {default_preset})")
    parser.add_argument("--config", default=None, help="YAML release config (overrides the preset's values)")
    parser.set_defaults(_default_preset=default_preset)


def load_release_config(args: argparse.Namespace):
    """The release config from ``--config`` and/or ``--preset``; exits with the field named on error."""
    from mobile_pipeline.config import ConfigError, load_config, preset_config

    try:
        if args.config:
            return load_config(args.config, preset=args.preset)
        return preset_config(args.preset or args._default_preset)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def not_built(stage: str, issue: int) -> int:
    """Answer honestly for a stage that does not exist yet."""
    print(f"error: the '{stage}' stage is not built yet (tracked in issue #{issue}).", file=sys.stderr)
    return 2

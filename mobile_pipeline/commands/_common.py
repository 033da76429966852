"""Helpers shared by sub-commands: the config options every stage reads."""

from __future__ import annotations

import argparse
import sys


def add_config_arguments(parser: argparse.ArgumentParser, default_preset: str = "demo") -> None:
    """``--preset`` and ``--config``: the release config every stage reads."""
    parser.add_argument("--preset", default=None, help=f"config preset: tiny, demo, full (default {default_preset})")
    parser.add_argument("--config", default=None,
                        help="YAML release config: its values override the preset's; --preset, when given, "
                             "wins over the file's own 'preset' key")
    parser.set_defaults(_default_preset=default_preset)


def load_release_config(args: argparse.Namespace):
    """The release config from ``--config`` and/or ``--preset``; exits with the field named on error."""
    from mobile_pipeline.config import ConfigError, load_config, preset_config

    try:
        if args.config:
            return load_config(args.config, preset=args.preset, default_preset=args._default_preset)
        return preset_config(args.preset or args._default_preset)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


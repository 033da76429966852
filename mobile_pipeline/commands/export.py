"""Not built yet (issue #5)."""

from __future__ import annotations

import argparse

from mobile_pipeline.commands._common import not_built


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    return not_built("export", 5)

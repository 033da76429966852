"""The ``mobile-pipeline`` command: one sub-command per stage.

Thin by design: each sub-command lives in ``mobile_pipeline/commands/<name>.py`` with
``add_arguments(parser)`` and ``run(args) -> int``. Those modules import nothing heavy at
module level, so ``--help`` answers in well under 2 s. A command module may also name
actions with their own options (``ACTIONS = {"verify-coreml": run_verify_coreml}``, each
taking the remaining argv): ``mobile-pipeline export verify-coreml ...`` goes there instead
of the command's own parser.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mobile_pipeline import __version__

# (name, one-line help); order is the pipeline order.
SUBCOMMANDS: tuple[tuple[str, str], ...] = (
    ("data", "validate photos, make teacher targets, split, write a dataset manifest"),
    ("train", "train the STA + FS stylizer (paired, then adversarial; few-shot mode)"),
    ("search", "hardware-aware architecture search, one architecture per tier"),
    ("export", "export and quantize ONNX / TFLite / Core ML variants, each validated"),
    ("bench", "benchmark artifacts on local runtimes; import on-device results"),
    ("manifest", "build the tier-selection manifest and the Play device-targeting config"),
    ("serve", "serve the manifest: device info in, model and fallbacks out"),
    ("tiers", "explain which tier a device gets, the rules that decided it, and its fallbacks"),
    ("release", "run the whole pipeline with a stage cache (demo preset by default)"),
    ("stylize", "stylize an image, folder or video with any artifact or checkpoint"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mobile-pipeline",
        description="Release pipeline for a real-time cartoon stylizer on every phone.",
    )
    parser.add_argument("--version", action="version", version=f"mobile-pipeline {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in SUBCOMMANDS:
        module = importlib.import_module(f"mobile_pipeline.commands.{name}")
        sub = subparsers.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip())
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
    return parser


def _action(argv: list[str]):
    """``(runner, rest)`` when argv is ``COMMAND ACTION ...`` and the command defines ACTION."""
    if len(argv) >= 2 and argv[0] in dict(SUBCOMMANDS):
        actions = getattr(importlib.import_module(f"mobile_pipeline.commands.{argv[0]}"), "ACTIONS", None)
        if isinstance(actions, dict) and argv[1] in actions:
            return actions[argv[1]], argv[2:]
    return None, argv


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    runner, rest = _action(argv)
    if runner is not None:
        try:
            return int(runner(rest) or 0)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; completed artifacts are kept, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

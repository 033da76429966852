"""The CLI: fast --help, one sub-command per stage, config errors exit 2 with the field."""

from __future__ import annotations

import subprocess
import sys
import time

from mobile_pipeline.cli import SUBCOMMANDS, build_parser

STAGES = {"data", "train", "search", "export", "bench", "manifest", "serve", "release", "stylize", "tiers"}


def test_every_stage_has_a_subcommand() -> None:
    assert {name for name, _ in SUBCOMMANDS} == STAGES
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert set(subparsers.choices) == STAGES
    for name in STAGES:
        assert "usage" in subparsers.choices[name].format_help()


def test_help_is_fast_and_imports_no_heavy_backend() -> None:
    code = (
        "import sys, time; t=time.perf_counter();"
        "from mobile_pipeline.cli import build_parser; build_parser().format_help();"
        "heavy=[m for m in ('torch','onnxruntime','coremltools','litert_torch','tensorflow','nni') if m in sys.modules];"
        "print(heavy); print(time.perf_counter()-t)"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    wall = time.perf_counter() - start
    assert out[0] == "[]", f"heavy modules imported by --help: {out[0]}"
    assert wall < 2.0, f"--help took {wall:.2f} s"


def test_console_help_lists_stages() -> None:
    result = subprocess.run([sys.executable, "-m", "mobile_pipeline.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for name in STAGES:
        assert name in result.stdout

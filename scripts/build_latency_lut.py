#!/usr/bin/env python
"""Measure the latency lookup table (device_tiers/latency_lut.json) on this machine.

Traces the search space's specs (random samples + the sandwich extremes + registry specs
inside the grid) at the given resolutions, then converts and times every distinct op with
LiteRT (1 thread). Resumable: rerun to continue; ``--rebuild`` starts over. Takes minutes
(about 2-5 s per op, a few hundred ops), so run it once and commit the JSON.

    python scripts/build_latency_lut.py                # default grid at 256 px
    python scripts/build_latency_lut.py --max-seconds 600
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolutions", default="256", help="comma-separated square sides (default 256)")
    parser.add_argument("--specs", type=int, default=600, help="random specs traced for op coverage")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--path", type=Path, default=None, help="LUT JSON (default device_tiers/latency_lut.json)")
    parser.add_argument("--max-seconds", type=float, default=None, help="stop (resumably) after this long")
    parser.add_argument("--rebuild", action="store_true", help="discard existing entries")
    parser.add_argument("--tiny", action="store_true", help="also cover the tiny preset's grid")
    parser.add_argument("--space", default="default", choices=("default", "tiny", "wide"),
                        help="search grid to cover (search.space; default: the demo grid)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    import torch

    torch.set_num_threads(1)
    from mobile_pipeline.search.lut_build import build_lut, default_lut_specs

    resolutions = [int(r) for r in args.resolutions.split(",") if r.strip()]
    specs, reference = default_lut_specs(args.specs, args.seed, include_tiny=args.tiny, space=args.space)
    path = build_lut(specs, resolutions, args.path, reference=reference, progress=True,
                     max_seconds=args.max_seconds, rebuild=args.rebuild)
    print(f"LUT written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Export benchmark: the full variant matrix of a tier, timed, sized, validated, run locally.

Target (issue 5): exporting every variant of one tier takes <= 60 s on 2 cores for the demo
spec (stylizer-small). For each variant the table shows export time (the first variant of a
format includes the float conversion), size, parity PSNR and its margin over the gate, and
the local latency with 1 thread (onnxruntime / LiteRT; Core ML needs macOS), with the ratio
to the White-box cartoonization generator (8.2 GMACs, ~95 ms onnxruntime 1 thread at
256x256 on this machine class; scaled by pixel count at other resolutions).

    .venv/bin/python benchmarks/bench_export.py --tier npu
    .venv/bin/python benchmarks/bench_export.py --tier cpu --tier npu --spec stylizer-tiny --spec stylizer-large

Random-weight generators (the RGB head re-initialised so the output is not the input):
parity and speed depend on the architecture, not on training.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

WHITEBOX_MS_256 = 95.0


def _random_generator(spec: str, seed: int = 0):
    import torch

    from mobile_pipeline.nets.generator import build_generator

    torch.manual_seed(seed)
    generator = build_generator(spec).eval()
    with torch.no_grad():
        for param in generator.heads[-1].parameters():
            param.normal_(0.0, 0.1)
    return generator


def _latency_ms(artifact: Path, side: int, runs: int) -> float | None:
    import numpy as np

    from mobile_pipeline.exporters.runtimes import load_runner

    runner = load_runner(artifact, num_threads=1)
    if not runner.runnable:
        return None
    x = np.random.default_rng(0).random((1, 3, side, side), dtype=np.float32)
    for _ in range(2):
        runner.run(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner.run(x)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tier", action="append", help="tier(s) to export (default: npu)")
    parser.add_argument("--spec", action="append", help="registered spec(s) (default: stylizer-small, the demo spec)")
    parser.add_argument("--resolution", type=int, default=None, help="override the tier resolution")
    parser.add_argument("--jobs", type=int, default=1, help="export worker processes (one format each)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per variant for latency")
    parser.add_argument("--out", type=Path, default=None, help="keep the artifacts here (default: a temp folder)")
    args = parser.parse_args(argv)

    import torch

    from mobile_pipeline.exporters import api
    from mobile_pipeline.nets.complexity import count_macs
    from mobile_pipeline.tiers.table import load_tier_table

    torch.set_num_threads(2)
    tiers = args.tier or ["npu"]
    specs = args.spec or ["stylizer-small"]
    table = load_tier_table()
    rows = []
    totals = []
    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        root = args.out or Path(tmp)
        for spec in specs:
            generator = _random_generator(spec)
            for tier in tiers:
                side = args.resolution or table[tier].resolution
                macs = count_macs(generator.spec, (side, side))
                api.clear_cache()  # each tier pays its own float conversions, as in a release
                start = time.perf_counter()
                reports = api.export_tier(generator, tier, root / spec / tier, resolution=side, progress=True,
                                          jobs=args.jobs)
                total = time.perf_counter() - start
                totals.append((spec, tier, side, total, len(reports)))
                whitebox = WHITEBOX_MS_256 * (side * side) / (256 * 256)
                for report in reports:
                    folder = root / spec / tier / ("" if report.passed else "rejected")
                    latency = _latency_ms(folder / report.artifact, side, args.runs)
                    rows.append((spec, tier, side, macs, report, latency, whitebox))

    header = (f"{'spec':15} {'tier':4} {'px':>4} {'GMACs':>6} {'format':7} {'precision':12} {'status':8} "
              f"{'export s':>8} {'KiB':>7} {'PSNR dB':>8} {'margin':>7} {'ms(1t)':>7} {'vs WB':>6}")
    print("\n" + header)
    print("-" * len(header))
    for spec, tier, side, macs, r, latency, whitebox in rows:
        p = r.parity
        psnr = f"{p.psnr_db:.1f}" if p.psnr_db is not None else "n/a*"
        margin = f"{p.psnr_db - p.gate_db:+.1f}" if p.psnr_db is not None else "n/a"
        lat = f"{latency:.2f}" if latency is not None else "n/a*"
        ratio = f"{whitebox / latency:.1f}x" if latency else "n/a"
        print(f"{spec:15} {tier:4} {side:4d} {macs / 1e9:6.2f} {r.format:7} {r.precision:12} "
              f"{'ok' if r.passed else 'REJECTED':8} {r.export_seconds or 0:8.1f} {r.bytes / 1024:7.0f} "
              f"{psnr:>8} {margin:>7} {lat:>7} {ratio:>6}")
    print("\n* Core ML: prediction needs macOS; the ML Program is checked instead (ops, shapes, dtypes).")
    print(f"White-box baseline: {WHITEBOX_MS_256:.0f} ms at 256x256 (onnxruntime, 1 thread), scaled by pixels; "
          "'vs WB' = baseline / variant latency.\n")
    print(f"{'spec':15} {'tier':4} {'px':>4} {'variants':>8} {'export wall s':>13}  target <= 60 s")
    ok = True
    for spec, tier, side, total, count in totals:
        within = total <= 60.0
        ok &= within or spec != "stylizer-small"
        print(f"{spec:15} {tier:4} {side:4d} {count:8d} {total:13.1f}  {'ok' if within else 'OVER'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Export benchmark: a tier's variants timed against the 60 s target, and the whole format x
precision matrix of the tiny and large specs beside the White-box cartoonization baseline.

Targets (issue 5), in one run:

* exporting every variant of one tier (``device_tiers/tiers.yaml``) takes <= 60 s on 2 cores
  for the demo spec (stylizer-small), float conversions included;
* a table, per spec and variant: size, parity PSNR and its margin over the gate, and local
  latency with 1 thread (onnxruntime / LiteRT; Core ML needs macOS), with the ratio to the
  White-box generator (8.2 GMACs, ``mobile_pipeline.nets.peers``) exported to ONNX fp32 and
  timed the same way here, so the baseline is measured on this machine, not quoted.

    .venv/bin/python benchmarks/bench_export.py                      # npu tier timing + tiny/large matrix
    .venv/bin/python benchmarks/bench_export.py --tier cpu --tier npu --spec stylizer-tiny
    .venv/bin/python benchmarks/bench_export.py --tier cpu --format onnx --format tflite --format executorch --round-robin

ExecuTorch ``.pte`` rows run through ``executorch.runtime`` (XNNPACK, 1 thread); the Core
ML-delegated fp16 ``.pte`` is checked, not run, like Core ML.

Random trained-like weights: parity and speed depend on the architecture, not on training.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

TIER_TARGET_S = 60.0
TIMING_SPEC = "stylizer-small"  # the demo preset's train.arch


def _random_generator(spec: str, seed: int = 0):
    """Trained-like random weights (``nets.generator.trained_like``): a fresh model's zeroed
    residual BatchNorms fold to convs the converters drop, which would flatter the latency."""
    from mobile_pipeline.nets.generator import build_generator, trained_like

    return trained_like(build_generator(spec), seed=seed)


def _latency_ms(artifact: Path, side: int, runs: int) -> float | None:
    """Median of ``runs`` timed 1-thread inferences after 2 warm-ups (None: not runnable here)."""
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


def _latencies_round_robin(artifacts: list[Path], side: int, runs: int) -> list[float | None]:
    """Median 1-thread latency of every artifact, timed in turns (one run of each per round).

    On a shared machine the load drifts over the minutes a matrix takes; timing the artifacts
    in turns makes that drift hit every row alike, so the ratios between rows hold.
    """
    import numpy as np

    from mobile_pipeline.exporters.runtimes import load_runner

    x = np.random.default_rng(0).random((1, 3, side, side), dtype=np.float32)
    runners = []
    for artifact in artifacts:
        runner = load_runner(artifact, num_threads=1)
        runners.append(runner if runner.runnable else None)
    for runner in filter(None, runners):
        for _ in range(2):
            runner.run(x)
    times: list[list[float]] = [[] for _ in runners]
    for _ in range(runs):
        for i, runner in enumerate(runners):
            if runner is not None:
                start = time.perf_counter()
                runner.run(x)
                times[i].append((time.perf_counter() - start) * 1000)
    return [statistics.median(t) if t else None for t in times]


def _artifact_path(folder: Path, report) -> Path:
    return folder / report.artifact if report.passed else folder / "rejected" / report.artifact


def _time_tiers(tiers: list[str], root: Path, jobs: int) -> list[tuple[str, int, int, float, int]]:
    from mobile_pipeline.exporters import api
    from mobile_pipeline.tiers.table import load_tier_table

    table = load_tier_table()
    generator = _random_generator(TIMING_SPEC)
    rows = []
    for tier in tiers:
        api.clear_cache()  # each tier pays its own float conversions, as in a release
        start = time.perf_counter()
        reports = api.export_tier(generator, tier, root / "timing" / tier, progress=True, jobs=jobs)
        rows.append((tier, table[tier].resolution, len(reports), time.perf_counter() - start,
                     sum(r.passed for r in reports)))
    return rows


def _matrix(specs: list[str], side: int, root: Path, runs: int, formats: list[str] | None = None,
            timed: bool = True) -> list[tuple]:
    """Rows (spec, MACs, report, latency ms or None, artifact path); ``timed=False`` leaves latency to the caller."""
    from mobile_pipeline.exporters import api
    from mobile_pipeline.exporters.formats import FORMATS
    from mobile_pipeline.nets.complexity import count_macs

    rows = []
    for spec in specs:
        generator = _random_generator(spec)
        macs = count_macs(generator.spec, (side, side))
        folder = root / "matrix" / spec
        int8_tier = _int8_tier_allowing(generator.spec)
        for fmt, info in FORMATS.items():
            if formats and fmt not in formats:
                continue
            for precision in info.precisions:
                # int8 variants are checked as for an int8-only tier (no float islands) whose
                # arch_constraints allow the spec (npu bans dilated branches, dsp bilinear resizes).
                tier = int8_tier if precision in ("int8", "int8-full") else None
                print(f"[matrix] {spec} {fmt} {precision} @ {side}px ...", flush=True)
                report = api.export_variant(generator, fmt, precision, folder, input_hw=(side, side), tier=tier,
                                            stem=spec)
                path = _artifact_path(folder, report)
                rows.append((spec, macs, report, _latency_ms(path, side, runs) if timed else None, path))
    return rows


def _int8_tier_allowing(spec) -> str | None:
    from mobile_pipeline.tiers.table import load_tier_table

    table = load_tier_table()
    return next((name for name in ("npu", "dsp") if not table[name].allows_arch(spec)), None)


def _whitebox(side: int, root: Path) -> tuple[Path, float]:
    """The White-box generator exported to ONNX fp32: (artifact, MACs)."""
    from mobile_pipeline.exporters import api
    from mobile_pipeline.nets.complexity import count_macs
    from mobile_pipeline.nets.peers import WhiteBoxGenerator

    peer = WhiteBoxGenerator().eval()
    report = api.export_variant(peer, "onnx", "fp32", root / "whitebox", input_hw=(side, side), stem="whitebox")
    return _artifact_path(root / "whitebox", report), count_macs(peer, (side, side))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tier", action="append", help="tier(s) whose variant list is timed (default: npu)")
    parser.add_argument("--spec", action="append", help="specs of the matrix (default: stylizer-tiny, stylizer-large)")
    parser.add_argument("--resolution", type=int, default=256, help="matrix input side (default 256, the baseline's)")
    parser.add_argument("--jobs", type=int, default=1, help="export worker processes for the tier timing")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per variant for latency")
    parser.add_argument("--format", action="append", help="only these formats in the matrix (default: all)")
    parser.add_argument("--round-robin", action="store_true",
                        help="time every artifact (and White-box) in turns after all exports, so load drift on a "
                             "shared machine hits all rows alike")
    parser.add_argument("--out", type=Path, default=None, help="keep the artifacts here (default: a temp folder)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    tiers = args.tier or ["npu"]
    specs = args.spec or ["stylizer-tiny", "stylizer-large"]
    side = args.resolution
    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        root = args.out or Path(tmp)
        timing = _time_tiers(tiers, root, args.jobs)
        whitebox_path, whitebox_macs = _whitebox(side, root)
        from mobile_pipeline.exporters.formats import resolve_format

        formats = [resolve_format(f).name for f in args.format] if args.format else None
        matrix = _matrix(specs, side, root, args.runs, formats, timed=not args.round_robin)
        if args.round_robin:
            whitebox_ms, *latencies = _latencies_round_robin([whitebox_path] + [row[4] for row in matrix], side,
                                                             args.runs)
            matrix = [(*row[:3], latency, row[4]) for row, latency in zip(matrix, latencies)]
        else:
            whitebox_ms = _latency_ms(whitebox_path, side, args.runs)
        assert whitebox_ms is not None

    print(f"\nWhite-box generator (rebuilt, {whitebox_macs / 1e9:.2f} GMACs @ {side}px), ONNX fp32, onnxruntime 1 thread: "
          f"{whitebox_ms:.1f} ms (measured here{', in turns with every row' if args.round_robin else ''})")
    header = (f"{'spec':15} {'GMACs':>6} {'format':10} {'precision':12} {'status':8} {'export s':>8} {'KiB':>7} "
              f"{'PSNR dB':>8} {'gate':>5} {'margin':>7} {'ms(1t)':>7} {'WB/this':>7}")
    print("\n" + header)
    print("-" * len(header))
    for spec, macs, r, latency, _ in matrix:
        p = r.parity
        psnr = f"{p.psnr_db:.1f}" if p.psnr_db is not None else "n/a*"
        margin = f"{p.psnr_db - p.gate_db:+.1f}" if p.psnr_db is not None else "n/a"
        lat = f"{latency:.2f}" if latency is not None else "n/a*"
        ratio = f"{whitebox_ms / latency:.1f}x" if latency else "n/a"
        print(f"{spec:15} {macs / 1e9:6.2f} {r.format:10} {r.precision:12} {'ok' if r.passed else 'REJECTED':8} "
              f"{r.export_seconds or 0:8.1f} {r.bytes / 1024:7.0f} {psnr:>8} {p.gate_db:5.0f} {margin:>7} {lat:>7} {ratio:>7}")
    print("* Core ML (and the Core ML-delegated executorch fp16): prediction needs macOS; the ML Program is checked "
          "instead (ops, shapes, dtypes, compression).")
    print("  export s: the first variant of each format includes the float conversion.\n")

    print(f"{'tier':4} {'px':>4} {'variants':>8} {'passed':>6} {'export wall s':>13}  target <= {TIER_TARGET_S:.0f} s ({TIMING_SPEC})")
    ok = True
    for tier, tier_side, count, total, passed in timing:
        within = total <= TIER_TARGET_S
        ok &= within
        print(f"{tier:4} {tier_side:4d} {count:8d} {passed:6d} {total:13.1f}  {'ok' if within else 'OVER'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Qualcomm NPU builds per tier and Hexagon architecture: compile, size, parity, emulated time.

For every tier whose Qualcomm delegate is QNN and every HTP architecture of its catalog SoCs,
each QDQ precision (int8, and w8a16 with ``--precisions int8,w8a16``) is exported and run
through the release's own precompile step (``exporters/qnn_export.precompile_one``: compile
with CPU fallback disabled, EPContext model, HTP emulator, parity gate). Printed per row:

* compile s: session creation with ``ep.context_enable=1`` (partition + QNN compile + write);
* context KiB: the compiled context binary inside the EPContext model;
* nodes on HTP: ONNX nodes the QNN EP took / all nodes (CPU fallback disabled: all or reject);
* parity dB: emulated output vs the PyTorch fp32 output (the gate), and vs onnxruntime's CPU
  kernels on the same QDQ model;
* emulator ms/frame: wall time of the x86 HTP emulator per frame: it simulates the NPU, so it
  is a measure of the graph's HTP cost, not of a phone's latency;
* ORT CPU ms: the same QDQ model on onnxruntime's CPU execution provider, 1 thread, p50.

    .venv/bin/python benchmarks/bench_qnn.py                           # npu (and any tier with HTP SoCs)
    .venv/bin/python benchmarks/bench_qnn.py --precisions int8,w8a16 --images 2
    .venv/bin/python benchmarks/bench_qnn.py --all-archs               # every arch the catalog knows
    .venv/bin/python benchmarks/bench_qnn.py --arch s12_e32-32_b4xfs_br-dw3.conv2.dw5_f-sta.concat_u-deconv_a-relu

The generator per tier is ``--arch`` when given, else the searched one (``models/<tier>.pt``)
when present, else the largest registered spec within the tier's MAC budget, with
trained-like weights (``nets.generator.trained_like``). Timings on a shared machine are
inflated by other processes: compare rows, not absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _generator_for(tier: str, tiers, arch: str | None):
    """``--arch``, else the searched generator of a tier, else the largest registered spec within budget."""
    from mobile_pipeline.nets.complexity import count_macs
    from mobile_pipeline.nets.generator import build_generator, trained_like
    from mobile_pipeline.nets.registry import get_spec, list_specs
    from mobile_pipeline.utils.paths import models_dir

    if arch:
        return trained_like(build_generator(get_spec(arch))), "--arch"
    searched = models_dir() / f"{tier}.pt"
    if searched.is_file():
        from mobile_pipeline.train.checkpoint import load_generator

        return load_generator(searched), "searched"
    side = tiers[tier].resolution
    fitting = [(count_macs(name, (side, side)), name) for name in list_specs() if name.startswith("stylizer")]
    fitting = [item for item in fitting if item[0] <= tiers[tier].budgets.macs] or [min(fitting)]
    return trained_like(build_generator(get_spec(max(fitting)[1]))), f"{max(fitting)[1]} (registry stand-in)"


def cpu_ms(path: Path, side: int, runs: int) -> float:
    """p50 of the QDQ model on onnxruntime's CPU EP, 1 thread (what bench/ measures for onnx)."""
    from mobile_pipeline.bench.run import sample_image
    from mobile_pipeline.bench.runners import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner(path, threads=1)
    native = runner.prepare(sample_image((side, side)))
    for _ in range(2):
        runner.invoke(native)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner.invoke(native)
        times.append((time.perf_counter() - start) * 1e3)
    runner.close()
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiers", default=None, help="tiers (default: every tier with QNN work)")
    parser.add_argument("--precisions", default="int8", help="QDQ precisions, e.g. int8,w8a16 (default: int8)")
    parser.add_argument("--images", type=int, default=2, help="validation photos emulated per arch (default 2)")
    parser.add_argument("--runs", type=int, default=20, help="ORT CPU timing runs")
    parser.add_argument("--all-archs", action="store_true", help="every Hexagon arch the catalog knows, not only its tier's")
    parser.add_argument("--arch", default=None, help="architecture string or registered name for every tier")
    parser.add_argument("--resolution", type=int, default=None, help="override the tiers' export side")
    parser.add_argument("--out", type=Path, default=None, help="keep the artifacts here (default: a temporary folder)")
    args = parser.parse_args()

    import torch

    from mobile_pipeline.exporters import api
    from mobile_pipeline.exporters.photos import bundled_photos, prepare_photos, split_photos
    from mobile_pipeline.exporters.qnn import qnn_unavailable_reason, qnn_versions
    from mobile_pipeline.exporters.qnn_export import precompile_one, qnn_plan
    from mobile_pipeline.exporters.runtimes import OnnxRunner
    from mobile_pipeline.tiers.catalog import HTP_ARCHS
    from mobile_pipeline.tiers.table import load_tier_table

    torch.set_num_threads(1)
    reason = qnn_unavailable_reason()
    if reason:
        print(reason)
        return 2
    tiers = load_tier_table()
    names = args.tiers.split(",") if args.tiers else list(tiers)
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    versions = qnn_versions()
    out_root = args.out or Path(tempfile.mkdtemp(prefix="bench_qnn_"))
    cal, val = split_photos(bundled_photos(), 8, args.images)
    rows = []
    for tier in names:
        plan = qnn_plan(tier)
        socs = dict(plan.socs)
        if args.all_archs and plan.precisions:  # a QNN tier: every arch, with the SoCs the catalog has for it
            socs = {arch: socs.get(arch, []) for arch in HTP_ARCHS}
        if not socs:
            print(f"{tier}: {plan.reason}")
            continue
        generator, origin = _generator_for(tier, tiers, args.arch)
        side = args.resolution or tiers[tier].resolution
        print(f"[{tier}] {origin}: {generator.spec.to_string()} @ {side}px; archs {', '.join(socs)}", flush=True)
        images = prepare_photos(val, (side, side))
        with torch.no_grad():
            reference = generator.eval()(torch.from_numpy(images)).numpy()
        for precision in precisions:
            out = out_root / tier
            report = api.export_variant(generator, "onnx", precision, out, input_hw=(side, side), tier=tier,
                                        calibration=cal, validation=val)
            if not report.passed:
                print(f"  {precision}: QDQ export rejected: {'; '.join(report.reasons)}")
                continue
            source = out / report.artifact
            cpu = cpu_ms(source, side, args.runs)
            cpu_out = OnnxRunner(source).run(images)
            for arch, arch_socs in socs.items():
                made = precompile_one(source, report, arch, arch_socs, images, reference, cpu_out, out, versions)
                q = made.qnn
                rows.append((tier, arch, precision, q.compile_seconds, q.context_bytes, q.nodes_on_htp, q.nodes_total,
                             made.parity.psnr_db, q.psnr_vs_cpu_qdq_db, q.emulated_frame_ms, cpu, made.passed,
                             "; ".join(made.reasons)))
                print(f"  {arch} {precision}: {'ok' if made.passed else 'REJECTED'}", flush=True)

    print(f"\nonnxruntime-qnn {versions['onnxruntime_qnn']} (QNN {versions['qnn_sdk']}), onnxruntime "
          f"{versions['onnxruntime']}; parity on {args.images} validation photo(s)\n")
    header = ("| tier | arch | precision | compile s | context KiB | nodes on HTP | parity dB (vs fp32) | vs CPU QDQ dB "
              "| emulator ms/frame | ORT CPU ms (1 thread) | gate |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for (tier, arch, precision, comp, ctx, on, total, psnr, vs_cpu, emu, cpu, passed, why) in rows:
        fmt = lambda v, spec: "–" if v is None else format(v, spec)  # noqa: E731
        print(f"| {tier} | {arch} | {precision} | {comp:.2f} | {fmt(ctx and ctx / 1024, '.0f')} | "
              f"{fmt(on, 'd')}/{fmt(total, 'd')} | {fmt(psnr, '.1f')} | {fmt(vs_cpu, '.1f')} | {fmt(emu, '.0f')} | "
              f"{cpu:.1f} | {'pass' if passed else 'REJECTED: ' + why[:80]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

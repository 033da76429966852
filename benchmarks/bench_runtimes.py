"""Latency of each exported variant beside the compute roofline of this machine.

Roofline: the single-thread throughput of a large 3x3 convolution (64 -> 64 channels at
128x128, 0.6 GMACs) in onnxruntime and in the LiteRT interpreter (XNNPACK), 1 thread; the
faster of the two is this machine's achievable GFLOP/s. For every variant,
``ratio = measured latency / (2 x MACs / throughput)``: how far the whole network is from
running every MAC at the speed of the best-case conv. Depthwise convs, resizes, gates and
memory traffic all push the ratio above 1. A second column adds the memory side: per op
``max(2 x MACs / throughput, bytes / bandwidth)`` over the traced runtime ops
(:func:`mobile_pipeline.search.latency.roofline_ms`), with the single-thread copy bandwidth
measured here, so a memory-bound network is not mistaken for a slow runtime.

Target: the cpu tier's TFLite fp32 model within 4x of the roofline (LiteRT, 1 thread). The
verdict uses the best conv of either runtime (the machine's roofline); the ``same-rt`` column
and a second verdict use the model's own runtime's conv throughput instead.

Both sides of every ratio use the same estimator, the 25th percentile of the runs: on a
shared machine other processes only ever add time, so a low percentile is the steadier
estimate of the code's own cost (p50 is printed too, for reference).

    .venv/bin/python benchmarks/bench_runtimes.py                       # export the cpu tier here, then time it
    .venv/bin/python benchmarks/bench_runtimes.py --tiers cpu,gpu --runs 30
    .venv/bin/python benchmarks/bench_runtimes.py --artifacts export/demo-xxxx   # time an existing release

The generator per tier is the searched one (``models/<tier>.pt``) when present, else the
largest registered spec that fits the tier's MAC budget, with trained-like random weights
(``nets.generator.trained_like``): latency does not depend on the weights' values, as long as
none is all zero (the converter drops such convs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TARGET_RATIO = 4.0
CONV = {"channels": 64, "side": 128}


def _conv_module():
    import torch

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(CONV["channels"], CONV["channels"], 3, padding=1, bias=True).eval()
    return conv, torch.rand(1, CONV["channels"], CONV["side"], CONV["side"])


def _times(fn, runs: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _time(fn, runs: int) -> float:
    """p25 of the run times (s); see the module docstring for why."""
    return float(np.percentile(_times(fn, runs), 25))


def model_times_ms(path: Path, runtime, layout: str | None, runs: int) -> tuple[float, float, tuple[int, int]]:
    """p25 and p50 (ms) of one frame in the bench's call pattern (native input in, output out)."""
    from mobile_pipeline.bench.run import sample_image
    from mobile_pipeline.bench.runners import load_runner

    runner = load_runner(path, runtime, layout)
    try:
        native = runner.prepare(sample_image(runner.input_hw))
        times = _times(lambda: runner.invoke(native), runs, warmup=3)
    finally:
        runner.close()
    return float(np.percentile(times, 25)) * 1e3, statistics.median(times) * 1e3, runner.input_hw


def conv_throughput(runs: int = 15) -> dict[str, float]:
    """GFLOP/s of the reference 3x3 conv, 1 thread, per runtime."""
    import onnxruntime as ort
    import torch

    conv, x = _conv_module()
    c, s = CONV["channels"], CONV["side"]
    flops = 2.0 * c * c * 9 * s * s
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "conv.onnx"
        torch.onnx.export(conv, (x,), str(onnx_path), dynamo=False, input_names=["x"], output_names=["y"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        feed = {"x": x.numpy()}
        out["onnxruntime"] = flops / _time(lambda: session.run(None, feed), runs) / 1e9

        os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
        import litert_torch
        from ai_edge_litert.interpreter import Interpreter

        from mobile_pipeline.exporters._quiet import quiet

        nhwc = litert_torch.to_channel_last_io(conv, args=[0], outputs=[0]).eval()
        with quiet(), torch.no_grad():
            model = bytes(litert_torch.convert(nhwc, (x.permute(0, 2, 3, 1).contiguous(),)).model_content())
        interpreter = Interpreter(model_content=model, num_threads=1)
        interpreter.allocate_tensors()
        index = interpreter.get_input_details()[0]["index"]
        interpreter.set_tensor(index, x.permute(0, 2, 3, 1).contiguous().numpy())
        out["litert"] = flops / _time(interpreter.invoke, runs) / 1e9
    return out


def copy_bandwidth_gbs(runs: int = 10) -> float:
    """Single-thread memory bandwidth: read + write of a 64 MiB buffer (numpy copy)."""
    src = np.ones(16 * 2**20, dtype=np.float32)
    dst = np.empty_like(src)
    seconds = _time(lambda: np.copyto(dst, src), runs)
    return 2 * src.nbytes / seconds / 1e9


def _generator_for(tier: str, tiers):
    """The searched generator of a tier, else the largest registered spec within its MAC budget."""
    from mobile_pipeline.nets.complexity import count_macs
    from mobile_pipeline.nets.generator import build_generator, trained_like
    from mobile_pipeline.nets.registry import get_spec, list_specs
    from mobile_pipeline.utils.paths import models_dir

    searched = models_dir() / f"{tier}.pt"
    if searched.is_file():
        from mobile_pipeline.train.checkpoint import load_generator

        return load_generator(searched), "searched"
    side = tiers[tier].resolution
    # Registry stand-ins the tier's export gate accepts (arch_constraints: npu bans dilated branches).
    fitting = [(count_macs(name, (side, side)), name) for name in list_specs()
               if name.startswith("stylizer") and not tiers[tier].allows_arch(get_spec(name))]
    fitting = fitting or [(count_macs(name, (side, side)), name) for name in list_specs() if name.startswith("stylizer")]
    fitting = [item for item in fitting if item[0] <= tiers[tier].budgets.macs] or [min(fitting)]
    return trained_like(build_generator(get_spec(max(fitting)[1]))), f"{max(fitting)[1]} (registry stand-in)"


def export_tiers(tier_names: list[str], out_dir: Path) -> list[Path]:
    from mobile_pipeline.exporters.api import export_tier
    from mobile_pipeline.tiers.table import load_tier_table

    tiers = load_tier_table()
    paths = []
    for tier in tier_names:
        generator, origin = _generator_for(tier, tiers)
        print(f"[export] {tier}: {origin}, {generator.spec.to_string()}", flush=True)
        for report in export_tier(generator, tier, out_dir, formats=("onnx", "tflite"), progress=True):
            folder = out_dir if report.passed else out_dir / "rejected"
            paths.append(folder / report.artifact)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiers", default="cpu", help="tiers to export and time (default cpu)")
    parser.add_argument("--artifacts", type=Path, default=None, help="time an existing release folder instead of exporting")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help="where to export (default: a temporary folder)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from mobile_pipeline.bench.run import artifact_info
    from mobile_pipeline.bench.runners import RuntimeSpec, RuntimeUnavailable, artifact_format
    from mobile_pipeline.nets.complexity import count_macs

    from mobile_pipeline.search.latency import roofline_ms, spec_ops

    if args.artifacts:
        paths = sorted(p for p in args.artifacts.rglob("*") if artifact_format(p) in ("onnx", "tflite"))
    else:
        out = args.out or Path(tempfile.mkdtemp(prefix="bench_runtimes_"))
        paths = export_tiers([t.strip() for t in args.tiers.split(",") if t.strip()], out)

    # The machine is shared: measure the roofline before and after the models and keep the
    # best (least disturbed) figure of each, so a busy moment does not flatter the ratio.
    print("measuring single-thread 3x3 conv throughput and copy bandwidth ...", flush=True)
    throughput, bandwidth = conv_throughput(), copy_bandwidth_gbs()
    timed = []
    for path in paths:
        info = artifact_info(path)
        runtime = RuntimeSpec("onnxruntime", "cpu", 1) if info["format"] == "onnx" else RuntimeSpec("litert", "xnnpack", 1)
        if not info["arch"]:
            print(f"  {path.name}: no arch in its report; skipped", file=sys.stderr)
            continue
        try:
            timed.append((path, info, runtime, *model_times_ms(path, runtime, info["layout"], args.runs)))
        except RuntimeUnavailable as err:
            print(f"  {path.name}: {err}", file=sys.stderr)
    again = conv_throughput()
    throughput = {k: max(v, again[k]) for k, v in throughput.items()}
    bandwidth = max(bandwidth, copy_bandwidth_gbs())
    best = max(throughput.values())
    print("  " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in throughput.items()) + f" -> roofline {best:.1f} GFLOP/s; "
          f"copy bandwidth {bandwidth:.1f} GB/s")

    rows, met, own_met = [], None, None
    for path, info, runtime, p25, p50, hw in timed:
        macs = count_macs(info["arch"], hw)
        roof_ms = 2.0 * macs / (best * 1e9) * 1e3
        ratio = p25 / roof_ms
        both_ms = roofline_ms(spec_ops(info["arch"], hw), best, bandwidth, 4)
        own = throughput["onnxruntime" if runtime.runtime == "onnxruntime" else "litert"]
        rows.append({"tier": info["tier"], "artifact": path.name, "runtime": runtime.label, "gmacs": macs / 1e9,
                     "p25_ms": p25, "p50_ms": p50, "roofline_ms": roof_ms, "ratio": ratio,
                     "own_ratio": p25 / (2.0 * macs / (own * 1e9) * 1e3),
                     "mem_roofline_ms": both_ms, "mem_ratio": p25 / both_ms,
                     "rejected": "rejected" in path.parts})
        if info["tier"] == "cpu" and info["format"] == "tflite" and info["precision"] == "fp32":
            met = ratio <= TARGET_RATIO
            own_met = rows[-1]["own_ratio"] <= TARGET_RATIO

    print(f"\n{'tier':5s} {'artifact':28s} {'runtime':22s} {'GMACs':>6s} {'p25 ms':>8s} {'p50 ms':>8s} "
          f"{'roof ms':>8s} {'ratio':>6s} {'same-rt':>7s} {'roof+mem ms':>11s} {'ratio':>6s}")
    for r in rows:
        flag = "  (rejected by export gate)" if r["rejected"] else ""
        print(f"{r['tier'] or '-':5s} {r['artifact']:28s} {r['runtime']:22s} {r['gmacs']:6.3f} {r['p25_ms']:8.2f} "
              f"{r['p50_ms']:8.2f} {r['roofline_ms']:8.2f} {r['ratio']:6.2f} {r['own_ratio']:7.2f} {r['mem_roofline_ms']:11.2f} "
              f"{r['mem_ratio']:6.2f}{flag}")
    print(json.dumps({"conv_gflops": throughput, "copy_gbs": bandwidth}, indent=None))
    if met is None:
        print("target: no cpu-tier tflite fp32 artifact was timed")
        return 1
    print(f"target: cpu tier TFLite fp32 within {TARGET_RATIO:.0f}x of the roofline (best conv on this machine): "
          f"{'MET' if met else 'NOT MET'}; within {TARGET_RATIO:.0f}x of LiteRT's own conv throughput: "
          f"{'MET' if own_met else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""How well does the LUT latency model predict measured end-to-end latency on this machine?

Samples N architectures of the default search grid (seeded), predicts each with the
FBNet-style sum of LUT entries, converts each whole generator with litert-torch and times it
with the LiteRT interpreter (1 thread, same timing routine as the LUT), then prints a table
and MAPE / Spearman rank correlation. If the raw sum misses the target, a linear correction
``measured ~ a + b * predicted`` is fitted on one half of the sample and reported on the
other (held-out) half; ``--write-correction`` stores the fit (on all samples) in the LUT.

Measurements are cached (``--cache``), so an interrupted run resumes.

    python benchmarks/bench_latency_model.py --n 20

``--devices`` judges the per-phone latency models instead (no timing here): for every device,
runtime and precision in the imported Qualcomm AI Hub profiles (device_tiers/measurements/),
each published network is predicted by a fit on the *other* networks (leave one model out),
for the chosen per-op-class model and two simpler ones (one MAC throughput; our CPU LUT times
one scale per device). Prints MAPE and Spearman per row against the goal (<= 20 %, >= 0.9).

    python benchmarks/bench_latency_model.py --devices [--all-devices]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (no ties expected in latencies)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def mape(pred: np.ndarray, meas: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - meas) / meas) * 100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="sampled architectures (>= 20 for the report)")
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--seed", type=int, default=123, help="differs from the LUT build's seed on purpose")
    parser.add_argument("--cache", type=Path, default=Path(".mp_cache/bench_latency_model.json"))
    parser.add_argument("--write-correction", action="store_true", help="store the linear fit in the LUT")
    parser.add_argument("--devices", action="store_true",
                        help="judge the per-phone models fitted on AI Hub profiles (leave one model out)")
    parser.add_argument("--all-devices", action="store_true", help="with --devices: also dev kits, not only phones")
    parser.add_argument("--measurements", type=Path, default=None, help="with --devices: measurements folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.devices:
        return bench_devices(args.measurements, args.all_devices)

    import random

    import torch

    torch.set_num_threads(1)
    from mobile_pipeline.nets.complexity import count_macs
    from mobile_pipeline.nets.generator import build_generator, trained_like
    from mobile_pipeline.search.latency import LatencyModel, default_lut_path
    from mobile_pipeline.search.litert_timing import measure_module
    from mobile_pipeline.search.space import SpaceChoices, random_spec
    from mobile_pipeline.utils.atomic import atomic_write_json

    model = LatencyModel.load(tiers={})
    model.correction = {"intercept_ms": 0.0, "slope": 1.0}  # evaluate the raw sum first
    rng = random.Random(args.seed)
    specs = []
    while len(specs) < args.n:
        spec = random_spec(SpaceChoices(), rng)
        if spec not in specs:
            specs.append(spec)
    cache = json.loads(args.cache.read_text()) if args.cache.is_file() else {}
    hw = (args.side, args.side)
    rows = []
    for i, spec in enumerate(specs):
        key = f"{spec.to_string()}@{args.side}"
        if key not in cache:
            t0 = time.monotonic()
            # Trained-like weights: a fresh model's zeroed residual BatchNorms fold to convs the
            # converter drops, which would time a smaller graph than the LUT sums.
            generator = trained_like(build_generator(spec), seed=i)
            result = measure_module(generator, (torch.rand(1, 3, *hw),), channel_last=False, min_runs=10,
                                    min_seconds=0.3)
            cache[key] = result
            atomic_write_json(args.cache, cache)
            print(f"[{i + 1}/{len(specs)}] measured {key}: {result['ms']:.2f} ms "
                  f"(convert {result['convert_s']:.1f} s, total {time.monotonic() - t0:.1f} s)", flush=True)
        fallbacks = model.fallbacks
        predicted = model.predict_local_ms(spec, hw)
        rows.append({"spec": spec.to_string(), "macs": count_macs(spec, hw), "predicted": predicted,
                     "measured": cache[key]["ms"], "extrapolated_ops": model.fallbacks - fallbacks,
                     "coverage": model.coverage(spec, hw)})
    pred = np.array([r["predicted"] for r in rows])
    meas = np.array([r["measured"] for r in rows])
    print(f"\nLatency model vs measured LiteRT latency, 1 thread, {args.side}x{args.side}, n={len(rows)}")
    print(f"{'architecture':66s} {'GMACs':>6s} {'pred ms':>8s} {'meas ms':>8s} {'err %':>6s} {'LUT cov':>7s}")
    for r in rows:
        err = (r["predicted"] - r["measured"]) / r["measured"] * 100
        print(f"{r['spec']:66s} {r['macs'] / 1e9:6.3f} {r['predicted']:8.2f} {r['measured']:8.2f} {err:6.1f} "
              f"{r['coverage']:7.2f}")
    print(f"\nsum of LUT ops (raw):     MAPE {mape(pred, meas):5.1f} %   Spearman {spearman(pred, meas):.3f}")
    macs = np.array([r["macs"] for r in rows], dtype=float)
    a, b = np.polyfit(macs, meas, 1)[::-1]
    print(f"(baseline: linear in MACs, in-sample: MAPE {mape(a + b * macs, meas):5.1f} %   "
          f"Spearman {spearman(macs, meas):.3f})")
    train, test = np.arange(len(rows)) % 2 == 0, np.arange(len(rows)) % 2 == 1
    print(f"raw sum, held-out half:   MAPE {mape(pred[test], meas[test]):5.1f} %   "
          f"Spearman {spearman(pred[test], meas[test]):.3f}")
    # Two corrections, each fitted on one half and scored on the other: a line, and a plain
    # ratio (the median of measured / predicted: per-op sums miss a roughly proportional
    # cost between ops, and a median is not dragged by one noisy measurement).
    fits = {"linear": lambda p, m: tuple(np.polyfit(p, m, 1)[::-1]),
            "ratio": lambda p, m: (0.0, float(np.median(m / p)))}
    held_out = {}
    for name, fit in fits.items():
        intercept, slope = fit(pred[train], meas[train])
        fitted = intercept + slope * pred
        held_out[name] = mape(fitted[test], meas[test])
        print(f"{name} correction (fit on the other half: {intercept:+.3f} ms + {slope:.3f} x sum), held-out half: "
              f"MAPE {held_out[name]:5.1f} %   Spearman {spearman(fitted[test], meas[test]):.3f}")
    if args.write_correction:
        best = min(held_out, key=held_out.get)
        intercept_all, slope_all = fits[best](pred, meas)
        path = default_lut_path()
        data = json.loads(path.read_text())
        data["correction"] = {"kind": best, "intercept_ms": float(intercept_all), "slope": float(slope_all),
                              "fitted_on": len(rows), "side": args.side, "seed": args.seed,
                              "heldout_mape_pct": held_out[best],
                              "raw_mape_pct": mape(pred, meas), "raw_spearman": spearman(pred, meas)}
        atomic_write_json(path, data)
        print(f"{best} correction written to {path}: {intercept_all:+.3f} ms + {slope_all:.3f} x sum")
    return 0


def bench_devices(measurements_dir: Path | None, all_devices: bool) -> int:
    """Leave-one-model-out MAPE / Spearman of three device latency models, per device x runtime x precision."""
    from mobile_pipeline.bench.device_fit import (
        MIN_MODELS,
        collect_samples,
        leave_one_group_out,
        mape_pct,
        nnls_relative,
        reference_features,
    )
    from mobile_pipeline.bench.measurement import load_measurements
    from mobile_pipeline.bench.reference_nets import reference_ops
    from mobile_pipeline.search.device_latency import element_bytes, spearman
    from mobile_pipeline.search.latency import LatencyModel

    group, features = reference_features()
    lut = LatencyModel.load(tiers={})
    lut_ms: dict[str, float] = {}

    def lut_row(model: str, size: int) -> list[float]:
        if model not in lut_ms:
            lut_ms[model] = lut.predict_local_ms_ops(reference_ops(model))
        return [lut_ms[model]]

    def macs_row(model: str, size: int) -> list[float]:
        return [1.0, features(model, size)[1]]

    methods = {"per-op-class": lambda m, s: list(features(m, s)), "MACs": macs_row, "LUT x scale": lut_row}
    samples = [s for s in collect_samples([m for _, m in load_measurements(measurements_dir)], group)
               if len(set(s.groups)) >= MIN_MODELS and s.compute_unit == "NPU"
               and (all_devices or s.form_factor in ("phone", "tablet") or s.tier_soc != s.soc_model
                    or s.soc_model == "QCS6490")]
    if not samples:
        print("no AI Hub measurements of rebuilt networks: run scripts/curate_aihub.py or `bench import` first")
        return 1
    print("Per-device latency models, leave-one-model-out over AI Hub-profiled networks "
          f"(goal: MAPE <= 20 %, Spearman >= 0.9; {samples[0].origin})")
    head = f"{'device':26s} {'SoC':8s} {'runtime':8s} {'prec':5s} {'n':>3s}"
    for name in methods:
        head += f" | {name + ' MAPE':>17s} {'rho':>5s}"
    print(head)
    totals: dict[str, list[tuple[float, float]]] = {name: [] for name in methods}
    for s in sorted(samples, key=lambda s: (s.precision != "w8a8", s.runtime != "tflite", s.runtime, s.device)):
        size = element_bytes(s.precision) or 1
        line = f"{s.device[:26]:26s} {s.soc_model[:8]:8s} {s.runtime:8s} {s.precision:5s} {len(s.models):3d}"
        for name, row_of in methods.items():
            rows = [row_of(m, size) for m in s.models]
            held = leave_one_group_out(rows, s.measured_ms, s.groups, nnls_relative)
            err, rho = mape_pct(held, s.measured_ms), spearman(held, s.measured_ms)
            totals[name].append((err, rho))
            mark = "" if err <= 20 and rho >= 0.9 else " *"
            line += f" | {err:15.1f} %{rho:6.3f}{mark:2s}"[:28]
        print(line)
    print("\n* misses the goal.  Mean over rows / rows meeting both goals:")
    for name, values in totals.items():
        ok = sum(1 for err, rho in values if err <= 20 and rho >= 0.9)
        print(f"  {name:14s} MAPE {np.mean([v[0] for v in values]):5.1f} %   Spearman {np.mean([v[1] for v in values]):.3f}"
              f"   {ok}/{len(values)} rows meet both")
    return 0


if __name__ == "__main__":
    sys.exit(main())

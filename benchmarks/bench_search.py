"""Cost of the hardware-aware search against training one network, and per-tier training.

Targets (issue 4), demo preset on 2 CPU cores:

* searching all four tiers (one weight-sharing supernet trained once, NNI evolution per tier
  scoring candidates by inference with inherited weights, a short fine-tune per winner)
  costs <= 1.5x one training run of the large spec, against 4x for a training run per tier.
  "One training run of the large spec" is what `mobile-pipeline train` does with the preset's
  train settings (steps, batch, patches, adversarial stage) for the registry's
  ``stylizer-large``; the verdict is taken against it;
* the whole search runs in <= 10 minutes.

Two stricter references are printed too: the release's own training run (the preset's
``train.arch``), and the grid's largest network trained alone for exactly the supernet's
steps, batch, patches, loss and optimiser. The second isolates what weight sharing itself
costs per step: the sandwich rule trains the largest, the smallest and ``n_random`` random
sub-networks every step, so it cannot come in under ~1x of it.

    .venv/bin/python benchmarks/bench_search.py                 # demo preset
    .venv/bin/python benchmarks/bench_search.py --preset tiny

``--ranking`` measures instead whether the supernet ranks like stand-alone training (issue 12,
goal Kendall tau >= 0.5): ``--archs`` architectures spread over the grid's MAC range are
each trained alone for ``--standalone-steps`` with the supernet's batches, loss and
optimiser, and scored on the held-out crops the search uses; the supernet (trained as the
preset says, distilled from a reference model trained as the ``train`` stage does) scores
the same architectures with inherited weights. ``--compare`` also trains a supernet without
distillation, so the table shows what distillation buys.

    .venv/bin/python benchmarks/bench_search.py --ranking --compare      # demo preset, ~40 min
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

SEARCH_RATIO_TARGET = 1.5
LARGE_SPEC = "stylizer-large"
SEARCH_SECONDS_TARGET = {"demo": 600.0}


def train_standalone(spec, cfg, dataset_dir: Path, steps: int) -> float:
    """Seconds to train ``spec`` alone for ``steps`` with the supernet's recipe (Adam, cosine, clip)."""
    import torch

    from mobile_pipeline.nets.generator import build_generator
    from mobile_pipeline.search.driver import _dataset_tensors, _paired_loss_fn

    torch.manual_seed(cfg.search.seed)
    sampler, _, _ = _dataset_tensors(dataset_dir, cfg)
    loss_fn = _paired_loss_fn(cfg)
    model = build_generator(spec).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.search.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s / max(steps, 1), 1.0))))
    start = time.perf_counter()
    for step in range(steps):
        photos, targets = (torch.from_numpy(a) for a in sampler.batch_at(step, cfg.search.batch_size))
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model.forward_pyramid(photos), targets).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        schedule.step()
    return time.perf_counter() - start


def train_run_seconds(cfg, arch: str, dataset_dir: Path, out_dir: Path, threads: int) -> float:
    """Wall seconds of `mobile-pipeline train` for ``arch`` with the preset's train settings."""
    from mobile_pipeline.train.runner import train_stylizer

    run_cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"arch": arch, "num_threads": threads})})
    start = time.perf_counter()
    train_stylizer(run_cfg, dataset_dir, out_dir, progress=False)
    return time.perf_counter() - start


def bench_ranking(args: argparse.Namespace) -> int:
    """Kendall tau between the supernet's inherited scores and stand-alone training."""
    import torch

    from mobile_pipeline.config import preset_config
    from mobile_pipeline.data.dataset import build_dataset
    from mobile_pipeline.nets.complexity import count_macs
    from mobile_pipeline.search.driver import _Searcher, heldout_psnr
    from mobile_pipeline.search.ranking import kendall_tau, spread_architectures, train_standalone
    from mobile_pipeline.search.space import SPACES
    from mobile_pipeline.train.checkpoint import load_generator

    torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_ranking_"))
    cfg = preset_config(args.preset).model_copy(update={"cache_dir": work / "cache"})
    data_dir = work / "data"
    build_dataset(cfg.data, data_dir, progress=False)
    reference = args.reference
    if reference is None and not args.no_reference:
        reference = work / "reference" / "generator.pt"
        if not reference.is_file():
            print(f"training the reference model as the train stage does ({cfg.train.arch}) ...", flush=True)
            train_run_seconds(cfg, cfg.train.arch, data_dir, work / "reference", args.threads)
    side = cfg.search.resolution
    choices = SPACES[cfg.search.space]
    archs = spread_architectures(choices, args.archs, lambda s: count_macs(s, (32, 32)), seed=args.seed)
    if args.supernet_steps is not None or args.n_random is not None:
        update = {k: v for k, v in (("supernet_steps", args.supernet_steps), ("n_random", args.n_random)) if v is not None}
        cfg = cfg.model_copy(update={"search": cfg.search.model_copy(update=update)})
    modes = [("config", cfg.search.weight_reference, cfg.search.weight_inplace)]
    if args.compare:
        modes.insert(0, ("no distillation", 0.0, 0.0))
    inherited: dict[str, list[float]] = {}
    supernet_seconds: dict[str, float] = {}
    for name, w_ref, w_inplace in modes:
        mode_cfg = cfg.model_copy(update={"search": cfg.search.model_copy(
            update={"weight_reference": w_ref, "weight_inplace": w_inplace})})
        searcher = _Searcher(mode_cfg, data_dir, work / "search", {}, None, progress=True)
        if reference is not None and w_ref > 0:
            from mobile_pipeline.utils.atomic import sha256_file

            searcher.reference = load_generator(reference).requires_grad_(False)
            searcher.reference_sha = sha256_file(reference)
        print(f"supernet ({name}: reference x{w_ref}, in-place x{w_inplace}), {cfg.search.supernet_steps} steps ...",
              flush=True)
        start = time.perf_counter()
        searcher.train_supernet(data_dir)
        supernet_seconds[name] = time.perf_counter() - start
        inherited[name] = [searcher.quality(spec) for spec in archs]
    # Stand-alone scores are kept in the work folder: a rerun with other supernet settings reuses them.
    cache_path = work / f"standalone_{args.standalone_steps}.json"
    known = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    standalone, standalone_s = [], 0.0
    for index, spec in enumerate(archs, start=1):
        if spec.to_string() in known:
            standalone.append(known[spec.to_string()])
            continue
        print(f"[{index}/{len(archs)}] stand-alone {args.standalone_steps} steps: {spec.to_string()}", flush=True)
        start = time.perf_counter()
        model = train_standalone(spec, searcher.batch, args.standalone_steps, loss_fn=searcher.loss_fn,
                                 lr=cfg.search.lr, seed=cfg.search.seed)
        standalone_s += time.perf_counter() - start
        standalone.append(heldout_psnr(model, searcher.val_pairs))
        known[spec.to_string()] = standalone[-1]
        cache_path.write_text(json.dumps(known, indent=1))

    from scipy.stats import spearmanr

    print(f"\nranking, preset {args.preset}: {len(archs)} architectures spread over the '{cfg.search.space}' grid; "
          f"stand-alone {args.standalone_steps} steps each ({standalone_s:.0f} s in all); supernet "
          f"{cfg.search.supernet_steps} sandwich steps; held-out PSNR dB on {len(searcher.val_pairs)} images "
          f"({'whole' if cfg.search.eval_size is None else f'{cfg.search.eval_size} px center crops'}); "
          f"{args.threads} threads")
    header = f"{'architecture':76} {'GMACs@' + str(side):>10} {'alone':>7}" + "".join(f" {n[:14]:>14}" for n, *_ in modes)
    print(header)
    order = sorted(range(len(archs)), key=lambda i: count_macs(archs[i], (32, 32)))
    for i in order:
        row = f"{archs[i].to_string():76} {count_macs(archs[i], (side, side)) / 1e9:10.3f} {standalone[i]:7.2f}"
        print(row + "".join(f" {inherited[n][i]:14.2f}" for n, *_ in modes))
    print(f"{'Kendall tau vs stand-alone':95}" + "".join(f" {kendall_tau(inherited[n], standalone):14.3f}" for n, *_ in modes))
    print(f"{'Spearman vs stand-alone':95}" + "".join(f" {spearmanr(inherited[n], standalone).statistic:14.3f}" for n, *_ in modes))
    print(f"{'supernet seconds':95}" + "".join(f" {supernet_seconds[n]:14.0f}" for n, *_ in modes))
    macs = [count_macs(spec, (side, side)) for spec in archs]
    print(f"free baseline, MACs alone: Kendall tau {kendall_tau(macs, standalone):.3f}, "
          f"Spearman {spearmanr(macs, standalone).statistic:.3f}")
    tau = kendall_tau(inherited["config"], standalone)
    print(f"\ngoal: Kendall tau >= 0.5 with the preset's supernet: {'met' if tau >= 0.5 else 'MISSED'} ({tau:.3f})")
    return 0 if tau >= 0.5 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (2 = this machine's cores)")
    parser.add_argument("--ranking", action="store_true", help="Kendall tau of supernet vs stand-alone scores")
    parser.add_argument("--archs", type=int, default=12, help="--ranking: architectures (>= 10)")
    parser.add_argument("--standalone-steps", type=int, default=300, help="--ranking: steps per stand-alone run")
    parser.add_argument("--compare", action="store_true", help="--ranking: also a supernet without distillation")
    parser.add_argument("--reference", type=Path, default=None, help="--ranking: reference generator.pt to reuse")
    parser.add_argument("--no-reference", action="store_true", help="--ranking: no reference model at all")
    parser.add_argument("--work", type=Path, default=None, help="--ranking: work folder (kept; reuses the reference)")
    parser.add_argument("--seed", type=int, default=0, help="--ranking: seed of the architecture sample")
    parser.add_argument("--supernet-steps", type=int, default=None, help="--ranking: override search.supernet_steps")
    parser.add_argument("--n-random", type=int, default=None, help="--ranking: override search.n_random")
    args = parser.parse_args(argv)
    if args.ranking:
        return bench_ranking(args)

    import torch

    from mobile_pipeline.config import preset_config
    from mobile_pipeline.data.dataset import build_dataset
    from mobile_pipeline.nets.complexity import count_macs
    from mobile_pipeline.nets.spec import ArchSpec
    from mobile_pipeline.search.driver import run_search
    from mobile_pipeline.search.space import SPACES, largest_spec

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_search_"))
    try:
        cfg = preset_config(args.preset).model_copy(update={"cache_dir": work / "cache"})  # cold supernet
        data_dir = work / "data"
        build_dataset(cfg.data, data_dir, progress=False)
        start = time.perf_counter()
        results = run_search(cfg, data_dir, work / "search", progress=True)
        search_s = time.perf_counter() - start
        events = [json.loads(line) for line in (work / "search" / "search_log.jsonl").read_text().splitlines()]
        supernet_s = next(e["seconds"] for e in events if e["event"] == "supernet_trained")
        tier_s = {t: json.loads((work / "search" / f"{t}.json").read_text())["search"]["seconds"] for t in results}

        steps = cfg.search.supernet_steps
        grid_largest = largest_spec(SPACES[cfg.search.space])
        print(f"\ntraining the grid's largest {grid_largest.to_string()} alone for {steps} steps ...", flush=True)
        grid_largest_s = train_standalone(grid_largest, cfg, data_dir, steps)
        per_tier = {}
        for tier, result in results.items():
            print(f"training the {tier} winner {result.spec.to_string()} from scratch for {steps} steps ...", flush=True)
            per_tier[tier] = train_standalone(ArchSpec.from_string(result.spec.to_string()), cfg, data_dir, steps)
        runs = {}
        for arch in dict.fromkeys((cfg.train.arch, LARGE_SPEC)):
            print(f"\ntraining {arch} as `mobile-pipeline train` does ({cfg.train.paired_steps} paired + "
                  f"{cfg.train.adversarial_steps} adversarial steps) ...", flush=True)
            runs[arch] = train_run_seconds(cfg, arch, data_dir, work / f"train_{arch}", args.threads)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    side = cfg.search.resolution
    large_s = runs[LARGE_SPEC]
    n = len(results)
    rows = [
        ("weight-sharing search, all tiers (total)", search_s),
        ("  of which: supernet training (sandwich rule)", supernet_s),
        *((f"  of which: tier {t} (evolution + fine-tune)", s) for t, s in tier_s.items()),
        (f"one training run of the large spec ({LARGE_SPEC}, {count_macs(LARGE_SPEC, (side, side)) / 1e9:.2f} GMACs@{side})",
         large_s),
        (f"a training run per tier of the large spec ({n}x)", n * large_s),
        (f"the release's own training run ({cfg.train.arch})", runs[cfg.train.arch]),
        (f"grid's largest ({count_macs(grid_largest, (side, side)) / 1e9:.2f} GMACs) for the supernet's {steps} steps",
         grid_largest_s),
        (f"each tier's winner from scratch for {steps} steps (sum of {n})", sum(per_tier.values())),
    ]
    print(f"\nsearch cost, preset {args.preset}: supernet {steps} steps, batch {cfg.search.batch_size} x "
          f"{cfg.search.patch_size}px; training runs {cfg.train.paired_steps}+{cfg.train.adversarial_steps} steps, batch "
          f"{cfg.train.batch_size} x {cfg.train.patch_size}px; {args.threads} threads")
    print(f"{'approach':66} {'seconds':>8} {'x large run':>11} {'x grid-largest':>14}")
    for label, seconds in rows:
        print(f"{label:66} {seconds:8.1f} {seconds / large_s:11.2f} {seconds / grid_largest_s:14.2f}")
    ratio = search_s / large_s
    ok = ratio <= SEARCH_RATIO_TARGET
    print(f"\ntarget: search <= {SEARCH_RATIO_TARGET}x one training run of {LARGE_SPEC}: {'ok' if ok else 'MISS'} "
          f"({ratio:.2f}x; a run per tier: {n:.0f}x)")
    print(f"stricter: {search_s / grid_largest_s:.2f}x the grid's largest for the same steps "
          f"(the supernet alone {supernet_s / grid_largest_s:.2f}x)")
    if args.preset in SEARCH_SECONDS_TARGET:
        limit = SEARCH_SECONDS_TARGET[args.preset]
        ok &= search_s <= limit
        print(f"target: whole search <= {limit:.0f} s: {'ok' if search_s <= limit else 'MISS'} ({search_s:.0f} s)")
    for tier, result in results.items():
        print(f"  {tier}: {result.spec.to_string()}  {result.macs / 1e9:.3f} GMACs  {result.psnr_db:.2f} dB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Ablation at equal MACs: FS+STA vs ResNet+add vs FS+add vs ResNet+STA.

The design claims that the FS block and the STA fusion beat a ResNet block and add fusion
*at equal compute*. Each variant keeps the reference spec's structure (stages, block count,
branches, upsampling) and changes only the block kind and/or the fusion; its widths are then
scaled with :func:`mobile_pipeline.nets.complexity.scale_to_macs` to within 5% of the
reference's MACs at 256x256. Every variant trains with the same steps, data and seeds
(paired stage only: the architecture is what is compared, not the GAN game), and is scored
by held-out PSNR/SSIM against the teacher. The verdict is printed whichever way it goes.

    .venv/bin/python benchmarks/bench_ablation.py                     # ~10 min on 2 shared cores
    .venv/bin/python benchmarks/bench_ablation.py --steps 400 --seeds 0 1 2 3 4   # tighter answer
    .venv/bin/python benchmarks/bench_ablation.py --reference stylizer-small
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mobile_pipeline.utils.text_table import text_table

#: (label, block kind, fusion kind) of each variant; the first is the design's choice.
VARIANTS: tuple[tuple[str, str, str], ...] = (
    ("FS+STA", "fs", "sta"),
    ("ResNet+add", "resnet", "add"),
    ("FS+add", "fs", "add"),
    ("ResNet+STA", "resnet", "sta"),
)


def equal_mac_variants(reference: str, input_hw: tuple[int, int] = (256, 256), tolerance: float = 0.05):
    """``[(label, spec, macs, params)]``: each variant scaled to the reference's MACs."""
    from mobile_pipeline.nets.complexity import count_macs, count_params, scale_to_macs
    from mobile_pipeline.nets.registry import get_spec
    from mobile_pipeline.nets.spec import ArchSpec

    ref = get_spec(reference)
    target = count_macs(ref, input_hw)
    out = []
    for label, block, fusion in VARIANTS:
        data = ref.to_dict()
        data["block"] = block
        data["fusion"] = [fusion] * len(ref.encoder_widths)
        spec = ArchSpec.from_dict(data)
        if spec != ref:
            spec = scale_to_macs(spec, target, input_hw, tolerance=tolerance)
        out.append((label, spec, count_macs(spec, input_hw), count_params(spec)))
    return out, target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", default="stylizer-tiny", help="spec whose MACs every variant matches")
    parser.add_argument("--steps", type=int, default=100, help="paired training steps per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--data", type=Path, default=None, help="dataset folder (default: demo preset data, built)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)

    import torch

    from mobile_pipeline.config import preset_config
    from mobile_pipeline.data.dataset import build_dataset
    from mobile_pipeline.train.runner import train_stylizer

    torch.set_num_threads(args.threads)
    variants, target = equal_mac_variants(args.reference)
    print(f"== ablation at equal MACs: reference {args.reference} = {target / 1e6:.1f} MMACs at 256x256; "
          f"{args.steps} paired steps, batch {args.batch} x {args.patch}px, seeds {args.seeds}, {args.threads} thread(s)")
    print(text_table(["variant", "spec", "MMACs", "vs ref", "params"],
                      [[label, spec.to_string(), f"{macs / 1e6:.1f}", f"{(macs - target) / target:+.1%}", f"{params:,}"]
                       for label, spec, macs, params in variants]))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_ablation_") as tmp:
        data_dir = args.data
        if data_dir is None:
            data_dir = Path(tmp) / "data"
            build_dataset(preset_config("demo").data, data_dir, progress=False)
        results: dict[str, list[tuple[float, float, float]]] = {}
        for label, spec, _, _ in variants:
            for seed in args.seeds:
                cfg = preset_config("demo", train={
                    "arch": spec.to_string(), "paired_steps": args.steps, "adversarial_steps": 0,
                    "batch_size": args.batch, "patch_size": args.patch, "seed": seed, "num_threads": args.threads,
                    "val_every": args.steps + 1, "checkpoint_every": args.steps})
                t0 = time.perf_counter()
                result = train_stylizer(cfg, data_dir, Path(tmp) / f"{label}_{seed}", progress=False)
                seconds = time.perf_counter() - t0
                results.setdefault(label, []).append((result.metrics["psnr_db"], result.metrics["ssim"], seconds))
                print(f"  {label:<11} seed {seed}: {result.metrics['psnr_db']:.2f} dB, SSIM "
                      f"{result.metrics['ssim']:.3f} ({seconds:.0f} s)", flush=True)
    rows, means = [], {}
    for label, runs in results.items():
        psnrs = [r[0] for r in runs]
        means[label] = statistics.mean(psnrs)
        spread = statistics.stdev(psnrs) if len(psnrs) > 1 else 0.0
        rows.append([label, " ".join(f"{p:.2f}" for p in psnrs), f"{means[label]:.2f}", f"{spread:.2f}",
                     f"{max(psnrs) - min(psnrs):.2f}", f"{statistics.mean(r[1] for r in runs):.3f}",
                     f"{statistics.mean(r[2] for r in runs):.0f}"])
    print(f"\nheld-out PSNR vs the teacher (total {time.perf_counter() - started:.0f} s):")
    print(text_table(["variant", "PSNR per seed (dB)", "mean", "std", "range", "SSIM mean", "s/run"], rows))
    ranking = sorted(means, key=means.get, reverse=True)
    best, claim = ranking[0], VARIANTS[0][0]
    runner_up = ranking[1] if ranking[0] == claim else claim
    gap = means[claim] - max(v for k, v in means.items() if k != claim)
    noise = max(statistics.stdev([r[0] for r in results[k]]) if len(results[k]) > 1 else 0.0 for k in results)
    print(f"\nranking: {' > '.join(f'{k} ({means[k]:.2f})' for k in ranking)}")
    if best == claim and gap > noise:
        verdict = f"the claim holds here: {claim} leads {runner_up} by {gap:.2f} dB, more than the seed std ({noise:.2f} dB)"
    elif best == claim:
        verdict = (f"{claim} is ahead by {gap:.2f} dB, but within the seed std ({noise:.2f} dB): "
                   "not a significant win at this budget (run more --steps/--seeds)")
    else:
        verdict = (f"the claim does NOT hold here: {best} beats {claim} by {means[best] - means[claim]:.2f} dB "
                   f"(seed std up to {noise:.2f} dB)")
    print(f"verdict: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

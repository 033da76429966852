"""Temporal consistency term: what it buys on video and what it costs on stills, at equal steps.

For every registered spec asked for (default: the demo preset's) and every ``weight_temporal``
(default 0 = off and the config default), trains the preset's recipe for the same steps on the
same data and prints: held-out PSNR/SSIM against the teacher (the still-image look),
training seconds per step (the term's cost), and flicker on the synthetic pan clips of
``mobile_pipeline/quality/flicker.py`` beside the input's and the teacher's own.

    .venv/bin/python benchmarks/bench_temporal.py                         # demo preset, stylizer-small, 0 vs default
    .venv/bin/python benchmarks/bench_temporal.py --arch stylizer-tiny stylizer-small --steps 300
    .venv/bin/python benchmarks/bench_temporal.py --weights 0 0.5 1 2 --steps 300

``--antialias`` is a prototype for ``nets/`` (not in the package): every stride-2 conv of the
encoder gets a fixed [1, 2, 1] x [1, 2, 1] / 16 depthwise blur in front (anti-aliased
downsampling, Zhang 2019), by wrapping ``build_generator`` in this process only. Most of the
models' flicker is aliasing in those strided convs; this measures how much blurring removes.

Seconds per step are wall-clock: on a shared machine they move with the others' load, so
run the weights back to back (they are) and compare ratios.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from mobile_pipeline.utils.text_table import text_table


def _antialias_encoders() -> None:
    """Prototype: a fixed blur before every stride-2 encoder conv of every generator built from now on."""
    import torch
    from torch import nn

    import mobile_pipeline.nets.generator as generator_module

    class Blur(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            k = torch.tensor([1.0, 2.0, 1.0])
            self.register_buffer("kernel", ((k[:, None] * k[None, :]) / 16).expand(channels, 1, 3, 3).clone())
            self.channels = channels

        def forward(self, x):
            return nn.functional.conv2d(nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), self.kernel,
                                        groups=self.channels)

    build = generator_module.build_generator

    def build_blurred(spec):
        generator = build(spec)
        for block in generator.encoder:
            block[0] = nn.Sequential(Blur(block[0].in_channels), block[0])
        return generator

    generator_module.build_generator = build_blurred  # train/, checkpoint loading import it at call time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--arch", nargs="+", default=None, help="registered specs (default: the preset's train.arch)")
    parser.add_argument("--weights", nargs="+", type=float, default=None,
                        help="weight_temporal values (default: 0 and the config default, or 0 and 1 if that is 0)")
    parser.add_argument("--steps", type=int, default=None, help="total steps (default: the preset's)")
    parser.add_argument("--size", type=int, default=256, help="flicker clip side (default 256, the cpu/dsp tier's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="train.seed (patch stream and initialisation)")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--antialias", action="store_true", help="prototype: blur before every stride-2 encoder conv")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    if args.antialias:
        _antialias_encoders()

    import torch

    from mobile_pipeline.config import TrainConfig, preset_config
    from mobile_pipeline.data.dataset import build_dataset
    from mobile_pipeline.exporters.runtimes import TorchRunner
    from mobile_pipeline.quality.flicker import ReferenceCache, describe, runner_flicker
    from mobile_pipeline.train.runner import train_stylizer

    torch.set_num_threads(args.threads)
    base = preset_config(args.preset)
    archs = args.arch or [base.train.arch]
    default_weight = TrainConfig().weight_temporal
    weights = args.weights or [0.0, default_weight or 1.0]
    steps = {}
    if args.steps is not None:
        adv = round(args.steps * base.train.adversarial_steps / max(1, base.train.paired_steps + base.train.adversarial_steps))
        steps = {"paired_steps": args.steps - adv, "adversarial_steps": adv}
    cache = ReferenceCache()
    rows, refs = [], None
    with tempfile.TemporaryDirectory(prefix="bench_temporal_") as tmp:
        work = args.work or Path(tmp)
        data_dir = work / "data"
        build_dataset(base.data, data_dir, progress=args.progress)
        for arch in archs:
            for weight in weights:
                cfg = preset_config(args.preset, train={**steps, "arch": arch, "weight_temporal": weight,
                                                        "num_threads": args.threads, "seed": args.seed})
                started = time.perf_counter()
                result = train_stylizer(cfg, data_dir, work / f"{arch}_w{weight:g}", progress=args.progress)
                wall = time.perf_counter() - started
                m = result.metrics
                n_steps = m["paired_steps"] + m["adversarial_steps"]
                from mobile_pipeline.train.checkpoint import load_generator

                runner = TorchRunner(module=load_generator(result.checkpoint))
                row = runner_flicker(f"{arch} w={weight:g}", runner, cache, size=args.size)
                refs = row.refs
                rows.append([arch, f"{weight:g}", f"{m['paired_steps']}+{m['adversarial_steps']}",
                             f"{m['train_seconds']:.0f}", f"{m['train_seconds'] / n_steps:.3f}",
                             f"{m['psnr_db']:.2f}", f"{m['ssim']:.3f}", f"{row.score.mad:.2f}",
                             f"{row.score.flips_pct:.2f}", f"{row.vs_input:.2f}", f"{row.vs_teacher:.2f}"])
                print(f"done: {arch} weight_temporal={weight:g} in {wall:.0f} s", file=sys.stderr, flush=True)
    print(f"\n== temporal consistency term: preset {args.preset}, seed {args.seed}, torch threads {args.threads}"
          f"{', anti-aliased encoder (prototype)' if args.antialias else ''} "
          f"(wall-clock: a shared machine's load inflates it; compare within the table)")
    print(text_table(["arch", "weight_temporal", "steps", "train s", "s/step", "PSNR dB", "SSIM", "flicker",
                       "flips %", "x input", "x teacher"], rows))
    if refs is not None:
        print(f"\nreferences at {args.size}x{args.size}: input {refs.input.mad:.2f} (noise-free {refs.input_clean.mad:.2f}), "
              f"teacher {refs.teacher.mad:.2f} ({refs.teacher.flips_pct:.2f}% flips)")
    print(describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train the STA + FS stylizer: paired stage, then mixed adversarial stage (Lightning).

Examples:
  mobile-pipeline train                                  # demo preset, bundled photos (<= 5 min on 2 cores)
  mobile-pipeline train --data runs/data --out runs/train
  mobile-pipeline train --resume                         # continue from runs/train/checkpoints/last.ckpt
  mobile-pipeline train --preset full --devices 4 --strategy ddp --accelerator gpu
  mobile-pipeline train --arch stylizer-tiny --steps 200
  mobile-pipeline train --arch models/demo/npu.json --reference runs/train/generator.pt --out runs/npu
                                                         # a tier's searched architecture, distilled

Without --data the dataset is built first (data stage, same config) into <out>/data.
Writes <out>/generator.pt, <out>/metrics.json (held-out PSNR/SSIM vs the teacher),
<out>/checkpoints/, <out>/samples/ and <out>/logs/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mobile_pipeline.commands._common import add_config_arguments, load_release_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_config_arguments(parser)
    parser.add_argument("--data", type=Path, default=None,
                        help="dataset folder from the data stage (default: build one into <out>/data)")
    parser.add_argument("--out", type=Path, default=Path("runs/train"), help="run folder (default: runs/train)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/last.ckpt")
    parser.add_argument("--arch", default=None,
                        help="registered spec name, architecture string, or a tier JSON written by the search "
                             "(models/<preset>/<tier>.json, search/<tier>.json): train.arch")
    parser.add_argument("--reference", type=Path, default=None,
                        help="generator checkpoint to distill from (train.weight_distill, train.distill_batch_size), "
                             "as tier training does with the train stage's model")
    parser.add_argument("--init", type=Path, default=None,
                        help="generator checkpoint of the same architecture to start from (e.g. search/<tier>.pt)")
    parser.add_argument("--steps", type=int, default=None,
                        help="total training steps; split between the paired and adversarial stages in the "
                             "config's ratio")
    parser.add_argument("--adversarial-steps", type=int, default=None,
                        help="adversarial-stage steps (train.adversarial_steps); with --steps, the rest is paired")
    parser.add_argument("--few-shot", action="store_true", help="few-shot mode: small patches from 1-3 keyframe pairs")
    parser.add_argument("--accelerator", default=None, help="Lightning accelerator: cpu, gpu, mps, auto")
    parser.add_argument("--devices", default=None, help="devices per node: a count, -1 (all) or 'auto'")
    parser.add_argument("--num-nodes", type=int, default=None, help="nodes for multi-node DDP")
    parser.add_argument("--strategy", default=None, help="Lightning strategy: auto, ddp, ddp_spawn, ...")
    parser.add_argument("--seed", type=int, default=None, help="train.seed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or status lines")


def _train_overrides(args: argparse.Namespace, paired: int, adversarial: int) -> dict:
    """``train`` fields set on the command line (validated by the config model)."""
    overrides: dict = {}
    if args.steps is not None:
        if args.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {args.steps}")
        if args.adversarial_steps is not None:
            adversarial = min(args.adversarial_steps, args.steps)
        else:
            adversarial = round(args.steps * adversarial / max(1, paired + adversarial))
        overrides.update(paired_steps=args.steps - adversarial, adversarial_steps=adversarial)
    elif args.adversarial_steps is not None:
        overrides["adversarial_steps"] = args.adversarial_steps
    devices = args.devices
    if devices is not None and devices.lstrip("-").isdigit():
        devices = int(devices)
    arch = args.arch
    if arch is not None and arch.endswith(".json"):
        from mobile_pipeline.train.tiers import spec_from_arch_file

        arch = spec_from_arch_file(Path(arch)).to_string()
    for key, value in (("arch", arch), ("accelerator", args.accelerator), ("devices", devices),
                       ("num_nodes", args.num_nodes), ("strategy", args.strategy), ("seed", args.seed)):
        if value is not None:
            overrides[key] = value
    if args.few_shot:
        overrides["few_shot"] = True
    return overrides


def run(args: argparse.Namespace) -> int:
    from mobile_pipeline.config import ConfigError, build_config
    from mobile_pipeline.data.dataset import DataError, build_dataset
    from mobile_pipeline.nets.registry import get_spec
    from mobile_pipeline.nets.spec import SpecError
    from mobile_pipeline.train.runner import train_stylizer

    cfg = load_release_config(args)
    progress = not args.no_progress
    try:
        overrides = _train_overrides(args, cfg.train.paired_steps, cfg.train.adversarial_steps)
        raw = cfg.model_dump(mode="json")
        raw["train"].update(overrides)
        cfg = build_config(raw, origin="command line")
        spec = get_spec(cfg.train.arch)
        data_dir = args.data
        if data_dir is None:
            data_dir = args.out / "data"
            if progress:
                print(f"train: no --data given; building the dataset into {data_dir}", file=sys.stderr)
            build_dataset(cfg.data, data_dir, progress=progress)
        elif not (data_dir / "manifest.json").is_file():
            raise DataError(f"--data {data_dir}: no manifest.json; build it with `mobile-pipeline data --out {data_dir}`")
        init = None
        if args.init is not None:
            from mobile_pipeline.train.checkpoint import read_generator_state

            init_spec, init = read_generator_state(args.init)
            if init_spec != spec:
                raise ValueError(f"--init {args.init} holds {init_spec.to_string()}, not {spec.to_string()}; "
                                 "pass a checkpoint of the same architecture")
        if args.reference is not None and not args.reference.is_file():
            raise ValueError(f"--reference {args.reference}: no such checkpoint")
        result = train_stylizer(cfg, data_dir, args.out, spec=spec, resume=args.resume, progress=progress,
                                init_state_dict=init, reference_checkpoint=args.reference)
    except (ConfigError, DataError, SpecError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        # Lightning reports a bad --accelerator/--devices combination (e.g. gpu on a CPU-only
        # machine) as MisconfigurationException, which is not a ValueError.
        if type(err).__name__ != "MisconfigurationException":
            raise
        print(f"error: train.accelerator / train.devices / train.strategy: {err}", file=sys.stderr)
        return 2
    if not result.metrics:  # a DDP rank other than 0: rank 0 reports
        return 0
    m = result.metrics
    print(f"generator  {result.checkpoint}  ({result.spec.to_string()})")
    print(f"held-out   PSNR {m['psnr_db']:.2f} dB | SSIM {m['ssim']:.3f} | {m['val_images']} images ({m['val_source']})")
    print(f"steps      {m['paired_steps']} paired + {m['adversarial_steps']} adversarial in {m['train_seconds']:.0f} s")
    if result.lightning_checkpoint:
        print(f"resume     {result.lightning_checkpoint}")
    return 0

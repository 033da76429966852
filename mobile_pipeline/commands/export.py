"""Export a generator checkpoint to ONNX / TFLite / Core ML / ExecuTorch, quantize, validate each artifact.

Examples:
  mobile-pipeline export models/npu.pt --format tflite --quantize int8
  mobile-pipeline export models/npu.pt --tier npu --out export/npu
  mobile-pipeline export gen.pt --format coreml --quantize w6 --resolution 256 --data data/
  mobile-pipeline export models/cpu.pt --format pte --quantize int8 --tier cpu

Every artifact gets <artifact>.report.json (parity, op support, size, sha256); artifacts that
fail their gate are moved to OUT/rejected/. Exit status 1 when any variant was rejected.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("checkpoint", type=Path, help="generator checkpoint (.pt lean file or Lightning .ckpt)")
    parser.add_argument("--format", "-f", default=None,
                        help="onnx, tflite (tfl, litert), coreml (mlpackage) or executorch (pte); "
                             "default: all of the tier's, else onnx")
    parser.add_argument("--quantize", "-q", default=None, metavar="PRECISION",
                        help="onnx: fp32 fp16 int8 | tflite: fp32 fp16 int8-dynamic int8-full (int8) | "
                             "coreml: fp32 fp16 w8 w6-palette w4-palette | executorch: fp32 int8 (XNNPACK) "
                             "fp16 (Core ML) (default fp32)")
    parser.add_argument("--tier", default=None, help="cpu, gpu, dsp or npu: export that tier's variants "
                        "(device_tiers/tiers.yaml) at its resolution and check its op constraints")
    parser.add_argument("--out", type=Path, default=Path("export"), help="output folder (default: export/)")
    parser.add_argument("--resolution", type=int, default=None, help="square input side (default: the tier's, else 256)")
    parser.add_argument("--data", type=Path, default=None,
                        help="dataset folder (from `mobile-pipeline data`) for calibration/validation photos; "
                             "default: bundled sample photos")
    parser.add_argument("--recipe", type=Path, default=None, help="YAML recipe overrides (see exporters/recipes.py)")
    parser.add_argument("--jobs", type=int, default=1, help="with --tier: worker processes, one format each")
    parser.add_argument("--calibration-images", type=int, default=8)
    parser.add_argument("--validation-images", type=int, default=4)


def run(args: argparse.Namespace) -> int:
    from mobile_pipeline.exporters.formats import FormatError, resolve_format, resolve_precision
    from mobile_pipeline.exporters.recipes import RecipeError

    # Validate the cheap things before loading torch and the checkpoint.
    try:
        info = resolve_format(args.format) if args.format else None
        precision = resolve_precision(info, args.quantize) if info else None
    except FormatError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.tier and not info:
        # The tier's formats and precisions come from device_tiers/: refuse what would be ignored.
        for flag, value in (("--quantize", args.quantize), ("--recipe", args.recipe)):
            if value is not None:
                print(f"error: {flag} applies to one variant; with --tier alone the tier's formats and precisions "
                      f"are exported (device_tiers/tiers.yaml). Add --format to export one variant for that tier.",
                      file=sys.stderr)
                return 2
    if not info and not args.tier:  # neither --format nor --tier: ONNX, the portable default
        info = resolve_format("onnx")
        try:
            precision = resolve_precision(info, args.quantize)
        except FormatError as err:
            print(f"error: {err} (pass --format to choose another format)", file=sys.stderr)
            return 2
    if not args.checkpoint.exists():
        print(f"error: checkpoint not found: {args.checkpoint}", file=sys.stderr)
        return 2
    if args.resolution is not None and args.resolution < 16:
        print(f"error: --resolution must be at least 16, got {args.resolution}", file=sys.stderr)
        return 2

    import torch

    from mobile_pipeline.exporters import api
    from mobile_pipeline.exporters.photos import bundled_photos, dataset_photos, split_photos
    from mobile_pipeline.train.checkpoint import load_generator

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    try:
        generator = load_generator(args.checkpoint)
    except Exception as err:
        print(f"error: cannot load generator from {args.checkpoint}: {err}", file=sys.stderr)
        return 2
    if args.data is not None:
        try:
            cal, val = dataset_photos(args.data)
        except Exception as err:
            print(f"error: cannot read dataset {args.data}: {err}", file=sys.stderr)
            return 2
        cal, val = cal[: args.calibration_images], val[: args.validation_images]
    else:
        cal, val = split_photos(bundled_photos(), args.calibration_images, args.validation_images)
    recipe = None
    if args.recipe is not None:
        import yaml

        try:
            recipe = yaml.safe_load(args.recipe.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            print(f"error: cannot read recipe {args.recipe}: {err}", file=sys.stderr)
            return 2

    try:
        if args.tier and info is None:
            reports = api.export_tier(generator, args.tier, args.out, calibration=cal, validation=val,
                                      resolution=args.resolution, jobs=max(1, args.jobs))
        else:
            side = args.resolution or _tier_resolution(args.tier) or 256
            print(f"[export] {info.name} {precision} @ {side}px ...", flush=True)
            reports = [api.export_variant(generator, info.name, precision, args.out, input_hw=(side, side),
                                          tier=args.tier, calibration=cal, validation=val, recipe=recipe,
                                          stem=args.tier or args.checkpoint.stem)]
    except (FormatError, RecipeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    _print_table(reports, args.out)
    return 0 if all(r.passed for r in reports) else 1


def _tier_resolution(tier: str | None) -> int | None:
    if not tier:
        return None
    from mobile_pipeline.tiers.table import load_tier_table

    table = load_tier_table()
    return table[tier].resolution if tier in table else None


def _print_table(reports, out_dir: Path) -> None:
    print(f"\n{'artifact':34} {'status':9} {'size KiB':>9} {'PSNR dB':>8} {'gate':>5} {'margin':>7} {'max err':>8} {'s':>6}")
    for r in reports:
        p = r.parity
        psnr = f"{p.psnr_db:.1f}" if p.psnr_db is not None else "n/a"
        margin = f"{p.psnr_db - p.gate_db:+.1f}" if p.psnr_db is not None else "n/a"
        err = f"{p.max_abs_err:.4f}" if p.max_abs_err is not None else "n/a"
        print(f"{r.artifact:34} {'ok' if r.passed else 'REJECTED':9} {r.bytes / 1024:9.0f} {psnr:>8} "
              f"{p.gate_db:5.0f} {margin:>7} {err:>8} {r.export_seconds or 0:6.1f}")
        for reason in r.reasons:
            print(f"    - {reason}")
        if not p.runnable and p.not_runnable_reason and p.passed:
            print(f"    note: {p.not_runnable_reason} (ML Program checked instead)")
    print(f"reports: {out_dir}/<artifact>.report.json; rejected artifacts: {out_dir}/rejected/")

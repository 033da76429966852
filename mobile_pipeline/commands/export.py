"""Export a generator checkpoint to ONNX / TFLite / Core ML / ExecuTorch, quantize, validate each artifact.

Examples:
  mobile-pipeline export models/npu.pt --format tflite --quantize int8
  mobile-pipeline export models/npu.pt --tier npu --out export/npu
  mobile-pipeline export gen.pt --format coreml --quantize w6 --resolution 256 --data data/
  mobile-pipeline export models/cpu.pt --format pte --quantize int8 --tier cpu

Every artifact gets <artifact>.report.json (parity, op support, size, sha256); artifacts that
fail their gate are moved to OUT/rejected/. Exit status 1 when any variant was rejected.

--preset/--config supply the defaults of --calibration-images, --validation-images,
--resolution and --jobs (the config's export section), and with --tier the formats to export
(export.formats); flags given on the command line win.

Core ML cannot run off macOS: its artifacts are recorded verified: false. On a Mac:
  mobile-pipeline export verify-coreml export/<release-id> [--out FILE] [--compute-units all|cpu|cpu-gpu|cpu-ne]
runs each passed .mlpackage against the reference stored at export (<artifact>.parity.npz) and
writes a measurement file; `mobile-pipeline bench import FILE` on the build machine then lets
the manifest mark those artifacts verified. (A checkpoint literally named verify-coreml: ./verify-coreml.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mobile_pipeline.commands._common import add_config_arguments, load_release_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("checkpoint", type=Path, help="generator checkpoint (.pt lean file or Lightning .ckpt)")
    parser.add_argument("--format", "-f", default=None,
                        help="onnx, tflite (tfl, litert), coreml (mlpackage) or executorch (pte); "
                             "default: all of the tier's, else onnx")
    parser.add_argument("--quantize", "-q", default=None, metavar="PRECISION",
                        help="onnx: fp32 fp16 int8 w8a16 | tflite: fp32 fp16 int8-dynamic int8-full (int8) | "
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
    parser.add_argument("--jobs", type=int, default=None, help="with --tier: worker processes, one format each "
                                                               "(default: config export.jobs)")
    parser.add_argument("--calibration-images", type=int, default=None, help="default: config export.calibration_images")
    parser.add_argument("--validation-images", type=int, default=None, help="default: config export.validation_images")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mobile_pipeline.exporters.formats import FormatError, resolve_format, resolve_precision
    from mobile_pipeline.exporters.recipes import RecipeError

    export_cfg = load_release_config(args).export
    # Flags win; the config's export section fills what was not given.
    for flag, value in (("calibration_images", export_cfg.calibration_images),
                        ("validation_images", export_cfg.validation_images), ("jobs", export_cfg.jobs),
                        ("resolution", export_cfg.resolution)):
        if getattr(args, flag) is None:
            setattr(args, flag, value)
    for flag in ("calibration_images", "validation_images", "jobs"):
        if getattr(args, flag) < 1:
            print(f"error: --{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}", file=sys.stderr)
            return 2

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
                                      resolution=args.resolution, jobs=args.jobs, formats=export_cfg.formats)
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
    if any(r.format == "coreml" and r.passed and not r.verified for r in reports):
        print("Core ML artifacts are verified: false here (prediction needs macOS); on a Mac run "
              f"`mobile-pipeline export verify-coreml {out_dir}`, then `mobile-pipeline bench import FILE` here")


# ------------------------------------------------------------------- verify-coreml
def run_verify_coreml(argv: list[str]) -> int:
    """``mobile-pipeline export verify-coreml PATH...``: Core ML parity on macOS -> a measurement file."""
    parser = argparse.ArgumentParser(
        prog="mobile-pipeline export verify-coreml",
        description="On macOS: run every passed Core ML artifact under PATH (release folder or .mlpackage) with "
                    "coremltools' predict against the reference stored at export, apply the export parity gate, "
                    "time the predictions, and write a measurement file for `mobile-pipeline bench import`.")
    parser.add_argument("paths", nargs="+", type=Path, help="release folder(s) or .mlpackage artifacts")
    parser.add_argument("--out", type=Path, default=None,
                        help="measurement file to write (default: FIRST_PATH/coreml_verification.json, or beside "
                             "the .mlpackage)")
    parser.add_argument("--compute-units", default="all", choices=["all", "cpu", "cpu-gpu", "cpu-ne"],
                        help="Core ML compute units (default all: the Neural Engine where it can)")
    parser.add_argument("--runs", type=int, default=10, help="timed predictions per artifact (default 10)")
    parser.add_argument("--soc", default=None, help="machine id to record (default: sysctl hw.model, e.g. Mac14,2)")
    args = parser.parse_args(argv)
    from mobile_pipeline.exporters.coreml_verify import NOT_MACOS, VerifyError, on_macos, verify_release

    if not on_macos():
        print(f"error: {NOT_MACOS}", file=sys.stderr)
        return 2
    if args.runs < 1:
        print(f"error: --runs must be at least 1, got {args.runs}", file=sys.stderr)
        return 2
    try:
        measurements = verify_release(args.paths, compute_units=args.compute_units, runs=args.runs, soc_model=args.soc)
    except VerifyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from mobile_pipeline.utils.atomic import atomic_write_json

    first = args.paths[0]
    out = args.out or (first / "coreml_verification.json" if first.is_dir() and first.suffix != ".mlpackage"
                       else first.with_name(first.name + ".verification.json"))
    atomic_write_json(out, [m.model_dump(mode="json", exclude_none=True) for m in measurements])
    failed = [m.artifact for m in measurements if not m.parity.passed]
    print(f"wrote {len(measurements)} measurement(s) to {out}; import it on the build machine with "
          f"`mobile-pipeline bench import {out}`, then rebuild the manifest (rerun `release`)")
    if failed:
        print(f"FAILED parity: {', '.join(failed)} (the manifest will leave them out)", file=sys.stderr)
    return 1 if failed else 0


ACTIONS = {"verify-coreml": run_verify_coreml}

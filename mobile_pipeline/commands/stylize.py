"""Stylize an image, a folder of images or a video with any artifact or checkpoint.

Examples:
  mobile-pipeline stylize photo.jpg --model export/<id>/npu/npu_int8-full.tflite
  mobile-pipeline stylize photos/ --model export/<id>/models/npu.pt --out cartoons/
  mobile-pipeline stylize clip.mp4 --model export/<id>/cpu/cpu_fp32.onnx
  mobile-pipeline stylize big.jpg --model gen.pt --working-size 512
  mobile-pipeline stylize big.jpg --model export/<id>/cpu/cpu_fp32.onnx --full-res --overlap 64

Few-shot video from 1-3 painted keyframes of the clip (trains, then stylizes the clip):
  mobile-pipeline stylize clip.mp4 --extract 0,60 --out keys/     # frames to paint: keys/0000.png ...
  #   paint them and save as keys/0000_styled.png, keys/0060_styled.png
  mobile-pipeline stylize clip.mp4 --keyframes keys/              # -> clip_stylized.mp4

Working scale: the model runs at its working size (the longer side of the image it sees;
default the tier's resolution from the artifact's report.json or the release manifest, else
the model's input size; for a checkpoint of unknown tier 384) and the result is
guided-upsampled back to the full size, so an HD photo gets the look of its phone preview.
--full-res runs the model on the full-resolution image instead (fixed-size artifacts in
overlapping tiles blended with raised-cosine weights, no seams; checkpoints whole unless
--tile is given). Videos keep their frame rate and size; progress shows frames/s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mobile_pipeline.commands._common import add_config_arguments, load_release_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("input", type=Path, help="image, folder of images, or video (.mp4/.avi/.mov/...)")
    parser.add_argument("--model", "-m", type=Path, default=None,
                        help="artifact (.onnx, .tflite, .pte, .mlpackage on macOS) or generator checkpoint (.pt/.ckpt)")
    parser.add_argument("--out", "-o", type=Path, default=None,
                        help="output file or folder (default: INPUT_stylized.png/.mp4 or INPUT_stylized/)")
    scale = parser.add_argument_group("scale")
    scale.add_argument("--working-size", type=int, default=None,
                       help="longer side (px) the model runs at (default: the model's tier resolution)")
    scale.add_argument("--full-res", action="store_true",
                       help="run the model at full resolution (tiles for fixed-size models) instead of the working size")
    scale.add_argument("--upsample", choices=("guided", "bilinear"), default="guided",
                       help="how working-scale results return to full size (default guided: keeps the photo's edges)")
    scale.add_argument("--tile", type=int, default=None, help="tile side (default: the model's input side)")
    scale.add_argument("--overlap", type=int, default=None, help="tile overlap in pixels (default: tile/4)")
    parser.add_argument("--threads", type=int, default=1, help="runtime threads (default 1)")
    few = parser.add_argument_group("few-shot video (instead of --model)")
    few.add_argument("--keyframes", type=Path, default=None,
                     help="folder of painted keyframes of this clip (NNNN_styled.png, NNNN = frame index; or "
                          "NAME.png + NAME_styled.png): train few-shot on them, then stylize the clip")
    few.add_argument("--steps", type=int, default=None, help="few-shot training steps (default 300)")
    few.add_argument("--arch", default=None, help="few-shot generator spec (default: the preset's train.arch)")
    few.add_argument("--work", type=Path, default=None,
                     help="few-shot work folder: keyframe pairs, dataset, training run (default: OUT_fewshot/)")
    few.add_argument("--extract", default=None, metavar="I,J,...",
                     help="only write the clip's frames I, J, ... as NNNN.png into --out (frames to paint)")
    add_config_arguments(few)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _check(args: argparse.Namespace) -> str | None:
    """The first usage error, or None."""
    if args.tile is not None and args.tile < 8:
        return f"--tile must be at least 8, got {args.tile}"
    if args.overlap is not None and args.overlap < 0:
        return f"--overlap must be >= 0, got {args.overlap}"
    if args.working_size is not None and args.working_size < 8:
        return f"--working-size must be at least 8, got {args.working_size}"
    if args.working_size is not None and args.full_res:
        return "--working-size and --full-res contradict each other; give one of them"
    if args.steps is not None and args.steps < 1:
        return f"--steps must be >= 1, got {args.steps}"
    modes = [name for name, value in (("--model", args.model), ("--keyframes", args.keyframes),
                                      ("--extract", args.extract)) if value is not None]
    if len(modes) != 1:
        return (f"give exactly one of --model, --keyframes or --extract (got {', '.join(modes)})" if modes else
                "--model is required (or --keyframes DIR to train few-shot from painted frames of a clip)")
    if args.model is not None and not args.model.exists():
        return f"model not found: {args.model}"
    return None


def run(args: argparse.Namespace) -> int:
    problem = _check(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from mobile_pipeline.exporters.runtimes import RunnerError
    from mobile_pipeline.exporters.stylize import StylizeError, input_kind, stylize_path

    progress = not args.no_progress
    try:
        model, working_size = args.model, args.working_size
        if args.extract is not None or args.keyframes is not None:
            if input_kind(args.input) != "video":
                raise StylizeError(f"--extract and --keyframes take a video input, got {args.input}")
        if args.extract is not None:
            return _extract(args)
        if args.keyframes is not None:
            model, trained_size = _few_shot(args, progress)
            if working_size is None and not args.full_res:
                working_size = trained_size
        result = stylize_path(args.input, model, args.out, tile=args.tile, overlap=args.overlap,
                              num_threads=args.threads, working_size=working_size, full_res=args.full_res,
                              upsample=args.upsample, progress=progress)
    except (StylizeError, RunnerError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    target = result.outputs[0] if len(result.outputs) == 1 else result.outputs[0].parent
    if result.working is not None:
        how = "" if result.working.side is None else f" ({args.upsample} upsampling to full size)"
        side = "full resolution" if result.working.side is None else f"longer side {result.working.side} px"
        print(f"working scale: {side}, from {result.working.source}{how}")
    for note in result.notes:
        print(f"note: {note}")
    print(f"wrote {len(result.outputs)} output(s) to {target}: {result.frames} frame(s) in "
          f"{result.seconds:.2f} s = {result.fps:.2f} frames/s")
    return 0


def _extract(args: argparse.Namespace) -> int:
    from mobile_pipeline.exporters.keyframes import extract_frames
    from mobile_pipeline.exporters.stylize import StylizeError

    try:
        indices = [int(part) for part in args.extract.split(",") if part.strip()]
    except ValueError:
        raise StylizeError(f"--extract takes comma-separated frame indices such as 0,40,80, got {args.extract!r}") from None
    out_dir = args.out or args.input.with_name(args.input.stem + "_keyframes")
    written = extract_frames(args.input, indices, out_dir)
    print(f"wrote {len(written)} frame(s) to {out_dir}: {', '.join(p.name for p in written)}")
    print(f"paint them, save each as NNNN_styled.png in {out_dir}, then run: "
          f"mobile-pipeline stylize {args.input} --keyframes {out_dir}")
    return 0


def _few_shot(args: argparse.Namespace, progress: bool) -> tuple[Path, int]:
    from mobile_pipeline.config import ConfigError
    from mobile_pipeline.data.dataset import DataError
    from mobile_pipeline.exporters.keyframes import fewshot_config, train_from_keyframes
    from mobile_pipeline.exporters.stylize import StylizeError, default_output
    from mobile_pipeline.nets.spec import SpecError

    out = args.out or default_output(args.input)
    work = args.work or out.with_name(out.stem + "_fewshot")
    base = load_release_config(args)
    try:
        cfg = fewshot_config(base, args.keyframes, steps=args.steps, arch=args.arch, user_config=bool(args.config))
        result = train_from_keyframes(args.input, args.keyframes, work, cfg, progress=progress)
    except (ConfigError, DataError, SpecError) as err:
        raise StylizeError(str(err)) from None
    m = result.metrics
    print(f"few-shot: {m['arch']} trained on {len(result.keyframes)} keyframe(s) for {m['paired_steps']} steps "
          f"in {m['train_seconds']:.0f} s; held-out strips of the keyframes: PSNR {m['psnr_db']:.2f} dB "
          f"-> {result.checkpoint}")
    return result.checkpoint, result.working_size

"""Stylize an image, a folder of images or a video with any artifact or checkpoint.

Examples:
  mobile-pipeline stylize photo.jpg --model export/npu_int8-full.tflite
  mobile-pipeline stylize photos/ --model models/npu.pt --out cartoons/
  mobile-pipeline stylize clip.mp4 --model export/cpu_fp32.onnx --tile 256 --overlap 64

Fixed-size artifacts (.onnx/.tflite/.pte/.mlpackage) process large images in overlapping tiles
blended with raised-cosine weights (no seams); checkpoints take the whole image at once
unless --tile is given. Videos report frames per second.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("input", type=Path, help="image, folder of images, or video (.mp4/.avi/.mov/...)")
    parser.add_argument("--model", "-m", required=True, type=Path,
                        help="artifact (.onnx, .tflite, .pte, .mlpackage on macOS) or generator checkpoint (.pt/.ckpt)")
    parser.add_argument("--out", "-o", type=Path, default=None,
                        help="output file or folder (default: INPUT_stylized.png/.mp4 or INPUT_stylized/)")
    parser.add_argument("--tile", type=int, default=None, help="tile side (default: the model's input side)")
    parser.add_argument("--overlap", type=int, default=None, help="tile overlap in pixels (default: tile/4)")
    parser.add_argument("--threads", type=int, default=1, help="runtime threads (default 1)")


def run(args: argparse.Namespace) -> int:
    if args.tile is not None and args.tile < 8:
        print(f"error: --tile must be at least 8, got {args.tile}", file=sys.stderr)
        return 2
    if args.overlap is not None and args.overlap < 0:
        print(f"error: --overlap must be >= 0, got {args.overlap}", file=sys.stderr)
        return 2
    if not args.model.exists():
        print(f"error: model not found: {args.model}", file=sys.stderr)
        return 2
    from mobile_pipeline.exporters.runtimes import RunnerError
    from mobile_pipeline.exporters.stylize import StylizeError, stylize_path

    try:
        result = stylize_path(args.input, args.model, args.out, tile=args.tile, overlap=args.overlap,
                              num_threads=args.threads)
    except (StylizeError, RunnerError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    target = result.outputs[0] if len(result.outputs) == 1 else result.outputs[0].parent
    print(f"wrote {len(result.outputs)} output(s) to {target}: {result.frames} frame(s) in "
          f"{result.seconds:.2f} s = {result.fps:.2f} frames/s")
    return 0

"""Few-shot video end to end: a clip plus painted keyframes -> a stylized clip, in one command.

Makes a synthetic clip (a slow whole-pixel pan over a bundled photo, fresh sigma-2 sensor
noise per frame, written as MP4 by OpenCV), "paints" 1-3 of its frames with the cartoon
teacher (the stand-in artist), runs ``mobile-pipeline stylize clip.mp4 --keyframes keys/``
and prints: the few-shot training time and held-out score, the stylization frames/s, whether
frame count, rate and size were kept, and the flicker of the output clip beside the input's
and the teacher's (every frame of the decoded clips, motion-compensated with the known pan;
``mobile_pipeline/quality/flicker.py``).

    .venv/bin/python benchmarks/bench_video.py                      # 1 and 2 keyframes, 300 steps
    .venv/bin/python benchmarks/bench_video.py --keyframes 1 --steps 100 --frames 24

Seconds and frames/s are wall-clock on this machine (inflated when it is shared).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np

from mobile_pipeline.utils.text_table import text_table


def _spec_name(arch: str) -> str:
    """The registered name of an architecture string, else the string."""
    from mobile_pipeline.nets.registry import get_spec, list_specs

    return next((name for name in list_specs() if get_spec(name).to_string() == arch), arch)


def make_clip(path: Path, photo: str, frames: int, size: tuple[int, int], fps: float, spec) -> None:
    """A pan over a bundled photo with sensor noise, written as MP4."""
    import cv2

    from mobile_pipeline.data.images import read_image
    from mobile_pipeline.data.sources import bundled_photo_dir
    from mobile_pipeline.quality.flicker import pan_clip

    noisy, _ = pan_clip(read_image(bundled_photo_dir() / photo), (size[1], size[0]), spec)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for frame in noisy:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", default="chelsea.png", help="bundled photo the clip pans over")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--height", type=int, default=288)
    parser.add_argument("--fps", type=float, default=24.0)
    parser.add_argument("--keyframes", type=int, nargs="+", default=[1, 2], help="keyframe counts to try")
    parser.add_argument("--steps", type=int, default=None, help="few-shot steps (default: the command's)")
    parser.add_argument("--arch", default=None, help="few-shot spec (default: the command's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)

    import cv2
    import torch

    from mobile_pipeline.cli import main as cli
    from mobile_pipeline.data.teachers import cartoon_filter
    from mobile_pipeline.exporters.video import iter_frames, probe, read_frames
    from mobile_pipeline.quality.flicker import ClipSpec, flicker_score

    torch.set_num_threads(args.threads)
    spec = ClipSpec(frames=args.frames)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_video_") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        clip = work / "clip.mp4"
        make_clip(clip, args.photo, args.frames, (args.width, args.height), args.fps, spec)
        decoded = np.stack(list(iter_frames(clip)))
        input_flicker = flicker_score(decoded, spec)
        teacher_flicker = flicker_score(np.stack([cartoon_filter(f) for f in decoded]), spec)
        for count in args.keyframes:
            indices = [round(i * (args.frames - 1) / max(1, count - 1)) for i in range(count)] if count > 1 else [0]
            keys = work / f"keys{count}"
            keys.mkdir(exist_ok=True)
            for index, frame in read_frames(clip, set(indices)).items():  # the teacher plays the artist
                cv2.imwrite(str(keys / f"{index:04d}_styled.png"), cv2.cvtColor(cartoon_filter(frame), cv2.COLOR_RGB2BGR))
            out = work / f"stylized{count}.mp4"
            command = ["stylize", str(clip), "--keyframes", str(keys), "--out", str(out), "--no-progress",
                       "--threads", str(args.threads)]
            command += ["--steps", str(args.steps)] if args.steps else []
            command += ["--arch", args.arch] if args.arch else []
            text = io.StringIO()
            started = time.perf_counter()
            with redirect_stdout(text):
                code = cli(command)
            wall = time.perf_counter() - started
            print(text.getvalue(), end="", file=sys.stderr)
            if code != 0:
                print(f"stylize --keyframes failed with exit code {code}", file=sys.stderr)
                return code
            import json

            metrics = json.loads((work / f"stylized{count}_fewshot" / "train" / "metrics.json").read_text())
            fps_line = next(line for line in text.getvalue().splitlines() if line.startswith("wrote"))
            info_in, info_out = probe(clip), probe(out)
            kept = (info_in.frames, info_in.fps, info_in.width, info_in.height) == \
                   (info_out.frames, info_out.fps, info_out.width, info_out.height)
            score = flicker_score(np.stack(list(iter_frames(out))), spec)
            rows.append([count, ",".join(map(str, indices)), _spec_name(metrics["arch"]), metrics["paired_steps"],
                         f"{metrics['train_seconds']:.0f}", f"{metrics['psnr_db']:.2f}",
                         fps_line.rsplit("=", 1)[1].strip(), f"{wall:.0f}", "yes" if kept else "NO",
                         f"{score.mad:.2f}", f"{input_flicker.mad:.2f}", f"{teacher_flicker.mad:.2f}"])
    print(f"\n== few-shot video: {args.frames} frames {args.width}x{args.height} at {args.fps:g} fps, pan over "
          f"{args.photo} ({spec.velocity[0]:g},{spec.velocity[1]:g} px/frame, noise sigma {spec.noise_sigma:g}), "
          f"keyframes painted by the cartoon teacher, torch threads {args.threads}")
    print(text_table(["keyframes", "frames", "arch", "steps", "train s", "held-out PSNR dB", "stylize speed",
                       "command s", "frames/fps/size kept", "flicker", "input", "teacher"], rows))
    print("\nflicker on the decoded clips, grey levels (flicker-v1); seconds are wall-clock (a shared machine inflates them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

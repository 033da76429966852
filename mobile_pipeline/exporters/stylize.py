"""Stylize an image, a folder of images or a video with any artifact or checkpoint.

The model is loaded through :func:`mobile_pipeline.exporters.runtimes.load_runner`, so
``.onnx``, ``.tflite``, ``.mlpackage`` (macOS), ExecuTorch ``.pte`` (XNNPACK here; Core
ML-delegated ones need Apple's runtime) and generator checkpoints all work.

By default every image or frame is stylized at the model's **working size** (the tier's
resolution, :mod:`.working_scale`) and guided-upsampled back to its own size, so a 12 MP
photo gets the look its 384 px preview gets on the phone. With ``full_res`` the model runs
on the full-resolution image instead: fixed-size artifacts in overlapping tiles
(:mod:`.tiling`, no seams), checkpoints on the whole image unless a tile size is given.
Videos are read and written with OpenCV (:mod:`.video`): frame rate and size are kept,
frames per second are reported, and a dropped audio track is reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mobile_pipeline.exporters.runtimes import Runner, load_runner
from mobile_pipeline.exporters.tiling import stylize_tiled
from mobile_pipeline.exporters.working_scale import WorkingSize, default_working_size, stylize_at_working_scale
from mobile_pipeline.utils.atomic import atomic_write_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")


class StylizeError(ValueError):
    """Bad input path or options; the message says what to do."""


@dataclass
class StylizeResult:
    """What was written and how fast it went."""

    outputs: list[Path]
    frames: int
    seconds: float
    working: WorkingSize | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


def stylize_array(runner: Runner, rgb: np.ndarray, tile: int | None = None, overlap: int | None = None,
                  working_size: int | None = None, upsample: str = "guided") -> np.ndarray:
    """uint8 H x W x 3 RGB in, uint8 H x W x 3 RGB out.

    Args:
        tile: tile side; default the model's fixed input side (None for checkpoints: the
            whole image in one pass).
        overlap: tile overlap in pixels; default a quarter of the tile.
        working_size: longer side the model runs at (then ``upsample`` back to full size);
            None = at full resolution.
        upsample: ``guided`` or ``bilinear`` (see :mod:`.working_scale`).
    """
    image = rgb.astype(np.float32) / 255.0
    if working_size is None:
        out = _run_image(runner, image, tile, overlap)
    else:
        out = stylize_at_working_scale(lambda x: _run_image(runner, x, tile, overlap), image, working_size,
                                       upsample=upsample)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def _run_image(runner: Runner, image: np.ndarray, tile: int | None, overlap: int | None) -> np.ndarray:
    """float32 H x W x 3 in, out: whole (checkpoints) or in tiles (fixed-size models, --tile)."""
    side = tile or (runner.input_hw[0] if runner.input_hw else None)
    if runner.input_hw and runner.input_hw[0] != runner.input_hw[1]:
        raise StylizeError(f"{runner.path.name} takes non-square {runner.input_hw} inputs; tiling needs a square model")
    if runner.input_hw and tile and tile != runner.input_hw[0]:
        raise StylizeError(f"{runner.path.name} takes {runner.input_hw[0]} px tiles; drop --tile or pass --tile "
                           f"{runner.input_hw[0]}")
    if side is None:
        return runner.run(image.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0)
    lap = overlap if overlap is not None else side // 4
    return stylize_tiled(runner.run, image, side, lap)


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise StylizeError(f"cannot read image {path} (unsupported or corrupt file)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    import cv2

    ok, data = cv2.imencode(path.suffix if path.suffix.lower() in IMAGE_SUFFIXES else ".png",
                            cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise StylizeError(f"cannot encode {path.suffix} image for {path}")
    atomic_write_bytes(path, data.tobytes())


def default_output(input_path: Path) -> Path:
    """``photo.jpg`` -> ``photo_stylized.png``; ``clip.mp4`` -> ``clip_stylized.mp4``; folders get ``_stylized``."""
    if input_path.is_dir():
        return input_path.with_name(input_path.name + "_stylized")
    suffix = ".mp4" if input_path.suffix.lower() in VIDEO_SUFFIXES else ".png"
    return input_path.with_name(input_path.stem + "_stylized" + suffix)


def input_kind(input_path: Path) -> str:
    """``folder``, ``video`` or ``image``; raises :class:`StylizeError` for anything else."""
    if not input_path.exists():
        raise StylizeError(f"input not found: {input_path}")
    if input_path.is_dir():
        return "folder"
    suffix = input_path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    raise StylizeError(f"{input_path.name}: unknown input type {suffix!r}; give an image "
                       f"({', '.join(IMAGE_SUFFIXES)}), a video ({', '.join(VIDEO_SUFFIXES)}) or a folder")


def stylize_path(input_path: str | Path, model: str | Path, out: str | Path | None = None, *,
                 tile: int | None = None, overlap: int | None = None, num_threads: int = 1,
                 working_size: int | None = None, full_res: bool = False, upsample: str = "guided",
                 progress: bool = True) -> StylizeResult:
    """Stylize an image, every image in a folder, or a video; returns outputs and speed.

    Args:
        working_size: longer side the model runs at; default the model's tier resolution
            (:func:`.working_scale.default_working_size`).
        full_res: run the model at full resolution instead (tiles for fixed-size models).
        upsample: how working-scale results return to full size: ``guided`` or ``bilinear``.
    """
    input_path = Path(input_path)
    kind = input_kind(input_path)
    if full_res and working_size is not None:
        raise StylizeError("--full-res and --working-size contradict each other; give one of them")
    if working_size is not None and working_size < 8:
        raise StylizeError(f"--working-size must be at least 8 px, got {working_size}")
    runner = load_runner(model, num_threads=num_threads)
    if not runner.runnable:
        raise StylizeError(f"cannot run {Path(model).name} here: {runner.reason}. Use the .onnx, .tflite or "
                           "XNNPACK .pte artifact, or the checkpoint, on this machine.")
    if full_res:
        working = WorkingSize(None, "full resolution (--full-res)")
    elif working_size is not None:
        working = WorkingSize(int(working_size), "--working-size")
    else:
        working = default_working_size(model, runner.input_hw)
    out_path = Path(out) if out else default_output(input_path)

    def frame_fn(rgb: np.ndarray) -> np.ndarray:
        return stylize_array(runner, rgb, tile, overlap, working.side, upsample)

    if kind == "folder":
        result = _stylize_folder(frame_fn, input_path, out_path, progress)
    elif kind == "video":
        result = _stylize_video(frame_fn, input_path, out_path, progress)
    else:
        start = time.perf_counter()
        _write_rgb(out_path, frame_fn(_read_rgb(input_path)))
        result = StylizeResult([out_path], 1, time.perf_counter() - start)
    result.working = working
    return result


def _stylize_folder(frame_fn, folder: Path, out_dir: Path, progress: bool) -> StylizeResult:
    from tqdm import tqdm

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise StylizeError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {folder}")
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = []
    start = time.perf_counter()
    for path in tqdm(files, desc="stylize", unit="img", disable=not progress):
        target = out_dir / (path.stem + ".png")
        _write_rgb(target, frame_fn(_read_rgb(path)))
        outputs.append(target)
    return StylizeResult(outputs, len(files), time.perf_counter() - start)


def _stylize_video(frame_fn, video: Path, out_path: Path, progress: bool) -> StylizeResult:
    from mobile_pipeline.exporters.video import VideoError, stylize_video

    if out_path.suffix.lower() not in VIDEO_SUFFIXES:
        raise StylizeError(f"a video's output must be a video file (.mp4 or .avi), got {out_path.name}")
    try:
        done = stylize_video(video, out_path, frame_fn, progress=progress)
    except VideoError as err:
        raise StylizeError(str(err)) from None
    notes = [f"kept {done.size[0]}x{done.size[1]} at {done.fps:g} frames/s"]
    if done.audio_dropped:
        notes.append(f"{video.name} has an audio track; it was NOT copied (OpenCV writes the picture only): "
                     "mux it back with a video tool if you need it")
    elif done.audio_dropped is None:
        notes.append(f"any audio track of {video.name} was not copied (OpenCV writes the picture only)")
    return StylizeResult([out_path], done.frames, done.seconds, notes=notes)

"""Stylize an image, a folder of images or a video with any artifact or checkpoint.

The model is loaded through :func:`mobile_pipeline.exporters.runtimes.load_runner`, so
``.onnx``, ``.tflite``, ``.mlpackage`` (macOS), ExecuTorch ``.pte`` (XNNPACK here; Core
ML-delegated ones need Apple's runtime) and generator checkpoints all work. Fixed-size
artifacts process every frame in overlapping tiles (:mod:`.tiling`), so a 256 px mobile
model stylizes a 4K photo without seams; checkpoints run on the whole frame unless a tile
size is given. Videos are read and written with OpenCV; frames per second are reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mobile_pipeline.exporters.runtimes import Runner, load_runner
from mobile_pipeline.exporters.tiling import stylize_tiled
from mobile_pipeline.utils.atomic import atomic_output, atomic_write_bytes

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

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


def stylize_array(runner: Runner, rgb: np.ndarray, tile: int | None = None, overlap: int | None = None) -> np.ndarray:
    """uint8 H x W x 3 RGB in, uint8 H x W x 3 RGB out.

    Args:
        tile: tile side; default the model's fixed input side (None for checkpoints: the
            whole image in one pass).
        overlap: tile overlap in pixels; default a quarter of the tile.
    """
    image = rgb.astype(np.float32) / 255.0
    side = tile or (runner.input_hw[0] if runner.input_hw else None)
    if runner.input_hw and runner.input_hw[0] != runner.input_hw[1]:
        raise StylizeError(f"{runner.path.name} takes non-square {runner.input_hw} inputs; tiling needs a square model")
    if runner.input_hw and tile and tile != runner.input_hw[0]:
        raise StylizeError(f"{runner.path.name} takes {runner.input_hw[0]} px tiles; drop --tile or pass --tile "
                           f"{runner.input_hw[0]}")
    if side is None:
        out = runner.run(image.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0)
    else:
        lap = overlap if overlap is not None else side // 4
        out = stylize_tiled(runner.run, image, side, lap)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


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


def stylize_path(input_path: str | Path, model: str | Path, out: str | Path | None = None, *,
                 tile: int | None = None, overlap: int | None = None, num_threads: int = 1,
                 progress: bool = True) -> StylizeResult:
    """Stylize an image, every image in a folder, or a video; returns outputs and speed."""
    input_path = Path(input_path)
    if not input_path.exists():
        raise StylizeError(f"input not found: {input_path}")
    runner = load_runner(model, num_threads=num_threads)
    if not runner.runnable:
        raise StylizeError(f"cannot run {Path(model).name} here: {runner.reason}. Use the .onnx, .tflite or "
                           "XNNPACK .pte artifact, or the checkpoint, on this machine.")
    out_path = Path(out) if out else default_output(input_path)
    suffix = input_path.suffix.lower()
    if input_path.is_dir():
        return _stylize_folder(runner, input_path, out_path, tile, overlap, progress)
    if suffix in VIDEO_SUFFIXES:
        return _stylize_video(runner, input_path, out_path, tile, overlap, progress)
    if suffix in IMAGE_SUFFIXES:
        start = time.perf_counter()
        _write_rgb(out_path, stylize_array(runner, _read_rgb(input_path), tile, overlap))
        return StylizeResult([out_path], 1, time.perf_counter() - start)
    raise StylizeError(f"{input_path.name}: unknown input type {suffix!r}; give an image "
                       f"({', '.join(IMAGE_SUFFIXES)}), a video ({', '.join(VIDEO_SUFFIXES)}) or a folder")


def _stylize_folder(runner: Runner, folder: Path, out_dir: Path, tile, overlap, progress: bool) -> StylizeResult:
    from tqdm import tqdm

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise StylizeError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {folder}")
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = []
    start = time.perf_counter()
    for path in tqdm(files, desc="stylize", unit="img", disable=not progress):
        target = out_dir / (path.stem + ".png")
        _write_rgb(target, stylize_array(runner, _read_rgb(path), tile, overlap))
        outputs.append(target)
    return StylizeResult(outputs, len(files), time.perf_counter() - start)


def _stylize_video(runner: Runner, video: Path, out_path: Path, tile, overlap, progress: bool) -> StylizeResult:
    import cv2
    from tqdm import tqdm

    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise StylizeError(f"cannot open video {video} (unsupported codec or corrupt file)")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    frames = 0
    busy = 0.0
    try:
        with atomic_output(out_path) as tmp:
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
            if not writer.isOpened():
                raise StylizeError(f"cannot write video {out_path}; use an .mp4 or .avi output name")
            try:
                with tqdm(total=total, desc="stylize video", unit="frame", disable=not progress) as bar:
                    while True:
                        ok, bgr = capture.read()
                        if not ok:
                            break
                        start = time.perf_counter()
                        rgb = stylize_array(runner, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), tile, overlap)
                        busy += time.perf_counter() - start
                        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                        frames += 1
                        bar.update(1)
                        bar.set_postfix(fps=f"{frames / busy:.1f}" if busy else "-")
            finally:
                writer.release()
            if frames == 0:  # raised inside the block: no empty video is left behind
                raise StylizeError(f"video {video} has no readable frames")
    finally:
        capture.release()
    return StylizeResult([out_path], frames, busy)

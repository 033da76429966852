"""Video in and out through OpenCV (no ffmpeg binary): frames, frame rate, size, audio check.

OpenCV reads and writes the picture only. The output keeps the input's frame rate and frame
size (the first decoded frame's, so a rotated phone clip comes out upright and unsquashed);
an audio track cannot be carried over, so :func:`audio_track` looks for one in the container
header and the caller says that it was dropped instead of losing it silently:

* MP4 / MOV / M4V (ISO base media): a ``trak`` whose ``mdia/hdlr`` handler is ``soun``;
* AVI (RIFF): a stream header ``strh`` of type ``auds`` in the header list;
* other containers (MKV, WebM): unknown (``None``), reported as "may have".
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mobile_pipeline.utils.atomic import atomic_output

#: FourCC per output suffix; mp4v everywhere else (OpenCV's built-in MPEG-4 Part 2 encoder).
FOURCC = {".avi": "MJPG"}
_ISO_SUFFIXES = (".mp4", ".mov", ".m4v", ".3gp")
_ISO_CONTAINERS = (b"moov", b"trak", b"mdia")
#: Bytes of an AVI file searched for stream headers (the header list comes first).
_AVI_HEADER_BYTES = 1 << 20


class VideoError(ValueError):
    """A video that cannot be read or written; the message says what to do."""


@dataclass(frozen=True)
class VideoInfo:
    """What the input clip is: frame rate, frame size (W, H), frame count (container's, may be 0)."""

    fps: float
    width: int
    height: int
    frames: int


@dataclass
class VideoResult:
    """What a video run produced."""

    output: Path
    frames: int
    fps: float
    size: tuple[int, int]  # (W, H)
    seconds: float  # time spent stylizing (decode and encode not counted)
    audio_dropped: bool | None  # True: the input had audio that was not copied; None: unknown


def probe(path: str | Path) -> VideoInfo:
    """Frame rate, size and frame count of a clip (raises :class:`VideoError` when unreadable)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise VideoError(f"cannot open video {path} (unsupported codec or corrupt file)")
        return VideoInfo(fps=float(capture.get(cv2.CAP_PROP_FPS) or 0.0),
                         width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                         height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                         frames=int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
    finally:
        capture.release()


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Decoded frames as uint8 H x W x 3 RGB, in order."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise VideoError(f"cannot open video {path} (unsupported codec or corrupt file)")
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def read_frames(path: str | Path, indices: set[int]) -> dict[int, np.ndarray]:
    """The frames at ``indices`` (0-based, decode order); raises when the clip is shorter."""
    wanted, found, last = set(indices), {}, -1
    for index, frame in enumerate(iter_frames(path)):
        last = index
        if index in wanted:
            found[index] = frame
            if len(found) == len(wanted):
                break
    missing = sorted(wanted - set(found))
    if missing:
        raise VideoError(f"{Path(path).name} has {last + 1} frame(s); frame(s) {missing} do not exist "
                         f"(frames count from 0)")
    return found


def write_video(path: str | Path, frames: Iterator[np.ndarray], fps: float) -> tuple[int, tuple[int, int]]:
    """Encode RGB frames at ``fps`` atomically; returns (frame count, (W, H)).

    The size is the first frame's; every later frame must match it. A run that fails or
    yields no frame leaves no file behind.
    """
    import cv2

    path = Path(path)
    if fps <= 0:
        raise VideoError(f"cannot write {path.name} at {fps} frames/s; give a positive frame rate")
    fourcc = cv2.VideoWriter_fourcc(*FOURCC.get(path.suffix.lower(), "mp4v"))
    count, size, writer = 0, (0, 0), None
    with atomic_output(path) as tmp:
        try:
            for frame in frames:
                if writer is None:
                    size = (frame.shape[1], frame.shape[0])
                    writer = cv2.VideoWriter(str(tmp), fourcc, fps, size)
                    if not writer.isOpened():
                        raise VideoError(f"cannot write video {path}; use an .mp4 or .avi output name")
                if (frame.shape[1], frame.shape[0]) != size:
                    raise VideoError(f"frame {count} is {frame.shape[1]}x{frame.shape[0]}, the video is {size[0]}x{size[1]}")
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                count += 1
        finally:
            if writer is not None:
                writer.release()
        if count == 0:  # raised inside the block: no empty video is left behind
            raise VideoError(f"no frames to write to {path}")
    return count, size


def stylize_video(video: str | Path, out_path: str | Path, frame_fn: Callable[[np.ndarray], np.ndarray], *,
                  progress: bool = True) -> VideoResult:
    """Stylize every frame of ``video`` with ``frame_fn`` (uint8 RGB in and out, same size).

    The progress bar shows frames/s of the stylization itself.
    """
    from tqdm import tqdm

    video, out_path = Path(video), Path(out_path)
    info = probe(video)
    fps = info.fps if info.fps > 0 else 25.0  # some containers do not store it; 25 is the usual default
    busy = 0.0
    with tqdm(total=info.frames or None, desc="stylize video", unit="frame", disable=not progress) as bar:
        def stylized() -> Iterator[np.ndarray]:
            nonlocal busy
            for index, frame in enumerate(iter_frames(video)):
                start = time.perf_counter()
                out = frame_fn(frame)
                busy += time.perf_counter() - start
                if out.shape != frame.shape:
                    raise VideoError(f"frame {index}: the stylizer returned {out.shape} for {frame.shape}")
                bar.update(1)
                bar.set_postfix(fps=f"{(index + 1) / busy:.1f}" if busy else "-")
                yield out

        try:
            count, size = write_video(out_path, stylized(), fps)
        except VideoError as err:
            if "no frames to write" in str(err):
                raise VideoError(f"video {video} has no readable frames") from None
            raise
    return VideoResult(out_path, count, fps, size, busy, audio_track(video))


# ----------------------------------------------------------------------------- audio
def audio_track(path: str | Path) -> bool | None:
    """Whether the clip's container declares an audio track (None: cannot tell for this container)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in _ISO_SUFFIXES:
            return _iso_has_sound(path)
        if suffix == ".avi":
            with path.open("rb") as handle:
                head = handle.read(_AVI_HEADER_BYTES)
            return head[:4] == b"RIFF" and _avi_has_audio(head)
    except (OSError, struct.error, ValueError):
        return None
    return None


def _avi_has_audio(head: bytes) -> bool:
    start = 0
    while (at := head.find(b"strh", start)) >= 0:
        if head[at + 8:at + 12] == b"auds":  # 'strh', size (4 bytes), then fccType
            return True
        start = at + 4
    return False


def _iso_boxes(handle, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of the boxes in ``[start, end)``."""
    pos = start
    while pos + 8 <= end:
        handle.seek(pos)
        size, kind = struct.unpack(">I4s", handle.read(8))
        header = 8
        if size == 1:
            size = struct.unpack(">Q", handle.read(8))[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header:
            raise ValueError("corrupt ISO box")
        yield kind, pos + header, min(pos + size, end)
        pos += size


def _iso_has_sound(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(0, 2)
        end = handle.tell()

        def walk(start: int, stop: int) -> bool:
            for kind, payload, box_end in _iso_boxes(handle, start, stop):
                if kind in _ISO_CONTAINERS and walk(payload, box_end):
                    return True
                if kind == b"hdlr":
                    handle.seek(payload + 8)  # version+flags (4), pre_defined (4), handler_type
                    if handle.read(4) == b"soun":
                        return True
            return False

        return walk(0, end)

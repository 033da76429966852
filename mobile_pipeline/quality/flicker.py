"""Flicker: how much a stylizer's output changes from one video frame to the next beyond the motion.

A real-time camera effect is judged on video first: an output that shimmers more than the
camera itself is the first thing a user sees. This module defines the number that says how
steady a stylizer is, so training, the benchmarks and the release report agree on it.

Definition (``FLICKER_VERSION``):

* **Clips with known motion.** Each bundled photo is resized to cover the frame (area
  interpolation) and a ``frames``-long slow pan is cut from it: frame ``t`` is the window at
  ``origin + t * velocity``. The default velocity is (1, 1) px per frame: an odd step moves
  the content against every stride-2 grid of the network, so a model that is not
  shift-equivariant shows it, and the step is whole pixels, so compensation is exact. Fresh
  Gaussian sensor-like noise (``noise_sigma`` = 2 grey levels) is added to every frame and
  the result rounded to uint8, as a camera delivers it.
* **Motion compensation.** The motion is known, so frame ``t`` of any output is moved by the
  same step onto frame ``t + 1``; everything that still differs is flicker. A ``margin``
  (8 px) is left out at every border. For whole-pixel steps the move is exact and a perfect
  (shift-equivariant, noise-blind) stylizer scores 0. Sub-pixel steps (any ``velocity``)
  are sampled with Lanczos-4 both when the clip is made and when it is compensated; that
  leaves a floor (about 0.9 grey levels on the noise-free input at (0.6, 0.3)) and
  penalises crisp edges, which cannot move by a fraction of a pixel: the cartoon teacher
  scores ~5 there against ~1.4 at (1, 1). Compare numbers only at the same ``velocity``.
* **Two numbers**, averaged over every consecutive pair of every clip, on uint8 outputs:
  ``mad``: the mean absolute difference in grey levels (0-255, all channels), which noise
  passed through dominates; ``flips_pct``: the percentage of pixels whose luma (BT.601)
  changes by more than ``flip_levels`` (32) grey levels, which lines and band edges that
  pop in and out dominate.
* **References** are measured on the same clips: the noisy input itself (the camera), the
  noise-free input (the floor of the measure: 0 for whole-pixel steps) and the cartoon teacher applied frame by frame (the target look).

"Steadier than the input" means ``mad`` below the noisy input's; the teacher shows how far
smoothing can take it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

FLICKER_VERSION = "flicker-v1"

#: uint8 H x W x 3 RGB frame in, uint8 H x W x 3 RGB frame out.
FrameFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ClipSpec:
    """How the synthetic clips are made and compared (see the module docstring).

    Args:
        frames: frames per clip (``frames - 1`` compared pairs).
        velocity: pan in pixels per frame, (x, y); whole pixels compensate exactly (see above).
        noise_sigma: std of the per-frame Gaussian noise, grey levels (0-255).
        margin: border pixels left out of the comparison.
        flip_levels: luma change (grey levels) that counts a pixel as flipped.
        seed: seeds the noise (clip ``i`` uses ``seed + i``).
    """

    frames: int = 6
    velocity: tuple[float, float] = (1.0, 1.0)
    noise_sigma: float = 2.0
    margin: int = 8
    flip_levels: float = 32.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.frames < 2:
            raise ValueError(f"a clip needs at least 2 frames, got {self.frames}")
        if self.noise_sigma < 0:
            raise ValueError(f"noise_sigma must be >= 0, got {self.noise_sigma}")
        support = 0 if self.whole_pixels else 4
        if self.margin < math.ceil(max(abs(v) for v in self.velocity)) + support:
            raise ValueError(f"margin {self.margin} must cover the step {self.velocity}"
                             + (" plus the Lanczos support (4 px)" if support else ""))

    @property
    def whole_pixels(self) -> bool:
        return all(float(v).is_integer() for v in self.velocity)


DEFAULT_CLIP = ClipSpec()


@dataclass(frozen=True)
class FlickerScore:
    """Flicker of one output over a set of clips (see the module docstring for the units)."""

    mad: float
    flips_pct: float
    pairs: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class Clips:
    """Synthetic pan clips of one frame size: noisy (what the camera gives) and clean."""

    size: tuple[int, int]
    spec: ClipSpec
    noisy: list[np.ndarray] = field(default_factory=list)  # each T x H x W x 3 uint8
    clean: list[np.ndarray] = field(default_factory=list)


# ----------------------------------------------------------------------------- clips
def shift_image(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``out[p] = image[p + (dx, dy)]`` (float32): exact for whole pixels, else Lanczos-4.

    Pixels that would come from outside the image are reflected; callers leave a margin.
    """
    import cv2

    if float(dx).is_integer() and float(dy).is_integer():
        ix, iy = int(dx), int(dy)
        height, width = image.shape[:2]
        pad = max(abs(ix), abs(iy))
        padded = np.pad(image.astype(np.float32), ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
        return padded[pad + iy:pad + iy + height, pad + ix:pad + ix + width]

    matrix = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], dtype=np.float64)
    height, width = image.shape[:2]
    return cv2.warpAffine(image.astype(np.float32), matrix, (width, height),
                          flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT_101)


def pan_clip(photo: np.ndarray, size: tuple[int, int], spec: ClipSpec = DEFAULT_CLIP,
             noise_seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A slow pan over ``photo``: ``(noisy, clean)`` uint8 clips of shape T x H x W x 3.

    The photo is area-resized so that the frame plus the whole pan plus the margin fits
    inside it (the field of view is the centre of the photo), then frame ``t`` is the window
    at ``origin + t * velocity``.
    """
    import cv2

    if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"pan_clip expects a uint8 H x W x 3 photo, got {photo.dtype} {photo.shape}")
    height, width = size
    vx, vy = spec.velocity
    travel_x, travel_y = abs(vx) * (spec.frames - 1), abs(vy) * (spec.frames - 1)
    need_w, need_h = width + travel_x + 2 * spec.margin, height + travel_y + 2 * spec.margin
    scale = max(need_w / photo.shape[1], need_h / photo.shape[0])
    new_w, new_h = math.ceil(photo.shape[1] * scale), math.ceil(photo.shape[0] * scale)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    base = cv2.resize(photo, (new_w, new_h), interpolation=interp).astype(np.float32)
    # Start so the pan is centred in the resized photo; negative velocity pans the other way.
    ox = (new_w - width - travel_x) / 2 + (travel_x if vx < 0 else 0.0)
    oy = (new_h - height - travel_y) / 2 + (travel_y if vy < 0 else 0.0)
    if spec.whole_pixels:  # whole-pixel origin too: every frame is an exact crop
        ox, oy = float(math.floor(ox)), float(math.floor(oy))
    rng = np.random.default_rng(spec.seed if noise_seed is None else noise_seed)
    clean, noisy = [], []
    for t in range(spec.frames):
        window = shift_image(base, ox + t * vx, oy + t * vy)[:height, :width]
        clean.append(np.clip(np.round(window), 0, 255).astype(np.uint8))
        noise = rng.normal(0.0, spec.noise_sigma, window.shape) if spec.noise_sigma else 0.0
        noisy.append(np.clip(np.round(window + noise), 0, 255).astype(np.uint8))
    return np.stack(noisy), np.stack(clean)


def bundled_clips(size: tuple[int, int] | int, spec: ClipSpec = DEFAULT_CLIP,
                  photos: Sequence[np.ndarray] | None = None) -> Clips:
    """One pan clip per bundled photo (or per given photo) at ``size`` (H, W) or a square side."""
    if isinstance(size, int):
        size = (size, size)
    if photos is None:
        photos = _bundled_photos()
    clips = Clips(size=(int(size[0]), int(size[1])), spec=spec)
    for index, photo in enumerate(photos):
        noisy, clean = pan_clip(photo, clips.size, spec, noise_seed=spec.seed + index)
        clips.noisy.append(noisy)
        clips.clean.append(clean)
    return clips


def _bundled_photos() -> list[np.ndarray]:
    from mobile_pipeline.data.images import read_image
    from mobile_pipeline.data.sources import BUNDLED_PHOTOS, bundled_photo_dir

    return [read_image(bundled_photo_dir() / name) for name in BUNDLED_PHOTOS]


# ----------------------------------------------------------------------------- the measure
def flicker_score(frames: np.ndarray | Sequence[np.ndarray], spec: ClipSpec = DEFAULT_CLIP) -> FlickerScore:
    """Flicker of one output clip (T x H x W x 3, 0-255) whose content moves by ``spec.velocity``."""
    clip = np.asarray(frames, dtype=np.float32)
    if clip.ndim != 4 or clip.shape[-1] != 3 or clip.shape[0] < 2:
        raise ValueError(f"frames must be T x H x W x 3 with T >= 2, got {clip.shape}")
    m = spec.margin
    if min(clip.shape[1:3]) <= 2 * m:
        raise ValueError(f"frames of {clip.shape[1]}x{clip.shape[2]} px leave nothing inside a {m} px margin")
    vx, vy = spec.velocity
    luma_weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    mads, flips = [], []
    for t in range(clip.shape[0] - 1):
        compensated = shift_image(clip[t], vx, vy)  # frame t moved onto frame t + 1
        diff = (clip[t + 1] - compensated)[m:-m, m:-m]
        mads.append(float(np.abs(diff).mean()))
        flips.append(float((np.abs(diff @ luma_weights) > spec.flip_levels).mean()) * 100.0)
    return FlickerScore(mad=float(np.mean(mads)), flips_pct=float(np.mean(flips)), pairs=len(mads))


def mean_score(scores: Iterable[FlickerScore]) -> FlickerScore:
    """Pair-weighted mean of several clips' scores."""
    scores = list(scores)
    if not scores:
        raise ValueError("no flicker scores to average")
    pairs = sum(s.pairs for s in scores)
    return FlickerScore(mad=sum(s.mad * s.pairs for s in scores) / pairs,
                        flips_pct=sum(s.flips_pct * s.pairs for s in scores) / pairs, pairs=pairs)


def clip_flicker(fn: FrameFn, clips: Clips, *, clean: bool = False) -> FlickerScore:
    """Flicker of ``fn`` applied frame by frame to every clip (noisy ones unless ``clean``)."""
    scores = []
    for clip in clips.clean if clean else clips.noisy:
        outputs = np.stack([_check_frame(fn(frame), frame) for frame in clip])
        scores.append(flicker_score(outputs, clips.spec))
    return mean_score(scores)


def _check_frame(out: np.ndarray, frame: np.ndarray) -> np.ndarray:
    if out.shape != frame.shape:
        raise ValueError(f"the stylizer returned {out.shape} for a {frame.shape} frame; it must keep the size")
    return out


def teacher_fn(frame: np.ndarray) -> np.ndarray:
    """The cartoon teacher as a frame function (the target look's own flicker)."""
    from mobile_pipeline.data.teachers import cartoon_filter

    return cartoon_filter(frame)


def runner_fn(runner) -> FrameFn:
    """A frame function from an :mod:`~mobile_pipeline.exporters.runtimes` runner (frames at its size)."""

    def run(frame: np.ndarray) -> np.ndarray:
        batch = frame.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
        out = runner.run(batch)[0].transpose(1, 2, 0)
        return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)

    return run


@dataclass(frozen=True)
class References:
    """The clips' own flicker: the noisy input, the noise-free input (the floor) and the teacher."""

    size: tuple[int, int]
    input: FlickerScore
    input_clean: FlickerScore
    teacher: FlickerScore


def references(clips: Clips) -> References:
    identity = lambda frame: frame  # noqa: E731
    return References(size=clips.size, input=clip_flicker(identity, clips),
                      input_clean=clip_flicker(identity, clips, clean=True), teacher=clip_flicker(teacher_fn, clips))


# ----------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class FlickerRow:
    """One model's flicker beside its clips' references."""

    label: str
    tier: str | None
    size: tuple[int, int]
    score: FlickerScore
    refs: References

    @property
    def vs_input(self) -> float:
        """Model mad / input mad: below 1 is steadier than the camera."""
        return self.score.mad / max(self.refs.input.mad, 1e-9)

    @property
    def vs_teacher(self) -> float:
        return self.score.mad / max(self.refs.teacher.mad, 1e-9)

    @property
    def steadier_than_input(self) -> bool:
        return self.score.mad < self.refs.input.mad

    def cells(self) -> list[str]:
        s, r = self.score, self.refs
        return [self.tier or "-", self.label, f"{self.size[0]}x{self.size[1]}", f"{s.mad:.2f}", f"{s.flips_pct:.2f}",
                f"{r.input.mad:.2f}", f"{r.teacher.mad:.2f}", f"{r.teacher.flips_pct:.2f}", f"{self.vs_input:.2f}",
                f"{self.vs_teacher:.2f}", "yes" if self.steadier_than_input else "NO"]


COLUMNS = ["tier", "model", "frames", "flicker", "flips %", "input", "teacher", "teacher flips %",
           "x input", "x teacher", "steadier than input"]


class ReferenceCache:
    """Clips and their references per frame size, made once and shared by every model of that size."""

    def __init__(self, spec: ClipSpec = DEFAULT_CLIP, photos: Sequence[np.ndarray] | None = None) -> None:
        self.spec = spec
        self._photos = list(photos) if photos is not None else None
        self._by_size: dict[tuple[int, int], tuple[Clips, References]] = {}

    def get(self, size: tuple[int, int]) -> tuple[Clips, References]:
        if size not in self._by_size:
            if self._photos is None:
                self._photos = _bundled_photos()
            clips = bundled_clips(size, self.spec, self._photos)
            self._by_size[size] = (clips, references(clips))
        return self._by_size[size]


def model_flicker(label: str, fn: FrameFn, size: tuple[int, int], cache: ReferenceCache,
                  tier: str | None = None) -> FlickerRow:
    """Flicker of one frame function at ``size`` beside the references of the same clips."""
    clips, refs = cache.get(size)
    return FlickerRow(label=label, tier=tier, size=size, score=clip_flicker(fn, clips), refs=refs)


def runner_flicker(label: str, runner, cache: ReferenceCache, *, size: int | tuple[int, int] = 256,
                   tier: str | None = None) -> FlickerRow:
    """Flicker of an artifact or checkpoint runner, at its fixed input size (else at ``size``)."""
    hw = tuple(runner.input_hw) if runner.input_hw else ((size, size) if isinstance(size, int) else tuple(size))
    return model_flicker(label, runner_fn(runner), (int(hw[0]), int(hw[1])), cache, tier=tier)


def release_artifacts(root: str | Path, tiers: Sequence[str] | None = None) -> list[tuple[str, Path, object]]:
    """``(tier, artifact path, report)`` of every passed artifact under ``root/<tier>/``.

    ``root`` is a release folder (``export/<id>``) or the export stage's output; both hold one
    folder per tier with ``<artifact>.report.json`` files.
    """
    from mobile_pipeline.exporters.report import REPORT_SUFFIX, load_report

    root = Path(root)
    if tiers is None:
        tiers = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob(f"*{REPORT_SUFFIX}")))
    found = []
    for tier in tiers:
        for report_path in sorted((root / tier).glob(f"*{REPORT_SUFFIX}")):
            report = load_report(report_path)
            if report.passed:
                found.append((tier, report.artifact_path(report_path), report))
    return found


def release_flicker(root: str | Path, tiers: Sequence[str] | None = None, *, cache: ReferenceCache | None = None,
                    skipped: list[str] | None = None) -> list[FlickerRow]:
    """Flicker of every passed, locally runnable artifact of a release, per tier.

    Args:
        root: the release folder (or the export stage's output).
        tiers: tiers to measure (default: every tier folder with reports).
        cache: clips and references to reuse across calls.
        skipped: when given, gets one line per artifact that cannot run here (Core ML off macOS).
    """
    from mobile_pipeline.exporters.runtimes import load_runner

    cache = cache or ReferenceCache()
    rows = []
    for tier, path, report in release_artifacts(root, tiers):
        runner = load_runner(path)
        if not runner.runnable:
            if skipped is not None:
                skipped.append(f"{tier}/{path.name}: {runner.reason}")
            continue
        rows.append(runner_flicker(f"{report.format} {report.precision}", runner, cache, tier=tier))
    return rows


def format_table(rows: Sequence[FlickerRow], markdown: bool = False) -> str:
    """The flicker table as plain text (aligned) or markdown."""
    cells = [row.cells() for row in rows]
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells])
    from mobile_pipeline.utils.text_table import text_table

    return text_table(COLUMNS, cells)


def describe(spec: ClipSpec = DEFAULT_CLIP, photos: int | None = None) -> str:
    """One line that says how the numbers were made (printed under every table)."""
    count = f"{photos} " if photos is not None else ""
    return (f"{FLICKER_VERSION}: {count}pan clips of {spec.frames} frames, {spec.velocity[0]:g},{spec.velocity[1]:g} "
            f"px/frame, fresh noise sigma {spec.noise_sigma:g} per frame; flicker = mean |motion-compensated frame "
            f"difference| in grey levels (0-255), flips % = pixels whose luma jumps > {spec.flip_levels:g} levels; "
            f"x input < 1 means steadier than the camera")


def summary_line(rows: Sequence[FlickerRow]) -> str:
    """Whether every model is steadier than its input, and the worst ratio."""
    if not rows:
        return "no runnable model measured"
    worst = max(rows, key=lambda r: r.vs_input)
    verdict = "every model is steadier than its input" if all(r.steadier_than_input for r in rows) else (
        f"{sum(not r.steadier_than_input for r in rows)} of {len(rows)} models flicker more than their input")
    return f"{verdict}; worst: {worst.tier or '-'} {worst.label} at {worst.vs_input:.2f}x the input"


def release_report(root: str | Path, tiers: Sequence[str] | None = None, markdown: bool = False) -> str:
    """The flicker table of a release's passed artifacts, with how it was measured (text)."""
    skipped: list[str] = []
    rows = release_flicker(root, tiers, skipped=skipped)
    lines = [format_table(rows, markdown=markdown), "", summary_line(rows), describe(photos=bundled_photo_count())]
    lines += [f"not measured: {line}" for line in skipped]
    return "\n".join(lines)


def checkpoint_report(checkpoints: Sequence[tuple[str, str | Path]], size: int = 256, markdown: bool = False) -> str:
    """The flicker table of generator checkpoints ``(label, path)`` run on ``size`` px frames."""
    from mobile_pipeline.exporters.runtimes import TorchRunner

    cache = ReferenceCache()
    rows = [runner_flicker(label, TorchRunner(Path(path)), cache, size=size) for label, path in checkpoints]
    return "\n".join([format_table(rows, markdown=markdown), "", summary_line(rows), describe(photos=bundled_photo_count())])


def bundled_photo_count() -> int:
    from mobile_pipeline.data.sources import BUNDLED_PHOTOS

    return len(BUNDLED_PHOTOS)

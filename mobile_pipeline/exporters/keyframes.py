"""Few-shot video stylization from 1-3 styled keyframes of the clip itself, in one call.

The keyframe-based video papers (Jamriška et al. 2019, Texler et al. 2020) stylize a whole
clip from a few frames an artist painted: a small network is trained on patches of those
keyframe pairs only, then run on every frame. Here that is the data stage with
``data.teacher: keyframes`` plus ``train.few_shot`` (small random patches), followed by
``stylize`` with the trained checkpoint at the keyframes' scale.

A keyframe folder holds ``NAME_styled.*`` files (the painted frames) and, for each, either
``NAME.*`` (the original frame) or a ``NAME`` ending in the frame's index in the clip
(``0042_styled.png``, ``frame42_styled.png``): then the original frame is read from the
clip, so the artist only hands back the painted frames. ``stylize clip.mp4 --extract
0,40,80 --out keys/`` writes such frames to paint.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobile_pipeline.exporters.stylize import IMAGE_SUFFIXES, StylizeError

STYLED_SUFFIX = "_styled"
#: Few-shot defaults when no --config is given (patch size and batch come from train.few_shot_*).
FEWSHOT_STEPS = 300
#: Each keyframe keeps a held-out strip for the reported score; small, so most pixels train.
FEWSHOT_VAL_FRACTION = 0.1
#: The temporal term is off in few-shot runs without a --config (with one, its value or its
#: preset's applies): it cut the output
#: clip's flicker by ~30% (benchmarks/bench_video.py) but cost 0.2-1.1 dB on the keyframes'
#: held-out strips there and 1.4 dB with clean photos as keyframes (docs/benchmarks.md).
FEWSHOT_WEIGHT_TEMPORAL = 0.0
_INDEX = re.compile(r"(\d+)$")


@dataclass
class FewShotResult:
    """The trained checkpoint, the scale it learned the look at, and its score."""

    checkpoint: Path
    working_size: int
    keyframes: list[str]
    metrics: dict[str, Any]
    seconds: float


def frame_index(name: str) -> int | None:
    """The frame index a keyframe name ends with (``0042`` -> 42, ``frame7`` -> 7), else None."""
    match = _INDEX.search(name)
    return int(match.group(1)) if match else None


def extract_frames(video: Path, indices: list[int], out_dir: Path) -> list[Path]:
    """Write the clip's frames at ``indices`` as ``NNNN.png`` (the names ``--keyframes`` understands), atomically."""
    from mobile_pipeline.exporters.stylize import _write_rgb
    from mobile_pipeline.exporters.video import read_frames

    if not indices or min(indices) < 0:
        raise StylizeError(f"--extract needs frame indices >= 0, got {indices}")
    frames = read_frames(video, set(indices))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for index in sorted(set(indices)):
        path = out_dir / f"{index:04d}.png"
        _write_rgb(path, frames[index])
        written.append(path)
    return written


def collect_keyframes(video: Path, keyframes_dir: Path, out_dir: Path) -> list[str]:
    """Assemble ``NAME.png`` + ``NAME_styled.*`` pairs in ``out_dir`` from a user's keyframe folder.

    Raises:
        StylizeError: no styled keyframe, or one whose original frame is neither in the
            folder nor named by a frame index of the clip.
    """
    from mobile_pipeline.data.images import read_image, write_png
    from mobile_pipeline.exporters.video import VideoError, read_frames

    if not keyframes_dir.is_dir():
        raise StylizeError(f"--keyframes {keyframes_dir}: not a folder")
    images = {p.stem: p for p in sorted(keyframes_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    styled = {stem[: -len(STYLED_SUFFIX)]: p for stem, p in images.items() if stem.endswith(STYLED_SUFFIX)}
    if not styled:
        raise StylizeError(f"--keyframes {keyframes_dir}: no NAME{STYLED_SUFFIX}.png files; put 1-3 painted frames "
                           f"there, named after their frame index (0042{STYLED_SUFFIX}.png) or next to the "
                           f"original frame (NAME.png + NAME{STYLED_SUFFIX}.png)")
    wanted: dict[str, int] = {}
    for name in styled:
        if name not in images:
            index = frame_index(name)
            if index is None:
                raise StylizeError(f"--keyframes: {styled[name].name} has no original frame: add {name}.png, or "
                                   f"name it after its frame index in {video.name} (e.g. 0042{STYLED_SUFFIX}.png)")
            wanted[name] = index
    try:
        frames = read_frames(video, set(wanted.values())) if wanted else {}
    except VideoError as err:
        raise StylizeError(f"--keyframes: {err}") from None
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    for name, styled_path in styled.items():
        frame = frames[wanted[name]] if name in wanted else read_image(images[name])
        write_png(out_dir / f"{name}.png", frame)
        shutil.copy2(styled_path, out_dir / f"{name}{STYLED_SUFFIX}{styled_path.suffix.lower()}")
    return sorted(styled)


def fewshot_config(base: Any, keyframes_dir: Path, *, steps: int | None, arch: str | None,
                   user_config: bool) -> Any:
    """The release config of the few-shot run: keyframes teacher, few-shot patches, paired steps only.

    Without a user config the few-shot defaults apply (:data:`FEWSHOT_STEPS`,
    :data:`FEWSHOT_VAL_FRACTION`, :data:`FEWSHOT_WEIGHT_TEMPORAL`); ``steps`` and ``arch``
    (command-line flags) always win.
    """
    from mobile_pipeline.config import build_config

    raw = base.model_dump(mode="json")
    raw["data"].update(teacher="keyframes", keyframes_dir=str(keyframes_dir))
    if not user_config:
        raw["data"]["val_fraction"] = FEWSHOT_VAL_FRACTION
        raw["train"]["paired_steps"] = FEWSHOT_STEPS
        raw["train"]["weight_temporal"] = FEWSHOT_WEIGHT_TEMPORAL
    total = steps if steps is not None else raw["train"]["paired_steps"]
    raw["train"].update(few_shot=True, paired_steps=total, adversarial_steps=0, val_every=max(1, total),
                        checkpoint_every=max(1, total))
    if arch:
        raw["train"]["arch"] = arch
    return build_config(raw, origin="stylize --keyframes")


def train_from_keyframes(video: Path, keyframes_dir: Path, work_dir: Path, cfg: Any, *,
                         progress: bool = True) -> FewShotResult:
    """Collect the keyframe pairs, build the few-shot dataset, train; the checkpoint and its scale.

    Args:
        video: the clip the keyframes come from.
        keyframes_dir: the user's folder (see the module docstring).
        work_dir: holds ``keyframes/``, ``data/`` and ``train/`` (``train/generator.pt``).
        cfg: a release config from :func:`fewshot_config` (its keyframes_dir is replaced).
    """
    from mobile_pipeline.config import build_config
    from mobile_pipeline.data.dataset import build_dataset
    from mobile_pipeline.exporters.video import probe
    from mobile_pipeline.train.runner import train_stylizer

    started = time.perf_counter()
    pairs_dir = work_dir / "keyframes"
    names = collect_keyframes(video, keyframes_dir, pairs_dir)
    raw = cfg.model_dump(mode="json")
    raw["data"]["keyframes_dir"] = str(pairs_dir)
    cfg = build_config(raw, origin="stylize --keyframes")
    if progress:
        print(f"few-shot: {len(names)} keyframe(s) {', '.join(names)} -> {cfg.train.arch}, "
              f"{cfg.train.paired_steps} steps", file=sys.stderr, flush=True)
    build_dataset(cfg.data, work_dir / "data", progress=progress)
    result = train_stylizer(cfg, work_dir / "data", work_dir / "train", progress=progress)
    info = probe(video)
    # The keyframes were trained at data.max_side (longer side), so that is the look's scale.
    working = min(cfg.data.max_side, max(info.width, info.height))
    return FewShotResult(result.checkpoint, int(working), names, result.metrics, time.perf_counter() - started)


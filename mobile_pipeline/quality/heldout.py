"""Quality of a model where it matters: whole held-out photos, against the teacher.

One procedure for every kind of model, so a PyTorch checkpoint, its ONNX / TFLite artifacts
and another tier's model are scored the same way:

* each held-out photo is stylized **whole, at the dataset's resolution**: a checkpoint runs on
  the full image (padded to its downsample factor); a fixed-size artifact runs in overlapping
  tiles of its input side (:func:`mobile_pipeline.exporters.tiling.stylize_tiled`, the same
  as ``mobile-pipeline stylize``), so its look is measured at the pixel scale it was trained
  at, with no resampling that would blur the teacher's lines into a lower score;
* the output is compared with the teacher's target: PSNR and SSIM, plus the look measures
  of :mod:`mobile_pipeline.quality.look` (ink-line recall / precision, texture kept);
* scores are the mean over images (each image counts once).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mobile_pipeline.quality.look import LookScores, look_scores, mean_look

Pair = tuple[np.ndarray, np.ndarray]  # (photo, target), uint8 H x W x 3


@dataclass(frozen=True)
class HeldOutQuality:
    """Mean held-out quality of one model."""

    psnr_db: float
    ssim: float
    look: LookScores
    images: int

    def to_dict(self) -> dict[str, Any]:
        return {"psnr_db": round(self.psnr_db, 3), "ssim": round(self.ssim, 4), "images": self.images,
                **self.look.to_dict()}


def score_outputs(pairs: Sequence[Pair], outputs: Sequence[np.ndarray]) -> HeldOutQuality:
    """PSNR / SSIM / look of ``outputs`` (uint8 or [0, 1] float, H x W x 3) against the pairs' targets."""
    from mobile_pipeline.quality.image import psnr, ssim

    if len(pairs) != len(outputs) or not pairs:
        raise ValueError(f"need one output per pair (and at least one), got {len(outputs)} for {len(pairs)}")
    psnrs, ssims, looks = [], [], []
    for (photo, target), output in zip(pairs, outputs):
        out = _to_float(output)
        tgt = _to_float(target)
        psnrs.append(psnr(out, tgt))
        ssims.append(ssim(out, tgt))
        looks.append(look_scores(photo, target, out))
    return HeldOutQuality(float(np.mean(psnrs)), float(np.mean(ssims)), mean_look(looks), len(pairs))


def _to_float(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    return array.astype(np.float32) / 255.0 if array.dtype == np.uint8 else array.astype(np.float32)


def generator_outputs(generator: Any, photos: Sequence[np.ndarray]) -> list[np.ndarray]:
    """A PyTorch generator on whole photos: float H x W x 3 outputs in [0, 1]."""
    import torch

    generator = generator.eval()
    device = next(generator.parameters()).device
    outputs = []
    with torch.no_grad():
        for photo in photos:
            x = torch.from_numpy(np.ascontiguousarray(photo.transpose(2, 0, 1))).float().div(255.0)[None]
            outputs.append(generator(x.to(device))[0].cpu().numpy().transpose(1, 2, 0))
    return outputs


def tiled_outputs(run: Callable[[np.ndarray], np.ndarray], side: int, photos: Sequence[np.ndarray]) -> list[np.ndarray]:
    """A fixed-size model (``run``: N,3,side,side -> same) on whole photos, in blended tiles."""
    from mobile_pipeline.exporters.tiling import stylize_tiled

    return [stylize_tiled(run, photo.astype(np.float32) / 255.0, side, overlap=side // 4) for photo in photos]


def evaluate_generator(generator: Any, pairs: Sequence[Pair]) -> HeldOutQuality:
    """Held-out quality of a PyTorch generator (whole images)."""
    return score_outputs(pairs, generator_outputs(generator, [photo for photo, _ in pairs]))


def evaluate_artifact(path: str | Path, pairs: Sequence[Pair]) -> HeldOutQuality | None:
    """Held-out quality of an exported artifact; None when it cannot run on this machine."""
    from mobile_pipeline.exporters.runtimes import load_runner

    runner = load_runner(Path(path), num_threads=2)
    if not getattr(runner, "runnable", True):
        return None
    photos = [photo for photo, _ in pairs]
    if runner.input_hw is None:
        outputs = [runner.run(p.astype(np.float32).transpose(2, 0, 1)[None] / 255.0)[0].transpose(1, 2, 0)
                   for p in photos]
    else:
        outputs = tiled_outputs(runner.run, int(runner.input_hw[0]), photos)
    return score_outputs(pairs, outputs)

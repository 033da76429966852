"""Look measures (ink lines, flatness) and held-out scoring on synthetic images with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mobile_pipeline.quality.heldout import evaluate_generator, score_outputs, tiled_outputs
from mobile_pipeline.quality.look import LookScores, ink_map, look_scores, mean_look


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured two-tone photo and its 'cartoon': flat tones plus a black line the photo lacks."""
    rng = np.random.default_rng(seed)
    photo = np.full((96, 96, 3), 150.0)
    photo[:, 48:] = 90.0
    photo += rng.normal(0, 6, photo.shape)  # texture the style flattens
    target = np.full((96, 96, 3), 160.0)
    target[:, 48:] = 80.0
    target[20:76, 20:23] = 0.0  # a drawn line inside the bright half, where the photo has no edge
    return np.clip(photo, 0, 255).astype(np.uint8), target.astype(np.uint8)


def test_identity_and_teacher_bound_the_scale() -> None:
    photo, target = _scene()
    identity = look_scores(photo, target, photo)
    teacher = look_scores(photo, target, target)
    assert identity.ink_recall == 0.0 and math.isnan(identity.ink_precision)  # adds no ink: precision undefined
    assert identity.texture_kept == pytest.approx(1.0)
    assert teacher.ink_recall == 1.0 and teacher.ink_precision == 1.0
    assert teacher.texture_kept < 0.05 and teacher.style_ink_fraction > 0.005 and teacher.flat_fraction > 0.5
    assert identity.to_dict()["ink_precision"] is None and identity.to_dict()["ink_f1"] == 0.0


def test_partial_line_and_stray_ink_move_recall_and_precision() -> None:
    photo, target = _scene()
    half = target.copy()
    half[48:76, 20:23] = 160  # draws only the upper half of the line
    stray = target.copy()
    stray[30:70, 35:38] = 0  # the line plus a second one the style does not have
    assert 0.3 < look_scores(photo, target, half).ink_recall < 0.8
    scores = look_scores(photo, target, stray)
    assert scores.ink_recall == 1.0 and 0.3 < scores.ink_precision < 0.8


def test_smoothing_lowers_texture_kept_monotonically() -> None:
    import cv2

    photo, target = _scene()
    kept = [look_scores(photo, target, cv2.GaussianBlur(photo, (0, 0), s)).texture_kept for s in (0.5, 1.0, 2.0)]
    assert kept[0] > kept[1] > kept[2]


def test_shapes_must_match_and_mean_skips_undefined_values() -> None:
    photo, target = _scene()
    with pytest.raises(ValueError, match="same shape"):
        look_scores(photo, target, photo[:50])
    with pytest.raises(ValueError, match="H x W x 3"):
        ink_map(photo[..., 0])
    a = LookScores(0.5, float("nan"), 1.0, 0.01, 0.5)
    b = LookScores(1.0, 0.5, 0.0, 0.03, 0.7)
    mean = mean_look([a, b])
    assert mean.ink_recall == 0.75 and mean.ink_precision == 0.5 and mean.texture_kept == 0.5


def test_score_outputs_and_tiled_runs_match_whole_image_runs() -> None:
    import torch

    from mobile_pipeline.nets.generator import build_generator, trained_like

    photo, target = _scene()
    pairs = [(photo, target)]
    quality = score_outputs(pairs, [target])
    assert quality.psnr_db == 100.0 and quality.look.ink_recall == 1.0
    generator = trained_like(build_generator("stylizer-tiny"), seed=1)
    whole = evaluate_generator(generator, pairs)

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return generator(torch.from_numpy(batch)).numpy()

    tiled = score_outputs(pairs, tiled_outputs(run, 64, [photo]))
    assert abs(whole.psnr_db - tiled.psnr_db) < 1.0  # tiles see less context, but the same model
    with pytest.raises(ValueError, match="one output per pair"):
        score_outputs(pairs, [])

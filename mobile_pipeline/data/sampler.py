"""Random patch sampler for paired training.

The batch for step ``i`` is a pure function of ``(seed, rank, i)``: every draw comes from a
fresh generator seeded with that triple. Resuming a run therefore only needs the step
counter (``state_dict``), and DDP ranks draw different, reproducible batches without
sharing any hidden RNG state.

Images smaller than the patch are padded by reflection (once, at construction) rather than
rejected: few-shot keyframe regions and small validation strips can be narrower than a
large ``train.patch_size`` and still carry useful pixels. Images are drawn with probability
proportional to the number of patch positions they offer, so every pixel of the dataset is
about equally likely to be seen regardless of image size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _seed_words(seed: int) -> int:
    return seed % (1 << 64)  # SeedSequence wants non-negative entropy


def _pad_to(image: np.ndarray, size: int) -> np.ndarray:
    pad_h = max(0, size - image.shape[0])
    pad_w = max(0, size - image.shape[1])
    if not pad_h and not pad_w:
        return image
    # numpy repeats the reflection when the pad is wider than the image
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")


class PatchSampler:
    """Random aligned crops (with optional flips) from ``(photo, target)`` pairs.

    Args:
        pairs: ``(photo, target)`` uint8 ``H x W x 3`` arrays, equal sizes within a pair.
        patch_size: side of the square patches.
        seed: base seed; with ``rank`` and the step it fully determines each batch.
        flips: random horizontal flips (applied identically to photo and target).
        rank: data-parallel rank, so each process draws its own batches.
        vflips: also random vertical flips (off by default: skies stay up).
    """

    def __init__(
        self,
        pairs: Sequence[tuple[np.ndarray, np.ndarray]],
        patch_size: int,
        seed: int,
        flips: bool = True,
        *,
        rank: int = 0,
        vflips: bool = False,
    ) -> None:
        if not pairs:
            raise ValueError("PatchSampler needs at least one (photo, target) pair; the dataset split is empty")
        if patch_size < 1:
            raise ValueError(f"patch_size must be positive, got {patch_size}")
        if rank < 0:
            raise ValueError(f"rank must be >= 0, got {rank}")
        self.patch_size = int(patch_size)
        self.seed = int(seed)
        self.rank = int(rank)
        self.flips = bool(flips)
        self.vflips = bool(vflips)
        self.step = 0
        self._photos: list[np.ndarray] = []
        self._targets: list[np.ndarray] = []
        for index, (photo, target) in enumerate(pairs):
            for name, array in (("photo", photo), ("target", target)):
                if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
                    raise ValueError(f"pair {index}: {name} must be uint8 HxWx3, got {array.dtype} {array.shape}")
            if photo.shape != target.shape:
                raise ValueError(f"pair {index}: photo {photo.shape} and target {target.shape} differ in size")
            self._photos.append(_pad_to(photo, self.patch_size))
            self._targets.append(_pad_to(target, self.patch_size))
        positions = np.array(
            [(p.shape[0] - self.patch_size + 1) * (p.shape[1] - self.patch_size + 1) for p in self._photos],
            dtype=np.float64,
        )
        self._weights = positions / positions.sum()

    def __len__(self) -> int:
        return len(self._photos)

    def batch_at(self, step: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """The batch of ``step`` (does not advance the counter): float32 ``N,3,p,p`` in [0, 1]."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        rng = np.random.default_rng([_seed_words(self.seed), self.rank, int(step)])
        p = self.patch_size
        photos = np.empty((batch_size, p, p, 3), dtype=np.uint8)
        targets = np.empty_like(photos)
        choices = rng.choice(len(self._photos), size=batch_size, p=self._weights)
        for slot, index in enumerate(choices):
            photo, target = self._photos[index], self._targets[index]
            y = int(rng.integers(0, photo.shape[0] - p + 1))
            x = int(rng.integers(0, photo.shape[1] - p + 1))
            crop_p = photo[y : y + p, x : x + p]
            crop_t = target[y : y + p, x : x + p]
            if self.flips and rng.random() < 0.5:
                crop_p, crop_t = crop_p[:, ::-1], crop_t[:, ::-1]
            if self.vflips and rng.random() < 0.5:
                crop_p, crop_t = crop_p[::-1], crop_t[::-1]
            photos[slot] = crop_p
            targets[slot] = crop_t
        to_float = lambda batch: np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0  # noqa: E731
        return to_float(photos), to_float(targets)

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """The next batch; advances the step counter."""
        batch = self.batch_at(self.step, batch_size)
        self.step += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to resume the exact batch sequence."""
        return {"step": self.step, "seed": self.seed, "rank": self.rank, "patch_size": self.patch_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`; refuses a state made with another seed or patch size."""
        for key in ("seed", "patch_size"):
            if key in state and int(state[key]) != getattr(self, key):
                raise ValueError(
                    f"sampler state has {key}={state[key]} but this sampler uses {getattr(self, key)}; "
                    "resume with the same config"
                )
        self.step = int(state["step"])


class UnpairedSampler:
    """Augmented photo crops with no teacher target: the inputs of distillation.

    The reference model's output is the only target these crops get, so they may leave the
    teacher's domain on purpose: each crop is taken at a random scale (a larger window area-
    resized to the patch, so the model also sees objects smaller than in the dataset) and
    with a random exposure, gamma, saturation and white balance (phones see every lighting).
    A teacher target would not be valid for such a crop (a paired teacher cannot restyle it,
    and the cartoon filter's tone bands depend on exposure), which is exactly why the
    reference answers instead. Like :class:`PatchSampler`, the batch of a step is a pure
    function of ``(seed, rank, step)``.

    Args:
        photos: uint8 ``H x W x 3`` photos (training photos, plus any unpaired ones).
        patch_size: side of the square crops.
        seed: base seed.
        rank: data-parallel rank.
        min_scale: the smallest ratio patch / window side (1.0 = no zoom-out).
        photometric: random exposure / gamma / saturation / white balance.
    """

    def __init__(self, photos: Sequence[np.ndarray], patch_size: int, seed: int, *, rank: int = 0,
                 min_scale: float = 0.6, photometric: bool = True) -> None:
        if not photos:
            raise ValueError("UnpairedSampler needs at least one photo")
        if not 0.1 <= min_scale <= 1.0:
            raise ValueError(f"min_scale must be in [0.1, 1], got {min_scale}")
        self.patch_size, self.seed, self.rank = int(patch_size), int(seed), int(rank)
        self.min_scale, self.photometric = float(min_scale), bool(photometric)
        window = int(np.ceil(self.patch_size / self.min_scale))
        self._photos = [_pad_to(p, window) for p in photos]
        area = np.array([p.shape[0] * p.shape[1] for p in self._photos], dtype=np.float64)
        self._weights = area / area.sum()

    def batch_at(self, step: int, batch_size: int) -> np.ndarray:
        """float32 ``N,3,p,p`` crops in [0, 1] for ``step``."""
        import cv2

        rng = np.random.default_rng([_seed_words(self.seed), self.rank, int(step), 1])
        p = self.patch_size
        out = np.empty((batch_size, p, p, 3), dtype=np.float32)
        for slot, index in enumerate(rng.choice(len(self._photos), size=batch_size, p=self._weights)):
            photo = self._photos[index]
            side = int(round(p / rng.uniform(self.min_scale, 1.0)))
            y = int(rng.integers(0, photo.shape[0] - side + 1))
            x = int(rng.integers(0, photo.shape[1] - side + 1))
            crop = photo[y:y + side, x:x + side]
            if side != p:
                crop = cv2.resize(crop, (p, p), interpolation=cv2.INTER_AREA)
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            image = crop.astype(np.float32) / 255.0
            if self.photometric:
                image = _photometric(image, rng)
            out[slot] = image
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def _photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random exposure (x0.7-1.3), gamma (0.8-1.25), saturation (x0.7-1.3), white balance (+-8%)."""
    image = image * rng.uniform(0.7, 1.3) * rng.uniform(0.92, 1.08, size=3).astype(np.float32)
    image = np.clip(image, 0.0, 1.0) ** rng.uniform(0.8, 1.25)
    grey = image.mean(axis=2, keepdims=True)
    image = grey + (image - grey) * rng.uniform(0.7, 1.3)
    return np.clip(image, 0.0, 1.0).astype(np.float32)

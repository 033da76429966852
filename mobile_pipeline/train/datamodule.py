"""Patch batches for training and whole held-out images for validation.

Reproducibility is the point of this module. The batch of training step ``s`` on data-parallel
rank ``r`` is a pure function of ``(seed, r, s)`` (:meth:`PatchSampler.batch_at`), so

* ``--resume`` only has to know the next step (saved in the Lightning checkpoint through
  :meth:`StylizerDataModule.state_dict`) to continue exactly where an uninterrupted run
  would be;
* DDP ranks draw different batches without any shared RNG state;
* data-loader workers can produce steps out of process without changing the sequence.

Each yielded batch carries its step number; :class:`~mobile_pipeline.train.module.StylizerModule`
checks it against its own counter, so a mismatch fails loudly instead of silently training
on other data.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

#: Offset of the style stream's seed, so style patches never mirror photo patches.
_STYLE_SEED_OFFSET = 7919
#: Offset of the unpaired (distillation) stream's seed.
_UNPAIRED_SEED_OFFSET = 104729


class _StepStream(IterableDataset):
    """Batches for steps ``start .. end-1`` (split across loader workers, order preserved)."""

    def __init__(self, photo_sampler: Any, style_sampler: Any | None, batch_size: int, style_batch_size: int,
                 start: int, end: int, adversarial_from: int, unpaired_sampler: Any | None = None,
                 unpaired_batch_size: int = 0) -> None:
        super().__init__()
        self.photo_sampler, self.style_sampler = photo_sampler, style_sampler
        self.unpaired_sampler, self.unpaired_batch_size = unpaired_sampler, unpaired_batch_size
        self.batch_size, self.style_batch_size = batch_size, style_batch_size
        self.start, self.end, self.adversarial_from = start, end, adversarial_from

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        # DataLoader reads workers round-robin, so striding keeps the global step order.
        for step in range(self.start + worker, self.end, workers):
            yield self.batch(step)

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        photos, targets = self.photo_sampler.batch_at(step, self.batch_size)
        out = {"step": torch.tensor(step), "photos": torch.from_numpy(photos), "targets": torch.from_numpy(targets)}
        if step >= self.adversarial_from and self.style_sampler is not None:
            _, style = self.style_sampler.batch_at(step, self.style_batch_size)
            out["style"] = torch.from_numpy(style)
        if self.unpaired_sampler is not None and self.unpaired_batch_size > 0:
            out["unpaired"] = torch.from_numpy(self.unpaired_sampler.batch_at(step, self.unpaired_batch_size))
        return out


class _HeldOut(Dataset):
    """Whole validation images, one per batch (they differ in size)."""

    def __init__(self, pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        photo, target = self.pairs[index]
        to_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float().div(255.0)[None]  # noqa: E731
        return {"index": torch.tensor(index), "photos": to_tensor(photo), "targets": to_tensor(target)}


class StylizerDataModule(pl.LightningDataModule):
    """Training patches from a data-stage dataset folder; validation on whole held-out images.

    Args:
        dataset_dir: output folder of the data stage (``manifest.json`` etc.).
        patch_size: side of the square training patches; must be a multiple of the
            generator's downsample factor.
        batch_size: paired patches per step.
        total_steps: paired + adversarial steps; the stream ends there.
        adversarial_from: first step that also carries unpaired style patches.
        seed: base seed of the patch streams.
        style_batch_size: style patches per adversarial step (default ``batch_size``).
        num_workers: data-loader worker processes (0 = in the training process).
        max_val_images: cap on held-out images validated (None = all).
        unpaired_batch_size: augmented photo crops without a teacher target per step (key
            ``unpaired``), for distillation from a reference model; 0 = none.
    """

    def __init__(self, dataset_dir: str | Path, *, patch_size: int, batch_size: int, total_steps: int,
                 adversarial_from: int, seed: int = 0, style_batch_size: int | None = None,
                 num_workers: int = 0, max_val_images: int | None = None, unpaired_batch_size: int = 0) -> None:
        super().__init__()
        self.dataset_dir = Path(dataset_dir)
        self.patch_size, self.batch_size = patch_size, batch_size
        self.style_batch_size = style_batch_size or batch_size
        self.total_steps, self.adversarial_from = total_steps, adversarial_from
        self.seed, self.num_workers, self.max_val_images = seed, num_workers, max_val_images
        self.unpaired_batch_size = int(unpaired_batch_size)
        self.next_step = 0  # set by load_state_dict on resume
        self.train_pairs: list[tuple[np.ndarray, np.ndarray]] = []
        self.val_pairs: list[tuple[np.ndarray, np.ndarray]] = []
        self.val_source = "val"
        self._style_images: list[np.ndarray] = []
        self._loaded = False

    # ------------------------------------------------------------------ data
    def setup(self, stage: str | None = None) -> None:
        """Load the dataset once per process (so nothing large is pickled to DDP workers)."""
        if self._loaded:
            return
        from mobile_pipeline.data.dataset import load_dataset

        dataset = load_dataset(self.dataset_dir)
        self.train_pairs = list(dataset.pairs("train"))
        if not self.train_pairs:
            raise ValueError(f"dataset {self.dataset_dir} has no training pairs; rebuild it with `mobile-pipeline data`")
        self.val_pairs = list(dataset.pairs("val"))
        if not self.val_pairs:
            # Few-shot runs may keep every keyframe for training; validate on them rather than on nothing.
            self.val_pairs, self.val_source = list(self.train_pairs), "train"
        if self.max_val_images is not None:
            self.val_pairs = self.val_pairs[: self.max_val_images]
        # Unpaired style images; without any, the teacher's targets are the style domain.
        self._style_images = list(dataset.style_images()) or [target for _, target in self.train_pairs]
        self._loaded = True

    def _rank(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.global_rank) if trainer is not None else 0

    def stream(self, start: int | None = None, rank: int | None = None) -> _StepStream:
        """The training batch stream from ``start`` (default: the resume point)."""
        from mobile_pipeline.data.sampler import PatchSampler, UnpairedSampler

        self.setup()
        rank = self._rank() if rank is None else rank
        photos = PatchSampler(self.train_pairs, self.patch_size, self.seed, flips=True, rank=rank)
        styles = None
        if self.adversarial_from < self.total_steps:
            styles = PatchSampler([(s, s) for s in self._style_images], self.patch_size,
                                  self.seed + _STYLE_SEED_OFFSET, flips=True, rank=rank)
        unpaired = None
        if self.unpaired_batch_size > 0:
            unpaired = UnpairedSampler([photo for photo, _ in self.train_pairs], self.patch_size,
                                       self.seed + _UNPAIRED_SEED_OFFSET, rank=rank)
        begin = self.next_step if start is None else start
        return _StepStream(photos, styles, self.batch_size, self.style_batch_size, begin, self.total_steps,
                           self.adversarial_from, unpaired, self.unpaired_batch_size)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.stream(), batch_size=None, num_workers=self.num_workers,
                          persistent_workers=False)

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return DataLoader(_HeldOut(self.val_pairs), batch_size=None, shuffle=False, num_workers=0)

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """The next step to draw: the module's count of completed steps."""
        module = getattr(getattr(self, "trainer", None), "lightning_module", None)
        step = int(getattr(module, "step_count", self.next_step))
        return {"next_step": step, "seed": self.seed, "patch_size": self.patch_size, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("seed", "patch_size", "batch_size"):
            if key in state and int(state[key]) != getattr(self, key):
                raise ValueError(
                    f"cannot resume: checkpoint was trained with train.{key}={state[key]} but the config says "
                    f"{getattr(self, key)}; resume with the same config or start a fresh run without --resume"
                )
        self.next_step = int(state["next_step"])

"""Training callbacks: sample grids each validation, step-based checkpoints.

Both follow the Lightning split of concerns: the module trains, callbacks do the extras.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import Tensor

from mobile_pipeline.utils.atomic import atomic_write_bytes

#: Height of each image cell in a sample grid (width follows the aspect ratio).
GRID_CELL_HEIGHT = 128
_GAP = 4


def _to_uint8_hwc(image: Tensor | np.ndarray) -> np.ndarray:
    array = image.detach().cpu().float().numpy() if isinstance(image, Tensor) else np.asarray(image, dtype=np.float32)
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3:
        array = array.transpose(1, 2, 0)
    return (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def sample_grid(samples: Sequence[tuple[Any, Any, Any]], cell_height: int = GRID_CELL_HEIGHT) -> np.ndarray:
    """One row per sample: input | teacher | output, uint8 RGB on a white background.

    Args:
        samples: ``(photo, target, output)`` images in [0, 1], CHW tensors or HWC arrays.
        cell_height: every cell is resized to this height (aspect kept).
    """
    import cv2

    if not samples:
        raise ValueError("sample_grid needs at least one (input, teacher, output) sample")
    rows = []
    for triple in samples:
        cells = []
        for image in triple:
            rgb = _to_uint8_hwc(image)
            width = max(1, round(rgb.shape[1] * cell_height / rgb.shape[0]))
            cells.append(cv2.resize(rgb, (width, cell_height), interpolation=cv2.INTER_AREA))
        gap = np.full((cell_height, _GAP, 3), 255, np.uint8)
        rows.append(np.concatenate([cells[0], gap, cells[1], gap, cells[2]], axis=1))
    width = max(row.shape[1] for row in rows)
    padded = [np.pad(row, ((0, _GAP), (0, width - row.shape[1]), (0, 0)), constant_values=255) for row in rows]
    return np.concatenate(padded, axis=0)


def write_sample_grid(samples: Sequence[tuple[Any, Any, Any]], path: str | Path) -> Path:
    """Encode :func:`sample_grid` as PNG and write it atomically."""
    import cv2

    ok, encoded = cv2.imencode(".png", cv2.cvtColor(sample_grid(samples), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"could not encode the sample grid for {path}")
    return atomic_write_bytes(path, encoded.tobytes())


class SampleGridCallback(pl.Callback):
    """After each validation, write ``<out_dir>/step_NNNNNN.png`` (input / teacher / output rows).

    Reads the held-out samples the module kept in ``val_samples``; only rank 0 writes.
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.written: list[Path] = []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        samples = getattr(pl_module, "val_samples", None)
        if trainer.sanity_checking or not samples or not trainer.is_global_zero:
            return
        step = int(getattr(pl_module, "step_count", trainer.global_step))
        self.written.append(write_sample_grid(samples, self.out_dir / f"step_{step:06d}.png"))


class ValHistory(pl.Callback):
    """Held-out PSNR/SSIM after each validation with the step and seconds since fit start.

    The convergence curve of a run (``metrics.json`` ``history``; the few-shot study).
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self._started = time.perf_counter()

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        if trainer.sanity_checking or "val/psnr" not in metrics:
            return
        self.rows.append({"step": int(getattr(pl_module, "step_count", trainer.global_step)),
                          "seconds": round(time.perf_counter() - self._started, 3),
                          "psnr_db": float(metrics["val/psnr"]), "ssim": float(metrics["val/ssim"])})


class StepCheckpoint(ModelCheckpoint):
    """:class:`ModelCheckpoint` that counts training *batches* (the module's ``step_count``).

    With manual optimisation Lightning's ``global_step`` counts optimizer steps, two per
    batch in the adversarial stage, so ``every_n_train_steps`` would drift. This saves every
    ``every_n_steps`` batches, at the end of training, and keeps ``last.ckpt`` for ``--resume``;
    file names carry the batch step (``step=000100.ckpt``).
    """

    def __init__(self, dirpath: str | Path, every_n_steps: int) -> None:
        super().__init__(dirpath=dirpath, filename="step={step:06d}", auto_insert_metric_name=False,
                         save_top_k=-1, save_last=True, every_n_epochs=1, save_on_train_epoch_end=True,
                         enable_version_counter=False)
        self.every_n_steps = int(every_n_steps)

    def _monitor_candidates(self, trainer: pl.Trainer) -> dict[str, Tensor]:
        candidates = super()._monitor_candidates(trainer)
        candidates["step"] = torch.tensor(int(getattr(trainer.lightning_module, "step_count", trainer.global_step)))
        return candidates

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        step = int(getattr(pl_module, "step_count", 0))
        if step == 0 or step % self.every_n_steps or self._should_skip_saving_checkpoint(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)

"""``train_stylizer``: one call from a release config and a dataset folder to a trained generator.

The Lightning Trainer is built from ``cfg.train`` (accelerator, devices, nodes, strategy,
precision), so the same call trains on 2 CPU cores or a multi-GPU DDP job. Output layout::

    <out_dir>/generator.pt          lean generator checkpoint (arch string + weights)
    <out_dir>/metrics.json          held-out PSNR/SSIM against the teacher, steps, timing
    <out_dir>/checkpoints/          step=NNNNNN.ckpt every train.checkpoint_every steps, last.ckpt
    <out_dir>/samples/              input / teacher / output grids per validation (+ final.png)
    <out_dir>/logs/version_N/       CSV logs (and TensorBoard with train.tensorboard)
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mobile_pipeline.config import ReleaseConfig
from mobile_pipeline.nets.spec import ArchSpec
from mobile_pipeline.utils.atomic import atomic_write_json

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
GENERATOR_FILE = "generator.pt"
METRICS_FILE = "metrics.json"


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        checkpoint: the lean generator file (``generator.pt``).
        lightning_checkpoint: ``last.ckpt`` for ``--resume`` (None when none was written).
        metrics: held-out ``psnr_db`` and ``ssim`` against the teacher, plus run facts.
        spec: the trained architecture.
    """

    checkpoint: Path
    lightning_checkpoint: Path | None
    metrics: dict[str, Any]
    spec: ArchSpec
    history: list[dict[str, float]] = field(default_factory=list)


def _say(message: str, progress: bool) -> None:
    if progress:
        print(f"train: {message}", file=sys.stderr, flush=True)


def _check_patch(patch: int, spec: ArchSpec, field_name: str) -> None:
    factor = spec.downsample_factor
    if patch % factor:
        lower, upper = max(factor, patch - patch % factor), patch + factor - patch % factor
        raise ValueError(
            f"{field_name}={patch} must be a multiple of {factor}, the downsample factor of {spec.to_string()}; "
            f"use {lower} or {upper}"
        )


def _prepare_checkpoints(ckpt_dir: Path, spec: ArchSpec, resume: bool, progress: bool) -> Path | None:
    """The checkpoint to resume from, or None (then stale checkpoints of an older run are removed)."""
    last = ckpt_dir / LAST_CHECKPOINT
    if resume and last.is_file():
        try:
            saved = torch.load(last, map_location="cpu", weights_only=False).get("hyper_parameters", {})
        except Exception as err:  # truncated / not a checkpoint: say which file and what to do
            raise ValueError(
                f"cannot resume from {last}: it is not a readable checkpoint ({type(err).__name__}: {err}); "
                f"delete it to resume from the previous step=*.ckpt, or start without --resume"
            ) from None
        if saved.get("arch") != spec.to_string():
            raise ValueError(
                f"cannot resume from {last}: it was trained with arch {saved.get('arch')!r}, not "
                f"{spec.to_string()!r}; use the same train.arch or start without --resume"
            )
        _say(f"resuming from {last}", progress)
        return last
    if resume:
        _say(f"--resume: no {last}; training from scratch", progress)
    # A fresh run must not mix with checkpoints of an older one (ModelCheckpoint would keep them).
    for old in [*ckpt_dir.glob("step=*.ckpt"), last]:
        old.unlink(missing_ok=True)
    return None


#: DDP strategies and their find-unused-parameters variant (see ``_strategy``).
_DDP_UNUSED = {"ddp": "ddp_find_unused_parameters_true", "ddp_spawn": "ddp_spawn_find_unused_parameters_true",
               "ddp_fork": "ddp_fork_find_unused_parameters_true",
               "ddp_notebook": "ddp_notebook_find_unused_parameters_true"}


def _strategy(name: str, adversarial: bool, progress: bool) -> str:
    """DDP must tolerate parameters without gradients when there is a discriminator.

    Its heads get no gradient in the paired stage, and the discriminator step's backward
    leaves the generator out; plain DDP treats both as errors.
    """
    if adversarial and name in _DDP_UNUSED:
        _say(f"strategy {name!r} -> {_DDP_UNUSED[name]!r} (the discriminator is idle in the paired stage)", progress)
        return _DDP_UNUSED[name]
    return name


def _loggers(cfg_train: Any, out_dir: Path, progress: bool) -> list[Any]:
    from pytorch_lightning.loggers import CSVLogger

    loggers: list[Any] = [CSVLogger(str(out_dir), name="logs")]
    if cfg_train.tensorboard:
        try:
            from pytorch_lightning.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(str(out_dir), name="tensorboard"))
        except (ImportError, ModuleNotFoundError):
            _say("train.tensorboard is on but the 'tensorboard' package is missing "
                 "(pip install 'mobile_pipeline[tensorboard]'); logging to CSV only", True)
    return loggers


@torch.no_grad()
def evaluate_generator(generator: torch.nn.Module, pairs: Sequence[tuple[np.ndarray, np.ndarray]],
                       keep: int = 4) -> tuple[dict[str, float], list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
    """Mean PSNR/SSIM of ``generator`` against the teacher on whole images, and a few samples.

    Images are padded (replicate) to the downsample factor and the output cropped back, as
    in validation.
    """
    from mobile_pipeline.quality.image import psnr, ssim
    from mobile_pipeline.train.module import pad_to_multiple

    generator = generator.eval()
    factor = generator.spec.downsample_factor
    device = next(generator.parameters()).device
    scores, samples = [], []
    for photo, target in pairs:
        x = torch.from_numpy(np.ascontiguousarray(photo.transpose(2, 0, 1))).float().div(255.0)[None]
        y = torch.from_numpy(np.ascontiguousarray(target.transpose(2, 0, 1))).float().div(255.0)[None]
        padded, height, width = pad_to_multiple(x.to(device), factor)
        out = generator(padded)[..., :height, :width].cpu()
        scores.append((psnr(out, y), ssim(out, y)))
        if len(samples) < keep:
            samples.append((x[0], y[0], out[0]))
    mean = np.mean(np.array(scores, dtype=np.float64), axis=0)
    return {"psnr_db": float(mean[0]), "ssim": float(mean[1])}, samples


def train_stylizer(
    cfg: ReleaseConfig,
    dataset_dir: str | Path,
    out_dir: str | Path,
    *,
    spec: ArchSpec | None = None,
    init_state_dict: dict[str, torch.Tensor] | None = None,
    paired_steps: int | None = None,
    adversarial_steps: int | None = None,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    train_cfg: Any | None = None,
    reference_checkpoint: str | Path | None = None,
) -> TrainResult:
    """Train the stylizer on a data-stage dataset and write generator, metrics and checkpoints.

    Args:
        cfg: release config; ``cfg.train`` drives everything here.
        dataset_dir: folder written by the data stage.
        out_dir: run folder (layout in the module docstring).
        spec: architecture to train (default: ``cfg.train.arch``).
        init_state_dict: generator weights to start from (e.g. a supernet's subnet).
        paired_steps, adversarial_steps: override the config's step counts.
        resume: continue from ``<out_dir>/checkpoints/last.ckpt`` when it exists; the result
            equals an uninterrupted run with the same config.
        progress: progress bar and status lines on stderr.
        callbacks: extra Lightning callbacks.
        train_cfg: a :class:`~mobile_pipeline.config.TrainConfig` to use instead of ``cfg.train``
            (tier training derives one from ``cfg.train`` and ``cfg.tier_train``).
        reference_checkpoint: a trained generator to distill from (``train_cfg.weight_distill``
            on every step, ``train_cfg.distill_batch_size`` target-less crops per step).

    Raises:
        ValueError: patch size not a multiple of the downsample factor, or a resume
            checkpoint of another architecture (the message says what to change).
    """
    import pytorch_lightning as pl

    from mobile_pipeline.nets.registry import get_spec
    from mobile_pipeline.train.callbacks import SampleGridCallback, StepCheckpoint, ValHistory, write_sample_grid
    from mobile_pipeline.train.checkpoint import save_generator
    from mobile_pipeline.train.datamodule import StylizerDataModule
    from mobile_pipeline.train.module import StylizerModule

    t = train_cfg if train_cfg is not None else cfg.train
    spec = spec if spec is not None else get_spec(t.arch)
    distilling = reference_checkpoint is not None and t.weight_distill > 0
    out_dir, dataset_dir = Path(out_dir), Path(dataset_dir)
    n_paired = t.paired_steps if paired_steps is None else int(paired_steps)
    n_adv = t.adversarial_steps if adversarial_steps is None else int(adversarial_steps)
    if n_paired < 0 or n_adv < 0 or n_paired + n_adv == 0:
        raise ValueError(f"need a positive number of steps, got paired={n_paired} adversarial={n_adv}")
    patch, batch = (t.few_shot_patch_size, t.few_shot_batch_size) if t.few_shot else (t.patch_size, t.batch_size)
    _check_patch(patch, spec, "train.few_shot_patch_size" if t.few_shot else "train.patch_size")
    ckpt_dir = out_dir / CHECKPOINT_DIR
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    resume_from = _prepare_checkpoints(ckpt_dir, spec, resume, progress)

    if t.num_threads is not None:
        torch.set_num_threads(t.num_threads)
    pl.seed_everything(t.seed, workers=True, verbose=False)
    module = StylizerModule(
        spec.to_string(), n_paired, n_adv, lr=t.lr, lr_disc=t.lr_disc, adv_loss=t.adv_loss, weight_l1=t.weight_l1,
        weight_multiscale=t.weight_multiscale, weight_edge=t.weight_edge, weight_adv=t.weight_adv,
        disc_checkpoint=str(t.disc_checkpoint) if t.disc_checkpoint else None, seed=t.seed,
        reference_checkpoint=str(reference_checkpoint) if distilling else None,
        weight_distill=t.weight_distill if distilling else 0.0, weight_temporal=t.weight_temporal)
    if init_state_dict is not None:
        module.generator.load_state_dict(init_state_dict)
    datamodule = StylizerDataModule(dataset_dir, patch_size=patch, batch_size=batch, total_steps=n_paired + n_adv,
                                    adversarial_from=n_paired, seed=t.seed, num_workers=t.num_workers,
                                    max_val_images=t.max_val_images,
                                    unpaired_batch_size=t.distill_batch_size if distilling else 0)
    started = time.perf_counter()
    history = ValHistory()
    trainer = pl.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=_strategy(t.strategy, n_adv > 0, progress),
        precision=t.precision, max_epochs=1, max_steps=-1, val_check_interval=t.val_every,
        check_val_every_n_epoch=None, num_sanity_val_steps=0, logger=_loggers(t, out_dir, progress),
        callbacks=[StepCheckpoint(ckpt_dir, t.checkpoint_every), SampleGridCallback(out_dir / "samples"), history,
                   *callbacks],
        enable_progress_bar=progress, enable_model_summary=False, use_distributed_sampler=False,
        deterministic=True if t.accelerator == "cpu" else "warn", default_root_dir=str(out_dir),
        log_every_n_steps=max(1, min(10, t.val_every)),
    )
    _say(f"{spec.to_string()}: {n_paired} paired + {n_adv} adversarial steps, batch {batch} x {patch}px"
         f"{' (few-shot)' if t.few_shot else ''}"
         + (f", distilling from {reference_checkpoint} (+{t.distill_batch_size} target-less crops/step)"
            if distilling else ""), progress)
    with warnings.catch_warnings():
        # Expected here: the discriminator's frozen backbone stays in eval mode, and the
        # step stream is an IterableDataset without a length (it ends at the last step).
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
    train_seconds = time.perf_counter() - started

    generator_path = out_dir / GENERATOR_FILE
    last = ckpt_dir / LAST_CHECKPOINT
    if not trainer.is_global_zero:  # DDP ranks > 0: rank 0 writes the outputs
        return TrainResult(generator_path, last if last.exists() else None, {}, spec)
    datamodule.setup()
    generator = module.generator.cpu()
    scores, samples = evaluate_generator(generator, datamodule.val_pairs)
    metrics = {
        **scores,
        "val_images": len(datamodule.val_pairs),
        "val_source": datamodule.val_source,
        "arch": spec.to_string(),
        "paired_steps": n_paired,
        "adversarial_steps": n_adv,
        "patch_size": patch,
        "batch_size": batch,
        "few_shot": t.few_shot,
        "distilled_from": str(reference_checkpoint) if distilling else None,
        "init": "given weights" if init_state_dict is not None else "fresh",
        "seed": t.seed,
        "resumed": resume_from is not None,
        "train_seconds": round(train_seconds, 2),
        "history": history.rows,
    }
    save_generator(generator, generator_path)
    atomic_write_json(out_dir / METRICS_FILE, metrics)
    if samples:
        write_sample_grid(samples, out_dir / "samples" / "final.png")
    _say(f"held-out PSNR {scores['psnr_db']:.2f} dB, SSIM {scores['ssim']:.3f} "
         f"({len(datamodule.val_pairs)} images) in {train_seconds:.0f} s -> {generator_path}", progress)
    return TrainResult(generator_path, last if last.exists() else None, metrics, spec, history.rows)

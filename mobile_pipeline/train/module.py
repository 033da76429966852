"""The stylizer LightningModule: paired stage, then mixed adversarial stage.

Manual optimisation because stage 2 alternates a discriminator and a generator update per
batch (the GAN recipe Lightning documents). The stage is decided by a step counter that this
module owns (``step_count``, saved in every checkpoint): Lightning's ``global_step`` counts
optimizer steps, which is one per batch in stage 1 and two in stage 2, so it cannot say
which stage a batch belongs to.

Distillation (tier training): with a ``reference_checkpoint`` (the reference model the
``train`` stage produced), every step also fits the reference's outputs: on the paired
patches, beside the teacher's targets, and on augmented crops that have no teacher target at
all (batch key ``unpaired``), weighted by ``weight_distill``. The reference is frozen and
held outside the module tree, so it is neither trained, saved in checkpoints nor wrapped by DDP.

Discriminator backbone: a user-given local checkpoint (``disc_checkpoint``) or, by default,
the generator's own encoder as trained in the paired stage. In the default case the
discriminator is rebuilt from the current generator at the first adversarial step (under a
fixed seed, so a resumed run re-creates exactly the same head) and its backbone frozen.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mobile_pipeline.train.losses import (
    PairedWeights,
    discriminator_loss,
    generator_adversarial_loss,
    paired_loss,
)
from mobile_pipeline.quality.image import psnr, ssim

#: The generator learning rate decays (cosine) to this fraction of ``lr`` by the last step.
LR_FLOOR = 0.1
#: Held-out images kept per validation for the sample grid callback.
SAMPLE_IMAGES = 4


def pad_to_multiple(x: Tensor, factor: int) -> tuple[Tensor, int, int]:
    """Replicate-pad N,C,H,W on the bottom/right so H and W are multiples of ``factor``."""
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % factor, (-width) % factor
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x, height, width


class StylizerModule(pl.LightningModule):
    """Generator (+ discriminator for stage 2) with the two-stage training recipe.

    Args:
        arch: architecture string or registered spec name.
        paired_steps: stage-1 steps (paired losses only).
        adversarial_steps: stage-2 steps (paired + adversarial).
        lr: generator Adam learning rate (cosine-decayed to ``LR_FLOOR * lr``).
        lr_disc: discriminator Adam learning rate.
        adv_loss: ``hinge`` or ``lsgan``.
        weight_l1, weight_multiscale, weight_edge, weight_adv: loss weights.
        weight_temporal: weight of the temporal consistency term (train/temporal.py); 0 = off.
        disc_checkpoint: local checkpoint for the discriminator backbone (None = the
            generator's encoder after the paired stage).
        seed: seeds the discriminator head built at the stage switch.
        reference_checkpoint: generator checkpoint to distill from (None = no distillation).
        weight_distill: weight of the distillation terms (paired loss against the reference's
            outputs, on the paired patches and the ``unpaired`` crops).
    """

    def __init__(self, arch: str, paired_steps: int, adversarial_steps: int, lr: float = 2e-3,
                 lr_disc: float = 2e-4, adv_loss: str = "hinge", weight_l1: float = 1.0,
                 weight_multiscale: float = 0.5, weight_edge: float = 0.5, weight_adv: float = 0.05,
                 disc_checkpoint: str | None = None, seed: int = 0, reference_checkpoint: str | None = None,
                 weight_distill: float = 0.0, weight_temporal: float = 0.0) -> None:
        super().__init__()
        from mobile_pipeline.nets.generator import build_generator

        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = build_generator(arch)
        self.arch = self.generator.spec.to_string()
        self.hparams["arch"] = self.arch  # canonical string, so checkpoints never depend on the registry
        self.weights = PairedWeights(weight_l1, weight_multiscale, weight_edge)
        # Built in configure_model (per process): spectral-norm modules cannot be pickled to
        # ddp_spawn workers, and it must exist before a checkpoint is restored into it.
        self.discriminator: nn.Module | None = None
        # Set when the discriminator backbone holds the paired-stage encoder (or a user checkpoint).
        self.disc_ready = disc_checkpoint is not None
        self.step_count = 0
        factor = self.generator.spec.downsample_factor
        self.example_input_array = torch.zeros(1, 3, max(64, factor), max(64, factor))
        self.val_samples: list[tuple[Tensor, Tensor, Tensor]] = []
        self._val_scores: list[tuple[float, float]] = []
        # A tuple, not an attribute nn.Module would register: see the module docstring.
        self._reference: tuple[nn.Module, ...] = ()

    # ------------------------------------------------------------------ parts
    def _build_discriminator(self) -> nn.Module:
        from mobile_pipeline.nets.discriminator import build_discriminator

        source: nn.Module | Path = (Path(self.hparams.disc_checkpoint) if self.hparams.disc_checkpoint
                                    else self.generator)
        return build_discriminator(source)

    def configure_model(self) -> None:
        if self.discriminator is None and self.hparams.adversarial_steps > 0:
            self.discriminator = self._build_discriminator()

    def _sync_discriminator_backbone(self) -> None:
        """Rebuild the discriminator on the paired-stage encoder; deterministic for resume."""
        assert self.discriminator is not None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.hparams.seed + self.hparams.paired_steps)
            fresh = self._build_discriminator()
        self.discriminator.load_state_dict(fresh.state_dict())  # in place: optimizer references stay valid
        for name, param in fresh.named_parameters():
            self.discriminator.get_parameter(name).requires_grad_(param.requires_grad)
        self.disc_ready = True

    def forward(self, x: Tensor) -> Tensor:
        return self.generator(x)

    def reference(self) -> nn.Module | None:
        """The frozen distillation reference on this module's device (None without one)."""
        path = self.hparams.reference_checkpoint
        if not path or self.hparams.weight_distill <= 0:
            return None
        if not self._reference:
            from mobile_pipeline.train.checkpoint import load_generator

            self._reference = (load_generator(Path(path)).requires_grad_(False).eval(),)
        reference = self._reference[0]
        if next(reference.parameters()).device != self.device:
            reference.to(self.device)
        return reference

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=(0.5, 0.999))
        if self.discriminator is None:
            return [opt_g]
        trainable = [p for p in self.discriminator.parameters() if p.requires_grad]
        opt_d = torch.optim.Adam(trainable, lr=self.hparams.lr_disc, betas=(0.5, 0.999))
        return [opt_g, opt_d]

    def _lr_at(self, step: int) -> float:
        total = max(1, self.hparams.paired_steps + self.hparams.adversarial_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        return self.hparams.lr * (LR_FLOOR + (1 - LR_FLOOR) * cosine)

    # ------------------------------------------------------------------ steps
    def _common_step(self, photos: Tensor, targets: Tensor, stage: str) -> tuple[dict[str, Tensor], list[Tensor]]:
        """Generator pyramid and paired losses; shared by training and validation."""
        pyramid = self.generator.forward_pyramid(photos)
        terms = paired_loss(pyramid, targets, self.weights)
        self._log_terms(terms, stage, photos.shape[0])
        return terms, pyramid

    def _log_terms(self, terms: dict[str, Tensor], stage: str, batch_size: int) -> None:
        for name, value in terms.items():
            # Every rank validates the same whole images, so syncing val metrics changes no value
            # (it only keeps DDP runs from warning about unsynced epoch-level logs).
            self.log(f"{stage}/{name}", value.detach(), prog_bar=name == "loss", batch_size=batch_size,
                     on_step=stage == "train", on_epoch=stage == "val", sync_dist=stage == "val")

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        step = int(batch["step"])
        if step != self.step_count:
            raise RuntimeError(
                f"data stream is at step {step} but the model at step {self.step_count}; "
                "the checkpoint and data stream are out of sync (resume with the same config)"
            )
        optimizers = self.optimizers()
        opt_g = optimizers[0] if isinstance(optimizers, list) else optimizers
        for group in opt_g.param_groups:
            group["lr"] = self._lr_at(step)
        adversarial = step >= self.hparams.paired_steps and self.discriminator is not None
        if adversarial and not self.disc_ready:
            self._sync_discriminator_backbone()

        photos, targets, views = batch["photos"], batch["targets"], None
        if self.hparams.weight_temporal > 0:  # video steadiness: shifted, re-noised views must agree
            from mobile_pipeline.train.temporal import add_temporal_views

            photos, targets, views = add_temporal_views(photos, targets, factor=self.generator.spec.downsample_factor,
                                                        step=step, seed=self.hparams.seed)
        reference = self.reference()
        unpaired = batch.get("unpaired") if reference is not None else None
        # One pass over the paired patches (and their views) and any target-less crops (fewer,
        # larger ops on CPU); the paired losses see the paired part only.
        inputs = photos if unpaired is None else torch.cat([photos, unpaired])
        pyramid_all = self.generator.forward_pyramid(inputs)
        pyramid = pyramid_all if unpaired is None else [level[: photos.shape[0]] for level in pyramid_all]
        terms = paired_loss(pyramid, targets, self.weights)
        self._log_terms(terms, "train", photos.shape[0])
        loss = terms["loss"]
        if views is not None:
            temporal = views.consistency(pyramid[-1])
            loss = loss + self.hparams.weight_temporal * temporal
            self.log("train/temporal", temporal.detach(), batch_size=photos.shape[0])
        if reference is not None:
            with torch.no_grad():
                reference_out = reference(inputs)
            distill = paired_loss(pyramid_all, reference_out, self.weights)["loss"]
            loss = loss + self.hparams.weight_distill * distill
            self.log("train/distill", distill.detach(), batch_size=inputs.shape[0])
        if adversarial:
            opt_d = optimizers[1]
            fake = pyramid[-1]
            style = batch.get("style", batch["targets"])
            d_loss = discriminator_loss(self.discriminator(style), self.discriminator(fake.detach()),
                                        self.hparams.adv_loss)
            opt_d.zero_grad()
            self.manual_backward(d_loss)
            opt_d.step()
            g_adv = generator_adversarial_loss(self.discriminator(fake), self.hparams.adv_loss)
            loss = loss + self.hparams.weight_adv * g_adv
            self.log_dict({"train/d_loss": d_loss.detach(), "train/g_adv": g_adv.detach()},
                          batch_size=fake.shape[0])
        opt_g.zero_grad()
        self.manual_backward(loss)
        opt_g.step()
        self.step_count += 1
        self.log("train/stage", 2.0 if adversarial else 1.0, batch_size=batch["photos"].shape[0])

    def on_validation_epoch_start(self) -> None:
        self.val_samples = []
        self._val_scores = []

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        factor = self.generator.spec.downsample_factor
        photos, height, width = pad_to_multiple(batch["photos"], factor)
        targets, _, _ = pad_to_multiple(batch["targets"], factor)
        _, pyramid = self._common_step(photos, targets, "val")
        output = pyramid[-1][..., :height, :width]
        target = batch["targets"]
        self._val_scores.append((psnr(output, target), ssim(output, target)))
        if len(self.val_samples) < SAMPLE_IMAGES:
            self.val_samples.append((batch["photos"][0].cpu(), target[0].cpu(), output[0].detach().cpu()))

    def on_validation_epoch_end(self) -> None:
        if not self._val_scores:
            return
        scores = torch.tensor(self._val_scores, dtype=torch.float64).mean(0)
        self.log_dict({"val/psnr": float(scores[0]), "val/ssim": float(scores[1])}, prog_bar=True, sync_dist=True)

    # ------------------------------------------------------------------ resume
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["stylizer"] = {"step_count": self.step_count, "disc_ready": self.disc_ready}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("stylizer", {})
        self.step_count = int(state.get("step_count", 0))
        self.disc_ready = bool(state.get("disc_ready", self.disc_ready))

"""Two-process CPU DDP (gloo; ddp_fork, so the workers need not re-import torch) through the Lightning flags: paired + adversarial steps."""

from __future__ import annotations

import json

import pytest
import pytorch_lightning as pl
import torch

from test_train_run import ARCH, make_photos, tiny_config


class DumpRankWeights(pl.Callback):
    """Each rank saves its generator parameters, step count and first batch at the end of fit."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.first_batch: torch.Tensor | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.first_batch is None:
            self.first_batch = batch["photos"].clone()

    def on_train_end(self, trainer, pl_module) -> None:
        torch.save({"params": {k: v.detach().clone() for k, v in pl_module.generator.named_parameters()},
                    "steps": pl_module.step_count, "first_batch": self.first_batch},
                   f"{self.folder}/rank{trainer.global_rank}.pt")


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with gloo is needed")
def test_ddp_two_cpu_processes_gloo(tmp_path) -> None:
    from mobile_pipeline.data.dataset import build_dataset
    from mobile_pipeline.train.checkpoint import load_generator
    from mobile_pipeline.train.runner import train_stylizer

    data_cfg = tiny_config().data.model_copy(update={"source": make_photos(tmp_path / "photos")})
    build_dataset(data_cfg, tmp_path / "dataset", progress=False)
    cfg = tiny_config(strategy="ddp_fork", devices=2, checkpoint_every=4, val_every=4)
    result = train_stylizer(cfg, tmp_path / "dataset", tmp_path / "run", paired_steps=3, adversarial_steps=2,
                            progress=False, callbacks=[DumpRankWeights(str(tmp_path))])

    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert rank0["steps"] == rank1["steps"] == 5
    # Gradients were all-reduced: both ranks end with identical weights ...
    for key, value in rank0["params"].items():
        torch.testing.assert_close(rank1["params"][key], value, rtol=0, atol=1e-6, msg=key)
    # ... although each rank trained on its own batches.
    assert not torch.equal(rank0["first_batch"], rank1["first_batch"])
    # Rank 0's weights came back to the main process, which wrote the outputs.
    saved = dict(load_generator(result.checkpoint).named_parameters())
    for key, value in rank0["params"].items():
        torch.testing.assert_close(saved[key], value, rtol=0, atol=0, msg=key)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["arch"] == ARCH

"""Training end to end on a tiny model: outputs, stages, resume, checkpoints, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from mobile_pipeline.config import preset_config
from mobile_pipeline.train.checkpoint import CheckpointError, load_generator, save_generator

#: Tiny two-stage spec (downsample factor 4) with both fusions, so training takes seconds.
ARCH = "s8_e8-8_b1xfs_br-dw3.dil3_f-sta.add_u-nearest_a-relu"
PAIRED, ADVERSARIAL = 4, 4


def make_photos(folder: Path, count: int = 5, size: tuple[int, int] = (40, 52)) -> Path:
    """Synthetic photos with flat regions, gradients and edges (the teacher needs structure)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(count):
        img = np.stack([(xx * (3 + i)) % 256, (yy * (5 + i)) % 256, np.full_like(xx, 40 * i)], -1).astype(np.uint8)
        for _ in range(3):
            cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(5, 14)
            cv2.circle(img, (int(cx), int(cy)), int(r), tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
        cv2.imwrite(str(folder / f"photo{i}.png"), img)
    return folder


def tiny_config(**train):
    base = {"arch": ARCH, "patch_size": 16, "batch_size": 4, "checkpoint_every": 3, "val_every": 3,
            "num_threads": 1, "lr": 5e-3}
    return preset_config("tiny", data={"max_side": 64, "min_side": 16}, train={**base, **train})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from mobile_pipeline.data.dataset import build_dataset

    root = tmp_path_factory.mktemp("train_data")
    cfg = preset_config("tiny", data={"source": str(make_photos(root / "photos")), "max_side": 64, "min_side": 16})
    build_dataset(cfg.data, root / "dataset", progress=False)
    return root / "dataset"


@pytest.fixture(scope="module")
def full_run(dataset, tmp_path_factory):
    from mobile_pipeline.train.runner import train_stylizer

    out = tmp_path_factory.mktemp("full_run")
    return train_stylizer(tiny_config(), dataset, out, paired_steps=PAIRED, adversarial_steps=ADVERSARIAL,
                          progress=False)


class _Crash(pl.Callback):
    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.step_count == self.at_step:
            raise RuntimeError("simulated crash")


def test_run_writes_generator_metrics_samples_and_checkpoints(full_run) -> None:
    out = full_run.checkpoint.parent
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["psnr_db"] == pytest.approx(full_run.metrics["psnr_db"])
    assert 5.0 < metrics["psnr_db"] < 60.0 and 0.0 < metrics["ssim"] <= 1.0
    assert metrics["paired_steps"] == PAIRED and metrics["adversarial_steps"] == ADVERSARIAL
    assert [row["step"] for row in metrics["history"]] == [3, 6]
    assert (out / "samples" / "step_000003.png").is_file() and (out / "samples" / "final.png").is_file()
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["last.ckpt", "step=000003.ckpt", "step=000006.ckpt", "step=000008.ckpt"]
    assert full_run.lightning_checkpoint == out / "checkpoints" / "last.ckpt"
    generator = load_generator(full_run.checkpoint)
    assert generator.spec.to_string() == ARCH and not generator.training
    assert generator(torch.rand(1, 3, 24, 20)).shape == (1, 3, 24, 20)
    with open(next((out / "logs").glob("version_*/metrics.csv"))) as handle:
        columns = set(next(csv.reader(handle)))
    assert {"train/l1", "train/edge", "train/multiscale", "val/psnr"} <= columns


def test_lightning_checkpoint_loads_same_generator(full_run) -> None:
    lean = load_generator(full_run.checkpoint).state_dict()
    from_ckpt = load_generator(full_run.lightning_checkpoint).state_dict()
    assert lean.keys() == from_ckpt.keys()
    assert all(torch.equal(lean[k], from_ckpt[k]) for k in lean)


def test_resume_reproduces_uninterrupted_run(dataset, full_run, tmp_path) -> None:
    from mobile_pipeline.train.runner import train_stylizer

    cfg = tiny_config()
    with pytest.raises(RuntimeError, match="simulated crash"):  # dies in the adversarial stage
        train_stylizer(cfg, dataset, tmp_path, paired_steps=PAIRED, adversarial_steps=ADVERSARIAL,
                       progress=False, callbacks=[_Crash(PAIRED + 3)])
    assert (tmp_path / "checkpoints" / "step=000006.ckpt").is_file()
    assert not (tmp_path / "generator.pt").exists()
    resumed = train_stylizer(cfg, dataset, tmp_path, paired_steps=PAIRED, adversarial_steps=ADVERSARIAL,
                             progress=False, resume=True)
    assert resumed.metrics["resumed"] is True
    expected = load_generator(full_run.checkpoint).state_dict()
    got = load_generator(resumed.checkpoint).state_dict()
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=1e-6, msg=f"{key} differs after resume")
    assert resumed.metrics["psnr_db"] == pytest.approx(full_run.metrics["psnr_db"], abs=1e-6)


def test_resume_refuses_other_arch(dataset, full_run, tmp_path) -> None:
    import shutil

    from mobile_pipeline.train.runner import train_stylizer

    shutil.copytree(full_run.checkpoint.parent / "checkpoints", tmp_path / "checkpoints")
    other = "s8_e8-8_b1xresnet_f-add.add_u-nearest_a-relu"
    with pytest.raises(ValueError, match="cannot resume .* use the same train.arch"):
        train_stylizer(tiny_config(arch=other), dataset, tmp_path, resume=True, progress=False)


def test_patch_size_must_fit_downsample_factor(dataset, tmp_path) -> None:
    from mobile_pipeline.train.runner import train_stylizer

    with pytest.raises(ValueError, match=r"train.patch_size=18 must be a multiple of 4.*use 16 or 20"):
        train_stylizer(tiny_config(patch_size=18), dataset, tmp_path, progress=False)


class _Recorder(pl.Callback):
    """Per-step losses and the generator encoder at the end of the paired stage."""

    def __init__(self) -> None:
        self.l1: list[float] = []
        self.stem_at_switch: dict[str, torch.Tensor] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.l1.append(float(trainer.callback_metrics["train/l1"]))
        if pl_module.step_count == pl_module.hparams.paired_steps:
            self.stem_at_switch = {k: v.clone() for k, v in pl_module.generator.stem.state_dict().items()}


def test_paired_then_adversarial_manual_optimisation(dataset, tmp_path) -> None:
    from mobile_pipeline.train.datamodule import StylizerDataModule
    from mobile_pipeline.train.module import StylizerModule

    torch.manual_seed(0)
    paired, adversarial = 8, 3
    module = StylizerModule(ARCH, paired, adversarial, lr=5e-3)
    assert module.automatic_optimization is False and module.hparams.arch == ARCH
    data = StylizerDataModule(dataset, patch_size=16, batch_size=4, total_steps=paired + adversarial,
                              adversarial_from=paired)
    recorder = _Recorder()
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         callbacks=[recorder])
    trainer.fit(module, datamodule=data)
    assert module.step_count == paired + adversarial
    assert np.mean(recorder.l1[-3:]) < recorder.l1[0]  # a few steps lower the loss
    # Stage 2 ran: both optimizers stepped, the discriminator losses were logged.
    opt_g, opt_d = trainer.optimizers
    assert opt_d.state and "train/d_loss" in trainer.callback_metrics and "train/g_adv" in trainer.callback_metrics
    # Its backbone is the paired-stage encoder, frozen (the generator moved on afterwards).
    backbone = module.discriminator.backbone.stem.state_dict()
    for key, value in recorder.stem_at_switch.items():
        assert torch.equal(backbone[key], value), key
    assert not any(p.requires_grad for p in module.discriminator.backbone.parameters())
    now = module.generator.stem.state_dict()
    assert any(not torch.equal(now[k], backbone[k]) for k in backbone if k.endswith("weight"))


def test_checkpoint_round_trip_and_errors(tmp_path) -> None:
    from mobile_pipeline.nets.generator import build_generator

    torch.manual_seed(1)
    generator = build_generator(ARCH).eval()
    path = save_generator(generator, tmp_path / "g.pt")
    loaded = load_generator(path)
    x = torch.rand(2, 3, 16, 24)
    torch.testing.assert_close(loaded(x), generator(x), rtol=0, atol=0)
    payload = torch.load(path, weights_only=False)
    assert set(payload) == {"format", "arch", "state_dict"} and payload["arch"] == ARCH
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt is not a readable torch checkpoint"):
        load_generator(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_generator(tmp_path / "missing.pt")
    torch.save({"arch": "s8_e8_b1xfs_br-dw3_f-sta_u-nearest_a-relu", "state_dict": payload["state_dict"]},
               tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="weights do not match architecture"):
        load_generator(tmp_path / "mismatch.pt")


def test_cli_train_and_errors(dataset, tmp_path, capsys) -> None:
    from mobile_pipeline.cli import main

    config = tmp_path / "cfg.yaml"
    config.write_text("preset: tiny\ntrain:\n  patch_size: 16\n  num_threads: 1\n  val_every: 2\n"
                      "  checkpoint_every: 2\n")
    out = tmp_path / "run"
    code = main(["train", "--config", str(config), "--data", str(dataset), "--out", str(out), "--arch", ARCH,
                 "--steps", "4", "--adversarial-steps", "1", "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "held-out   PSNR" in printed and (out / "generator.pt").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["paired_steps"], metrics["adversarial_steps"]) == (3, 1)

    assert main(["train", "--preset", "tiny", "--data", str(dataset), "--out", str(out), "--arch", "stylizer-tinyy",
                 "--no-progress"]) == 2
    assert "Did you mean 'stylizer-tiny'" in capsys.readouterr().err
    assert main(["train", "--preset", "tiny", "--data", str(tmp_path / "nope"), "--out", str(out),
                 "--no-progress"]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_batches_are_a_pure_function_of_seed_rank_step(dataset) -> None:
    from mobile_pipeline.train.datamodule import StylizerDataModule

    def batch(rank: int, step: int, seed: int = 0) -> dict:
        data = StylizerDataModule(dataset, patch_size=16, batch_size=3, total_steps=10, adversarial_from=5, seed=seed)
        return data.stream(start=0, rank=rank).batch(step)

    again = batch(0, 6)
    assert torch.equal(batch(0, 6)["photos"], again["photos"]) and torch.equal(batch(0, 6)["style"], again["style"])
    assert again["photos"].shape == (3, 3, 16, 16) and int(again["step"]) == 6
    assert not torch.equal(batch(1, 6)["photos"], again["photos"])  # DDP ranks differ
    assert not torch.equal(batch(0, 7)["photos"], again["photos"])
    assert not torch.equal(batch(0, 6, seed=1)["photos"], again["photos"])
    assert "style" not in batch(0, 4)  # paired stage: no style patches
    stream = StylizerDataModule(dataset, patch_size=16, batch_size=2, total_steps=6, adversarial_from=6).stream(start=4)
    assert [int(b["step"]) for b in stream] == [4, 5]  # a resumed stream starts at the saved step


def test_discriminator_backbone_from_local_checkpoint(dataset, full_run, tmp_path) -> None:
    from mobile_pipeline.train.runner import train_stylizer

    class _Check(pl.Callback):
        backbone: dict = {}

        def on_train_end(self, trainer, pl_module) -> None:
            _Check.backbone = {k: v.clone() for k, v in pl_module.discriminator.backbone.stem.state_dict().items()}

    train_stylizer(tiny_config(disc_checkpoint=str(full_run.checkpoint)), dataset, tmp_path, paired_steps=1,
                   adversarial_steps=2, progress=False, callbacks=[_Check()])
    expected = load_generator(full_run.checkpoint).stem.state_dict()
    assert _Check.backbone and all(torch.equal(_Check.backbone[k], v) for k, v in expected.items())


def test_few_shot_learns_a_keyframe_pair_from_small_patches(tmp_path) -> None:
    """Few-shot mode: one keyframe pair (a photo and its stylized twin), many small random
    patches per step; the held-out strip of the same frame must get closer to the style."""
    import cv2

    from mobile_pipeline.data.dataset import build_dataset, load_dataset
    from mobile_pipeline.data.teachers import cartoon_filter
    from mobile_pipeline.quality.image import psnr
    from mobile_pipeline.train.runner import evaluate_generator, train_stylizer

    from mobile_pipeline.data.sources import bundled_photo_dir

    keys = tmp_path / "keys"
    keys.mkdir()
    # A real photo (fur, eyes, edges) that the teacher changes visibly, shrunk to 64 x 96.
    frame = cv2.cvtColor(cv2.imread(str(bundled_photo_dir() / "chelsea.png")), cv2.COLOR_BGR2RGB)
    frame = cv2.resize(frame, (96, 64), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(keys / "shot.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(keys / "shot_styled.png"), cv2.cvtColor(cartoon_filter(frame), cv2.COLOR_RGB2BGR))
    cfg = preset_config("tiny", data={"teacher": "keyframes", "keyframes_dir": str(keys), "max_side": 96,
                                      "min_side": 16},
                        train={"arch": ARCH, "few_shot": True, "few_shot_patch_size": 16, "few_shot_batch_size": 40,
                               "paired_steps": 160, "adversarial_steps": 0, "lr": 5e-3, "val_every": 160,
                               "checkpoint_every": 160, "num_threads": 1})
    build_dataset(cfg.data, tmp_path / "ds", progress=False)
    val_pairs = load_dataset(tmp_path / "ds").pairs("val")
    assert len(val_pairs) == 1  # the held-out strip of the one keyframe
    photo, target = val_pairs[0]
    untrained = psnr(photo.astype(np.float32) / 255, target.astype(np.float32) / 255)  # identity at init

    result = train_stylizer(cfg, tmp_path / "ds", tmp_path / "run", progress=False)
    assert result.metrics["few_shot"] is True
    assert (result.metrics["patch_size"], result.metrics["batch_size"]) == (16, 40)
    scores, _ = evaluate_generator(load_generator(result.checkpoint), val_pairs)
    assert scores["psnr_db"] == pytest.approx(result.metrics["psnr_db"], abs=1e-4)
    assert scores["psnr_db"] > untrained + 1.5, (scores, untrained)

"""Tier training: every tier's searched architecture trained once, distilled, resumable.

A fake search output (tier JSONs + supernet-slice checkpoints, two tiers sharing one
architecture) and a tiny dataset keep each run to seconds.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mobile_pipeline.config import preset_config
from mobile_pipeline.data.dataset import build_dataset
from mobile_pipeline.nets.generator import build_generator
from mobile_pipeline.nets.spec import ArchSpec
from mobile_pipeline.train.checkpoint import load_generator, read_generator_state, read_provenance, save_generator
from mobile_pipeline.train.tiers import RUNS_DIR, TIER_TRAINING_SOURCE, arch_id, spec_from_arch_file, train_tiers

SHARED = ArchSpec(stem_width=8, encoder_widths=(16, 24), num_blocks=1, fs_branches=("dw3",), fusion=("sta", "add"))
OTHER = ArchSpec(stem_width=8, encoder_widths=(16, 24), num_blocks=1, block="resnet", fusion=("add", "add"))


def _cfg(**tier_train):
    return preset_config("tiny", tier_train={"paired_steps": 4, "adversarial_steps": 2, **tier_train},
                         train={"checkpoint_every": 2, "val_every": 2, "num_threads": 1})


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiers")
    build_dataset(_cfg().data, root / "data", progress=False)
    search = root / "search"
    search.mkdir()
    torch.manual_seed(0)
    for tier, spec in (("cpu", SHARED), ("gpu", SHARED), ("dsp", OTHER)):
        save_generator(build_generator(spec), search / f"{tier}.pt", provenance={"source": "supernet"})
        (search / f"{tier}.json").write_text(json.dumps({"tier": tier, "arch": spec.to_string(), "spec": spec.to_dict()}))
    reference = save_generator(build_generator(SHARED), root / "reference.pt")
    return {"root": root, "data": root / "data", "search": search, "reference": reference}


@pytest.fixture(scope="module")
def trained(setup: dict[str, Path]):
    out = setup["root"] / "tiers"
    models = train_tiers(_cfg(), setup["data"], setup["search"], out, reference=setup["reference"],
                         tiers=["cpu", "gpu", "dsp"], progress=False)
    return out, models


def test_equal_architectures_train_once_and_share_weights(trained) -> None:
    out, models = trained
    runs = sorted(p.name for p in (out / RUNS_DIR).iterdir())
    assert runs == sorted({arch_id(SHARED), arch_id(OTHER)})
    cpu, gpu = read_generator_state(out / "cpu.pt")[1], read_generator_state(out / "gpu.pt")[1]
    assert all(torch.equal(cpu[k], gpu[k]) for k in cpu)
    assert models["cpu"].metrics["shared_with"] == ["gpu"] and models["dsp"].metrics["shared_with"] == []


def test_shipped_checkpoints_are_trained_not_supernet_slices(setup, trained) -> None:
    out, _ = trained
    for tier in ("cpu", "gpu", "dsp"):
        provenance = read_provenance(out / f"{tier}.pt")
        assert provenance["source"] == TIER_TRAINING_SOURCE and provenance["tier"] == tier
        trained_state = read_generator_state(out / f"{tier}.pt")[1]
        slice_state = read_generator_state(setup["search"] / f"{tier}.pt")[1]
        assert any(not torch.equal(trained_state[k], slice_state[k]) for k in trained_state), tier
        document = json.loads((out / f"{tier}.json").read_text())
        training = document["training"]
        assert document["checkpoint"] == f"{tier}.pt"
        assert training["paired_steps"] == 4 and training["adversarial_steps"] == 2
        assert training["init"] == "supernet"
        heldout = training["heldout"]
        assert 5 < heldout["psnr_db"] < 60 and 0 <= heldout["ink_recall"] <= 1 and heldout["texture_kept"] >= 0


def test_distillation_from_the_reference_is_on_every_step(setup, trained) -> None:
    out, models = trained
    assert models["dsp"].metrics["distilled_from"] == str(setup["reference"])
    metrics_csv = next((out / RUNS_DIR / arch_id(OTHER) / "logs").rglob("metrics.csv"))
    rows = list(csv.DictReader(metrics_csv.open()))
    distill = [float(r["train/distill"]) for r in rows if r.get("train/distill")]
    assert distill and all(v > 0 for v in distill)


def test_without_distillation_or_supernet_init(setup, tmp_path) -> None:
    models = train_tiers(_cfg(distill=False, init="scratch"), setup["data"], setup["search"], tmp_path,
                         reference=setup["reference"], tiers=["dsp"], progress=False)
    assert models["dsp"].metrics["distilled_from"] is None and models["dsp"].metrics["init"] == "scratch"


def test_a_rerun_reuses_finished_runs(setup, trained) -> None:
    out, _ = trained
    before = {p: p.stat().st_mtime_ns for p in (out / RUNS_DIR).rglob("generator.pt")}
    train_tiers(_cfg(), setup["data"], setup["search"], out, reference=setup["reference"],
                tiers=["cpu", "gpu", "dsp"], resume=True, progress=False)
    assert {p: p.stat().st_mtime_ns for p in (out / RUNS_DIR).rglob("generator.pt")} == before


def test_search_result_with_another_architecture_is_refused(setup, tmp_path) -> None:
    search = tmp_path / "search"
    search.mkdir()
    save_generator(build_generator(OTHER), search / "cpu.pt")
    (search / "cpu.json").write_text(json.dumps({"tier": "cpu", "spec": SHARED.to_dict()}))
    with pytest.raises(ValueError, match="rerun the search stage"):
        train_tiers(_cfg(), setup["data"], search, tmp_path / "out", reference=None, tiers=["cpu"], progress=False)


def test_arch_file_reading(tmp_path) -> None:
    from mobile_pipeline.nets.spec import SpecError

    path = tmp_path / "npu.json"
    path.write_text(json.dumps({"spec": SHARED.to_dict(), "budgets": {}}))
    assert spec_from_arch_file(path) == SHARED
    path.write_text(json.dumps({"arch": OTHER.to_string()}))
    assert spec_from_arch_file(path) == OTHER
    path.write_text("[1, 2]")
    with pytest.raises(SpecError, match="neither a 'spec' object nor an 'arch' string"):
        spec_from_arch_file(path)
    with pytest.raises(SpecError, match="not a file"):
        spec_from_arch_file(tmp_path / "missing.json")


def test_cli_trains_a_tier_json_with_init_and_reference(setup, tmp_path, capsys) -> None:
    from mobile_pipeline.cli import main

    out = tmp_path / "run"
    code = main(["train", "--preset", "tiny", "--arch", str(setup["search"] / "dsp.json"), "--data", str(setup["data"]),
                 "--out", str(out), "--steps", "3", "--init", str(setup["search"] / "dsp.pt"),
                 "--reference", str(setup["reference"]), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["arch"] == OTHER.to_string() and metrics["init"] == "given weights"
    assert metrics["distilled_from"] == str(setup["reference"])
    code = main(["train", "--preset", "tiny", "--arch", str(setup["search"] / "dsp.json"), "--data", str(setup["data"]),
                 "--out", str(tmp_path / "bad"), "--steps", "3", "--init", str(setup["search"] / "cpu.pt"), "--no-progress"])
    assert code == 2 and "not " + OTHER.to_string() in capsys.readouterr().err


_CHILD = """
import sys
from pathlib import Path
from mobile_pipeline.config import preset_config
from mobile_pipeline.train.tiers import train_tiers
root, reference = Path(sys.argv[1]), Path(sys.argv[2])
cfg = preset_config("tiny", tier_train={"paired_steps": 400, "adversarial_steps": 0},
                    train={"checkpoint_every": 2, "val_every": 1000, "num_threads": 1})
train_tiers(cfg, Path(sys.argv[3]), Path(sys.argv[4]), root, reference=reference, tiers=["dsp"], progress=False)
"""


@pytest.mark.slow
def test_sigkilled_tier_training_resumes_from_its_checkpoint(setup, tmp_path) -> None:
    out = tmp_path / "tiers"
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(out), str(setup["reference"]), str(setup["data"]),
                             str(setup["search"])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = out / RUNS_DIR / arch_id(OTHER) / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.is_file():
        assert proc.poll() is None, "tier training ended before the kill point"
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.1)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "dsp.pt").exists()  # nothing shipped from a killed run
    cfg = preset_config("tiny", tier_train={"paired_steps": 400, "adversarial_steps": 0},
                        train={"checkpoint_every": 2, "val_every": 1000, "num_threads": 1})
    models = train_tiers(cfg, setup["data"], setup["search"], out, reference=setup["reference"], tiers=["dsp"],
                         resume=True, progress=False)
    run_metrics = json.loads((out / RUNS_DIR / arch_id(OTHER) / "metrics.json").read_text())
    assert run_metrics["resumed"] is True and run_metrics["paired_steps"] == 400
    assert load_generator(models["dsp"].checkpoint).spec == OTHER


@pytest.mark.parametrize("path", sorted(Path(__file__).resolve().parents[1].glob("models/*/*.json")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_model_files_build_and_fit_their_tier(path: Path) -> None:
    """models/<preset>/<tier>.json (committed data) is trainable as is and within its tier's MAC budget."""
    from mobile_pipeline.nets.complexity import count_macs

    document = json.loads(path.read_text(encoding="utf-8"))
    spec = spec_from_arch_file(path)
    assert spec.to_string() == document["arch"]
    assert document["tier"] == path.stem and document["provenance"]["preset"] == path.parent.name
    side = int(document["resolution"])
    macs = count_macs(spec, (side, side))
    assert macs == document["macs"] and macs <= document["budgets"]["macs"]
    assert build_generator(spec)(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)

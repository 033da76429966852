"""A tiny release end to end: every stage runs, the manifest is sound, the server serves it.

Uses the ``tiny`` preset (seconds per stage) in a temporary cache and output folder. The
second run must be all cache hits.
"""

from __future__ import annotations

import json

import pytest

from mobile_pipeline.config import preset_config
from mobile_pipeline.release import STAGE_ORDER, run_release
from mobile_pipeline.utils.atomic import sha256_file


@pytest.fixture(scope="module")
def tiny_release(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("release")
    cfg = preset_config("tiny").model_copy(update={"cache_dir": root / "cache", "output_root": root / "export"})
    logs: list[str] = []
    first = run_release(cfg, log=logs.append)
    return cfg, first, logs


def test_every_stage_ran_and_release_is_published(tiny_release) -> None:
    cfg, outcome, logs = tiny_release
    assert list(outcome.results) == list(STAGE_ORDER)
    assert not any(r.cached for r in outcome.results.values())
    for name in ("manifest.json", "play_device_targeting.json", "bench.json", "report.html", "report.md", "stages.json"):
        assert (outcome.release_dir / name).is_file(), name
    assert any("serve it: mobile-pipeline serve --manifest" in line for line in logs)


def test_manifest_entries_exist_with_matching_hashes(tiny_release) -> None:
    cfg, outcome, _ = tiny_release
    manifest = json.loads((outcome.release_dir / "manifest.json").read_text())
    models = manifest["models"]
    assert models
    for model in models:
        path = outcome.release_dir / model["file"]
        assert path.exists(), model["file"]
        if path.is_file():
            assert sha256_file(path) == model["sha256"]
    assert {m["tier"] for m in models} >= set(cfg.search.tiers)


def test_release_holds_an_ai_pack_layout_for_the_manifest_tiers(tiny_release) -> None:
    from mobile_pipeline.manifest.ai_packs import DEFAULT_GROUP, parse_device_targeting_xml

    cfg, outcome, _ = tiny_release
    packs = outcome.release_dir / "play_ai_packs"
    groups = parse_device_targeting_xml((packs / "app" / "device_targeting_config.xml").read_text())
    index = json.loads((packs / "ai_packs.json").read_text())
    manifest = json.loads((outcome.release_dir / "manifest.json").read_text())
    android_tiers = {m["tier"] for m in manifest["models"] if m["platform"] in ("android", "any")}
    assert set(index["tiers"]) == android_tiers
    assert {name for name, _ in groups} | {DEFAULT_GROUP} == set(index["tiers"].values())
    for tier, group in index["tiers"].items():
        folder = packs / cfg.manifest.ai_pack_name / "src" / "main" / "assets" / f"{cfg.manifest.ai_pack_name}#group_{group}"
        assert json.loads((folder / "model.json").read_text())["tier"] == tier


def test_report_has_every_tier_and_sample_images(tiny_release) -> None:
    cfg, outcome, _ = tiny_release
    html = (outcome.release_dir / "report.html").read_text()
    for tier in cfg.search.tiers:
        assert f"Tier {tier}" in html
        assert (outcome.release_dir / f"samples_{tier}.png").is_file()
    # Every per-tier fact is filled in from the stage outputs (no "–" placeholders).
    markdown = (outcome.release_dir / "report.md").read_text()
    facts = [line for line in markdown.splitlines() if line.startswith("- ") and ("latency" in line or "PSNR" in line)]
    assert len(facts) == 4 * len(cfg.search.tiers), facts
    for line in facts:
        value = line.split(": ", 1)[1].split()[0]
        float(value)  # raises on "–"
    tflite_rows = [line for line in markdown.splitlines() if line.startswith("| ") and " | tflite | " in line]
    assert tflite_rows and all(float(row.split(" | ")[7]) > 0 for row in tflite_rows)


def test_export_ships_the_tier_trained_checkpoint_not_the_supernet_slice(tiny_release) -> None:
    """Each tier's fp32 ONNX computes what models/<tier>.pt (tier training) computes, not the search's slice."""
    import numpy as np
    import torch

    from mobile_pipeline.exporters.runtimes import load_runner
    from mobile_pipeline.train.checkpoint import load_generator, read_provenance

    cfg, outcome, _ = tiny_release
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    for tier in cfg.search.tiers:
        shipped = outcome.release_dir / "models" / f"{tier}.pt"
        assert read_provenance(shipped)["source"] == "tier_training"
        artifacts = [p for p in (outcome.release_dir / tier).glob("*.onnx")]
        assert artifacts, tier
        out = load_runner(artifacts[0]).run(x)
        with torch.no_grad():
            trained = load_generator(shipped)(torch.from_numpy(x)).numpy()
            sliced = load_generator(outcome.release_dir / "search" / f"{tier}.pt")(torch.from_numpy(x)).numpy()
        error_trained = float(np.abs(out - trained).mean())
        assert error_trained < 0.02, (tier, error_trained)  # fp32 / fp16 / int8 parity
        assert float(np.abs(sliced - trained).mean()) > 2 * error_trained, tier
        document = json.loads((outcome.release_dir / "models" / f"{tier}.json").read_text())
        assert document["training"]["source"] == "tier_training"
    assert (outcome.release_dir / "models" / "reference.pt").is_file()


def test_unchanged_rerun_is_all_cache_hits(tiny_release) -> None:
    cfg, first, _ = tiny_release
    second = run_release(cfg, log=lambda _: None)
    assert all(r.cached for r in second.results.values())
    assert second.seconds < 10
    assert (second.release_dir / "manifest.json").read_bytes() == (first.release_dir / "manifest.json").read_bytes()


def test_dispatch_server_serves_the_release(tiny_release) -> None:
    from fastapi.testclient import TestClient

    from mobile_pipeline.serve.main import create_app

    _, outcome, _ = tiny_release
    manifest = json.loads((outcome.release_dir / "manifest.json").read_text())
    files = {m["sha256"]: m for m in manifest["models"]}
    with TestClient(create_app(outcome.release_dir / "manifest.json")) as client:
        assert client.get("/healthz").status_code == 200
        answer = client.post("/v1/select", json={"platform": "android", "soc_manufacturer": "QTI", "soc_model": "SM8650"})
        assert answer.status_code == 200
        assert answer.json()["model"]["sha256"] in files
        unknown = client.get("/v1/select", params={"platform": "android", "soc_model": "XYZ123"})
        assert unknown.status_code == 200

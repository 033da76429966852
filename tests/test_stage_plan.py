"""Stage keys cover device_tiers/ files and the package version; ``release --plan`` explains.

The release's own stage declarations (deps, config, ``reads``) are used with fake ``run``
functions whose output depends on exactly what the stage reads, so the tests check the real
graph in milliseconds.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import shutil
from pathlib import Path

import pytest

import mobile_pipeline
from mobile_pipeline.config import preset_config
from mobile_pipeline.release import STAGE_ORDER, build_stages
from mobile_pipeline.stage_cache import Stage, StageCache, StageContext, content_hash, package_version
from mobile_pipeline.stage_plan import config_changes, format_plan, plan
from mobile_pipeline.utils.paths import device_tiers_dir


@pytest.fixture()
def tiers_dir(tmp_path: Path) -> Path:
    """A private copy of device_tiers/ (so edits do not touch the repository's)."""
    target = tmp_path / "device_tiers"
    shutil.copytree(device_tiers_dir(), target)
    return target


def fake(stage: Stage, tiers_dir: Path, calls: list[str]) -> Stage:
    """The stage with a run that writes what it read: its device_tiers files and upstream outputs."""

    def run(ctx: StageContext) -> dict:
        calls.append(stage.name)
        parts = [stage.name] + [f"{name}={content_hash(tiers_dir / name)}" for name in stage.reads]
        parts += [(ctx.inputs[dep] / "out.txt").read_text() for dep in stage.deps]
        (ctx.out_dir / "out.txt").write_text("\n".join(parts))
        return {"stage": stage.name}

    return dataclasses.replace(stage, run=run)


def run_all(root: Path, tiers_dir: Path, cfg=None, code_version: str | None = None) -> tuple[list[str], StageCache]:
    cfg = cfg or preset_config("tiny", cache_dir=str(root))
    calls: list[str] = []
    cache = StageCache(root, log=lambda _: None, device_tiers=tiers_dir, code_version=code_version)
    for stage in build_stages(cfg):
        cache.run(fake(stage, tiers_dir, calls))
    return calls, cache


def plan_rows(root: Path, tiers_dir: Path, cfg=None, code_version: str | None = None) -> dict[str, tuple[str, str]]:
    cfg = cfg or preset_config("tiny", cache_dir=str(root))
    cache = StageCache(root, log=lambda _: None, device_tiers=tiers_dir, code_version=code_version)
    return {row.stage: (row.status, "; ".join(row.reasons)) for row in plan(cache, build_stages(cfg))}


def test_stages_declare_the_device_tiers_files_they_read() -> None:
    stages = {s.name: s for s in build_stages(preset_config("tiny"))}
    assert "tiers.yaml" in stages["search"].reads and "latency_lut.json" in stages["search"].reads
    assert "tiers.yaml" in stages["export"].reads
    assert {"catalog.yaml", "overrides.yaml", "measurements"} <= set(stages["manifest"].reads)
    assert stages["data"].reads == stages["train"].reads == ()
    with pytest.raises(ValueError, match="inside device_tiers"):
        Stage("x", lambda ctx: {}, reads=("../secrets.yaml",))


def test_unchanged_rerun_is_all_cache_hits_and_plan_says_so(tmp_path: Path, tiers_dir: Path) -> None:
    first, _ = run_all(tmp_path / "cache", tiers_dir)
    assert first == list(STAGE_ORDER)
    again, cache = run_all(tmp_path / "cache", tiers_dir)
    assert again == [] and all(r.cached for r in cache.results.values())
    rows = plan_rows(tmp_path / "cache", tiers_dir)
    assert {status for status, _ in rows.values()} == {"cached"}


def test_editing_tiers_yaml_reruns_search_and_everything_after(tmp_path: Path, tiers_dir: Path) -> None:
    run_all(tmp_path / "cache", tiers_dir)
    tiers = tiers_dir / "tiers.yaml"
    tiers.write_text(tiers.read_text().replace("macs: 400_000_000", "macs: 200_000_000"))
    rows = plan_rows(tmp_path / "cache", tiers_dir)
    assert rows["data"][0] == rows["train"][0] == "cached"
    assert rows["search"] == ("will run", "device_tiers/tiers.yaml changed")
    assert rows["export"][0] == "will run" and "device_tiers/tiers.yaml changed" in rows["export"][1]
    assert rows["tiers"] == ("may rerun", "depends on search output")
    assert "depends on tiers output" in rows["export"][1]
    assert rows["bench"] == ("may rerun", "depends on export output")
    assert rows["report"][0] == "may rerun"
    calls, _ = run_all(tmp_path / "cache", tiers_dir)
    assert calls == ["search", "tiers", "export", "bench", "manifest", "report"]


def test_editing_catalog_reruns_only_manifest_and_report(tmp_path: Path, tiers_dir: Path) -> None:
    run_all(tmp_path / "cache", tiers_dir)
    with open(tiers_dir / "catalog.yaml", "a", encoding="utf-8") as handle:
        handle.write("\n# reviewed\n")
    rows = plan_rows(tmp_path / "cache", tiers_dir)
    assert [name for name, (status, _) in rows.items() if status != "cached"] == ["manifest", "report"]
    assert rows["manifest"] == ("will run", "device_tiers/catalog.yaml changed")
    calls, _ = run_all(tmp_path / "cache", tiers_dir)
    assert calls == ["manifest", "report"]


def test_new_calibration_file_and_measurement_rerun_their_readers(tmp_path: Path, tiers_dir: Path) -> None:
    run_all(tmp_path / "cache", tiers_dir)
    (tiers_dir / "calibration.yaml").write_text("cpu: {scale: 1.5}\n")  # what `bench calibrate` writes
    rows = plan_rows(tmp_path / "cache", tiers_dir)
    assert rows["search"] == ("will run", "device_tiers/calibration.yaml created")
    run_all(tmp_path / "cache", tiers_dir)
    (tiers_dir / "measurements" / "SM8650").mkdir()
    (tiers_dir / "measurements" / "SM8650" / "m.json").write_text("{}")
    calls, _ = run_all(tmp_path / "cache", tiers_dir)
    assert calls == ["manifest", "report"]


def test_package_version_is_part_of_every_key(tmp_path: Path, tiers_dir: Path) -> None:
    run_all(tmp_path / "cache", tiers_dir, code_version="0.1.0")
    rows = plan_rows(tmp_path / "cache", tiers_dir, code_version="0.2.0")
    assert rows["data"] == ("will run", "package version 0.1.0 -> 0.2.0")
    calls, _ = run_all(tmp_path / "cache", tiers_dir, code_version="0.2.0")
    assert calls == list(STAGE_ORDER)


def test_package_version_matches_the_installed_metadata() -> None:
    # The key uses __version__; a bump in pyproject.toml alone would not rerun anything.
    assert package_version() == mobile_pipeline.__version__ == importlib.metadata.version("mobile_pipeline")
    assert StageCache(Path("unused")).code_version == mobile_pipeline.__version__


def test_plan_names_the_changed_config_field(tmp_path: Path, tiers_dir: Path) -> None:
    cfg = preset_config("tiny", cache_dir=str(tmp_path / "cache"), release_id="r1")
    run_all(tmp_path / "cache", tiers_dir, cfg)
    changed = preset_config("tiny", cache_dir=str(tmp_path / "cache"), release_id="r1", bench={"runs": 9})
    rows = plan_rows(tmp_path / "cache", tiers_dir, changed)
    assert rows["export"][0] == "cached"
    assert rows["bench"] == ("will run", "config bench.runs: 5 -> 9")
    assert rows["manifest"] == ("may rerun", "depends on bench output")
    assert "1 will run, 2 may rerun" in format_plan(plan(
        StageCache(tmp_path / "cache", log=lambda _: None, device_tiers=tiers_dir), build_stages(changed)))


def test_plan_on_an_empty_cache_runs_and_writes_nothing(tmp_path: Path, tiers_dir: Path) -> None:
    rows = plan_rows(tmp_path / "cache", tiers_dir)
    assert rows["data"] == ("will run", "no cached run of this stage")
    assert rows["train"] == ("will run", "no cached run of this stage; also depends on data output")
    assert not (tmp_path / "cache").exists()


def test_config_changes_lists_nested_fields() -> None:
    assert config_changes({"a": {"b": 1, "c": [1]}}, {"a": {"b": 2, "c": [1], "d": 0}}) == [
        "a.b: 1 -> 2", "a.d: '<absent>' -> 0"]


def test_release_plan_command(tmp_path: Path, capsys) -> None:
    from mobile_pipeline.cli import main

    assert main(["release", "--preset", "tiny", "--plan", "--cache-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "data       will run (no cached run of this stage)" in out
    assert "nothing was run" in out
    assert not (tmp_path / "cache").exists()

"""SIGKILL in the middle of a release: no half artifact anywhere, and the rerun resumes.

The tiny release runs in a child process that is killed with SIGKILL (no handler can run)
as soon as the export stage has placed its first validated artifact. The rerun in this
process must reuse data/train/search, resume export, and publish a release whose every
manifest entry exists with its hash.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mobile_pipeline.config import preset_config
from mobile_pipeline.utils.atomic import is_temporary, sha256_file

pytestmark = pytest.mark.slow

_CHILD = """
import sys
from pathlib import Path
from mobile_pipeline.config import preset_config
from mobile_pipeline.release import run_release
root = Path(sys.argv[1])
run_release(preset_config("tiny").model_copy(update={"cache_dir": root / "cache", "output_root": root / "export"}),
            log=lambda _: None)
"""


def _wait_for(predicate, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the release finished (rc {proc.returncode}) before the kill point")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the export stage did not start in time")
        time.sleep(0.1)


def test_sigkill_mid_export_leaves_no_half_artifact_and_rerun_resumes(tmp_path: Path) -> None:
    from mobile_pipeline.release import run_release

    export_cache = tmp_path / "cache" / "export"
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: any(export_cache.glob("*.partial/*/*.report.json")), proc, timeout_s=600)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    assert not (tmp_path / "export").exists() or not any((tmp_path / "export").iterdir())
    partials = list(export_cache.glob("*.partial"))
    assert len(partials) == 1 and not list(export_cache.glob("*/_stage.json"))
    # Everything the killed run left under a final name is complete: each report's artifact
    # exists and matches the hash the report recorded.
    for report_path in partials[0].glob("*/*.report.json"):
        report = json.loads(report_path.read_text())
        artifact = report_path.parent / report["artifact"]
        assert artifact.exists(), artifact
        if artifact.is_file():
            assert sha256_file(artifact) == report["sha256"]

    cfg = preset_config("tiny").model_copy(update={"cache_dir": tmp_path / "cache", "output_root": tmp_path / "export"})
    logs: list[str] = []
    outcome = run_release(cfg, log=logs.append)
    assert [r.cached for r in outcome.results.values()][:4] == [True] * 4  # data, train, search, tiers reused
    assert any("export" in line and "resuming" in line for line in logs), logs
    manifest = json.loads((outcome.release_dir / "manifest.json").read_text())
    assert {m["tier"] for m in manifest["models"]} >= set(cfg.search.tiers)
    for model in manifest["models"]:
        path = outcome.release_dir / model["file"]
        assert path.exists(), model["file"]
        if path.is_file():
            assert sha256_file(path) == model["sha256"]
    leftovers = [p for p in outcome.release_dir.parent.rglob("*") if is_temporary(p) or p.name.endswith(".partial")]
    assert leftovers == []
    assert not list(export_cache.glob("*.partial"))

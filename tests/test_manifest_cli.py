"""`mobile-pipeline manifest` and `mobile-pipeline serve` from the command line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from manifest_fixtures import FULL_RELEASE, make_release

from mobile_pipeline.cli import main
from mobile_pipeline.manifest.play import validate_play_config
from mobile_pipeline.manifest.schema import load_manifest
from mobile_pipeline.utils.paths import project_root


def test_manifest_command_writes_manifest_and_play_config(tmp_path, capsys):
    art = make_release(tmp_path / "art")
    out, play = tmp_path / "out" / "manifest.json", tmp_path / "play.json"
    rc = main(["manifest", str(art), "--release-id", "cli-1", "--out", str(out), "--play-config", str(play),
               "--preset", "tiny"])
    assert rc == 0
    manifest = load_manifest(out)
    assert manifest.release_id == "cli-1" and len(manifest.models) == len(FULL_RELEASE)
    validate_play_config(json.loads(play.read_text()))
    printed = capsys.readouterr().out
    assert "npu-tflite-int8-full" in printed and "levels 0=cpu, 1=dsp, 2=gpu, 3=npu" in printed


def test_manifest_command_refusal_is_exit_2_with_the_reason(tmp_path, capsys):
    art = make_release(tmp_path / "art", [v for v in FULL_RELEASE if v[0] != "gpu"])
    rc = main(["manifest", str(art), "--release-id", "cli-1", "--preset", "tiny"])
    assert rc == 2
    assert "tier 'gpu' has no model" in capsys.readouterr().err
    assert not (art / "manifest.json").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())


def test_serve_command_serves_and_reloads_on_sighup(tmp_path):
    art = make_release(tmp_path / "art")
    path = tmp_path / "manifest.json"
    assert main(["manifest", str(art), "--release-id", "served-1", "--out", str(path), "--preset", "tiny"]) == 0
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(project_root())}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mobile_pipeline.cli", "serve", "--manifest", str(path), "--port", str(port),
         "--reload-interval", "0", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(f"{base}/healthz")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        chosen = _get(f"{base}/v1/select?platform=android&soc_manufacturer=QTI&soc_model=SM8650")
        assert chosen["model"]["id"] == "npu-tflite-int8-full" and chosen["release_id"] == "served-1"
        # Polling is off (--reload-interval 0): only SIGHUP can pick up the new release.
        raw = json.loads(path.read_text())
        raw["release_id"] = "served-2"
        path.write_text(json.dumps(raw))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while _get(f"{base}/v1/manifest")["release_id"] != "served-2":
            assert time.monotonic() < deadline, "SIGHUP did not reload"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_serve_command_refuses_an_invalid_manifest(tmp_path, capsys):
    path = tmp_path / "manifest.json"
    path.write_text('{"release_id": "x"}')
    assert main(["serve", "--manifest", str(path)]) == 2
    assert "invalid manifest" in capsys.readouterr().err

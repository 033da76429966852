"""`mobile-pipeline data`: summary, skipped reasons, reuse, and clear errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mobile_pipeline.cli import main


def _photos(folder: Path, count: int) -> Path:
    folder.mkdir()
    for i in range(count):
        small = np.random.default_rng(i).integers(0, 256, (3, 4, 3), dtype=np.uint8)
        Image.fromarray(cv2.resize(small, (64, 48))).save(folder / f"p{i}.png")
    return folder


def test_data_command_summary_and_reuse(tmp_path: Path, capsys) -> None:
    source = _photos(tmp_path / "src", 4)
    (source / "broken.jpg").write_bytes(b"")
    out = tmp_path / "ds"
    argv = ["data", "--preset", "tiny", "--source", str(source), "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "train 3 | val 1 | style 0 | skipped 1" in text
    assert "broken.jpg [photo]: zero-byte file" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["max_side"] == 128  # the tiny preset's data section
    assert main(argv) == 0
    assert "reusing" in capsys.readouterr().out


def test_data_command_keyframes_dir_implies_keyframes(tmp_path: Path, capsys) -> None:
    keys = _photos(tmp_path / "keys", 1)
    (keys / "p0.png").rename(keys / "shot.png")
    Image.open(keys / "shot.png").save(keys / "shot_styled.png")
    assert main(["data", "--preset", "tiny", "--keyframes-dir", str(keys), "--out", str(tmp_path / "ds"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "teacher=keyframes" in out and "train 1 | val 1" in out


def test_data_command_errors(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["data", "--preset", "tiny", "--source", str(empty), "--out", str(tmp_path / "ds")]) == 2
    err = capsys.readouterr().err
    assert "data.source: no images in" in err and str(empty) in err
    with pytest.raises(SystemExit) as exit_:
        main(["data", "--preset", "tiny", "--teacher", "paired", "--out", str(tmp_path / "ds")])
    assert exit_.value.code == 2
    assert "paired_dir is required" in capsys.readouterr().err

"""Atomic output: a failed write leaves neither a half file nor a temporary behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mobile_pipeline.utils.atomic import atomic_output, atomic_write_json, sha256_file


def test_json_round_trip_and_deterministic(tmp_path: Path) -> None:
    path = tmp_path / "a" / "out.json"
    atomic_write_json(path, {"b": 1, "a": [1, 2]})
    first = path.read_bytes()
    atomic_write_json(path, {"a": [1, 2], "b": 1})
    assert path.read_bytes() == first
    assert json.loads(first) == {"a": [1, 2], "b": 1}


def test_failure_keeps_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(path) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_directory_output_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "pkg.mlpackage"
    with atomic_output(target, is_dir=True) as tmp:
        (tmp / "weights.bin").write_bytes(b"1")
    with atomic_output(target, is_dir=True) as tmp:
        (tmp / "other.bin").write_bytes(b"2")
    assert sorted(p.name for p in target.iterdir()) == ["other.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg.mlpackage"]


def test_writer_that_writes_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="writer produced no file"):
        with atomic_output(tmp_path / "x.onnx"):
            pass


def test_sha256_matches_hashlib(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "f"
    path.write_bytes(b"abc" * 1000)
    assert sha256_file(path) == hashlib.sha256(b"abc" * 1000).hexdigest()

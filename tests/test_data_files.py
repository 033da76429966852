"""device_tiers/ YAML files: cached per modification time; optional ones read as empty, required ones say what to do."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mobile_pipeline.tiers.catalog import CatalogError, load_catalog_index
from mobile_pipeline.tiers.htp import HtpOpsError, load_htp_op_support
from mobile_pipeline.utils.data_files import load_cached


class _Error(ValueError):
    pass


def _parse_list(raw: object, source: str) -> list:
    return list(raw or [])


def test_optional_file_missing_reads_empty_and_edits_are_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    assert load_cached(path, _parse_list, _Error) == []
    path.write_text("- a\n- b\n")
    first = load_cached(path, _parse_list, _Error)
    assert first == ["a", "b"]
    first.append("c")  # a fresh list each call: the cache is not mutated
    assert load_cached(path, _parse_list, _Error) == ["a", "b"]
    path.write_text("- z\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert load_cached(path, _parse_list, _Error) == ["z"]


def test_required_file_missing_or_broken_raises_with_the_advice(tmp_path: Path) -> None:
    with pytest.raises(_Error, match=r"gone\.yaml: needed \(No such file or directory\); run make-it"):
        load_cached(tmp_path / "gone.yaml", _parse_list, _Error, missing="needed ({reason}); run make-it")
    (tmp_path / "bad.yaml").write_text("a: [1\n")
    with pytest.raises(_Error, match="bad.yaml: not valid YAML"):
        load_cached(tmp_path / "bad.yaml", _parse_list, _Error, missing="needed ({reason})")


def test_catalog_and_htp_probe_file_are_required(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="SoC catalog not found .*expected device_tiers/catalog.yaml"):
        load_catalog_index(tmp_path / "catalog.yaml")
    with pytest.raises(HtpOpsError, match="HTP op support not found .*run scripts/probe_htp_ops.py"):
        load_htp_op_support(tmp_path / "htp_ops.yaml")
    (tmp_path / "htp_ops.yaml").write_text("results: 3\n")
    with pytest.raises(HtpOpsError, match="htp_ops.yaml: "):
        load_htp_op_support(tmp_path / "htp_ops.yaml")
    assert load_catalog_index().entries and load_htp_op_support() is load_htp_op_support()

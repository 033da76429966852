"""Release config: presets, YAML loading, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from mobile_pipeline.config import (
    PRESET_NAMES,
    ConfigError,
    build_config,
    config_hash,
    load_config,
    preset_config,
)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_every_preset_validates(name: str) -> None:
    cfg = preset_config(name)
    assert cfg.preset == name
    assert cfg.train.batch_size >= 1


def test_demo_is_cheaper_than_full() -> None:
    demo, full = preset_config("demo"), preset_config("full")
    assert demo.train.paired_steps < full.train.paired_steps
    assert demo.search.trials < full.search.trials


def test_unknown_key_is_rejected_with_field_name() -> None:
    with pytest.raises(ConfigError, match=r"train\.batchsize: unknown key"):
        build_config({"preset": "demo", "train": {"batchsize": 4}})


def test_bad_value_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"train\.batch_size"):
        build_config({"train": {"batch_size": 0}})


def test_unknown_tier_named() -> None:
    with pytest.raises(ConfigError, match=r"search\.tiers.*unknown tier"):
        build_config({"search": {"tiers": ["cpu", "tpu"]}})


def test_unknown_preset_lists_choices() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'demi'"):
        preset_config("demi")


def test_paired_teacher_needs_folder() -> None:
    with pytest.raises(ConfigError, match="paired_dir is required"):
        build_config({"data": {"teacher": "paired"}})


def test_yaml_overrides_preset(tmp_path: Path) -> None:
    path = tmp_path / "release.yaml"
    path.write_text("preset: demo\ntrain:\n  paired_steps: 7\n", encoding="utf-8")
    cfg = load_config(path)
    assert cfg.train.paired_steps == 7
    assert cfg.train.arch == preset_config("demo").train.arch  # rest of the preset kept


def test_yaml_syntax_error_is_clear(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_missing_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_config_hash_is_stable_and_sensitive() -> None:
    a = preset_config("demo")
    assert config_hash(a) == config_hash(preset_config("demo"))
    b = preset_config("demo", train={"paired_steps": 1})
    assert config_hash(a) != config_hash(b)


def test_cli_preset_beats_the_files_and_default_fills_in(tmp_path: Path) -> None:
    named = tmp_path / "named.yaml"
    named.write_text("preset: demo\ntrain:\n  paired_steps: 7\n", encoding="utf-8")
    bare = tmp_path / "bare.yaml"
    bare.write_text("train:\n  paired_steps: 7\n", encoding="utf-8")
    tiny = preset_config("tiny")
    explicit = load_config(named, preset="tiny")
    assert explicit.preset == "tiny" and explicit.search.space == tiny.search.space
    assert explicit.train.paired_steps == 7
    defaulted = load_config(bare, default_preset="demo")
    assert defaulted.preset == "demo" and defaulted.train.arch == preset_config("demo").train.arch
    assert load_config(named, default_preset="tiny").preset == "demo"  # the file's own key beats the default

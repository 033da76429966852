"""Which sub-commands take --preset/--config, and the README says exactly those."""

from __future__ import annotations

import re

from mobile_pipeline.cli import SUBCOMMANDS, build_parser
from mobile_pipeline.utils.paths import project_root

TAKES_CONFIG = {"data", "train", "search", "export", "bench", "manifest", "release", "stylize"}


def _options_by_command() -> dict[str, set[str]]:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    return {name: {opt for action in sub._actions for opt in action.option_strings}
            for name, sub in subparsers.choices.items()}


def test_commands_with_config_settings_take_preset_and_config() -> None:
    options = _options_by_command()
    assert set(options) == {name for name, _ in SUBCOMMANDS}
    for name, opts in options.items():
        has = {"--preset", "--config"} <= opts
        assert has == (name in TAKES_CONFIG), name


def test_readme_names_exactly_those_commands() -> None:
    text = (project_root() / "README.md").read_text(encoding="utf-8")
    sentence = re.search(r"((?:`\w+`,? (?:and )?)+)take `--preset", text)
    assert sentence, "README lost the sentence naming the commands that take --preset/--config"
    assert set(re.findall(r"`(\w+)`", sentence.group(1))) == TAKES_CONFIG
    assert "`serve` does not" in text


def test_export_defaults_come_from_the_config(tmp_path, capsys) -> None:
    import torch

    from mobile_pipeline.cli import main
    from mobile_pipeline.exporters.report import load_report
    from mobile_pipeline.nets.generator import build_generator
    from mobile_pipeline.train.checkpoint import save_generator

    # A bad config is refused with the field named.
    (tmp_path / "bad.yaml").write_text("export: {validation_images: 0}\n")
    try:
        main(["export", str(tmp_path / "missing.pt"), "--config", str(tmp_path / "bad.yaml")])
        raise AssertionError("an invalid config must exit")
    except SystemExit as exit_:
        assert exit_.code == 2
    assert "validation_images" in capsys.readouterr().err
    # The tiny preset's export section (resolution 64) and the file's validation_images (3) fill
    # what the command line left out; --calibration-images on the command line wins.
    torch.manual_seed(0)
    ckpt = save_generator(build_generator("stylizer-tiny").eval(), tmp_path / "gen.pt")
    (tmp_path / "ok.yaml").write_text("export: {validation_images: 3}\n")
    code = main(["export", str(ckpt), "--format", "onnx", "--preset", "tiny", "--config", str(tmp_path / "ok.yaml"),
                 "--calibration-images", "1", "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr()
    report = load_report(tmp_path / "out" / "gen_fp32.onnx.report.json")
    assert report.input.shape == [1, 3, 64, 64] and report.parity.images == 3

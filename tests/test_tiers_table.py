"""device_tiers/tiers.yaml: loads, validates, budgets consistent; bad YAML fails clearly."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from mobile_pipeline.config import TIER_NAMES
from mobile_pipeline.nets.spec import ArchSpec
from mobile_pipeline.tiers.table import (
    PRECISIONS,
    TierSpec,
    TierTableError,
    default_tier_path,
    load_tier_table,
    parse_tier_table,
)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(default_tier_path().read_text())


@pytest.fixture(scope="module")
def table() -> dict[str, TierSpec]:
    return load_tier_table()


def test_all_four_tiers_in_order(table):
    assert list(table) == list(TIER_NAMES)
    for name, spec in table.items():
        assert spec.name == name
        assert spec.reference_device and spec.reference_soc


def test_budgets_grow_from_cpu_to_accelerators(table):
    per_pixel = {n: s.budgets.macs / s.resolution**2 for n, s in table.items()}
    assert per_pixel["cpu"] < per_pixel["dsp"] < per_pixel["gpu"]
    assert per_pixel["dsp"] < per_pixel["npu"]
    assert table["cpu"].budgets.macs <= 400_000_000 and table["cpu"].resolution == 256  # issue 4 target
    for field in ("params", "peak_activation_bytes"):
        assert getattr(table["cpu"].budgets, field) < getattr(table["npu"].budgets, field)
    assert table["cpu"].budgets.latency_ms > table["gpu"].budgets.latency_ms  # slower tiers get lower fps


def test_resolutions_are_modest_and_divisible(table):
    for spec in table.values():
        assert 256 <= spec.resolution <= 384 and spec.resolution % 32 == 0


def test_latency_fits_in_frame(table):
    for spec in table.values():
        assert spec.budgets.latency_ms <= 1000 / spec.target_fps


def test_variants_per_tier(table):
    for spec in table.values():
        assert 2 <= len(spec.variants) <= 6
        for variant in spec.variants:
            assert variant.precision in PRECISIONS[variant.format]
    keys = {n: {v.key for v in s.variants} for n, s in table.items()}
    assert {"tflite-fp32", "tflite-int8-dynamic"} <= keys["cpu"]
    assert "tflite-fp16" in keys["gpu"] and "coreml-fp16" in keys["gpu"]
    assert keys["dsp"] >= {"tflite-int8-full", "onnx-int8"}
    assert "tflite-int8-full" in keys["npu"]
    # every platform has a CPU model to fall back to
    assert {v.platform for v in table["cpu"].variants} >= {"android", "ios"}
    assert [v.platform for v in table["npu"].variants if v.format == "coreml"] == ["ios"]
    # ExecuTorch: XNNPACK fp32 + int8 for the cpu tier on both platforms, Core ML fp16 for iOS tiers.
    assert {"executorch-fp32", "executorch-int8"} <= keys["cpu"]
    assert all(v.platform == "ios" for v in table["gpu"].variants + table["npu"].variants if v.format == "executorch")


def test_int8_only_tiers(table):
    assert table["dsp"].int8_only and table["npu"].int8_only
    assert not table["cpu"].int8_only and not table["gpu"].int8_only
    for name in ("dsp", "npu"):
        for variant in table[name].variants:
            if table[name].int8_required(variant.format):
                assert variant.precision in ("int8", "int8-full")
    assert not table["npu"].int8_required("coreml")  # ANE computes fp16; w8 is weight compression


def test_forbidden_ops_use_each_formats_vocabulary(table):
    for spec in table.values():
        for fmt, ops in spec.forbidden_ops.items():
            for op in ops:
                if fmt == "tflite":
                    assert re.fullmatch(r"[A-Z0-9_]+", op), op
                elif fmt == "onnx":
                    assert re.fullmatch(r"[A-Z][A-Za-z]+", op), op
                else:
                    assert re.fullmatch(r"[a-z_]+", op), op
    assert "DIV" in table["dsp"].forbidden_ops["tflite"]
    assert "gather" in table["npu"].forbidden_ops["coreml"]


def test_delegates(table):
    assert table["cpu"].delegate == "xnnpack"
    assert table["npu"].delegate_for("ios") == "coreml-ane"
    assert table["npu"].delegate_for("android", "qualcomm") == "qnn"
    assert table["npu"].delegate_for("android", "mediatek") == "neuron"
    assert table["npu"].delegate_for("android", "unknown") == "nnapi"
    assert table["gpu"].delegate_for("android") == "gpu"


def test_roofline(table):
    # the npu reference device out-computes the cpu one by orders of magnitude
    assert table["npu"].roofline.gflops > 100 * table["cpu"].roofline.gflops
    rl = table["cpu"].roofline
    assert rl.time_ms(2 * 400e6, 0) == pytest.approx(800e6 / 150e9 * 1e3)
    assert rl.time_ms(0, 14.4e9) == pytest.approx(1000.0)


def test_arch_constraints(table):
    dilated = ArchSpec(fs_branches=("dw3", "dil3"))
    plain = ArchSpec(fs_branches=("dw3", "conv2"))
    assert table["npu"].allows_arch(dilated) and not table["npu"].allows_arch(plain)
    assert table["dsp"].allows_arch(ArchSpec(upsample="bilinear"))
    assert table["cpu"].allows_arch(dilated) == []
    # branches do not exist in resnet blocks, so they cannot violate anything
    assert table["npu"].allows_arch(ArchSpec(block="resnet", fs_branches=("dil3",))) == []


def test_macs_at_rescales(table):
    gpu = table["gpu"]
    assert gpu.macs_at(gpu.resolution) == gpu.budgets.macs
    assert gpu.macs_at(gpu.resolution * 2) == 4 * gpu.budgets.macs


# ------------------------------------------------------------------ bad input
def _broken(raw, mutate):
    data = copy.deepcopy(raw)
    mutate(data)
    return data


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda d: d["gpu"].update(colour="red"), "'gpu': colour"),
        (lambda d: d["cpu"]["budgets"].pop("macs"), "budgets.macs"),
        (lambda d: d["dsp"]["variants"].append({"format": "tflite", "precision": "fp16", "platform": "android"}), "int8_only"),
        (lambda d: d["gpu"]["variants"].append({"format": "tflite", "precision": "int4", "platform": "android"}), "int4"),
        (lambda d: d["cpu"]["budgets"].update(latency_ms=500.0), "frame time"),
        (lambda d: d["npu"].update(resolution=300), "multiple of 32"),
        (lambda d: d["npu"]["arch_constraints"].update(upsample=["cubic"]), "arch_constraints"),
        (lambda d: d.pop("dsp"), "missing tier"),
        (lambda d: d.update(tpu=d["npu"]), "unknown tier"),
        (lambda d: d["cpu"]["budgets"].update(macs=10**11), "per pixel"),
        (lambda d: d["cpu"].update(variants=[{"format": "tflite", "precision": "fp32", "platform": "android"}]), "cpu tier needs a variant"),
    ],
)
def test_invalid_table_names_the_problem(raw, mutate, needle):
    with pytest.raises(TierTableError, match=re.escape(needle)):
        parse_tier_table(_broken(raw, mutate), source="tiers.yaml")


def test_missing_and_malformed_files(tmp_path: Path):
    with pytest.raises(TierTableError, match="not found"):
        load_tier_table(tmp_path / "nope.yaml")
    bad = tmp_path / "tiers.yaml"
    bad.write_text("cpu: [unclosed\n")
    with pytest.raises(TierTableError, match="not valid YAML"):
        load_tier_table(bad)
    bad.write_text("- a list\n")
    with pytest.raises(TierTableError, match="mapping"):
        load_tier_table(bad)


def test_loader_sees_file_changes(tmp_path: Path, raw):
    path = tmp_path / "tiers.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert load_tier_table(path)["cpu"].target_fps == raw["cpu"]["target_fps"]
    changed = copy.deepcopy(raw)
    changed["cpu"]["target_fps"] = 12
    path.write_text(yaml.safe_dump(changed) + "\n# edited\n")
    assert load_tier_table(path)["cpu"].target_fps == 12

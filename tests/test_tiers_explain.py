"""``mobile-pipeline tiers explain``: the tier, the chain of rules, the fallbacks; same fields as /v1/select."""

from __future__ import annotations

import json

import pytest
from manifest_fixtures import make_release

from mobile_pipeline.cli import main
from mobile_pipeline.commands.tiers import DEVICE_FIELDS
from mobile_pipeline.config import ManifestConfig
from mobile_pipeline.manifest.builder import build_manifest
from mobile_pipeline.tiers.device_info import DeviceInfo


def _explain(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["tiers", "explain", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_fields_are_the_select_fields():
    assert [name for name, _ in DEVICE_FIELDS] == list(DeviceInfo.model_fields)


def test_catalog_phone(capsys):
    code, out, _ = _explain(capsys, "--soc-manufacturer", "QTI", "--soc-model", "SM8750", "--gpu-renderer",
                            "Adreno (TM) 830", "--ram-gib", "11.2", "--os-version", "15")
    assert code == 0
    assert "tier:   npu   (matched by catalog)" in out
    assert "catalog: Snapdragon 8 Elite [qualcomm SM8750, HTP v79] -> npu" in out
    assert "npu: android 15 >= 10; RAM 11.2 GiB >= 2.5 GiB -> serve" in out
    assert "chain:  npu -> gpu -> dsp -> cpu" in out
    assert "why:    catalog:SM8750" in out


def test_family_phone_with_a_ram_step_down(capsys):
    code, out, _ = _explain(capsys, "--soc-manufacturer", "QTI", "--soc-model", "SM8950", "--ram-bytes",
                            str(2 << 30), "--os-version", "16")
    assert code == 0
    assert "tier:   gpu   (matched by family)" in out and "add it to device_tiers/catalog.yaml" in out
    assert "catalog: no entry for QTI 'SM8950'" in out
    assert "family snapdragon-8: 'sm8950' generation 9 -> npu" in out
    assert "npu: android 16 >= 10; RAM 2.0 GiB < 2.5 GiB -> step down" in out
    assert "chain:  gpu -> dsp -> cpu" in out
    assert "why:    family:snapdragon-8 ram:npu" in out


def test_fallbacks_left_out_are_explained(capsys):
    code, out, _ = _explain(capsys, "--gpu-renderer", "Adreno (TM) 710", "--ram-gib", "8", "--os-version", "13")
    assert code == 0 and "tier:   gpu   (matched by rules)" in out
    assert "dsp left out: no int8 DSP/NPU evidence" in out


def test_json_and_accelerators(capsys):
    code, out, _ = _explain(capsys, "--platform", "android", "--accelerators", "gpu,hexagon", "--json")
    data = json.loads(out)
    assert code == 0 and data["device"]["accelerators"] == ["gpu", "hexagon"]
    assert data["decision"]["tier"] == "dsp" and data["decision"]["why"] == ["rules:accelerator"]
    assert data["decision"]["steps"][0] == "catalog: no SoC model reported"


def test_with_a_release_manifest(capsys, tmp_path):
    path = tmp_path / "manifest.json"
    build_manifest(make_release(tmp_path / "art"), path, release_id="rel-9", cfg=ManifestConfig())
    code, out, _ = _explain(capsys, "--platform", "ios", "--soc-model", "iPhone19,3", "--os-version", "27.0",
                            "--manifest", str(path))
    assert code == 0
    assert "tier:   npu   (matched by family)" in out
    assert "served by release rel-9: npu-coreml-w8 (coreml-ane) -> gpu-coreml-fp16 -> cpu-coreml-fp32" in out
    code, out, _ = _explain(capsys, "--soc-model", "SM8650", "--manifest", str(path), "--json")
    served = json.loads(out)["served"]
    assert served["why"] == ["catalog:SM8650"] and served["model"]["delegate"] == "qnn"


@pytest.mark.parametrize("args, message", [
    (["--ram-bytes", "12abc"], "--ram-bytes: Input should be a valid integer"),
    (["--platform", "windows"], "--platform: Input should be 'android', 'ios' or 'other'"),
    (["--os-version", "fifteen"], "--os-version: String should match pattern"),
    (["--ram-bytes", "1", "--ram-gib", "1"], "give --ram-bytes or --ram-gib, not both"),
])
def test_bad_fields_exit_2_naming_the_option(capsys, args, message):
    code, _, err = _explain(capsys, *args)
    assert code == 2 and message in err


def test_missing_manifest_exits_2(capsys, tmp_path):
    code, _, err = _explain(capsys, "--manifest", str(tmp_path / "nope.json"))
    assert code == 2 and "nope.json" in err


def test_action_is_required(capsys):
    assert main(["tiers"]) == 2
    assert "tiers explain" in capsys.readouterr().err

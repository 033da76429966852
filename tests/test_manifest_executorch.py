"""ExecuTorch in the manifest: .pte entries per platform, and routing when a config prefers them."""

from __future__ import annotations

import json

import pytest
from manifest_fixtures import GIB, fixture_rules, make_release, write_artifact

from mobile_pipeline.config import ConfigError, ManifestConfig, build_config
from mobile_pipeline.exporters.report import load_report, report_path_for
from mobile_pipeline.manifest.builder import build_manifest
from mobile_pipeline.manifest.schema import SCHEMA_VERSION, load_manifest
from mobile_pipeline.serve.dispatch import Dispatcher

PREFER_ET = {"android": ["executorch", "tflite", "onnx"], "ios": ["executorch", "coreml", "onnx"], "other": ["onnx"]}


def _release(root):
    art = make_release(root / "art")
    write_artifact(art / "cpu", "cpu", "executorch", "fp32", "xnnpack")
    coreml_pte = write_artifact(art / "npu", "npu", "executorch", "fp16", "coreml")
    _mark_unverified(coreml_pte)
    # An XNNPACK .pte in a tier whose Android delegate the SoC vendor overrides (qnn on Qualcomm):
    # the .pte's delegate is baked in and must survive dispatch.
    write_artifact(art / "npu", "npu", "executorch", "int8", "xnnpack")
    return art


def _mark_unverified(artifact):
    """As the exporter writes a Core ML-delegated .pte off Apple: checked, not run."""
    path = report_path_for(artifact)
    report = load_report(path)
    parity = report.parity.model_copy(update={"runnable": False, "psnr_db": None, "max_abs_err": None,
                                              "not_runnable_reason": "not runnable here: Core ML delegate"})
    path.write_text(report.model_copy(update={"parity": parity, "verified": False,
                                              "verified_reason": parity.not_runnable_reason}).model_dump_json())


def _build(root, name, cfg):
    rules, chains = fixture_rules()
    return build_manifest(root / "art", root / f"{name}.json", release_id="rel-et", cfg=cfg, rules=rules,
                          fallback_chains=chains)


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    root = tmp_path_factory.mktemp("et")
    _release(root)
    default = _build(root, "default", ManifestConfig())
    preferred = _build(root, "preferred", ManifestConfig(format_preference=PREFER_ET))
    return root, default, preferred


def test_pte_entries_per_platform_with_delegate_and_os_floor(manifests):
    _, manifest, _ = manifests
    by_id = {m.id: m for m in manifest.models}
    android, ios = by_id["cpu-executorch-fp32-android"], by_id["cpu-executorch-fp32-ios"]
    assert android.file == ios.file and android.sha256 == ios.sha256  # one file, listed for both
    assert (android.platform, ios.platform) == ("android", "ios")
    assert android.runtime == ios.runtime == "executorch" and android.delegate == ios.delegate == "xnnpack"
    assert android.min_os == "26" and ios.min_os == "17.0"  # ExecuTorch's iOS runtime floor
    coreml = by_id["npu-executorch-fp16"]  # Core ML-delegated: iOS only, so no platform suffix
    assert coreml.platform == "ios" and coreml.delegate == "coreml"
    assert coreml.verified is False and "Core ML" in coreml.verified_reason and android.verified
    assert "npu-executorch-fp16-android" not in by_id


def test_default_preference_keeps_litert_and_core_ml_first(manifests):
    _, manifest, _ = manifests
    dispatcher = Dispatcher(manifest)
    assert dispatcher.select({"platform": "android"}).model.id == "cpu-tflite-fp32"
    assert dispatcher.select({"platform": "ios", "soc_model": "A10"}).model.id == "cpu-coreml-fp32"


@pytest.mark.parametrize("device, model_id, delegate", [
    ({"platform": "android"}, "cpu-executorch-fp32-android", "xnnpack"),
    ({"platform": "android", "soc_manufacturer": "QTI", "soc_model": "SM8650", "ram_bytes": 12 * GIB},
     "npu-executorch-int8-android", "xnnpack"),  # not replaced by the vendor's qnn
    ({"platform": "android", "soc_manufacturer": "QTI", "soc_model": "SM8150", "ram_bytes": 8 * GIB},
     "gpu-tflite-fp16", "gpu"),  # no .pte in this tier: the next preferred format
    ({"platform": "ios", "soc_model": "A10"}, "cpu-executorch-fp32-ios", "xnnpack"),
    ({"platform": "ios", "soc_model": "A17 Pro", "ram_bytes": 8 * GIB}, "npu-executorch-fp16", "coreml"),
])
def test_preferring_executorch_routes_android_and_ios_to_pte(manifests, device, model_id, delegate):
    _, _, manifest = manifests
    selection = Dispatcher(manifest).select(device)
    assert selection.model.id == model_id and selection.model.delegate == delegate
    if selection.tier != "cpu":  # the CPU fallback is a .pte too
        assert selection.fallbacks[-1].format == "executorch"


def test_preference_is_written_and_survives_a_reload(manifests):
    root, _, manifest = manifests
    assert manifest.format_preference["android"][0] == "executorch"
    loaded = load_manifest(root / "preferred.json")
    assert loaded == manifest
    written = json.loads((root / "preferred.json").read_text())
    assert written["schema_version"] == SCHEMA_VERSION == "1.2"  # 1.2 added the executorch format


@pytest.mark.parametrize("preference, words", [
    ({"android": ["coreml", "tflite"]}, r"manifest\.format_preference: .*android: \[.coreml.\]"),
    ({"ios": []}, "at least one format"),
    ({"ios": ["executorch", "executorch"]}, "duplicate"),
    ({"other": ["executorch"]}, "do not run there"),
])
def test_bad_preference_is_refused_with_the_field(preference, words):
    with pytest.raises(ConfigError, match=words):
        build_config({"manifest": {"format_preference": preference}})


def test_requiring_verified_pte_leaves_the_coreml_one_out(manifests):
    root, _, _ = manifests
    strict = {"onnx": True, "tflite": True, "coreml": False, "executorch": True}
    manifest = _build(root, "strict", ManifestConfig(format_preference=PREFER_ET, require_verified=strict))
    assert "npu-executorch-fp16" not in {m.id for m in manifest.models}
    selection = Dispatcher(manifest).select({"platform": "ios", "soc_model": "A17 Pro", "ram_bytes": 8 * GIB})
    assert selection.model.id == "npu-executorch-int8-ios"  # the verified (XNNPACK) .pte of the same tier

"""SoC-specific precompiled models in the manifest, the dispatcher, the fast path and Play.

A phone whose catalog SoC has a Hexagon NPU gets, in its served tier, the model precompiled
for its architecture first, then the QDQ model it was compiled from, then the tier's usual
answer and fallbacks. No onnxruntime-qnn needed: the artifacts are placeholder bytes.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from manifest_fixtures import GIB, fixture_rules, make_release, write_precompiled

from mobile_pipeline.config import ManifestConfig
from mobile_pipeline.manifest.builder import ManifestBuildError, build_manifest
from mobile_pipeline.manifest.play import build_play_config, build_play_targets, play_level_for, validate_play_config
from mobile_pipeline.manifest.schema import Manifest
from mobile_pipeline.serve.app import create_app
from mobile_pipeline.serve.dispatch import Dispatcher
from mobile_pipeline.serve.settings import ServeSettings


def _release(root, archs=(("npu", "int8", "v75"), ("npu", "int8", "v73"), ("npu", "int8", "v68"))):
    folder = make_release(root / "art")
    for tier, precision, arch in archs:
        write_precompiled(folder / tier, tier, precision, arch)
    return folder


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Manifest:
    root = tmp_path_factory.mktemp("qnn")
    rules, chains = fixture_rules()
    return build_manifest(_release(root), root / "manifest.json", release_id="rel-q", cfg=ManifestConfig(),
                          rules=rules, fallback_chains=chains)


def test_builder_makes_arch_specific_entries(manifest):
    ctx = {m.id: m for m in manifest.models if m.htp_arch}
    assert set(ctx) == {"npu-onnx-int8-htp-v75", "npu-onnx-int8-htp-v73", "npu-onnx-int8-htp-v68"}
    v75 = ctx["npu-onnx-int8-htp-v75"]
    assert (v75.platform, v75.precision, v75.compiled_from, v75.runtime, v75.delegate) == \
        ("android", "int8", "npu-onnx-int8", "onnxruntime-qnn", "qnn")
    # Generic lookups never hand out a precompiled model.
    assert all(m.htp_arch is None for t in manifest.tier_rules.tiers for p in ("android", "ios", "other")
               for m in manifest.models_for(p, t))
    assert [m.id for m in manifest.precompiled_for("android", "npu", "v75")] == ["npu-onnx-int8-htp-v75", "npu-onnx-int8"]
    assert manifest.precompiled_for("ios", "npu", "v75") == []


def test_sm8650_gets_v75_then_qdq_then_usual_chain(manifest):
    sel = Dispatcher(manifest).select({"platform": "android", "soc_manufacturer": "QTI", "soc_model": "SM8650",
                                       "ram_bytes": 12 * GIB})
    order = [sel.model.id] + [f.id for f in sel.fallbacks]
    usual = Dispatcher(manifest).select({"platform": "android", "soc_manufacturer": "Google", "soc_model": "Tensor G3",
                                         "ram_bytes": 12 * GIB})
    assert order[:2] == ["npu-onnx-int8-htp-v75", "npu-onnx-int8"]
    assert order[2:] == [usual.model.id] + [f.id for f in usual.fallbacks]  # the tier's usual answer, unchanged
    assert sel.tier == "npu" and sel.model.htp_arch == "v75" and sel.fallbacks[0].htp_arch is None
    assert {sel.model.delegate, sel.fallbacks[0].delegate} == {"qnn"}
    assert json.loads(sel.body)["model"]["htp_arch"] == "v75"


@pytest.mark.parametrize("manufacturer, model, ram, first", [
    ("Qualcomm", "SM8550-AB", 8 * GIB, "npu-onnx-int8-htp-v73"),  # alias spelling of the catalog SoC
    ("QTI", "pineapple", 8 * GIB, "npu-onnx-int8-htp-v75"),       # board name
    ("QTI", "SM8650", 4 * GIB, "gpu-tflite-fp16"),                # below the npu RAM floor: gpu, no context
    ("QTI", "SM8150", 8 * GIB, "gpu-tflite-fp16"),                # no HTP arch: the usual answer
    ("Google", "Tensor G3", 8 * GIB, "npu-tflite-int8-full"),
])
def test_only_matching_socs_get_a_precompiled_model(manifest, manufacturer, model, ram, first):
    sel = Dispatcher(manifest).select({"platform": "android", "soc_manufacturer": manufacturer, "soc_model": model,
                                       "ram_bytes": ram})
    assert sel.model.id == first
    if not first.startswith("npu-onnx-int8-htp"):
        assert all(ref.htp_arch is None for ref in (sel.model, *sel.fallbacks))


def test_unknown_and_non_android_devices_never_get_a_context(manifest):
    d = Dispatcher(manifest)
    for info in ({"platform": "android", "gpu_renderer": "Adreno (TM) 750", "ram_bytes": 12 * GIB},
                 {"platform": "ios", "soc_model": "A17 Pro"}, {"platform": "other"}):
        sel = d.select(info)
        assert all(ref.htp_arch is None for ref in (sel.model, *sel.fallbacks)), info


def test_fast_path_answers_like_the_dispatcher(manifest, tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(manifest.model_dump_json(), encoding="utf-8")
    expected = Dispatcher(manifest).select({"platform": "android", "soc_manufacturer": "QTI", "soc_model": "SM8650",
                                            "ram_bytes": 12 * GIB}).body
    with TestClient(create_app(path, ServeSettings(reload_interval_s=0, handle_sighup=False))) as client:
        query = "/v1/select?platform=android&soc_manufacturer=QTI&soc_model=SM8650&ram_bytes=12884901888"
        first, repeat = client.get(query), client.get(query)  # the second is the fast path's memo
        posted = client.post("/v1/select", json={"platform": "android", "soc_manufacturer": "QTI",
                                                 "soc_model": "SM8650", "ram_bytes": 12 * GIB})
    assert first.status_code == repeat.status_code == posted.status_code == 200
    assert first.content == repeat.content == posted.content == expected
    assert first.json()["model"]["id"] == "npu-onnx-int8-htp-v75"


def test_manifest_refuses_inconsistent_precompiled_entries(manifest):
    raw = manifest.model_dump(mode="json")
    ctx = next(m for m in raw["models"] if m["htp_arch"] == "v75")
    for change, message in ((dict(compiled_from=None), "needs both htp_arch and compiled_from"),
                            (dict(compiled_from="gpu-onnx-fp16"), "not a generic model of tier 'npu'"),
                            (dict(platform="any"), "its platform must be android"),
                            (dict(htp_arch="75"), "htp_arch")):
        bad = json.loads(json.dumps(raw))
        next(m for m in bad["models"] if m["id"] == ctx["id"]).update(change)
        with pytest.raises(ValueError, match=message):
            Manifest.model_validate(bad)


def test_builder_refuses_a_context_without_its_source(tmp_path):
    folder = _release(tmp_path, archs=(("npu", "int8", "v75"),))
    (folder / "npu" / "npu-onnx-int8.onnx.report.json").unlink()
    rules, chains = fixture_rules()
    with pytest.raises(ManifestBuildError, match="source model npu-onnx-int8.onnx"):
        build_manifest(folder, tmp_path / "m.json", release_id="r", cfg=ManifestConfig(), rules=rules,
                       fallback_chains=chains)


def test_play_gives_each_arch_a_level_above_its_tier(manifest):
    cfg, targets = build_play_targets(manifest)
    _, levels = build_play_config(manifest)
    assert [(t.tier, t.htp_arch) for _, t in sorted(targets.items())] == [
        ("cpu", None), ("dsp", None), ("gpu", None), ("npu", None), ("npu", "v73"), ("npu", "v75")]
    assert levels == {lvl: t.tier for lvl, t in targets.items()}  # the tier table keeps its meaning
    v75 = next(g for g in cfg["device_groups"] if g["name"] == "tier_npu_htp_v75")
    assert {s["model"] for sel in v75["device_selectors"] for s in sel["system_on_chips"]} == {"SM8650"}
    assert all(sel["device_ram"] == {"min_bytes": 6 * GIB} for sel in v75["device_selectors"])
    validate_play_config(cfg)


@pytest.mark.parametrize("manufacturer, model, ram", [
    ("QTI", "SM8650", 12 * GIB), ("Qualcomm", "SM8650", 12 * GIB), ("QTI", "SM8650", 4 * GIB),
    ("QTI", "SM8550", 8 * GIB), ("QTI", "SM8150", 8 * GIB), ("QTI", "SM6375", 2 * GIB), ("Google", "Tensor G3", 8 * GIB),
])
def test_play_agrees_with_dispatcher_on_arch(manifest, manufacturer, model, ram):
    cfg, targets = build_play_targets(manifest)
    sel = Dispatcher(manifest).select({"platform": "android", "soc_manufacturer": manufacturer, "soc_model": model,
                                       "ram_bytes": ram})
    level = play_level_for(cfg, soc_manufacturer=manufacturer, soc_model=model, ram_bytes=ram)
    assert (targets[level].tier, targets[level].htp_arch) == (sel.tier, sel.model.htp_arch)

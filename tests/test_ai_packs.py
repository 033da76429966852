"""Play AI packs: the layout, its device-targeting XML (parsed back), limits, and agreement with dispatch."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from manifest_fixtures import GIB, fixture_rules, make_release, write_artifact

from mobile_pipeline.config import ConfigError, ManifestConfig, build_config
from mobile_pipeline.manifest.ai_packs import (
    DEFAULT_GROUP,
    NAMESPACE,
    AiPackError,
    Group,
    Selector,
    check_plan,
    parse_device_targeting_xml,
    plan_ai_pack,
    write_ai_packs,
)
from mobile_pipeline.manifest.builder import build_manifest
from mobile_pipeline.manifest.play import build_play_config
from mobile_pipeline.serve.dispatch import Dispatcher
from mobile_pipeline.utils.atomic import sha256_file

NS = {"config": NAMESPACE}


def _manifest(root, cfg=None):
    rules, chains = fixture_rules()
    return build_manifest(root / "art", root / "manifest.json", release_id="rel-1", cfg=cfg or ManifestConfig(),
                          rules=rules, fallback_chains=chains)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("packs")
    make_release(root / "art")
    write_artifact(root / "art" / "cpu", "cpu", "executorch", "fp32", "xnnpack")
    manifest = _manifest(root)
    write_ai_packs(manifest, root / "art", root / "play_ai_packs")
    return root, manifest


def test_xml_parses_and_lists_one_group_per_manifest_tier(release):
    root, manifest = release
    tree = ET.parse(root / "play_ai_packs" / "app" / "device_targeting_config.xml")
    top = tree.getroot()
    assert top.tag == f"{{{NAMESPACE}}}device-targeting-config"
    names = [g.attrib["name"] for g in top.findall("config:device-group", NS)]
    assert names == ["tier_npu", "tier_gpu", "tier_dsp"]  # best first: Play serves the first match
    index = json.loads((root / "play_ai_packs" / "ai_packs.json").read_text())
    android_tiers = {m.tier for m in manifest.models if m.platform in ("android", "any")}
    assert set(index["tiers"]) == android_tiers == {"npu", "gpu", "dsp", "cpu"}
    assert {index["tiers"][t] for t in ("npu", "gpu", "dsp")} == set(names)
    assert index["tiers"]["cpu"] == DEFAULT_GROUP  # the implicit group, never declared
    for group in top.findall("config:device-group", NS):
        assert len(group.findall("config:device-selector", NS)) == 1  # one selector: the tier's RAM floor
    npu = top.find("config:device-group[@name='tier_npu']/config:device-selector", NS)
    assert npu.attrib["ram-min-bytes"] == str(6 * GIB)
    socs = {(s.attrib["manufacturer"], s.attrib["model"]) for s in npu.findall("config:system-on-chip", NS)}
    assert {("QTI", "SM8650"), ("Qualcomm", "SM8650"), ("Google", "Tensor G3")} <= socs


def test_xml_names_the_same_socs_as_the_bundletool_json(release):
    root, manifest = release
    config, levels = build_play_config(manifest)
    json_socs: dict[str, set] = {}
    for group in config["device_groups"]:
        tier = group["name"].removeprefix("tier_").split("_")[0]
        json_socs.setdefault(tier, set()).update((s["manufacturer"], s["model"]) for sel in group["device_selectors"]
                                                 for s in sel["system_on_chips"])
    xml = parse_device_targeting_xml((root / "play_ai_packs" / "app" / "device_targeting_config.xml").read_text())
    assert {name.removeprefix("tier_"): set(sels[0].system_on_chips) for name, sels in xml} == json_socs
    assert set(levels.values()) == {"cpu"} | set(json_socs)


def _play_tier(groups, tiers, manufacturer, model, ram):
    """Play's rule: the first group in file order with a matching selector; none -> 'other'."""
    for name, selectors in groups:
        for sel in selectors:
            ram_ok = (sel.ram_min_bytes is None or ram >= sel.ram_min_bytes) and \
                     (sel.ram_max_bytes is None or ram < sel.ram_max_bytes)
            if ram_ok and (manufacturer, model) in sel.system_on_chips:
                return tiers[name]
    return tiers[DEFAULT_GROUP]


@pytest.mark.parametrize("manufacturer, model, ram", [
    ("QTI", "SM8650", 12 * GIB), ("QTI", "SM8650", 4 * GIB), ("QTI", "SM8150", 8 * GIB), ("QTI", "SM6375", 6 * GIB),
    ("Mediatek", "MT6877", 2 * GIB), ("Google", "Tensor G3", 8 * GIB), ("Samsung", "s5e9810", 4 * GIB),
    ("Unknown", "X1", 16 * GIB),
])
def test_play_group_matches_the_dispatcher_tier(release, manufacturer, model, ram):
    root, manifest = release
    groups = parse_device_targeting_xml((root / "play_ai_packs" / "app" / "device_targeting_config.xml").read_text())
    tiers = {g: t for t, g in json.loads((root / "play_ai_packs" / "ai_packs.json").read_text())["tiers"].items()}
    served = Dispatcher(manifest).select({"platform": "android", "soc_manufacturer": manufacturer,
                                          "soc_model": model, "ram_bytes": ram}).tier
    assert _play_tier(groups, tiers, manufacturer, model, ram) == served


def test_group_folders_hold_the_served_model_and_the_cpu_fallback(release):
    root, manifest = release
    assets = root / "play_ai_packs" / "stylizer" / "src" / "main" / "assets"
    folders = sorted(p.name for p in assets.iterdir())
    assert folders == ["stylizer#group_other", "stylizer#group_tier_dsp", "stylizer#group_tier_gpu",
                       "stylizer#group_tier_npu"]
    by_id = {m.id: m for m in manifest.models}
    for folder in folders:
        info = json.loads((assets / folder / "model.json").read_text())
        primary, *fallbacks = info["models"]
        expected = manifest.models_for("android", info["tier"])[0]
        assert primary["role"] == "primary" and primary["id"] == expected.id
        for model in info["models"]:
            assert sha256_file(assets / folder / model["file"]) == by_id[model["id"]].sha256
        if info["tier"] != "cpu":
            assert [m["id"] for m in fallbacks] == ["cpu-tflite-fp32"]
        assert info["vendor_delegates"] == dict(manifest.tier_rules.vendor_delegates.get(info["tier"], {}))
    assert json.loads((assets / "stylizer#group_other" / "model.json").read_text())["models"][0]["id"] == "cpu-tflite-fp32"


def test_gradle_files_wire_the_pack(release):
    root, _ = release
    out = root / "play_ai_packs"
    pack = (out / "stylizer" / "build.gradle").read_text()
    assert "id 'com.android.ai-pack'" in pack and 'packName = "stylizer"' in pack and '"install-time"' in pack
    app = (out / "app" / "build.gradle.snippet").read_text()
    assert 'assetPacks = [":stylizer"]' in app and "deviceTargetingConfig = file('device_targeting_config.xml')" in app
    assert 'defaultGroup = "other"' in app and "ai-delivery" not in app  # install-time needs no library
    assert (out / "settings.gradle.snippet").read_text() == "include ':stylizer'\n"
    assert "enableDeviceTargetingConfigApi=true" in (out / "gradle.properties.snippet").read_text()


def test_preferring_executorch_puts_the_pte_in_the_default_group(tmp_path, release):
    root, _ = release
    manifest = _manifest(root, ManifestConfig(format_preference={"android": ["executorch", "tflite", "onnx"]}))
    write_ai_packs(manifest, root / "art", tmp_path / "packs", pack="cartoon", delivery="on-demand")
    info = json.loads((tmp_path / "packs/cartoon/src/main/assets/cartoon#group_other/model.json").read_text())
    assert info["models"][0]["id"] == "cpu-executorch-fp32-android" and info["models"][0]["file"].endswith(".pte")
    assert "com.google.android.play:ai-delivery" in (tmp_path / "packs/app/build.gradle.snippet").read_text()


def test_limits_are_enforced_before_anything_is_written(release, tmp_path):
    root, manifest = release
    with pytest.raises(AiPackError, match=r"group 'tier_npu'.*per-pack limit"):
        write_ai_packs(manifest, root / "art", tmp_path / "small", max_pack_bytes=10)
    assert not (tmp_path / "small").exists()
    plan = plan_ai_pack(manifest, root / "art")
    too_many = Selector(ram_min_bytes=1, system_on_chips=(("QTI", "SM8650"),))
    plan.groups[0] = Group(plan.groups[0].name, plan.groups[0].tier, (too_many,) * 6)
    plan.groups.append(Group(DEFAULT_GROUP, "gpu", (Selector(),)))
    with pytest.raises(AiPackError) as err:
        check_plan(plan)
    message = str(err.value)
    assert "has 6 selectors; Play allows 1 to 5" in message
    assert "'other' is Play's implicit default group" in message and "would match every device" in message


def test_bad_pack_settings_are_refused(release, tmp_path):
    root, manifest = release
    with pytest.raises(AiPackError, match="pack name '2fast'.*ai_pack_name"):
        write_ai_packs(manifest, root / "art", tmp_path / "x", pack="2fast")
    with pytest.raises(ConfigError, match="manifest.ai_pack_delivery"):
        build_config({"manifest": {"ai_pack_delivery": "whenever"}})
    with pytest.raises(ConfigError, match="manifest.ai_pack_name"):
        build_config({"manifest": {"ai_pack_name": "my-pack"}})


def test_malformed_xml_is_reported():
    with pytest.raises(AiPackError, match="not well-formed"):
        parse_device_targeting_xml("<config:device-targeting-config")
    with pytest.raises(AiPackError, match="expected config:device-targeting-config"):
        parse_device_targeting_xml("<device-targeting-config/>")


def test_manifest_command_writes_ai_packs_from_the_real_catalog(tmp_path, capsys):
    from mobile_pipeline.cli import main

    art = make_release(tmp_path / "art")
    rc = main(["manifest", str(art), "--release-id", "cli-1", "--out", str(tmp_path / "manifest.json"),
               "--ai-packs", str(tmp_path / "packs"), "--preset", "tiny"])
    assert rc == 0, capsys.readouterr().err
    groups = parse_device_targeting_xml((tmp_path / "packs" / "app" / "device_targeting_config.xml").read_text())
    assert [name for name, _ in groups] == ["tier_npu", "tier_gpu", "tier_dsp"]
    assert all(len(selectors) == 1 and len(selectors[0].system_on_chips) > 5 for _, selectors in groups)
    assert "play AI pack 'stylizer' (install-time): groups tier_npu=npu" in capsys.readouterr().out

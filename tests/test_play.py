"""Google Play device tier config: generated from the manifest, checked against bundletool's rules."""

from __future__ import annotations

import copy
import json

import pytest
from manifest_fixtures import GIB, build_fixture_manifest, make_release

from mobile_pipeline.config import ManifestConfig
from mobile_pipeline.manifest.builder import build_manifest
from mobile_pipeline.manifest.play import (
    MAX_SELECTORS_PER_GROUP,
    PlayConfigError,
    build_play_config,
    build_play_targets,
    play_level_for,
    validate_play_config,
    write_play_config,
)
from mobile_pipeline.manifest.schema import SocRule
from mobile_pipeline.serve.dispatch import Dispatcher


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("play")
    return build_fixture_manifest(root, "rel-1")


@pytest.fixture(scope="module")
def config(manifest):
    return build_play_config(manifest)


def test_levels_count_up_from_cpu(config):
    cfg, levels = config
    assert levels == {0: "cpu", 1: "dsp", 2: "gpu", 3: "npu"}
    assert [t["level"] for t in cfg["device_tier_set"]["device_tiers"]] == [1, 2, 3]
    socs = {(s["manufacturer"], s["model"]) for g in cfg["device_groups"] for sel in g["device_selectors"]
            for s in sel["system_on_chips"]}
    # Every vendor spelling Android reports is listed; Apple chips are not Android SoCs.
    assert {("QTI", "SM8650"), ("Qualcomm", "SM8650"), ("Google", "Tensor G3")} <= socs
    assert not any(m.lower() == "apple" for m, _ in socs)


def test_npu_group_carries_the_ram_floor(config):
    cfg, _ = config
    npu = next(g for g in cfg["device_groups"] if g["name"] == "tier_npu")
    assert all(sel["device_ram"] == {"min_bytes": 6 * GIB} for sel in npu["device_selectors"])


@pytest.mark.parametrize("manufacturer, model, ram", [
    ("QTI", "SM8650", 12 * GIB),   # flagship -> npu
    ("QTI", "SM8650", 4 * GIB),    # npu SoC below the npu RAM floor -> gpu, in Play and in the server
    ("QTI", "SM8150", 8 * GIB),    # gpu
    ("QTI", "SM6375", 6 * GIB),    # dsp
    ("Mediatek", "MT6877", 2 * GIB),  # gpu SoC below the gpu floor -> dsp? no dsp for it: cpu
    ("Samsung", "s5e9810", 4 * GIB),  # cpu
    ("Acme", "X1", 32 * GIB),      # unknown -> level 0
])
def test_play_agrees_with_dispatcher(manifest, config, manufacturer, model, ram):
    cfg, levels = config
    served = Dispatcher(manifest).select({"platform": "android", "soc_manufacturer": manufacturer,
                                          "soc_model": model, "ram_bytes": ram})
    level = play_level_for(cfg, soc_manufacturer=manufacturer, soc_model=model, ram_bytes=ram)
    assert levels[level] == served.tier


def test_large_catalog_splits_groups(manifest):
    socs = tuple(SocRule(manufacturer="qualcomm", model=f"SM{7000 + i}", tier="gpu",
                         reported_manufacturers=("QTI",)) for i in range(250))
    raw = manifest.model_dump(mode="json")
    raw["tier_rules"]["socs"] += [s.model_dump(mode="json") for s in socs]
    big = type(manifest).model_validate(raw)
    cfg, _ = build_play_config(big)
    gpu_groups = [g for g in cfg["device_groups"] if g["name"].startswith("tier_gpu")]
    assert len(gpu_groups) == 3  # 250 SoCs / 20 per selector = 13 selectors -> 5 + 5 + 3
    assert all(len(g["device_selectors"]) <= MAX_SELECTORS_PER_GROUP for g in gpu_groups)
    gpu_tier = next(t for t in cfg["device_tier_set"]["device_tiers"] if "tier_gpu" in t["device_group_names"])
    assert gpu_tier["device_group_names"] == ["tier_gpu", "tier_gpu_2", "tier_gpu_3"]
    assert play_level_for(cfg, soc_manufacturer="QTI", soc_model="SM7249", ram_bytes=8 * GIB) == gpu_tier["level"]


def test_write_is_atomic_json(manifest, tmp_path):
    out = tmp_path / "play.json"
    written = write_play_config(manifest, out)
    assert json.loads(out.read_text()) == written
    validate_play_config(json.loads(out.read_text()))


VALID = {
    "device_groups": [
        {"name": "high", "device_selectors": [{"device_ram": {"min_bytes": 8 * GIB}}]},
        {"name": "mid", "device_selectors": [{"system_on_chips": [{"manufacturer": "QTI", "model": "SM7325"}]}]},
    ],
    "device_tier_set": {"device_tiers": [{"level": 1, "device_group_names": ["mid"]},
                                         {"level": 2, "device_group_names": ["high"]}]},
}


def _mutated(fn):
    cfg = copy.deepcopy(VALID)
    fn(cfg)
    return cfg


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c.update(device_groups=[], device_tier_set={"device_tiers": []}), "at least one group"),
    (lambda c: c["device_groups"][1].update(name="high"), "duplicated device group name 'high'"),
    (lambda c: c["device_groups"][0].update(name="9lives"), "name must match"),
    (lambda c: c["device_groups"][0].update(name="has-dash"), "name must match"),
    (lambda c: c["device_groups"][0].update(name=""), "must specify a name"),
    (lambda c: c["device_groups"][0].update(device_selectors=[]), "at least one selector"),
    (lambda c: c["device_groups"][0].update(device_selectors=[{"device_ram": {"min_bytes": i + 1}} for i in range(6)]),
     "6 selectors; at most 5"),
    (lambda c: c["device_groups"][0]["device_selectors"][0].update(device_ram={"min_bytes": 8, "max_bytes": 4}),
     "max_bytes (4) must exceed min_bytes (8)"),
    (lambda c: c["device_groups"][0]["device_selectors"][0].update(device_ram={"min_bytes": -1}), "device_ram.min_bytes"),
    (lambda c: c["device_groups"][0].update(device_selectors=[{}]), "would match every device"),
    (lambda c: c["device_groups"][1]["device_selectors"][0]["system_on_chips"][0].update(model=" "),
     "need a manufacturer and a model"),
    (lambda c: c["device_groups"][0]["device_selectors"][0].update(required_system_features=[{"name": ""}]),
     "system features need a name"),
    (lambda c: c["device_groups"][0]["device_selectors"][0].update(
        included_device_ids=[{"build_brand": "google", "build_device": ""}]), "build_brand and build_device"),
    (lambda c: c["device_tier_set"]["device_tiers"][0].update(level=0), "positive level"),
    (lambda c: c["device_tier_set"]["device_tiers"][1].update(level=3), "tier 2 is undefined"),
    (lambda c: c["device_tier_set"]["device_tiers"][1].update(level=1), "tier 1 should be uniquely defined"),
    (lambda c: c["device_tier_set"]["device_tiers"][0].update(device_group_names=[]), "must specify at least one group"),
    (lambda c: c["device_tier_set"]["device_tiers"][0].update(device_group_names=["low"]), "undefined group 'low'"),
    (lambda c: c["device_groups"][0]["device_selectors"][0].update(soc=[]), "soc: Extra inputs are not permitted"),
])
def test_validator_catches_each_rule(mutate, message):
    validate_play_config(VALID)  # the base is valid
    with pytest.raises(PlayConfigError) as err:
        validate_play_config(_mutated(mutate))
    assert message in str(err.value)


def test_level_matching_follows_play_semantics():
    cfg = _mutated(lambda c: c["device_groups"][0]["device_selectors"][0].update(
        excluded_device_ids=[{"build_brand": "acme", "build_device": "slow"}],
        forbidden_system_features=[{"name": "android.hardware.ram.low"}]))
    assert play_level_for(cfg, ram_bytes=12 * GIB) == 2
    assert play_level_for(cfg, ram_bytes=12 * GIB, device_id=("acme", "slow")) == 0
    assert play_level_for(cfg, ram_bytes=12 * GIB, features=("android.hardware.ram.low",)) == 0
    assert play_level_for(cfg, soc_manufacturer="qti", soc_model="sm7325", ram_bytes=12 * GIB) == 2  # highest wins
    assert play_level_for(cfg, soc_manufacturer="QTI", soc_model="SM7325", ram_bytes=4 * GIB) == 1
    assert play_level_for(cfg, ram_bytes=1 * GIB) == 0


def test_real_catalog_play_agrees_with_dispatcher(tmp_path):
    """Every Android chip of device_tiers/catalog.yaml, under each reported spelling and RAM size."""
    real = build_manifest(make_release(tmp_path / "art"), tmp_path / "m.json", release_id="real", cfg=ManifestConfig())
    raw, levels = build_play_config(real)
    assert len(raw["device_tier_set"]["device_tiers"]) == 3
    cfg = validate_play_config(raw)  # parse once; play_level_for takes the parsed config too
    dispatcher = Dispatcher(real)
    # Around every tier floor (1.5 / 2 / 2.5 GiB) and the family rules' 5 / 7 GiB, up to a 16 GB phone.
    rams = (GIB, int(1.5 * GIB) - 1, int(1.5 * GIB), int(1.7 * GIB), 2 * GIB - 1, 2 * GIB, int(2.2 * GIB),
            int(2.5 * GIB) - 1, int(2.5 * GIB), 3 * GIB, int(5.5 * GIB), int(7.4 * GIB), int(11.2 * GIB), 16 * GIB)
    checked = 0
    for soc in real.tier_rules.socs:
        if soc.manufacturer == "apple":
            continue
        for manufacturer in soc.reported_manufacturers:
            for ram in rams:
                served = dispatcher.select({"platform": "android", "soc_manufacturer": manufacturer,
                                            "soc_model": soc.model, "ram_bytes": ram})
                level = play_level_for(cfg, soc_manufacturer=manufacturer, soc_model=soc.model, ram_bytes=ram)
                assert levels[level] == served.tier, (manufacturer, soc.model, ram)
                checked += 1
    assert checked > 2000


def test_play_targets_the_new_socs_in_their_tiers(tmp_path):
    """The 2024-2026 chips are in the Play config, at their catalog tier's level, under what phones report."""
    real = build_manifest(make_release(tmp_path / "art"), tmp_path / "m.json", release_id="real", cfg=ManifestConfig())
    cfg, levels = build_play_config(real)
    top = {}
    for tier_entry in cfg["device_tier_set"]["device_tiers"]:
        names = set(tier_entry["device_group_names"])
        for group in cfg["device_groups"]:
            if group["name"] in names:
                for selector in group["device_selectors"]:
                    for soc in selector["system_on_chips"]:
                        key = (soc["manufacturer"], soc["model"])
                        top[key] = max(top.get(key, 0), tier_entry["level"])
    expected = {("QTI", "SM8750"): "npu", ("QTI", "SM8850"): "npu", ("QTI", "SM8735"): "npu", ("QTI", "SM8635"): "npu",
                ("QTI", "SM7675"): "npu", ("Qualcomm", "SM7435"): "dsp", ("QTI", "SM7635"): "dsp",
                ("QTI", "SM8250"): "gpu", ("Mediatek", "MT6993"): "npu", ("Mediatek", "MT6899"): "npu",
                ("Mediatek", "MT6878"): "npu", ("Samsung", "s5e9955"): "npu", ("Samsung", "s5e8855"): "npu",
                ("Samsung", "s5e8845"): "npu", ("Google", "Tensor G5"): "npu", ("Google", "GS201"): "npu"}
    for key, tier in expected.items():
        assert levels[top.get(key, 0)] == tier, key
    assert ("Mediatek", "MT6835") not in top  # cpu-tier chips need no selector: level 0 is the default


def test_real_catalog_play_agrees_with_dispatcher_on_precompiled_models(tmp_path):
    """Same check with a model precompiled for every Hexagon arch the catalog puts in a QNN tier:
    Play's level and the dispatcher's first model agree on the tier *and* the architecture."""
    from manifest_fixtures import write_precompiled

    from mobile_pipeline.tiers.htp import tier_htp_socs

    folder = make_release(tmp_path / "art")
    archs = {tier: tier_htp_socs(tier) for tier in ("dsp", "npu")}
    assert archs["npu"], "the catalog has no Qualcomm SoC with an htp_arch in the npu tier"
    for tier, by_arch in archs.items():
        for arch in by_arch:
            write_precompiled(folder / tier, tier, "int8", arch)
    real = build_manifest(folder, tmp_path / "m.json", release_id="real-htp", cfg=ManifestConfig())
    assert {s.htp_arch for s in real.tier_rules.socs if s.htp_arch} == {a for by in archs.values() for a in by}
    raw, targets = build_play_targets(real)
    cfg = validate_play_config(raw)
    dispatcher = Dispatcher(real)
    with_context = 0
    for soc in real.tier_rules.socs:
        if soc.manufacturer == "apple":
            continue
        for manufacturer in soc.reported_manufacturers:
            for ram in (GIB, int(2.2 * GIB), 3 * GIB, 12 * GIB):
                served = dispatcher.select({"platform": "android", "soc_manufacturer": manufacturer,
                                            "soc_model": soc.model, "ram_bytes": ram})
                target = targets[play_level_for(cfg, soc_manufacturer=manufacturer, soc_model=soc.model, ram_bytes=ram)]
                assert (target.tier, target.htp_arch) == (served.tier, served.model.htp_arch), (manufacturer, soc.model, ram)
                if served.model.htp_arch:
                    assert served.model.htp_arch == soc.htp_arch and served.fallbacks[0].id == f"{served.tier}-onnx-int8"
                    with_context += 1
    assert with_context >= 2 * sum(len(socs) for by in archs.values() for socs in by.values())

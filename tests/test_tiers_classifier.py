"""classify(): real devices, aliases, overrides first, OS/RAM floors, fallbacks, fuzzing."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mobile_pipeline.config import TIER_NAMES
from mobile_pipeline.tiers.catalog import default_catalog_path, load_catalog_index
from mobile_pipeline.tiers.classifier import (
    FALLBACK_CHAINS,
    Classifier,
    TierDecision,
    classify,
    default_classifier,
    tier_rules,
)
from mobile_pipeline.tiers.device_info import DeviceInfo
from mobile_pipeline.tiers.overrides import Override, OverridesError, append_override, load_overrides

GiB = 1 << 30


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier(overrides=[])


def android(model=None, manufacturer=None, os="14", renderer=None, ram=8 * GiB, accelerators=()):
    return DeviceInfo(platform="android", os_version=os, soc_manufacturer=manufacturer, soc_model=model,
                      gpu_renderer=renderer, ram_bytes=ram, accelerators=accelerators)


def ios(machine, os="17.4", ram=6 * GiB):
    return DeviceInfo(platform="ios", os_version=os, soc_model=machine, ram_bytes=ram)


REAL_DEVICES = [
    # (label, device, tier, matched_by)
    ("Galaxy S24 (SD 8 Gen 3)", android("SM8650", "QTI", renderer="Adreno (TM) 750", ram=12 * GiB), "npu", "catalog"),
    ("Galaxy S23 (SD 8 Gen 2 for Galaxy)", android("SM8550-AC", "Qualcomm"), "npu", "catalog"),
    ("Redmi Note 11 Pro 5G (SD 695)", android("SM6375", "QTI", os="13", ram=6 * GiB), "dsp", "catalog"),
    ("Poco X4 GT (Dimensity 8100)", android("MT6895", "Mediatek"), "npu", "catalog"),
    ("Redmi Note 11T 5G (Dimensity 810/900 family)", android("MT6877V/TTZA", "MediaTek", os="12"), "dsp", "catalog"),
    ("Galaxy A14 5G (Dimensity 700)", android("MT6833V/NZA", "Mediatek", os="13", ram=4 * GiB), "cpu", "catalog"),
    ("Redmi Note 9 (Helio G85)", android("MT6769V/CZ", "Mediatek", os="12", ram=4 * GiB), "cpu", "catalog"),
    ("Galaxy S10 Exynos (9820)", android("exynos9820", "Samsung", os="12"), "gpu", "catalog"),
    ("Galaxy S20 Exynos (990)", android("Exynos 990", "Samsung Electronics", os="13"), "gpu", "catalog"),
    ("Galaxy A54 (Exynos 1380)", android("s5e8835", "Samsung"), "npu", "catalog"),
    ("Galaxy A21s (Exynos 850)", android("s5e3830", "Samsung", os="12", ram=3 * GiB), "cpu", "catalog"),
    ("Galaxy S24 Exynos (2400)", android("s5e9945", "Samsung Electronics"), "npu", "catalog"),
    ("Pixel 6 (Tensor)", android("Tensor", "Google"), "npu", "catalog"),
    ("Pixel 8 (Tensor G3)", android("Tensor G3", "Google"), "npu", "catalog"),
    ("Pixel 9 (Tensor G4)", android("Tensor G4", "Google", os="15"), "npu", "catalog"),
    ("Huawei P40 (Kirin 990)", android("Kirin990", "HiSilicon", os="10"), "npu", "catalog"),
    ("Nokia G21 (Unisoc T606)", android("T606", "Unisoc", os="12", ram=4 * GiB), "cpu", "catalog"),
    ("iPhone 14 Pro", ios("iPhone15,2"), "npu", "catalog"),
    ("iPhone 15 Pro", ios("iPhone16,1"), "npu", "catalog"),
    ("iPhone 16 Pro", ios("iPhone17,1", os="18.1"), "npu", "catalog"),
    ("iPhone X (A11)", ios("iPhone10,3", os="16.7"), "gpu", "catalog"),
    ("iPhone 7 (A10)", ios("iPhone9,1", os="15.8", ram=2 * GiB), "cpu", "catalog"),
    ("iPad Pro M4", ios("iPad16,3"), "npu", "catalog"),
    ("future iPhone (machine id newer than the catalog's)", ios("iPhone19,1", os="26.0"), "npu", "family"),
    ("unknown SoC", android("ZX-9000", "Acme Semi"), "cpu", "default"),
    ("lots of RAM, no accelerator", android("ZX-9000", "Acme Semi", ram=24 * GiB, renderer="Mali-G52 MC2"), "cpu", "default"),
    ("unknown SoC with an Adreno 8xx: Snapdragon 8 family by GPU", android("SM9999", "QTI", renderer="Adreno (TM) 830"),
     "npu", "family"),
    ("Adreno 8xx but 3 GiB RAM does not corroborate a flagship", android("SM9999", "QTI", renderer="Adreno (TM) 830",
                                                                        ram=3 * GiB), "gpu", "rules"),
    ("unknown SoC with a GPU-only Adreno 710", android("SM9999", "QTI", renderer="Adreno (TM) 710"), "gpu", "rules"),
    ("unknown SoC reporting an NPU", android("X1", "Acme", accelerators=("nnapi", "npu")), "npu", "rules"),
    ("unknown SoC reporting only nnapi+gpu", android("X1", "Acme", accelerators=("nnapi", "gpu")), "cpu", "default"),
]


@pytest.mark.parametrize("label, device, tier, matched_by", REAL_DEVICES, ids=[d[0] for d in REAL_DEVICES])
def test_real_devices(clf, label, device, tier, matched_by):
    decision = clf.classify(device)
    assert (decision.tier, decision.matched_by) == (tier, matched_by), decision.reason
    assert decision.reason
    if matched_by == "catalog":
        assert decision.soc is not None


@pytest.mark.parametrize(
    "manufacturer, model",
    [("QTI", "SM8650"), ("Qualcomm", "sm8650"), ("qcom", "SM8650"), ("Qualcomm Technologies, Inc", "SM8650"),
     (" QTI ", "SM 8650"), (None, "SM8650"), ("Samsung", "SM8650"), ("QUALCOMM", "SM8650-AB")],
)
def test_alias_spellings(clf, manufacturer, model):
    decision = clf.classify({"platform": "android", "os_version": "14", "soc_manufacturer": manufacturer, "soc_model": model})
    assert decision.tier == "npu" and decision.soc is not None and decision.soc.model == "SM8650"


def test_fallback_chains(clf):
    assert FALLBACK_CHAINS["android"] == ("npu", "gpu", "dsp", "cpu")
    assert FALLBACK_CHAINS["ios"] == ("npu", "gpu", "cpu")
    assert clf.classify(android("SM8650", "QTI")).chain == ("npu", "gpu", "dsp", "cpu")
    assert clf.classify(ios("iPhone15,2")).chain == ("npu", "gpu", "cpu")
    assert clf.classify(android("SM6375", "QTI")).chain == ("dsp", "cpu")
    # a GPU-only unknown device gets no int8 DSP model to fall back to
    assert clf.classify(android("SM9999", "QTI", renderer="Adreno (TM) 710")).chain == ("gpu", "cpu")
    # a GPU-tier chip with a Hexagon DSP does
    assert clf.classify(android("SM8150", "QTI")).chain == ("gpu", "dsp", "cpu")
    assert clf.classify(android("ZX", "Acme")).fallbacks == ()


def test_os_and_ram_floors(clf):
    old_android = clf.classify(android("SM8650", "QTI", os="9"))
    assert old_android.tier == "gpu" and old_android.chain == ("gpu", "cpu")
    assert "newer android" in old_android.reason
    assert clf.classify(android("SM8650", "QTI", os="7.0")).tier == "gpu"
    assert clf.classify(android("SM8650", "QTI", os="6.0")).tier == "cpu"
    assert clf.classify(ios("iPhone15,2", os="15.4")).tier == "gpu"   # w8 Core ML needs iOS 16
    assert clf.classify(ios("iPhone15,2", os="14.0")).tier == "cpu"
    low_ram = clf.classify(android("SM8650", "QTI", ram=1 * GiB))
    assert low_ram.tier == "cpu" and "RAM" in low_ram.reason
    assert clf.classify(android("SM8650", "QTI", ram=2 * GiB)).tier == "gpu"
    assert clf.classify(android("SM8650", "QTI", os=None, ram=None)).tier == "npu"  # unknown = allowed


def test_platform_mismatch_is_not_a_catalog_match(clf):
    assert clf.classify(android("iPhone15,2")).tier == "cpu"
    assert clf.classify(DeviceInfo(platform="ios", soc_model="SM8650", os_version="17.0")).soc is None
    assert clf.classify(DeviceInfo(platform="other", soc_model="SM8650")).tier == "cpu"


# ------------------------------------------------------------------ overrides
def _override(model, tier, manufacturer=None):
    return Override(soc_model=model, manufacturer=manufacturer, tier=tier, reason="measured on device lab",
                    source="bench/lab-2026-01.json", date=dt.date(2026, 1, 31))


def test_overrides_apply_before_catalog():
    clf = Classifier(overrides=[_override("SM8650", "gpu", "Qualcomm"), _override("MT6833", "dsp"),
                                _override("ZX-9000", "gpu", "Acme")])
    moved = clf.classify(android("SM8650", "QTI"))
    assert moved.tier == "gpu" and moved.overridden and moved.matched_by == "catalog"
    assert "override" in moved.reason and moved.soc is not None and moved.soc.model == "SM8650"
    assert clf.classify(android("MT6833V/ZA", "MediaTek")).tier == "dsp"  # model-only override, suffix stripped
    assert clf.classify(android("ZX-9000", "Acme")).tier == "gpu"          # chip unknown to the catalog
    assert clf.classify(android("ZX-9000", "Other")).tier == "cpu"         # manufacturer must match
    # floors still apply to overridden tiers
    assert clf.classify(android("SM8650", "QTI", os="6.0")).tier == "cpu"
    chip_level = Classifier(overrides=[_override("A16", "gpu", "Apple"), _override("SM8650", "dsp", "QTI")])
    assert chip_level.classify(ios("iPhone15,2")).tier == "gpu"            # chip override covers machine ids
    assert chip_level.classify(android("pineapple", "QTI")).tier == "dsp"  # and alias spellings
    untouched = clf.classify(android("SM8550", "QTI"))
    assert untouched.tier == "npu" and not untouched.overridden


def test_override_file_round_trip_and_errors(tmp_path: Path):
    path = tmp_path / "overrides.yaml"
    assert load_overrides(path) == []
    append_override(_override("SM8650", "gpu", "QTI"), path)
    append_override(_override("SM8650", "dsp", "QTI"), path)
    loaded = load_overrides(path)
    assert [o.tier for o in loaded] == ["gpu", "dsp"]
    assert Classifier(overrides=loaded).classify(android("SM8650", "QTI")).tier == "dsp"  # newest wins
    path.write_text("- {soc_model: SM8650, tier: tpu, reason: x, source: y, date: 2026-01-01}\n")
    with pytest.raises(OverridesError, match="tier"):
        load_overrides(path)


def test_project_overrides_file_is_valid():
    assert isinstance(load_overrides(), list)


def test_invalid_overrides_file_is_ignored_not_fatal(tmp_path: Path, monkeypatch):
    root = tmp_path / "root"
    (root / "device_tiers").mkdir(parents=True)
    shutil.copy(default_catalog_path(), root / "device_tiers" / "catalog.yaml")
    (root / "device_tiers" / "overrides.yaml").write_text("- {soc_model: SM8650, tier: nonsense}\n")
    monkeypatch.setenv("MOBILE_PIPELINE_ROOT", str(root))
    decision = Classifier().classify(android("SM8650", "QTI"))
    assert decision.tier == "npu" and not decision.overridden


# --------------------------------------------------------------- tier_rules
def test_tier_rules_summary():
    clf = Classifier(overrides=[_override("SM8650", "gpu", "QTI"), _override("NEW1", "dsp", "QTI")])
    rules = tier_rules(clf)
    json.dumps(rules)  # JSON-able
    assert set(rules["tiers"]) == set(TIER_NAMES)
    assert rules["fallback_chains"]["android"] == ["npu", "gpu", "dsp", "cpu"]
    assert {"QTI", "Qualcomm"} <= set(rules["manufacturer_aliases"]["qualcomm"])
    models = [(m["model"], tier) for tier, body in rules["tiers"].items() for m in body["soc_models"]]
    catalog_models = [e.model for e in load_catalog_index().entries]
    assert sorted(m for m, _ in models) == sorted([*catalog_models, "NEW1"])  # each once
    assert ("SM8650", "gpu") in models and ("NEW1", "dsp") in models
    assert "iPhone15,2" in rules["tiers"]["npu"]["ios_machine_ids"]
    assert rules["tiers"]["npu"]["min_os"] == {"android": "10", "ios": "16"}
    assert rules["tiers"]["cpu"]["min_ram_bytes"] == 0
    assert any("Adreno" in g["description"] for g in rules["tiers"]["gpu"]["gpu_families"])
    assert "npu" in rules["tiers"]["npu"]["accelerators"]
    assert rules["gpu_family_keys"]["adreno 7"] == "gpu" and rules["gpu_family_keys"]["adreno 702"] == "cpu"
    assert rules["ios_machines"]["iPhone15,2"] == "A16" and rules["ios_machines"]["iPad16,3"] == "M4"
    moved = tier_rules(Classifier(overrides=[_override("iPhone15,3", "gpu", "Apple")]))["tiers"]
    assert "iPhone15,3" in moved["gpu"]["ios_machine_ids"] and "iPhone15,3" not in moved["npu"]["ios_machine_ids"]
    assert "iPhone15,2" in moved["npu"]["ios_machine_ids"]
    assert all(m["model"] != "iPhone15,3" for body in moved.values() for m in body["soc_models"])
    assert rules["accelerator_tiers"]["hexagon"] == "dsp"
    families = {f["id"]: f for f in rules["families"]}
    assert families["snapdragon-8"]["steps"] == [[3, "npu"], [1, "gpu"]] and families["snapdragon-8"]["kind"] == "soc"
    assert families["adreno-8xx"]["min_ram_bytes"] == 5 << 30 and families["iphone"]["kind"] == "ios"
    assert rules["vendor_delegates"]["npu"]["qualcomm"] == "qnn"


def test_module_level_classify_uses_default_instance():
    assert default_classifier() is default_classifier()
    assert classify({"platform": "android", "soc_manufacturer": "QTI", "soc_model": "SM8650", "os_version": "14"}).tier in TIER_NAMES


# ------------------------------------------------------------------ fuzzing
def _check(decision: TierDecision, platform: str | None = None) -> None:
    assert isinstance(decision, TierDecision)
    assert decision.tier in TIER_NAMES and decision.reason
    assert "classification failed" not in decision.reason  # the catch-all was not needed
    chain = FALLBACK_CHAINS.get(platform or "other", FALLBACK_CHAINS["other"]) if platform in FALLBACK_CHAINS else None
    if chain is not None:
        assert decision.chain == tuple(t for t in chain if t in decision.chain)  # ordered subsequence
    if decision.tier != "cpu":
        assert decision.fallbacks[-1] == "cpu"


_text = st.one_of(st.none(), st.text(max_size=70), st.sampled_from(
    ["QTI", "Qualcomm", "SM8650", "MT6833V/ZA", "iPhone15,2", "Adreno (TM) 750", "Mali-G78 MP20", "Tensor G3", ""]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    platform=st.sampled_from(["android", "ios", "other"]),
    os_version=st.one_of(st.none(), st.from_regex(r"\A[0-9]{1,3}(\.[0-9]{1,3}){0,3}\Z")),
    manufacturer=_text, model=_text, renderer=_text,
    ram=st.one_of(st.none(), st.integers(0, 2**40)),
    accelerators=st.lists(st.sampled_from(["gpu", "npu", "dsp", "ane", "hexagon", "apu", "nnapi", "edgetpu", "x"]), max_size=5),
)
def test_fuzz_valid_device_info_never_raises(clf, platform, os_version, manufacturer, model, renderer, ram, accelerators):
    try:
        info = DeviceInfo(platform=platform, os_version=os_version, soc_manufacturer=manufacturer, soc_model=model,
                          gpu_renderer=renderer, ram_bytes=ram, accelerators=tuple(accelerators))
    except ValueError:
        return  # over-long strings are refused at the API edge, not our concern here
    _check(clf.classify(info), platform)


_junk = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=200), st.binary(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=8,
)
_fields = st.sampled_from(["platform", "os_version", "soc_manufacturer", "soc_model", "gpu_renderer", "ram_bytes",
                           "accelerators", "app_version", "extra", "", "__class__"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.dictionaries(_fields, _junk, max_size=8))
def test_fuzz_raw_dicts_never_raise(raw):
    decision = classify(raw)
    _check(decision)


@settings(max_examples=50, deadline=None)
@given(raw=_junk)
def test_fuzz_anything_never_raises(raw):
    _check(classify(raw))

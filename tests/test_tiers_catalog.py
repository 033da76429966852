"""device_tiers/catalog.yaml: coverage, required fields, aliases, the cross-vendor inversion."""

from __future__ import annotations

import copy
from collections import Counter

import pytest
import yaml

from mobile_pipeline.config import TIER_NAMES
from mobile_pipeline.tiers.catalog import (
    CatalogError,
    build_catalog,
    default_catalog_path,
    load_catalog,
    load_catalog_index,
    model_candidates,
    normalize_model,
    normalize_vendor,
)
from mobile_pipeline.tiers.table import load_tier_table


@pytest.fixture(scope="module")
def entries():
    return load_catalog()


@pytest.fixture(scope="module")
def index():
    return load_catalog_index()


def test_size_vendors_and_tiers(entries):
    assert len(entries) >= 40
    vendors = Counter(e.vendor for e in entries)
    assert set(vendors) == {"qualcomm", "mediatek", "samsung", "google", "apple", "hisilicon", "unisoc"}
    assert all(count >= 4 for count in vendors.values()), vendors
    assert {e.tier for e in entries} == set(TIER_NAMES)


def test_required_fields_and_unique_models(entries):
    models = [normalize_model(e.model) for e in entries]
    assert len(models) == len(set(models))
    for e in entries:
        assert e.manufacturers and e.name and e.cpu.cores >= 1 and e.cpu.max_ghz > 0
        assert e.gpu.family and e.gpu.renderer and e.accelerator.name and e.ram_gb > 0
        assert 2010 <= e.year <= 2030
        if e.vendor == "apple":
            assert e.ios_machine_ids, e.model


def test_brief_models_present(index):
    for model in ["SM8650", "SM8550", "SM8450", "SM7450", "SM6375", "SM4350", "MT6989", "MT6985", "MT6895",
                  "MT6877", "MT6833", "MT6769", "MT6765", "s5e9945", "Exynos 2200", "Exynos 1380", "Exynos 850",
                  "Tensor", "Tensor G2", "Tensor G3", "Tensor G4", "Kirin 9000", "Kirin 990", "Kirin 710",
                  "T606", "T610", "SC9863A",
                  # 2024-2026 phones
                  "SM8850", "SM8845", "SM8750", "SM8735", "SM8635", "SM7750", "SM7675", "SM7635", "SM7550",
                  "SM7475", "SM7435", "SM6475", "SM6450", "SM4450", "MT6993", "MT6899", "MT6878", "MT6835",
                  "s5e9955", "s5e8855", "s5e8845", "Exynos 2500", "Exynos 1580", "Exynos 1480", "Tensor G5", "GS201"]:
        assert index.lookup(None, model) is not None, model
    for chip in ["A12", "A13", "A14", "A15", "A16", "A17 Pro", "A18", "A18 Pro", "A19", "A19 Pro", "M1", "M2", "M3", "M4"]:
        assert index.by_key("apple", chip) is not None, chip


def test_reference_socs_sit_in_their_tier(index):
    for name, spec in load_tier_table().items():
        entry = index.lookup(None, spec.reference_soc)
        assert entry is not None and entry.tier == name, (name, spec.reference_soc)


def test_inversion_flagship_cpu_beats_low_end_npu(entries):
    """A chip's CPU alone out-computes another chip's dedicated AI engine (public figures)."""
    cpus = [(e, e.perf.cpu_gops_int8) for e in entries if e.perf and e.perf.cpu_gops_int8]
    accels = [(e, e.perf.accel_tops_int8 * 1000) for e in entries
              if e.perf and e.perf.accel_tops_int8 and e.tier in ("dsp", "npu") and e.accelerator.kind != "none"]
    inversions = [(a.model, b.model) for a, gops in cpus for b, accel in accels if gops > accel]
    assert ("SM8650", "MT6771") in inversions


def test_tiers_follow_capability_not_marketing(index):
    """A flagship NPU with a bigger advertised figure can sit below a mid-range one."""
    exynos990 = index.lookup("Samsung", "exynos990")
    exynos1380 = index.lookup("Samsung", "s5e8835")
    assert exynos990.perf.accel_tops_int8 > exynos1380.perf.accel_tops_int8
    assert (exynos990.tier, exynos1380.tier) == ("gpu", "npu")
    # a 5G chip without an APU ranks below an older chip that has one
    assert index.lookup(None, "MT6833").tier == "cpu" and index.lookup(None, "MT6771").tier == "dsp"
    # A11 has an ANE that Core ML does not use
    assert index.by_key("apple", "A11").tier == "gpu"


def test_every_figure_has_a_source(entries):
    with_perf = [e for e in entries if e.perf is not None]
    assert len(with_perf) >= 15
    assert all(len(e.perf.source) >= 8 for e in with_perf)


@pytest.mark.parametrize(
    "spelling, vendor",
    [("Qualcomm", "qualcomm"), ("QTI", "qualcomm"), ("qcom", "qualcomm"), ("Qualcomm Technologies, Inc", "qualcomm"),
     ("MediaTek", "mediatek"), ("Mediatek", "mediatek"), ("MediaTek Inc.", "mediatek"), ("MTK", "mediatek"),
     ("Samsung Electronics", "samsung"), ("samsung", "samsung"), ("Samsung Electronics Co., Ltd.", "samsung"),
     ("Google", "google"), ("Apple", "apple"), ("HiSilicon", "hisilicon"), ("HUAWEI", "hisilicon"),
     ("Spreadtrum", "unisoc"), ("UNISOC", "unisoc"), ("Acme", None), ("", None), (None, None), (42, None)],
)
def test_vendor_aliases(spelling, vendor):
    assert normalize_vendor(spelling) == vendor


@pytest.mark.parametrize(
    "manufacturer, model, expected",
    [("QTI", "SM8650", "SM8650"), ("Qualcomm", "sm8650", "SM8650"), ("qcom", " SM 8650 ", "SM8650"),
     ("QTI", "SM8550-AC", "SM8550"), (None, "MT6833V/ZA", "MT6833"), ("Mediatek", "MT6769V/CZ", "MT6769"),
     ("Samsung", "S5E9945", "s5e9945"), ("Samsung Electronics", "Exynos 2200", "s5e9925"),
     ("Google", "tensor g3", "Tensor G3"), ("Google", "zuma", "Tensor G3"), ("HiSilicon", "Kirin 990 5G", "Kirin990"),
     ("Spreadtrum", "SC9863A", "SC9863A"), (None, "iPhone15,2", "A16"), (None, "IPHONE16,1", "A17 Pro"),
     (None, "iPhone17,1", "A18 Pro"), (None, "iPad16,3", "M4"), ("Samsung", "SM8550", "SM8550")],
)
def test_lookup_with_aliases(index, manufacturer, model, expected):
    entry = index.lookup(manufacturer, model)
    assert entry is not None and entry.model == expected


@pytest.mark.parametrize("model", ["SM9999", "", None, "iPhone99", 12, "MT", "   "])
def test_unknown_models_are_none(index, model):
    assert index.lookup("QTI", model) is None


def test_model_candidates_strip_suffixes():
    assert model_candidates("MT6833V/ZA") == ("mt6833vza", "mt6833v", "mt6833")
    assert model_candidates("SM8550-AC")[:2] == ("sm8550ac", "sm8550")
    assert model_candidates(None) == ()


# ------------------------------------------------------------------ bad input
@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load(default_catalog_path().read_text())


def test_invalid_entries_are_named(raw):
    i = next(n for n, item in enumerate(raw) if item["model"] == "SM8650")
    data = copy.deepcopy(raw)
    data[i]["tier"] = "tpu"
    with pytest.raises(CatalogError, match="entry 'SM8650'.*tier"):
        build_catalog(data)
    data = copy.deepcopy(raw)
    data[i + 1]["model"] = data[i]["model"]
    with pytest.raises(CatalogError, match="SM8650"):
        build_catalog(data)
    data = copy.deepcopy(raw)
    data[i]["manufacturers"] = ["MediaTek"]
    with pytest.raises(CatalogError, match="does not normalise to vendor"):
        build_catalog(data)
    data = copy.deepcopy(raw)
    data[i]["accelerator"] = {"kind": "none", "name": "nothing"}
    with pytest.raises(CatalogError, match="needs an accelerator"):
        build_catalog(data)
    data = copy.deepcopy(raw)
    data[i]["perf"] = {"source": "somewhere on the web"}
    with pytest.raises(CatalogError, match="at least one figure"):
        build_catalog(data)
    with pytest.raises(CatalogError, match="list"):
        build_catalog({"not": "a list"})


# ---------------------------------------------------- 2024-2026 refresh, HTP
def test_current_flagships_of_every_vendor_are_npu(index):
    for manufacturer, model in [("QTI", "SM8850"), ("QTI", "SM8750"), ("QTI", "SM8845"), ("Mediatek", "MT6993"),
                                ("Mediatek", "MT6991"), ("Samsung", "s5e9955"), ("Google", "Tensor G5"),
                                (None, "iPhone18,1"), (None, "iPhone18,3"), (None, "iPhone18,4"), (None, "iPhone18,5")]:
        entry = index.lookup(manufacturer, model)
        assert entry is not None and entry.tier == "npu" and entry.year >= 2024, (model, entry)


def test_mid_rangers_of_2024_2025_are_above_cpu(index):
    for model in ["SM8735", "SM8635", "SM7675", "SM7550", "SM7635", "MT6878", "MT6899", "s5e8855", "s5e8845"]:
        assert index.lookup(None, model).tier != "cpu", model


def test_phones_report_part_numbers(index):
    """The catalog model is what Build.SOC_MODEL says: Play device targeting matches it literally."""
    assert index.lookup("Google", "GS201").model == "GS201"            # Pixel 7: not "Tensor G2"
    assert index.lookup("Google", "Tensor G2").model == "GS201"        # the marketing name still finds it
    assert index.lookup("QTI", "SM8750-AC").model == "SM8750"          # Galaxy S25's "for Galaxy" bin
    assert index.lookup("QTI", "SM6375-AC").model == "SM6375"          # Snapdragon 6s Gen 3
    assert index.lookup("Samsung", "S5E8855").model == "s5e8855"
    assert index.lookup(None, "iPhone18,2").model == "A19 Pro" and index.lookup(None, "iPhone17,5").model == "A18"


# Qualcomm's SoC -> HTP table (onnxruntime-qnn soc_table.h; executorch qc_schema.py for SM8845)
SOURCED_HTP = {"SM8350": "v68", "SM8450": "v69", "SM8475": "v69", "SM8550": "v73", "SM8635": "v73", "SM8650": "v75",
               "SM7675": "v73", "SM8750": "v79", "SM8850": "v81", "SM8845": "v81"}


def test_htp_architectures(entries, index):
    for model, arch in SOURCED_HTP.items():
        assert index.lookup("QTI", model).accelerator.htp_arch == arch, model
    qualcomm = [e for e in entries if e.vendor == "qualcomm"]
    for e in qualcomm:
        if e.accelerator.kind == "npu" and e.accelerator.htp_arch is None:
            # an HTP whose architecture no checked source states: said so, and nothing precompiled for it
            assert "HTP architecture unverified" in (e.note or ""), e.model
        if e.accelerator.kind != "npu":
            assert e.accelerator.htp_arch is None, e.model
    assert all(e.accelerator.htp_arch is None for e in entries if e.vendor != "qualcomm")
    sm8250 = index.lookup("QTI", "SM8250")  # the 865: a V66 DSP + a separate HTA, not an HTP
    assert sm8250.accelerator.htp_arch is None and sm8250.tier == "gpu" and "No HTP" in sm8250.note
    assert sum(e.accelerator.htp_arch is not None for e in qualcomm) >= 15


def test_htp_arch_only_on_qualcomm_npus(raw):
    data = copy.deepcopy(raw)
    i = next(n for n, item in enumerate(data) if item["model"] == "MT6993")
    data[i]["accelerator"]["htp_arch"] = "v79"
    with pytest.raises(CatalogError, match="MT6993.*htp_arch is for Qualcomm"):
        build_catalog(data)
    data = copy.deepcopy(raw)
    i = next(n for n, item in enumerate(data) if item["model"] == "SM8650")
    data[i]["accelerator"]["htp_arch"] = "v99"
    with pytest.raises(CatalogError, match="SM8650.*htp_arch"):
        build_catalog(data)

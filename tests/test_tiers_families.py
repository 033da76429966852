"""device_tiers/families.yaml: valid, consistent with the catalog, and right about next year's chips."""

from __future__ import annotations

import copy

import pytest
import yaml

from mobile_pipeline.tiers.catalog import load_catalog, model_candidates
from mobile_pipeline.tiers.classifier import Classifier
from mobile_pipeline.tiers.device_info import DeviceInfo
from mobile_pipeline.tiers.families import (
    FamiliesError,
    FamilyMatcher,
    compile_rules,
    default_families_path,
    load_families,
    parse_families,
)

GiB = 1 << 30


@pytest.fixture(scope="module")
def rules():
    return load_families()


@pytest.fixture(scope="module")
def matcher(rules):
    return FamilyMatcher(compile_rules(rules))


@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load(default_families_path().read_text(encoding="utf-8"))


def test_project_file_covers_every_vendor_scheme(rules):
    kinds = {r.kind for r in rules}
    assert kinds == {"soc", "ios", "gpu"}
    vendors = {r.vendor for r in rules if r.kind == "soc"}
    assert {"qualcomm", "mediatek", "samsung", "google"} <= vendors
    assert len({r.id for r in rules}) == len(rules)
    assert all(len(r.why) > 30 for r in rules)


# ------------------------------------------------- consistency with the catalog
def _soc_keys(entry):
    return [k for spelling in entry.model_spellings() for k in model_candidates(spelling)[:1]]


def test_every_catalog_chip_agrees_with_its_family_or_is_an_exception(rules, matcher):
    """A family rule must place the chips we know where the catalog puts them (else: an exception, with why)."""
    by_id = {r.id: r for r in rules}
    covered: dict[str, set[str]] = {r.id: set() for r in rules}
    disagreements = []
    for entry in load_catalog():
        if entry.vendor == "apple":
            continue
        for spelling in entry.model_spellings():
            match = matcher.match_model("android", spelling)
            if match is None:
                continue
            covered[match.rule.id].add(entry.model)
            if match.tier != entry.tier and entry.model not in by_id[match.rule.id].exceptions:
                disagreements.append((spelling, entry.tier, match.rule.id, match.tier))
        gpu = matcher.match_gpu("android", entry.gpu.family, 64 * GiB)[0]
        if gpu is not None:
            covered[gpu.rule.id].add(entry.model)
            if gpu.tier != entry.tier and entry.model not in by_id[gpu.rule.id].exceptions:
                disagreements.append((entry.gpu.family, entry.tier, gpu.rule.id, gpu.tier))
    assert not disagreements, disagreements
    for rule in rules:  # no stale exceptions: each names a covered chip the rule really misplaces
        for model in rule.exceptions:
            assert model in covered[rule.id], (rule.id, model)
    # the schemes are exercised: most SoC rules cover several catalog chips
    assert sum(len(models) >= 2 for rid, models in covered.items() if by_id[rid].kind != "ios") >= 12


def test_every_catalog_machine_id_agrees_with_its_generation(matcher):
    for entry in load_catalog():
        for machine in entry.ios_machine_ids:
            match = matcher.match_model("ios", machine)
            assert match is not None and match.tier == entry.tier, (machine, entry.model, match)


# ------------------------------------------------------------- next year's chips
@pytest.mark.parametrize("model, rule", [
    ("SM8950", "snapdragon-8"),          # the 2026 Snapdragon 8 flagship numbering
    ("SM8975", "snapdragon-8"),
    ("SM8950-AC", "snapdragon-8"),       # "for Galaxy" bin suffix
    ("MT6995", "dimensity-9"),           # Dimensity 9600
    ("MT6995V/ZA", "dimensity-9"),       # with a package suffix
    ("s5e9965", "exynos-2"),             # Exynos 2600
    ("Tensor G6", "tensor"),
    ("SM7850", "snapdragon-7"),
    ("MT6997", "dimensity-9"),           # the next number in the 9000 range
])
def test_an_unknown_flagship_of_a_known_family_gets_npu(matcher, model, rule):
    match = matcher.match_model("android", model)
    assert match is not None and (match.rule.id, match.tier) == (rule, "npu"), match


@pytest.mark.parametrize("machine, tier", [
    ("iPhone19,1", "npu"), ("iPhone19,3", "npu"), ("iPhone30,1", "npu"), ("iPhone11,8", "npu"),
    ("iPhone10,3", "gpu"), ("iPhone9,1", "cpu"), ("iPad17,1", "npu"), ("iPad7,5", "cpu"), ("iPod9,1", "cpu"),
])
def test_ios_generations(matcher, machine, tier):
    assert matcher.match_model("ios", machine).tier == tier


@pytest.mark.parametrize("model", ["ZX-9000", "SM9999", "MT1234", "Kirin990", "exynos9820", "MT6769", "", None])
def test_models_outside_every_scheme_do_not_match(matcher, model):
    assert matcher.match_model("android", model) is None


def test_numbering_schemes_step_down_within_a_family(matcher):
    assert matcher.match_model("android", "SM8250").tier == "gpu"       # 865: no HTP
    assert matcher.match_model("android", "SM7635").rule.id == "snapdragon-7s"
    assert matcher.match_model("android", "SM7635").tier == "dsp"
    assert matcher.match_model("android", "MT6835").tier == "cpu"       # Dimensity 6x00: no APU
    assert matcher.match_model("android", "s5e8825").tier == "dsp"      # Exynos 1280
    assert matcher.match_model("android", "SM4250").tier == "cpu"
    assert matcher.match_model("android", "SDM450") is None             # below every step: capability rules
    assert matcher.match_model("ios", "SM8650") is None                 # SoC schemes are not iOS ids
    assert matcher.match_model("android", "iPhone16,1") is None


# --------------------------------------------------------------- GPU families
def test_gpu_family_needs_ram_to_corroborate(matcher):
    match, note = matcher.match_gpu("android", "Adreno (TM) 830", 11 * GiB)
    assert (match.rule.id, match.tier, note) == ("adreno-8xx", "npu", None)
    match, note = matcher.match_gpu("android", "Adreno (TM) 830", 3 * GiB)
    assert match is None and "3.0 GiB" in note and "corroborate" in note
    match, note = matcher.match_gpu("android", "Mali-G925-Immortalis MC12", None)
    assert match is None and "no RAM reported" in note
    assert matcher.match_gpu("android", "Mali-G1-Ultra MC12", 15 * GiB)[0].rule.id == "mali-g1-ultra"
    assert matcher.match_gpu("android", "ANGLE (Samsung Xclipse 940) on Vulkan 1.3.264", 8 * GiB)[0].tier == "npu"
    assert matcher.match_gpu("android", "Adreno (TM) 710", 8 * GiB) == (None, None)   # also in dsp-tier parts
    assert matcher.match_gpu("android", "Adreno (TM) 650", 8 * GiB) == (None, None)   # 865: no HTP
    assert matcher.match_gpu("ios", "Adreno (TM) 830", 8 * GiB) == (None, None)


def test_classifier_without_families_falls_back_to_capability_rules():
    device = DeviceInfo(platform="android", os_version="16", soc_manufacturer="QTI", soc_model="SM8950",
                        gpu_renderer="Adreno (TM) 850", ram_bytes=16 * GiB)
    with_families = Classifier(overrides=[]).classify(device)
    assert (with_families.tier, with_families.matched_by, with_families.family) == ("npu", "family", "snapdragon-8")
    assert with_families.why == ("family:snapdragon-8",)
    without = Classifier(overrides=[], families=[]).classify(device)
    assert (without.tier, without.matched_by, without.why) == ("gpu", "rules", ("rules:gpu",))


# ------------------------------------------------------------------ bad input
def _mutated(raw, fn):
    data = copy.deepcopy(raw)
    fn(data)
    return data


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["soc"][0].update(pattern="^sm8(?P<gen>\\d"), "soc rule 'snapdragon-8': pattern: .*regex"),
    (lambda d: d["soc"][0].update(pattern="^sm8\\d\\d\\d$"), "named group"),
    (lambda d: d["soc"][0].update(steps=[[1, "gpu"], [3, "npu"]]), "highest generation first"),
    (lambda d: d["soc"][0].update(steps=[[3, "tpu"]]), "steps"),
    (lambda d: d["soc"][0].update(tier="npu"), "exactly one of steps"),
    (lambda d: d["soc"][0].update(min_ram_gib=6), "min_ram_gib corroborates GPU-renderer rules only"),
    (lambda d: d["soc"][0].pop("vendor"), "names the vendor"),
    (lambda d: d["soc"][1].update(id="snapdragon-8"), "duplicate rule id"),
    (lambda d: d["soc"][0].update(typo=1), "typo"),
    (lambda d: d.update(cpu=[]), "unknown section"),
    (lambda d: d.update(gpu={"id": "x"}), "gpu must be a list"),
])
def test_invalid_rules_are_named(raw, mutate, message):
    parse_families(raw)  # the base is valid
    with pytest.raises(FamiliesError, match=message):
        parse_families(_mutated(raw, mutate))


def test_missing_file_means_no_family_rules(tmp_path):
    assert load_families(tmp_path / "absent.yaml") == []
    broken = tmp_path / "families.yaml"
    broken.write_text("soc: [\n")
    with pytest.raises(FamiliesError, match="not valid YAML"):
        load_families(broken)

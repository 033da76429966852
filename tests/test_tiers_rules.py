"""Capability rules: GPU families, their key-based form for the dispatcher, Apple GPU names, bounds.

(iOS machine-id generations are family rules now: tests/test_tiers_families.py.)"""

from __future__ import annotations

import pytest

from mobile_pipeline.tiers.catalog import load_catalog
from mobile_pipeline.tiers.rules import (
    GPU_FAMILY_KEYS,
    TIER_BOUNDS,
    apple_chip_tier,
    gpu_family_keys,
    gpu_rule_for,
    gpu_tier_by_keys,
    os_allows,
    ram_allows,
)

RENDERERS = [
    ("Adreno (TM) 750", "gpu"), ("Adreno (TM) 642L", "gpu"), ("Adreno (TM) 640", "gpu"), ("Adreno (TM) 830", "gpu"),
    ("Adreno (TM) 702", "cpu"), ("Adreno (TM) 618", "cpu"), ("Adreno (TM) 506", "cpu"),
    ("Mali-G78", "gpu"), ("Mali-G77", "gpu"), ("Mali-G710", "gpu"), ("Mali-G715", "gpu"), ("Mali-G610", "gpu"),
    ("Mali-G925", "gpu"), ("Immortalis-G720", "gpu"), ("Xclipse 940", "gpu"), ("Maleoon 910", "gpu"),
    ("Mali-G76", "cpu"), ("Mali-G72", "cpu"), ("Mali-G68", "cpu"), ("Mali-G57", "cpu"), ("Mali-G52", "cpu"),
    ("Mali-G31", "cpu"), ("Mali-T830", "cpu"), ("PowerVR Rogue GE8320", "cpu"),
    ("Apple A15 GPU", "gpu"), ("Apple M2 GPU", "gpu"), ("Apple A10 GPU", "cpu"),
    # as phones report them: MediaTek's "Mali-Gxxx-Immortalis", Arm's 2025 names, Exynos through ANGLE
    ("Mali-G925-Immortalis MC12", "gpu"), ("Mali-G720-Immortalis MC12", "gpu"), ("Mali-G1-Ultra MC12", "gpu"),
    ("Mali-G1-Premium MC8", "gpu"), ("Mali-G1-Pro MC4", "cpu"), ("ANGLE (Samsung Xclipse 940) on Vulkan 1.3.264", "gpu"),
    ("PowerVR D-Series DXT-48-1536 MC1", "cpu"), ("Adreno (TM) 840", "gpu"), ("Adreno (TM) 710", "gpu"),
]


@pytest.mark.parametrize("renderer, tier", RENDERERS)
def test_gpu_rules(renderer, tier):
    assert gpu_rule_for(renderer).tier == tier


def test_core_count_rules():
    assert gpu_rule_for("Mali-G76 MP16").tier == "gpu"
    assert gpu_rule_for("Mali-G76 MP4").tier == "cpu"
    assert gpu_rule_for("Mali-G72 MP18").tier == "gpu"
    assert gpu_rule_for("Mali-G72 MP3").tier == "cpu"
    assert gpu_rule_for(None) is None and gpu_rule_for("Vivante GC7000") is None


def test_key_form_agrees_with_regex_rules():
    """The manifest's key table must classify like the regexes (no core counts in the string)."""
    renderers = [r for r, _ in RENDERERS] + [e.gpu.family.split(" (")[0].split(" MP")[0].split(" MC")[0]
                                             for e in load_catalog()]
    for renderer in renderers:
        rule = gpu_rule_for(renderer)
        assert (gpu_tier_by_keys(renderer) or "cpu") == (rule.tier if rule else "cpu"), renderer
    assert set(GPU_FAMILY_KEYS.values()) <= {"cpu", "gpu"}
    assert gpu_family_keys("Adreno (TM) 750") == ("adreno 750", "adreno 7", "adreno")
    assert gpu_family_keys("Mali-G715") == ("mali-g715", "mali-g7", "mali")
    assert gpu_family_keys("Mali-G1-Ultra MC12") == ("mali-g1-ultra", "mali-g1", "mali")
    assert gpu_family_keys("") == ()


def test_apple_chip_from_metal_name():
    assert apple_chip_tier("Apple A16 GPU")[0] == "npu"
    assert apple_chip_tier("Apple M1 GPU")[0] == "npu"
    assert apple_chip_tier("Apple A11 GPU")[0] == "gpu"
    assert apple_chip_tier("Apple A9 GPU")[0] == "cpu"
    assert apple_chip_tier("Adreno (TM) 750") is None


def test_bounds():
    assert os_allows("npu", "android", (10,)) and not os_allows("npu", "android", (9,))
    assert os_allows("npu", "android", None)            # unknown: allowed, the app re-checks
    assert os_allows("cpu", "android", (4, 4))
    assert not os_allows("npu", "ios", (15, 7)) and os_allows("npu", "ios", (16, 0))
    assert ram_allows("npu", None) and not ram_allows("npu", 2 << 30) and ram_allows("cpu", 0)
    floors = [TIER_BOUNDS[t].min_ram_bytes for t in ("cpu", "dsp", "gpu", "npu")]
    assert floors == sorted(floors)

"""The search's Qualcomm constraints come from the HTP probe file, through the tier table.

No compiler needed: a synthetic probe result stands in for a refusal (today's compiler
accepts every choice of the search space, see device_tiers/htp_ops.yaml).
"""

from __future__ import annotations

import copy
import datetime

import pytest
import yaml

from mobile_pipeline.nets.spec import ArchSpec
from mobile_pipeline.tiers.catalog import HTP_ARCHS, load_catalog
from mobile_pipeline.tiers.htp import (
    HtpOpsError,
    HtpOpSupport,
    htp_constraints,
    load_htp_op_support,
    tier_htp_archs,
    tier_htp_socs,
)
from mobile_pipeline.tiers.table import ARCH_CHOICES, TierTableError, default_tier_path, load_tier_table, parse_tier_table

ARCHS = list(HTP_ARCHS)  # every arch the catalog may name, so any catalog tier is covered


def _support(refusals: dict[tuple[str, str], dict[str, dict[str, list[str]]]]) -> dict:
    """A probe file where every choice compiles except the given (field, value) -> {precision: {arch: nodes}}."""
    probes = []
    for field, values in ARCH_CHOICES.items():
        for value in values:
            results = {p: {a: "ok" for a in ARCHS} for p in ("int8", "w8a16")}
            for precision, per_arch in refusals.get((field, value), {}).items():
                results[precision].update(per_arch)
            ops = ["Conv", "Add"] + (["Resize"] if field == "upsample" and value != "deconv" else [])
            ops += ["ConvTranspose"] if value == "deconv" else []
            probes.append({"field": field, "value": value, "spec": "s8", "ops": ops, "results": results})
    return {"generated": datetime.date(2026, 1, 1), "tool": "test", "versions": {"onnxruntime_qnn": "0"},
            "resolution": 64, "archs": ARCHS, "precisions": ["int8", "w8a16"], "probes": probes}


def test_a_choice_refused_on_any_arch_is_banned_but_not_its_shared_op():
    raw = _support({("upsample", "bilinear"): {"int8": {"v73": ["Resize 'up_1': bilinear not supported"]}},
                    ("upsample", "deconv"): {"w8a16": {"v68": ["ConvTranspose 'dc': 16-bit deconv"]}}})
    support = HtpOpSupport.model_validate(raw)
    found = htp_constraints(support, ("v68", "v73"), ("int8",))
    assert found.arch_constraints == {"upsample": ["bilinear"]}  # deconv failed only for w8a16
    assert found.forbidden_onnx_ops == []  # Resize compiled for nearest: the op itself is fine
    assert found.reasons == ["upsample=bilinear: v73 int8: Resize 'up_1': bilinear not supported"]
    both = htp_constraints(support, ("v68", "v73"), ("int8", "w8a16"))
    assert both.arch_constraints == {"upsample": ["bilinear", "deconv"]}
    assert both.forbidden_onnx_ops == ["ConvTranspose"]  # refused wherever it appeared
    assert htp_constraints(support, ("v75",), ("int8", "w8a16")).arch_constraints == {}
    with pytest.raises(HtpOpsError, match="no probe results for arch v99"):
        htp_constraints(support, ("v75", "v99"), ("int8",))


def test_tier_table_merges_the_probe_for_its_archs(tmp_path):
    raw = yaml.safe_load(default_tier_path().read_text())
    support = _support({("fs_branches", "dw5"): {"int8": {"v75": ["Conv 'dw5_conv': kernel 5 depthwise"]}}})
    (tmp_path / "htp_ops.yaml").write_text(yaml.safe_dump(support))
    table = parse_tier_table(copy.deepcopy(raw), source="t.yaml", base_dir=tmp_path)
    npu = table["npu"]
    assert "v75" in tier_htp_archs("npu") and npu.htp_constraints.archs == tier_htp_archs("npu")
    assert npu.arch_constraints["fs_branches"] == ["dil3", "dw5"]  # hand (ANE) + probed (HTP)
    assert npu.allows_arch(ArchSpec(fs_branches=("dw3", "dw5"))) == ["fs_branches=dw5 is not allowed on tier npu"]
    assert npu.htp_constraints.reasons[0].startswith("fs_branches=dw5: v75 int8")
    # A tier without a Qualcomm HTP SoC in the catalog gets nothing from the probe.
    dsp = table["dsp"]
    if not tier_htp_archs("dsp"):
        assert dsp.htp_constraints is None and dsp.arch_constraints == {"upsample": ["bilinear"]}
    raw["npu"]["htp_constraints"] = {}
    with pytest.raises(TierTableError, match="htp_constraints is computed from htp_op_support"):
        parse_tier_table(raw, base_dir=tmp_path)


def test_missing_probe_results_fail_the_table_load_naming_the_fix(tmp_path):
    raw = yaml.safe_load(default_tier_path().read_text())
    support = _support({})
    support["archs"] = [a for a in ARCHS if a not in tier_htp_archs("npu")[-1:]]  # drop one arch the catalog uses
    (tmp_path / "htp_ops.yaml").write_text(yaml.safe_dump(support))
    with pytest.raises(TierTableError, match=r"tier 'npu': htp_op_support: .*rerun scripts/probe_htp_ops.py"):
        parse_tier_table(raw, source="t.yaml", base_dir=tmp_path)


def test_committed_probe_covers_the_search_space_and_the_catalog():
    support = load_htp_op_support()
    probed = {(p.field, p.value) for p in support.probes}
    assert probed == {(f, v) for f, values in ARCH_CHOICES.items() for v in values}
    catalog_archs = {e.accelerator.htp_arch for e in load_catalog() if e.accelerator.htp_arch}
    assert catalog_archs <= set(support.archs) and set(support.archs) <= set(HTP_ARCHS)
    assert {"int8", "w8a16"} <= set(support.precisions)
    for probe in support.probes:
        assert set(probe.results) == set(support.precisions)
        assert all(set(per) == set(support.archs) for per in probe.results.values())
    # What the tier table applies is what the file says for the tier's archs.
    npu = load_tier_table()["npu"]
    expected = htp_constraints(support, tier_htp_archs("npu"), ("int8",))
    assert npu.htp_constraints == expected.model_copy(update={"source": "htp_ops.yaml"})


def test_tier_htp_socs_come_from_the_catalog():
    socs = tier_htp_socs("npu")
    expected: dict[str, list[str]] = {}
    for entry in load_catalog():
        if entry.vendor == "qualcomm" and entry.tier == "npu" and entry.accelerator.htp_arch:
            expected.setdefault(entry.accelerator.htp_arch, []).append(entry.model)
    assert socs == {a: expected[a] for a in sorted(expected, key=lambda a: int(a[1:]))}
    assert socs["v75"] == ["SM8650"] and tier_htp_socs("gpu") == {}

"""Latency model: op tracing, LUT sums, tier scales and calibration overrides."""

from __future__ import annotations

import json

import pytest
import torch

from mobile_pipeline.nets.generator import build_generator
from mobile_pipeline.nets.spec import ArchSpec
from mobile_pipeline.search.latency import LatencyModel, LatencyModelError, default_lut_path, roofline_ms, spec_ops
from mobile_pipeline.search.ops import Op, op_module, trace_ops
from mobile_pipeline.tiers.table import load_tier_table
from search_fixtures import MS_PER_MAC, OVERHEAD_MS, write_synthetic_lut

SPEC = ArchSpec(stem_width=8, encoder_widths=(16, 24), num_blocks=2, fs_branches=("dw3", "conv2"),
                fusion=("sta", "concat"), upsample="bilinear")


def test_trace_fuses_bn_and_relu_into_convs():
    model = build_generator(SPEC)
    ops, unknown = trace_ops(model, (64, 64))
    assert unknown == []
    n_convs = sum(isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for m in model.modules())
    n_heads = len(model.heads) - 1  # only the finest head runs in forward()
    assert sum(op.kind == "conv" for op in ops) == n_convs - n_heads
    kinds = {op.kind for op in ops}
    assert {"conv", "concat", "sigmoid", "mul", "add", "resize_bilinear", "clamp"} <= kinds
    assert "batch_norm" not in kinds
    for op in ops:
        assert Op.from_key(op.key) == op
        module, inputs = op_module(op)  # every traced op has a measurement module
        assert module(*inputs).dim() == 4


def test_trace_is_resolution_aware():
    small, large = spec_ops(SPEC, (64, 64)), spec_ops(SPEC, (128, 128))
    assert [op.kind for op in small] == [op.kind for op in large]
    assert sum(op.macs for op in large) == 4 * sum(op.macs for op in small)


@pytest.fixture()
def lut(tmp_path):
    return write_synthetic_lut(tmp_path / "lut.json", [SPEC], 64, reference=SPEC)


def test_prediction_is_overhead_plus_sum_of_entries(lut, tmp_path):
    tiers = load_tier_table()
    model = LatencyModel.load(lut, tiers=tiers, calibration_path=tmp_path / "none.yaml",
                              device_latency_path=tmp_path / "none.json")
    ops = spec_ops(SPEC, (64, 64))
    expected = OVERHEAD_MS + sum(MS_PER_MAC * op.macs for op in ops)
    assert model.predict_local_ms(SPEC, (64, 64)) == pytest.approx(expected, rel=1e-9)
    assert model.coverage(SPEC, (64, 64)) == 1.0
    for name, tier in tiers.items():
        ratio = (roofline_ms(ops, tier.roofline.gflops, tier.roofline.bandwidth_gbs, 1 if tier.int8_only else 2
                             if {v.precision for v in tier.variants} <= {"fp16"} else 4)
                 / roofline_ms(ops, 50.0, 10.0, 4))
        assert model.tier_scales[name] == pytest.approx(ratio)
        assert model.predict_ms(SPEC, name, (64, 64)) == pytest.approx(expected * ratio)
        assert model.scale_sources[name].startswith("uncalibrated (datasheet): roofline")
        assert model.latency_label(name) == "uncalibrated (datasheet)"


def test_calibration_file_overrides_the_roofline_scale(lut, tmp_path):
    calibration = tmp_path / "calibration.yaml"
    calibration.write_text("cpu: {scale: 3.5, n_measurements: 4}\n", encoding="utf-8")
    model = LatencyModel.load(lut, tiers=load_tier_table(), calibration_path=calibration)
    assert model.tier_scales["cpu"] == 3.5
    assert model.predict_ms(SPEC, "cpu", (64, 64)) == pytest.approx(3.5 * model.predict_local_ms(SPEC, (64, 64)))
    assert model.latency_label("cpu") == "calibrated (own measurements)"
    assert model.scale_sources["gpu"].startswith("uncalibrated (datasheet)")
    calibration.write_text("cpu: {scale: -1}\n", encoding="utf-8")
    with pytest.raises(LatencyModelError, match="cpu.scale"):
        LatencyModel.load(lut, tiers=load_tier_table(), calibration_path=calibration)


def test_missing_resolution_is_extrapolated_by_pixels(lut, tmp_path):
    model = LatencyModel.load(lut, tiers={}, calibration_path=tmp_path / "none.yaml")
    at_64 = model.predict_local_ms(SPEC, (64, 64)) - OVERHEAD_MS
    at_128 = model.predict_local_ms(SPEC, (128, 128)) - OVERHEAD_MS
    assert at_128 == pytest.approx(4 * at_64, rel=1e-6)
    assert model.fallbacks > 0


def test_missing_or_bad_lut_says_how_to_build_it(tmp_path):
    with pytest.raises(LatencyModelError, match="build_latency_lut"):
        LatencyModel.load(tmp_path / "absent.json", tiers={})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 999}), encoding="utf-8")
    with pytest.raises(LatencyModelError, match="rebuild"):
        LatencyModel.load(bad, tiers={})


@pytest.mark.skipif(not default_lut_path().is_file(), reason="the measured LUT is not built yet")
def test_committed_lut_covers_the_registry_spec_it_references():
    model = LatencyModel.load(tiers=load_tier_table())
    data = json.loads(default_lut_path().read_text())
    reference = ArchSpec.from_string(data["reference_spec"])
    side = data["reference_hw"][0]
    assert model.coverage(reference, (side, side)) == 1.0
    assert 0 < model.predict_local_ms(reference, (side, side)) < 1000
    assert set(model.tier_scales) == {"cpu", "gpu", "dsp", "npu"}

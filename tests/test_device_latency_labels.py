"""Tiers with a measured phone take its fitted latency; the others say "uncalibrated (datasheet)" everywhere."""

from __future__ import annotations

import pytest

from mobile_pipeline.nets.registry import get_spec
from mobile_pipeline.nets.spec import ArchSpec
from mobile_pipeline.report import device_latency_section
from mobile_pipeline.search.device_latency import FEATURES, DeviceFit, DeviceLatencyTable, op_features
from mobile_pipeline.search.latency import LatencyModel, spec_ops
from mobile_pipeline.tiers.table import load_tier_table
from search_fixtures import write_synthetic_lut

SPEC = ArchSpec(stem_width=8, encoder_widths=(16, 24), num_blocks=2, fs_branches=("dw3", "conv2"),
                fusion=("sta", "concat"), upsample="nearest")


def _fit(device: str, soc: str, per_gmac: float, mape: float = 15.0, runtime: str = "tflite") -> DeviceFit:
    coefficients = (0.1, per_gmac, 0.001, 0.0, 0.0, 0.001, 0.2)
    assert len(coefficients) == len(FEATURES)
    return DeviceFit(device=device, soc_model=soc, tier_soc=soc, form_factor="phone", runtime=runtime,
                     precision="w8a8", compute_unit="NPU", coefficients=coefficients, models=("a",) * 15,
                     loo_mape_pct=mape, loo_spearman=0.95, fit_mape_pct=5.0, origin="qai-hub-models test")


@pytest.fixture()
def paths(tmp_path):
    lut = write_synthetic_lut(tmp_path / "lut.json", [SPEC], 64, reference=SPEC)
    # the onnx fit is the slowest of all, but the npu tier's search runs a tflite model: not a candidate
    table = DeviceLatencyTable(fits=[_fit("Fast phone", "SM8650", 0.01), _fit("Slow phone", "SM8450", 0.05),
                                     _fit("Other runtime", "SM8450", 9.0, runtime="onnx")])
    return lut, table.write(tmp_path / "device_latency.json"), tmp_path


def test_measured_tier_uses_its_slowest_phone_and_others_are_labelled_uncalibrated(paths):
    lut, device_json, tmp = paths
    model = LatencyModel.load(lut, tiers=load_tier_table(), calibration_path=tmp / "none.yaml",
                              device_latency_path=device_json)
    assert model.device_fits["npu"].device == "Slow phone"  # SM8350 (the reference) unmeasured: slowest stands in
    assert model.latency_label("npu") == "fitted to measured phones"
    assert model.scale_sources["npu"].startswith("fitted to measured phones: Slow phone (SM8450) tflite w8a8")
    assert "the tier's reference SM8350 is not measured" in model.scale_sources["npu"]
    for tier in ("cpu", "gpu", "dsp"):
        assert model.latency_label(tier) == "uncalibrated (datasheet)"
        assert model.scale_sources[tier].startswith("uncalibrated (datasheet): roofline")
    # the search's latency for npu is the fitted phone's, not the LUT times a ratio
    expected = model.device_fits["npu"].predict_ms(op_features(spec_ops(SPEC, (96, 96)), 1))
    assert model.predict_ms(SPEC, "npu", (96, 96)) == pytest.approx(expected)
    assert model.predict_ms(SPEC, "cpu", (96, 96)) == pytest.approx(
        model.tier_scales["cpu"] * model.predict_local_ms(SPEC, (96, 96)))
    # the npu scale is the phone's time over the LUT time of the reference network
    reference = model.reference_ops_list()
    assert model.tier_scales["npu"] == pytest.approx(
        model.device_fits["npu"].predict_ms(op_features(reference, 1)) / model.predict_local_ms_ops(reference))


def test_measured_reference_soc_wins_and_own_calibration_overrides_the_fit(paths, tmp_path):
    lut, _, tmp = paths
    table = DeviceLatencyTable(fits=[_fit("Slow phone", "SM8450", 0.05), _fit("Galaxy S21", "SM8350", 0.02)])
    device_json = table.write(tmp_path / "with_reference.json")
    model = LatencyModel.load(lut, tiers=load_tier_table(), calibration_path=tmp / "none.yaml",
                              device_latency_path=device_json)
    assert model.device_fits["npu"].device == "Galaxy S21"
    assert "stands in" not in model.scale_sources["npu"]
    calibration = tmp_path / "calibration.yaml"
    calibration.write_text("npu: {scale: 0.5}\n", encoding="utf-8")
    model = LatencyModel.load(lut, tiers=load_tier_table(), calibration_path=calibration,
                              device_latency_path=device_json)
    assert "npu" not in model.device_fits and model.latency_label("npu") == "calibrated (own measurements)"
    assert model.predict_ms(SPEC, "npu", (64, 64)) == pytest.approx(0.5 * model.predict_local_ms(SPEC, (64, 64)))


def test_committed_data_fits_the_npu_tier_to_a_measured_phone():
    """Done-when of issue 16: the npu search optimises a latency fitted to measured phones."""
    model = LatencyModel.load()
    assert model.latency_label("npu") == "fitted to measured phones"
    fit = model.device_fits["npu"]
    assert (fit.runtime, fit.precision, fit.compute_unit) == ("tflite", "w8a8", "NPU") and fit.is_phone
    assert fit.loo_mape_pct < 35 and fit.loo_spearman > 0.85  # the committed fit's own leave-one-out record
    for tier in ("cpu", "gpu", "dsp"):  # no measured phone runs those tiers' delegates
        assert model.latency_label(tier) == "uncalibrated (datasheet)"
    ms = model.predict_ms(get_spec("stylizer-small"), "npu", (384, 384))
    assert 0.1 < ms < load_tier_table()["npu"].budgets.latency_ms


def test_manifest_and_report_carry_the_label():
    from mobile_pipeline.manifest.builder import _Predictor
    from mobile_pipeline.manifest.schema import LatencyFigures

    arch = get_spec("stylizer-tiny").to_string()
    predict = _Predictor()
    npu_ms, npu_source = predict(arch, "npu", (384, 384))
    cpu_ms, cpu_source = predict(arch, "cpu", (256, 256))
    assert npu_ms > 0 and npu_source.startswith("fitted to measured phones: Samsung Galaxy")
    assert cpu_ms > 0 and cpu_source.startswith("uncalibrated (datasheet)")
    assert LatencyFigures(predicted_ms=cpu_ms, predicted_source=cpu_source).predicted_source == cpu_source

    tiers = [{"tier": name, "search": {"arch": arch, "resolution": side}} for name, side in (("cpu", 256), ("npu", 384))]
    section = device_latency_section(tiers)
    text = "\n".join(section["md"])
    assert tiers[0]["latency_source"].startswith("uncalibrated (datasheet)")
    assert tiers[1]["latency_source"].startswith("fitted to measured phones")
    assert "Tier npu: frame budget 33.3 ms (30 fps), model budget 28 ms, 384 px" in text
    assert "| * Samsung Galaxy S22 5G | SM8450 | npu | tflite w8a8 |" in text  # the phone the search used
    assert "This tier runs on the CPU" in text
    assert "<table>" in "".join(section["html"])

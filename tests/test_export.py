"""Export matrix: every format x precision round-trips through its runtime above its gate.

The float model is converted once per format (the exporter caches the float base by the
generator's content) and every precision is derived from it, so the whole matrix costs
three conversions of a tiny generator at 32 px.
"""

from __future__ import annotations

import json
import platform

import numpy as np
import pytest
import torch

from mobile_pipeline.exporters import api
from mobile_pipeline.exporters.formats import FORMATS, parity_gate_db
from mobile_pipeline.exporters.photos import bundled_photos, prepare_photos, split_photos
from mobile_pipeline.exporters.report import load_report, report_path_for
from mobile_pipeline.exporters.runtimes import COREML_NOT_RUNNABLE, RunnerError, load_runner
from mobile_pipeline.exporters.validate import REJECTED_DIR, artifact_digest, check_parity
from mobile_pipeline.quality.image import psnr as psnr_db
from mobile_pipeline.nets.generator import build_generator

SIDE = 32
# ExecuTorch lowers per delegate (no shared float base); tests/test_export_executorch.py covers it
# on a smaller net so the matrix does not pay three more lowerings of this one.
MATRIX = [(fmt, prec) for fmt, info in FORMATS.items() if fmt != "executorch" for prec in info.precisions]


def make_generator(seed: int = 0):
    """stylizer-tiny with random weights; the zero-initialised RGB head is randomised too,
    otherwise the residual generator is the identity and parity would be trivially perfect."""
    torch.manual_seed(seed)
    generator = build_generator("stylizer-tiny").eval()
    with torch.no_grad():
        for param in generator.heads[-1].parameters():
            param.normal_(0.0, 0.1)
    return generator


@pytest.fixture(scope="module")
def generator():
    torch.set_num_threads(1)
    return make_generator()


@pytest.fixture(scope="module")
def photos():
    cal, val = split_photos(bundled_photos(), 3, 2)
    return cal, val


@pytest.fixture(scope="module")
def exported(generator, photos, tmp_path_factory):
    """Export the whole matrix once; returns (out_dir, {(format, precision): report})."""
    out = tmp_path_factory.mktemp("export")
    cal, val = photos
    reports = {}
    for fmt, prec in MATRIX:
        # int8-only op check too; dsp, not npu: stylizer-tiny has a dilated branch, which
        # npu's arch_constraints forbid (test_arch_constraint_violation_is_rejected).
        tier = "dsp" if prec in ("int8", "int8-full") else None
        reports[(fmt, prec)] = api.export_variant(generator, fmt, prec, out, input_hw=(SIDE, SIDE), tier=tier,
                                                  calibration=cal, validation=val, stem="tiny")
    return out, reports


@pytest.mark.parametrize("fmt,prec", MATRIX)
def test_variant_round_trips_above_its_gate(exported, fmt, prec):
    out, reports = exported
    report = reports[(fmt, prec)]
    assert report.passed, report.reasons
    artifact = out / report.artifact
    assert artifact.exists() and not (out / REJECTED_DIR / report.artifact).exists()
    on_disk = load_report(report_path_for(artifact))
    assert on_disk == report
    assert (on_disk.sha256, on_disk.bytes) == artifact_digest(artifact)
    assert report.parity.gate_db == parity_gate_db(prec)
    assert report.export_seconds is not None and report.export_seconds >= 0
    if fmt == "coreml" and platform.system() != "Darwin":
        assert not report.parity.runnable and report.parity.not_runnable_reason == COREML_NOT_RUNNABLE
        assert "conv" in report.op_check.ops
        if prec in ("w6-palette", "w4-palette"):
            assert "constexpr_lut_to_dense" in report.op_check.ops
        if prec == "w8":
            assert {"constexpr_affine_dequantize", "constexpr_blockwise_shift_scale"} & set(report.op_check.ops)
    else:
        assert report.parity.runnable and report.parity.images == 2
        assert report.parity.psnr_db >= report.parity.gate_db
        assert report.parity.max_abs_err < 0.1


def test_quantized_variants_are_smaller_and_integer(exported):
    _, reports = exported
    for fmt, small in (("onnx", "int8"), ("tflite", "int8-full"), ("tflite", "int8-dynamic"), ("coreml", "w4-palette")):
        assert reports[(fmt, small)].bytes < 0.6 * reports[(fmt, "fp32")].bytes, (fmt, small)
    full = reports[("tflite", "int8-full")]
    assert full.input.dtype == "int8" and full.output.dtype == "int8" and full.input.layout == "NHWC"
    assert full.input.scale == pytest.approx(1 / 255, rel=0.01)
    # Checked against an int8_only tier: no float island anywhere.
    assert full.tier == "dsp" and full.op_check.float_ops == []
    assert reports[("onnx", "int8")].op_check.float_ops == []
    assert "DequantizeLinear" in reports[("onnx", "int8")].op_check.ops
    # fp32 TFLite is all float: the same check would flag it.
    assert reports[("tflite", "fp32")].op_check.float_ops
    assert reports[("onnx", "fp16")].input.dtype == "float32"  # I/O kept float32


def test_io_conventions_recorded(exported):
    _, reports = exported
    assert reports[("onnx", "fp32")].input.layout == "NCHW"
    assert reports[("tflite", "fp32")].input.shape == [1, SIDE, SIDE, 3]
    assert reports[("coreml", "fp16")].input.shape == [1, 3, SIDE, SIDE]
    assert all(r.input.value_range == (0.0, 1.0) for r in reports.values())


def test_runner_hides_layout_and_checks_size(exported, generator, photos):
    out, reports = exported
    batch = prepare_photos(photos[1], (SIDE, SIDE))
    with torch.no_grad():
        reference = generator(torch.from_numpy(batch)).numpy()
    for key in (("onnx", "fp32"), ("tflite", "fp32"), ("tflite", "int8-full")):
        runner = load_runner(out / reports[key].artifact)
        result = runner.run(batch)
        assert result.shape == batch.shape and result.dtype == np.float32
        assert psnr_db(result, reference) >= 30
    runner = load_runner(out / reports[("onnx", "fp32")].artifact)
    with pytest.raises(RunnerError, match="--tile"):
        runner.run(np.zeros((1, 3, SIDE * 2, SIDE), np.float32))
    with pytest.raises(RunnerError, match="unknown model type"):
        load_runner(out / report_path_for(out / reports[key].artifact).name)


def test_no_temporaries_left(exported):
    out, _ = exported
    leftovers = [p.name for p in out.rglob("*") if ".tmp" in p.name or p.name == api.STAGING_DIR]
    assert leftovers == []


class _ExportDiverges(torch.nn.Module):
    """A small conv net that behaves one way in eager mode but exports a different graph (a
    Python branch on torch.compiler.is_exporting): the kind of bug only parity catches."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        y = torch.sigmoid(self.conv(x))
        if torch.compiler.is_exporting():
            return 1.0 - y
        return y


def test_diverging_artifact_is_rejected(photos, tmp_path):
    cal, val = photos
    report = api.export_variant(_ExportDiverges().eval(), "onnx", "fp32", tmp_path, input_hw=(SIDE, SIDE),
                                calibration=cal, validation=val, stem="broken")
    assert not report.passed
    assert report.parity.psnr_db < 60 and any("parity" in r for r in report.reasons)
    assert not (tmp_path / report.artifact).exists()
    rejected = tmp_path / REJECTED_DIR / report.artifact
    assert rejected.exists()
    saved = json.loads(report_path_for(rejected).read_text())
    assert saved["passed"] is False and saved["reasons"]


def test_corrupted_weights_fail_parity(exported, generator, photos, tmp_path):
    import onnx
    from onnx import numpy_helper

    out, reports = exported
    model = onnx.load(str(out / reports[("onnx", "fp32")].artifact))
    for weights in model.graph.initializer:  # flip half of every conv kernel, as a bad write would
        values = numpy_helper.to_array(weights).copy()
        if values.dtype == np.float32 and values.ndim == 4:
            values.flat[: values.size // 2] *= -3.0
            weights.CopyFrom(numpy_helper.from_array(values, weights.name))
    broken = tmp_path / "corrupt.onnx"
    onnx.save(model, str(broken))
    batch = prepare_photos(photos[1], (SIDE, SIDE))
    with torch.no_grad():
        reference = generator(torch.from_numpy(batch)).numpy()
    parity = check_parity(broken, "fp32", batch, reference)
    assert parity.runnable and not parity.passed and parity.psnr_db < 60
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    parity = check_parity(garbage, "fp32", batch, reference)
    assert not parity.passed and "failed to load" in parity.not_runnable_reason


def test_determinism_same_bytes(exported, generator, photos, tmp_path):
    """Same generator + recipe + photos -> byte-identical artifacts."""
    out, reports = exported
    cal, val = photos

    def again(key, folder):
        tier = "dsp" if key[1] in ("int8", "int8-full") else None
        return api.export_variant(generator, *key, folder, input_hw=(SIDE, SIDE), tier=tier, calibration=cal,
                                  validation=val, stem="tiny").sha256

    # Derived variants from the (cached) float base: fp16 conversion and int8 calibration.
    for key in (("onnx", "fp16"), ("onnx", "int8"), ("tflite", "int8-dynamic")):
        assert again(key, tmp_path / "derived") == reports[key].sha256, key
    # Fresh conversions from PyTorch (cache cleared): litert-torch + ai-edge-quantizer, and
    # coremltools (whose random Manifest.json UUIDs the exporter replaces).
    api.clear_cache()
    for key in (("tflite", "int8-full"), ("coreml", "w8")):
        assert again(key, tmp_path / "fresh") == reports[key].sha256, key


def test_export_tier_uses_tier_table(exported, generator, photos, tmp_path):
    from mobile_pipeline.tiers.table import load_tier_table

    cal, val = photos
    reports = api.export_tier(generator, "dsp", tmp_path, calibration=cal, validation=val, resolution=SIDE,
                              progress=False)
    wanted = [(v.format, v.precision) for v in load_tier_table()["dsp"].variants]
    assert [(r.format, r.precision) for r in reports][:len(wanted)] == wanted
    assert all(r.passed and r.tier == "dsp" for r in reports), [r.reasons for r in reports]
    # Then the int8 ONNX precompiled per Hexagon arch of the tier's SoCs (where onnxruntime-qnn runs).
    from mobile_pipeline.exporters.qnn import qnn_unavailable_reason
    from mobile_pipeline.tiers.htp import tier_htp_archs

    archs = [] if qnn_unavailable_reason() else list(tier_htp_archs("dsp"))
    assert [r.qnn.htp_arch for r in reports[len(wanted):]] == archs
    with pytest.raises(ValueError, match="did you mean 'npu'"):
        api.export_tier(generator, "nup", tmp_path, calibration=cal, validation=val)


def test_cli_export_checkpoint(exported, generator, tmp_path, capsys):
    from mobile_pipeline.cli import main
    from mobile_pipeline.train.checkpoint import save_generator

    ckpt = save_generator(generator, tmp_path / "gen.pt")
    code = main(["export", str(ckpt), "--format", "tfl", "--quantize", "int8", "--tier", "dsp",
                 "--resolution", str(SIDE), "--out", str(tmp_path / "out")])
    text = capsys.readouterr().out
    assert code == 0, text
    assert (tmp_path / "out" / "dsp_int8-full.tflite").exists()
    assert "dsp_int8-full.tflite" in text and "ok" in text

    code = main(["export", str(ckpt), "--format", "tflight", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "did you mean 'tflite'" in err
    code = main(["export", str(ckpt), "--format", "coreml", "--quantize", "w5", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "w5" in err and "w6" in err
    code = main(["export", str(ckpt), "--tier", "npu", "--quantize", "int8", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "--quantize applies to one variant" in err and "--format" in err
    assert not (tmp_path / "x").exists()


# Every op choice the architecture search can produce must survive full-int8 conversion:
# a searched winner with, say, a transposed conv would otherwise fail its tier at export.
SEARCH_OP_SPECS = [
    "s8_e16-16_b1xfs_br-dw3.dil3.conv2.dw5_f-sta.add_u-nearest_a-relu6",
    "s8_e16-16_b1xresnet_f-concat.sta_u-bilinear_a-relu",
    "s8_e16-16_b1xfs_br-dil3.conv2_f-concat.concat_u-deconv_a-relu",
]


def _int8_tier_allowing(arch: str) -> str:
    """An int8-only tier whose arch_constraints allow ``arch`` (npu bans dilation, dsp bilinear)."""
    from mobile_pipeline.nets.spec import ArchSpec
    from mobile_pipeline.tiers.table import load_tier_table

    table = load_tier_table()
    return next(name for name in ("npu", "dsp") if not table[name].allows_arch(ArchSpec.from_string(arch)))


@pytest.mark.parametrize("arch", SEARCH_OP_SPECS)
def test_every_search_op_exports_to_full_int8(arch, photos, tmp_path):
    from mobile_pipeline.nets.generator import trained_like

    cal, val = photos
    # Trained-like weights: a fresh BN folds to no bias at all, which hides how the converter
    # lays out the folded bias (the transposed-conv bias bug needs one).
    generator = trained_like(build_generator(arch), seed=0)
    tier = _int8_tier_allowing(arch)
    for fmt, prec in (("tflite", "int8-full"), ("onnx", "int8")):
        report = api.export_variant(generator, fmt, prec, tmp_path, input_hw=(SIDE, SIDE), tier=tier,
                                    calibration=cal, validation=val, stem=f"{fmt}_op")
        assert report.passed, (arch, fmt, report.reasons)
        assert report.op_check.float_ops == []


def test_arch_constraint_violation_is_rejected(exported, generator, photos, tmp_path):
    """npu forbids the FS block's dilated branch (ANE): stylizer-tiny has one, so it is rejected."""
    cal, val = photos
    assert "dil3" in generator.spec.fs_branches
    report = api.export_variant(generator, "onnx", "int8", tmp_path, input_hw=(SIDE, SIDE), tier="npu",
                                calibration=cal, validation=val, stem="dilated")
    assert not report.passed
    assert report.parity.passed  # the artifact itself is fine: only the tier's constraint rejects it
    assert report.reasons == ["op check: arch: fs_branches=dil3 is not allowed on tier npu "
                              "(device_tiers/tiers.yaml arch_constraints)"]
    assert (tmp_path / REJECTED_DIR / report.artifact).exists() and not (tmp_path / report.artifact).exists()
    stored = load_report(report_path_for(tmp_path / REJECTED_DIR / report.artifact))
    assert stored.reasons == report.reasons


def test_generator_without_spec_fails_a_constrained_tier(photos, tmp_path):
    from mobile_pipeline.exporters.validate import check_arch
    from mobile_pipeline.tiers.table import load_tier_table

    table = load_tier_table()
    assert check_arch(None, table["cpu"]) == []  # no constraints: nothing to check
    problems = check_arch(None, table["npu"])
    assert len(problems) == 1 and "no ArchSpec" in problems[0] and "fs_branches" in problems[0]


def test_unloadable_tflite_is_rejected_with_the_interpreter_message(generator, photos, tmp_path, monkeypatch):
    from mobile_pipeline.exporters import torch2tflite

    cal, val = photos
    monkeypatch.setattr(torch2tflite, "convert", lambda base, recipe, calibration: b"TFL3 but not a flatbuffer")
    report = api.export_variant(generator, "tflite", "int8-full", tmp_path, input_hw=(SIDE, SIDE), tier="dsp",
                                calibration=cal, validation=val, stem="unloadable")
    assert not report.passed
    assert any("failed to load" in reason for reason in report.reasons), report.reasons
    assert report.input.dtype == "int8" and report.input.shape == [1, SIDE, SIDE, 3]
    assert (tmp_path / REJECTED_DIR / report.artifact).exists() and not (tmp_path / report.artifact).exists()

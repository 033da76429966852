"""Small artifacts with valid reports, and tier rules, for the manifest / serve / play tests.

The artifacts are a few bytes each: the manifest and the server only hash, size and list
them; running models is the export stage's business.
"""

from __future__ import annotations

from pathlib import Path

from mobile_pipeline.exporters.report import ArtifactReport, QnnCompileReport, report_path_for
from mobile_pipeline.exporters.validate import artifact_digest
from mobile_pipeline.manifest.schema import GpuRule, SocRule, TierBounds, TierRules

GIB = 1 << 30

SUFFIX = {"tflite": ".tflite", "onnx": ".onnx", "coreml": ".mlpackage",  # .mlpackage is a folder, as exported
          "executorch": ".pte"}
RUNTIME = {"tflite": "litert", "onnx": "onnxruntime", "coreml": "coreml", "executorch": "executorch"}

# (tier, format, precision, delegate) -- the variants of device_tiers/tiers.yaml.
FULL_RELEASE: tuple[tuple[str, str, str, str], ...] = (
    ("cpu", "tflite", "fp32", "xnnpack"),
    ("cpu", "tflite", "int8-dynamic", "xnnpack"),
    ("cpu", "onnx", "fp32", "xnnpack"),
    ("cpu", "coreml", "fp32", "coreml-cpu"),
    ("dsp", "tflite", "int8-full", "nnapi"),
    ("dsp", "onnx", "int8", "nnapi"),
    ("gpu", "tflite", "fp16", "gpu"),
    ("gpu", "coreml", "fp16", "coreml-gpu"),
    ("gpu", "onnx", "fp16", "gpu"),
    ("npu", "tflite", "int8-full", "nnapi"),
    ("npu", "coreml", "w8", "coreml-ane"),
    ("npu", "onnx", "int8", "nnapi"),
)


def write_artifact(folder: Path, tier: str, fmt: str, precision: str, delegate: str | None = None, *,
                   passed: bool = True, side: int = 64, content: bytes | None = None) -> Path:
    """Write ``<tier>-<fmt>-<precision><suffix>`` and its report; returns the artifact path."""
    folder.mkdir(parents=True, exist_ok=True)
    artifact = folder / f"{tier}-{fmt}-{precision}{SUFFIX[fmt]}"
    data = content if content is not None else f"{tier}/{fmt}/{precision}".encode()
    if fmt == "coreml":
        (artifact / "Data" / "com.apple.CoreML").mkdir(parents=True, exist_ok=True)
        (artifact / "Data" / "com.apple.CoreML" / "model.mlmodel").write_bytes(data)
        (artifact / "Manifest.json").write_text('{"fileFormatVersion": "1.0.0"}')
    else:
        artifact.write_bytes(data)
    digest, size = artifact_digest(artifact)
    layout = "NHWC" if fmt == "tflite" else "NCHW"
    shape = [1, side, side, 3] if layout == "NHWC" else [1, 3, side, side]
    tensor = {"name": "image", "shape": shape, "layout": layout, "dtype": "float32"}
    report = ArtifactReport(
        artifact=artifact.name, format=fmt, precision=precision, tier=tier, arch=None,
        sha256=digest, bytes=size,
        input={**tensor, "name": "photo"}, output={**tensor, "name": "stylized"},
        runtime=RUNTIME[fmt], delegate_hint=delegate,
        parity={"runnable": True, "psnr_db": 41.5, "max_abs_err": 0.01, "gate_db": 30.0, "images": 2, "passed": passed},
        op_check={"ops": ["CONV_2D"], "passed": True},
        passed=passed, reasons=[] if passed else ["parity 12.0 dB < gate 30.0 dB"],
    )
    report_path_for(artifact).write_text(report.model_dump_json(indent=2), encoding="utf-8")
    return artifact


def write_precompiled(folder: Path, tier: str, precision: str, htp_arch: str, *, socs: tuple[str, ...] = (),
                      passed: bool = True) -> Path:
    """A model precompiled for ``htp_arch`` from ``<tier>-onnx-<precision>.onnx`` (which must exist too)."""
    artifact = write_artifact(folder, tier, "onnx", f"{precision}-htp-{htp_arch}", "qnn", passed=passed,
                              content=f"{tier}/{precision}/{htp_arch} context".encode())
    report_path = report_path_for(artifact)
    report = ArtifactReport.model_validate_json(report_path.read_text(encoding="utf-8"))
    qnn = {"htp_arch": htp_arch, "source_artifact": f"{tier}-onnx-{precision}.onnx", "socs": list(socs),
           "compiled": True, "compile_seconds": 1.0, "context_bytes": 1000, "nodes_total": 10, "nodes_on_htp": 10}
    report = report.model_copy(update={"precision": precision, "runtime": "onnxruntime-qnn",
                                       "qnn": QnnCompileReport(**qnn)})
    report_path.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    return artifact


def make_release(folder: Path, variants=FULL_RELEASE) -> Path:
    for tier, fmt, precision, delegate in variants:
        write_artifact(folder / tier, tier, fmt, precision, delegate)
    return folder


def fixture_rules() -> tuple[TierRules, dict[str, tuple[str, ...]]]:
    """A small, hand-written rule set (independent of device_tiers/) for dispatcher semantics."""
    qc = ("QTI", "Qualcomm")
    socs = (
        SocRule(manufacturer="qualcomm", model="SM8650", aliases=("pineapple",), tier="npu", name="Snapdragon 8 Gen 3",
                reported_manufacturers=qc, int8_accelerator=True, source="fixture", htp_arch="v75"),
        SocRule(manufacturer="qualcomm", model="SM8550", tier="npu", name="Snapdragon 8 Gen 2",
                reported_manufacturers=qc, int8_accelerator=True, source="fixture", htp_arch="v73"),
        SocRule(manufacturer="qualcomm", model="SM8150", tier="gpu", name="Snapdragon 855",
                reported_manufacturers=qc, int8_accelerator=True, source="fixture"),
        SocRule(manufacturer="qualcomm", model="SM6375", tier="dsp", name="Snapdragon 695",
                reported_manufacturers=qc, int8_accelerator=True, source="fixture"),
        SocRule(manufacturer="mediatek", model="MT6877", tier="gpu", name="Dimensity 900",
                reported_manufacturers=("Mediatek",), int8_accelerator=True, source="fixture"),
        SocRule(manufacturer="samsung", model="s5e9810", tier="cpu", name="Exynos 9810",
                reported_manufacturers=("Samsung",), source="fixture"),
        SocRule(manufacturer="google", model="Tensor G3", aliases=("zuma",), tier="npu", name="Google Tensor G3",
                reported_manufacturers=("Google",), int8_accelerator=True, source="fixture"),
        SocRule(manufacturer="apple", model="A17 Pro", tier="npu", int8_accelerator=True, source="fixture"),
        SocRule(manufacturer="apple", model="A13", tier="npu", int8_accelerator=True, source="fixture"),
        SocRule(manufacturer="apple", model="A11", tier="gpu", source="fixture"),
        SocRule(manufacturer="apple", model="A10", tier="cpu", source="fixture"),
    )
    rules = TierRules(
        tiers=("npu", "gpu", "dsp", "cpu"),
        manufacturer_aliases={"qti": "qualcomm", "qualcomm": "qualcomm", "mediatek": "mediatek", "samsung": "samsung",
                              "google": "google", "apple": "apple"},
        socs=socs,
        ios_machines={"iPhone16,1": "A17 Pro", "iPhone16,2": "A17 Pro", "iPhone12,1": "A13", "iPhone10,3": "A11",
                      "iPhone9,3": "A10"},
        ios_generations={"iphone": ((11, "npu"), (10, "gpu"), (0, "cpu")), "ipad": ((8, "npu"), (0, "cpu"))},
        apple_chips={"a": ((12, "npu"), (11, "gpu"), (0, "cpu")), "m": ((0, "npu"),)},
        gpu_rules=(GpuRule(pattern=r"adreno\D*(6[4-9]\d|7\d\d)", tier="gpu"), GpuRule(pattern=r"adreno", tier="cpu"),
                   GpuRule(pattern=r"mali\W*g7[1-9]\d", tier="gpu"), GpuRule(pattern=r"mali\W*g76", tier="gpu", min_cores=10)),
        accelerators={"android": {"npu": "npu", "apu": "npu", "hexagon": "dsp", "dsp": "dsp"}, "ios": {"ane": "npu"}},
        int8_evidence=("npu", "apu", "hexagon", "dsp", "ane"),
        bounds={"npu": TierBounds(min_ram_bytes=6 * GIB, min_os={"android": "10", "ios": "16"}),
                "gpu": TierBounds(min_ram_bytes=3 * GIB, min_os={"android": "7", "ios": "15"}),
                "dsp": TierBounds(min_ram_bytes=int(1.5 * GIB), min_os={"android": "10"})},
        vendor_delegates={"npu": {"qualcomm": "qnn", "mediatek": "neuron"}, "dsp": {"qualcomm": "qnn"}},
    )
    chains = {"android": ("npu", "gpu", "dsp", "cpu"), "ios": ("npu", "gpu", "cpu"), "other": ("cpu",)}
    return rules, chains


def build_fixture_manifest(root: Path, release_id: str):
    """The full fixture release under the fixture rules, built into ``root/manifest.json``; the Manifest."""
    from mobile_pipeline.config import ManifestConfig
    from mobile_pipeline.manifest.builder import build_manifest

    rules, chains = fixture_rules()
    return build_manifest(make_release(root / "art"), root / "manifest.json", release_id=release_id,
                          cfg=ManifestConfig(), rules=rules, fallback_chains=chains)

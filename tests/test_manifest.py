"""Manifest builder and schema: what enters, what is refused, and the committed JSON Schema."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from manifest_fixtures import FULL_RELEASE, fixture_rules, make_release, write_artifact

from mobile_pipeline.config import ManifestConfig
from mobile_pipeline.manifest.builder import ManifestBuildError, build_manifest, load_bench
from mobile_pipeline.manifest.schema import (
    SCHEMA_VERSION,
    Manifest,
    ManifestInvalid,
    load_manifest,
    manifest_json_schema_text,
)
from mobile_pipeline.utils.paths import project_root

SCHEMA_FILE = project_root() / "schemas" / "manifest.schema.json"


def _build(art: Path, out: Path, **kwargs) -> Manifest:
    rules, chains = fixture_rules()
    kwargs.setdefault("cfg", ManifestConfig())
    return build_manifest(art, out, release_id="rel-1", rules=rules, fallback_chains=chains, **kwargs)


def test_builds_every_passed_artifact_with_verified_hashes(tmp_path):
    art = make_release(tmp_path / "art")
    out = tmp_path / "manifest.json"
    manifest = _build(art, out)
    assert len(manifest.models) == len(FULL_RELEASE)
    loaded = load_manifest(out)
    assert loaded == manifest
    assert loaded.schema_version == SCHEMA_VERSION and loaded.release_id == "rel-1"
    entry = next(m for m in loaded.models if m.id == "gpu-tflite-fp16")
    data = (art / entry.file).read_bytes()
    import hashlib

    assert entry.sha256 == hashlib.sha256(data).hexdigest() and entry.bytes == len(data)
    assert entry.platform == "android" and entry.delegate == "gpu" and entry.input.layout == "NHWC"
    assert entry.url == "https://models.example.invalid/rel-1/gpu/gpu-tflite-fp16.tflite"
    assert entry.parity_psnr_db == pytest.approx(41.5)
    # Core ML weight compression raises the iOS floor above the config's 15.0.
    assert next(m for m in loaded.models if m.id == "npu-coreml-w8").min_os == "16.0"
    assert next(m for m in loaded.models if m.id == "cpu-coreml-fp32").min_os == "15.0"
    assert loaded.fallback_chains["android"] == ("npu", "gpu", "dsp", "cpu")
    assert not list(tmp_path.glob(".manifest.json.*")), "temporary file left behind"


def test_mlpackage_folders_ship_as_reproducible_zips(tmp_path):
    import hashlib
    import zipfile

    art = make_release(tmp_path / "art")
    first = {m.id: m for m in _build(art, tmp_path / "m1.json").models}["npu-coreml-w8"]
    assert first.file == "npu/npu-coreml-w8.mlpackage.zip" and first.packaging == "zip"
    zipped = art / first.file
    assert first.sha256 == hashlib.sha256(zipped.read_bytes()).hexdigest() and first.bytes == zipped.stat().st_size
    report = json.loads((art / "npu" / "npu-coreml-w8.mlpackage.report.json").read_text())
    assert first.content_sha256 == report["sha256"]
    with zipfile.ZipFile(zipped) as archive:
        assert sorted(archive.namelist()) == ["npu-coreml-w8.mlpackage/Data/com.apple.CoreML/model.mlmodel",
                                              "npu-coreml-w8.mlpackage/Manifest.json"]
    again = {m.id: m for m in _build(art, tmp_path / "m2.json").models}["npu-coreml-w8"]
    assert again.sha256 == first.sha256  # same content, same bytes: caches stay valid
    (art / "npu" / "npu-coreml-w8.mlpackage" / "Manifest.json").write_text("{}")
    with pytest.raises(ManifestBuildError, match=r"hash mismatch for .*npu-coreml-w8\.mlpackage"):
        _build(art, tmp_path / "m3.json")


def test_failed_and_rejected_artifacts_stay_out(tmp_path):
    art = make_release(tmp_path / "art")
    write_artifact(art / "gpu", "gpu", "tflite", "int8-dynamic", passed=False)
    # rejected/ is never read, even with a report that claims to have passed.
    write_artifact(art / "rejected", "npu", "tflite", "fp32", "gpu")
    (art / "rejected" / "garbage.report.json").write_text("{not json")
    manifest = _build(art, tmp_path / "m.json")
    ids = {m.id for m in manifest.models}
    assert "gpu-tflite-int8-dynamic" not in ids and "npu-tflite-fp32" not in ids


def test_refuses_missing_file(tmp_path):
    art = make_release(tmp_path / "art")
    (art / "gpu" / "gpu-tflite-fp16.tflite").unlink()
    with pytest.raises(ManifestBuildError, match=r"gpu-tflite-fp16\.tflite.*missing: re-export it"):
        _build(art, tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


def test_refuses_hash_mismatch_and_keeps_previous_manifest(tmp_path):
    art = make_release(tmp_path / "art")
    out = tmp_path / "m.json"
    _build(art, out)
    before = out.read_bytes()
    (art / "npu" / "npu-onnx-int8.onnx").write_bytes(b"tampered after export")
    with pytest.raises(ManifestBuildError, match=r"hash mismatch for .*npu-onnx-int8\.onnx"):
        _build(art, out)
    assert out.read_bytes() == before


def test_refuses_tier_without_model(tmp_path):
    art = make_release(tmp_path / "art", [v for v in FULL_RELEASE if v[0] != "dsp"])
    with pytest.raises(ManifestBuildError, match=r"tier 'dsp' has no model"):
        _build(art, tmp_path / "m.json")
    # Unless the release says which tiers it ships.
    manifest = _build(art, tmp_path / "m.json", cfg=ManifestConfig(tiers=("cpu", "gpu", "npu")))
    assert "dsp" not in {m.tier for m in manifest.models}
    with pytest.raises(ManifestBuildError, match=r"manifest.tiers names unknown tier\(s\) \['tpu'\]"):
        _build(art, tmp_path / "m.json", cfg=ManifestConfig(tiers=("cpu", "tpu")))


def test_refuses_platform_without_cpu_fallback(tmp_path):
    no_ios_cpu = [v for v in FULL_RELEASE if (v[0], v[1]) not in (("cpu", "coreml"), ("cpu", "onnx"))]
    art = make_release(tmp_path / "art", no_ios_cpu)
    with pytest.raises(ManifestBuildError, match=r"platform 'ios' has no CPU fallback.*coreml"):
        _build(art, tmp_path / "m.json")


def test_refuses_duplicate_variant_and_bad_inputs(tmp_path):
    art = make_release(tmp_path / "art")
    shutil.copytree(art / "gpu", art / "gpu_again")
    with pytest.raises(ManifestBuildError, match=r"two artifacts claim gpu-"):
        _build(art, tmp_path / "m.json")
    with pytest.raises(ManifestBuildError, match=r"artifacts folder not found"):
        _build(tmp_path / "nope", tmp_path / "m.json")
    with pytest.raises(ManifestBuildError, match=r"release id"):
        rules, chains = fixture_rules()
        build_manifest(art, tmp_path / "m.json", release_id="../../etc", cfg=ManifestConfig(), rules=rules,
                       fallback_chains=chains)
    with pytest.raises(ManifestBuildError, match=r"unknown placeholder\(s\) \['tier'\]"):
        _build(art, tmp_path / "m.json", cfg=ManifestConfig(url_template="https://x/{tier}/{file}"))


def test_refuses_unknown_tier(tmp_path):
    art = make_release(tmp_path / "art")
    write_artifact(art / "tpu", "tpu", "tflite", "fp16", "gpu")
    with pytest.raises(ManifestBuildError, match=r"tpu-tflite-fp16\.tflite is exported for tier 'tpu'"):
        _build(art, tmp_path / "m.json")


def test_refuses_invalid_report(tmp_path):
    art = make_release(tmp_path / "art")
    (art / "cpu" / "bad.tflite.report.json").write_text('{"artifact": "bad.tflite"}')
    with pytest.raises(ManifestBuildError, match=r"bad\.tflite\.report\.json is not a valid artifact report"):
        _build(art, tmp_path / "m.json")


def test_bench_json_adds_measured_latency(tmp_path):
    art = make_release(tmp_path / "art")
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"results": [
        {"artifact": "gpu/gpu-tflite-fp16.tflite", "p50_ms": 9.5, "p90_ms": 11.0, "runtime": "litert", "threads": 2},
        {"artifact": "gpu-tflite-fp16.tflite", "p50_ms": 12.0, "threads": 1},
        {"artifact": "cpu-onnx-fp32.onnx", "status": "failed", "p50_ms": 1.0},
    ]}))
    manifest = _build(art, tmp_path / "m.json", bench_json=bench)
    by_id = {m.id: m for m in manifest.models}
    gpu = by_id["gpu-tflite-fp16"].latency
    assert gpu.measured_p50_ms == 9.5 and gpu.measured_p90_ms == 11.0  # fastest thread count kept
    assert "threads=2" in gpu.measured_on
    assert by_id["cpu-onnx-fp32"].latency.measured_p50_ms is None
    bench.write_text("[1, 2")
    with pytest.raises(ManifestBuildError, match="cannot read bench results"):
        load_bench(bench)


def test_schema_rejects_broken_manifests(tmp_path):
    art = make_release(tmp_path / "art")
    out = tmp_path / "m.json"
    _build(art, out)
    raw = json.loads(out.read_text())

    def check(mutate, pattern):
        bad = json.loads(json.dumps(raw))
        mutate(bad)
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(bad))
        with pytest.raises(ManifestInvalid, match=pattern):
            load_manifest(path)

    check(lambda m: m.update(schema_version="2.0"), r"schema_version.*upgrade")
    check(lambda m: m["models"][0].update(sha256="xyz"), r"models\.0\.sha256")
    check(lambda m: m["models"][0].update(file="../../etc/passwd"), r"relative posix path")
    check(lambda m: m["fallback_chains"].update(android=["npu", "gpu"]), r"must end with the CPU tier")
    check(lambda m: m.update(models=[x for x in m["models"] if x["tier"] != "cpu" or x["platform"] != "ios"
                                     and x["platform"] != "any"]), r"platform 'ios' has no CPU fallback")
    check(lambda m: m["models"].append(m["models"][0]), r"duplicate id")
    check(lambda m: m["tier_rules"]["accelerators"]["android"].update({"tpu": "tpu"}), r"unknown tier")
    check(lambda m: m["tier_rules"]["gpu_rules"].append({"pattern": "adreno(", "tier": "gpu"}), r"not a valid regex")
    with pytest.raises(ManifestInvalid, match="cannot read manifest"):
        load_manifest(tmp_path / "absent.json")


def test_committed_json_schema_is_current():
    assert SCHEMA_FILE.is_file(), f"missing {SCHEMA_FILE}: run python -m mobile_pipeline.manifest.export_schema"
    assert SCHEMA_FILE.read_text(encoding="utf-8") == manifest_json_schema_text(), (
        "schemas/manifest.schema.json is stale: run python -m mobile_pipeline.manifest.export_schema"
    )

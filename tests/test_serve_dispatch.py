"""Dispatcher: real devices get the right model; it agrees with the reference classifier."""

from __future__ import annotations

import itertools

import pytest
from manifest_fixtures import GIB, fixture_rules, make_release

from mobile_pipeline.config import ManifestConfig
from mobile_pipeline.manifest.builder import build_manifest
from mobile_pipeline.serve import dispatch as dispatch_module
from mobile_pipeline.serve.dispatch import Dispatcher
from mobile_pipeline.tiers.catalog import load_catalog
from mobile_pipeline.tiers.classifier import classify
from mobile_pipeline.tiers.device_info import DeviceInfo


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """A manifest over the real catalog and tier rules (device_tiers/), with every tier's variants."""
    root = tmp_path_factory.mktemp("real")
    return build_manifest(make_release(root / "art"), root / "manifest.json", release_id="real-1",
                          cfg=ManifestConfig())


@pytest.fixture(scope="module")
def dispatcher(real):
    return Dispatcher(real)


# (what, device info, tier, model id, first fallback or None)
DEVICES = [
    ("Galaxy S24 (Snapdragon 8 Gen 3)",
     dict(platform="android", os_version="14", soc_manufacturer="QTI", soc_model="SM8650", ram_bytes=8 * GIB,
          gpu_renderer="Adreno (TM) 750", accelerators=["gpu", "npu"]),
     "npu", "npu-tflite-int8-full", "gpu-tflite-fp16"),
    ("Snapdragon 8 Gen 2 with a bin suffix and Qualcomm spelled out",
     dict(platform="android", os_version="13", soc_manufacturer="Qualcomm Technologies, Inc", soc_model="SM8550-AB",
          ram_bytes=12 * GIB), "npu", "npu-tflite-int8-full", "gpu-tflite-fp16"),
    ("Redmi Note 12 Pro (Dimensity 1080, mid-range)",
     dict(platform="android", os_version="13", soc_manufacturer="Mediatek", soc_model="MT6877V/ZA", ram_bytes=6 * GIB),
     "dsp", "dsp-tflite-int8-full", "cpu-tflite-fp32"),
    ("Galaxy A13 (Exynos 850, old/low-end)",
     dict(platform="android", os_version="12", soc_manufacturer="Samsung", soc_model="s5e3830", ram_bytes=4 * GIB),
     "cpu", "cpu-tflite-fp32", None),
    ("Galaxy S10 (Exynos 9820)",
     dict(platform="android", os_version="12", soc_manufacturer="Samsung", soc_model="exynos9820", ram_bytes=8 * GIB),
     "gpu", "gpu-tflite-fp16", "dsp-tflite-int8-full"),
    ("Pixel 8 (Tensor G3, reported by board name)",
     dict(platform="android", os_version="14", soc_manufacturer="Google", soc_model="zuma", ram_bytes=8 * GIB),
     "npu", "npu-tflite-int8-full", "gpu-tflite-fp16"),
    ("iPhone 15 Pro (A17 Pro)", dict(platform="ios", os_version="17.2", soc_model="iPhone16,1", ram_bytes=8 * GIB),
     "npu", "npu-coreml-w8", "gpu-coreml-fp16"),
    ("iPhone 8 (A11: ANE not used by Core ML)", dict(platform="ios", os_version="16.7", soc_model="iPhone10,1"),
     "gpu", "gpu-coreml-fp16", "cpu-coreml-fp32"),
    ("iPhone 7 (A10)", dict(platform="ios", os_version="15.8", soc_model="iPhone9,3"), "cpu", "cpu-coreml-fp32", None),
    ("iPhone XS on iOS 15 (npu needs iOS 16)", dict(platform="ios", os_version="15.7", soc_model="iPhone11,2"),
     "gpu", "gpu-coreml-fp16", "cpu-coreml-fp32"),
    ("future iPhone the catalog does not know", dict(platform="ios", soc_model="iPhone30,1"),
     "npu", "npu-coreml-w8", "gpu-coreml-fp16"),
    ("unknown SoC", dict(platform="android", soc_manufacturer="Acme", soc_model="ZX-81", ram_bytes=4 * GIB),
     "cpu", "cpu-tflite-fp32", None),
    ("lots of RAM, no accelerator", dict(platform="android", soc_manufacturer="Acme", soc_model="Z9",
                                         ram_bytes=24 * GIB, gpu_renderer="PowerVR Rogue GE8320"),
     "cpu", "cpu-tflite-fp32", None),
    ("no SoC reported, Adreno 740 + 8 GiB: the Snapdragon 8 family by GPU",
     dict(platform="android", os_version="13", gpu_renderer="Adreno (TM) 740", ram_bytes=8 * GIB),
     "npu", "npu-tflite-int8-full", "gpu-tflite-fp16"),
    ("no SoC reported, Adreno 740 + 3 GiB: RAM does not corroborate, the GPU rule decides",
     dict(platform="android", os_version="13", gpu_renderer="Adreno (TM) 740", ram_bytes=3 * GIB),
     "gpu", "gpu-tflite-fp16", "cpu-tflite-fp32"),
    ("a 2026 Snapdragon the catalog does not know (family rule)",
     dict(platform="android", os_version="16", soc_manufacturer="QTI", soc_model="SM8950", ram_bytes=16 * GIB),
     "npu", "npu-tflite-int8-full", "gpu-tflite-fp16"),
    ("flagship SoC with 2 GiB RAM", dict(platform="android", os_version="14", soc_manufacturer="QTI",
                                         soc_model="SM8650", ram_bytes=2 * GIB), "gpu", "gpu-tflite-fp16", "dsp-tflite-int8-full"),
    ("flagship SoC on Android 9 (NNAPI too old)", dict(platform="android", os_version="9", soc_manufacturer="QTI",
                                                       soc_model="SM8650", ram_bytes=8 * GIB), "gpu", "gpu-tflite-fp16",
     "cpu-tflite-fp32"),
    ("a Snapdragon claiming to be iOS", dict(platform="ios", soc_manufacturer="QTI", soc_model="SM8650"),
     "cpu", "cpu-coreml-fp32", None),
    ("platform other (ONNX only)", dict(platform="other", soc_model="SM8650"), "cpu", "cpu-onnx-fp32", None),
    ("nothing reported", dict(), "cpu", "cpu-tflite-fp32", None),
]


@pytest.mark.parametrize("what, info, tier, model_id, first_fallback", DEVICES, ids=[d[0] for d in DEVICES])
def test_real_devices(dispatcher, what, info, tier, model_id, first_fallback):
    selection = dispatcher.select(DeviceInfo.model_validate(info))
    assert (selection.tier, selection.model.id) == (tier, model_id), what
    assert (selection.fallbacks[0].id if selection.fallbacks else None) == first_fallback
    # Fallbacks go strictly down the chain and end with the CPU model.
    tiers = [selection.tier, *(f.tier for f in selection.fallbacks)]
    assert tiers[-1] == "cpu" and len(set(tiers)) == len(tiers)
    assert all(f.url.startswith("https://models.example.invalid/real-1/") for f in selection.fallbacks)


def test_vendor_delegates(dispatcher):
    qualcomm = dispatcher.select({"platform": "android", "soc_manufacturer": "QTI", "soc_model": "SM8650"})
    mediatek = dispatcher.select({"platform": "android", "soc_manufacturer": "Mediatek", "soc_model": "MT6989"})
    pixel = dispatcher.select({"platform": "android", "soc_manufacturer": "Google", "soc_model": "Tensor G3"})
    assert (qualcomm.model.delegate, mediatek.model.delegate, pixel.model.delegate) == ("qnn", "neuron", "nnapi")
    assert qualcomm.fallbacks[0].delegate == "gpu"  # the GPU model keeps its own delegate


def _device_table() -> list[DeviceInfo]:
    """Every catalog chip under each spelling, with RAM/OS variations, plus capability-only devices."""
    infos = []
    for entry in load_catalog():
        if entry.vendor == "apple":
            for machine, os_version in itertools.product(entry.ios_machine_ids[:2], ("15.0", "17.1")):
                infos.append(DeviceInfo(platform="ios", soc_model=machine, os_version=os_version))
            continue
        for manufacturer, model in itertools.product(entry.manufacturers, (entry.model, *entry.aliases[:1])):
            for ram, os_version in ((None, None), (int(1.8 * GIB), "14"), (12 * GIB, "9"), (12 * GIB, "14")):
                infos.append(DeviceInfo(platform="android", soc_manufacturer=manufacturer, soc_model=model,
                                        ram_bytes=ram, os_version=os_version))
    renderers = ["Adreno (TM) 740", "Adreno (TM) 610", "Mali-G76 MP12", "Mali-G76 MP4", "Mali-G715", "Mali-G57 MC2",
                 "Immortalis-G720", "PowerVR Rogue GE8320", "Xclipse 920", "Adreno (TM) 830", "Adreno (TM) 710",
                 "Mali-G925-Immortalis MC12", "Mali-G1-Ultra MC12", "ANGLE (Samsung Xclipse 540) on Vulkan 1.3.279",
                 "PowerVR D-Series DXT-48-1536 MC1", None]
    # RAM around the family rules' corroboration thresholds (5 and 7 GiB) and the tier floors
    for renderer, accelerators, ram in itertools.product(renderers, ((), ("hexagon",), ("npu", "gpu"), ("nnapi",)),
                                                         (None, 3 * GIB, int(5.5 * GIB), 8 * GIB)):
        infos.append(DeviceInfo(platform="android", gpu_renderer=renderer, accelerators=accelerators,
                                ram_bytes=ram, os_version="13"))
    # chips no catalog entry names: each family's next part number, some with a renderer
    for model, renderer in itertools.product(("SM8950", "SM8975-AC", "SM7850", "SM7735", "SM6650", "SM4635", "SM4250",
                                              "SDM670", "MT6995", "MT6997V/ZA", "MT6898", "MT6879", "MT6855", "MT6836",
                                              "s5e9965", "exynos2600", "s5e8865", "Tensor G6", "gs301", "Kirin9020",
                                              "T820", "ZX-9000"),
                                             (None, "Adreno (TM) 830", "Mali-G52 MC2")):
        for manufacturer, ram, os_version in (("QTI", 12 * GIB, "16"), (None, int(2.2 * GIB), "9")):
            infos.append(DeviceInfo(platform="android", soc_manufacturer=manufacturer, soc_model=model,
                                    gpu_renderer=renderer, ram_bytes=ram, os_version=os_version))
        infos.append(DeviceInfo(platform="other", soc_model=model))
    for model, renderer, accelerators in itertools.product(("iPhone30,1", "iPhone19,3", "iPhone10,4", "iPhone8,1",
                                                            "iPad20,1", "iPod9,1", None),
                                                           ("Apple A15 GPU", "Apple M2 GPU", None), ((), ("ane",))):
        infos.append(DeviceInfo(platform="ios", soc_model=model, gpu_renderer=renderer, accelerators=accelerators,
                                os_version="17.0"))
    infos += [DeviceInfo(platform="other", soc_model="SM8650"), DeviceInfo(platform="ios", soc_model="SM8650"),
              DeviceInfo(platform="android", soc_model="iPhone16,1")]
    return infos


def test_agrees_with_the_reference_classifier(dispatcher):
    """The manifest-driven index and mobile_pipeline.tiers.classify give the same tier, fallbacks and why."""
    table = _device_table()
    assert len(table) > 900
    mismatches = []
    matched = set()
    for info in table:
        expected = classify(info)
        got = dispatcher.select(info)
        chosen = (got.tier, tuple(f.tier for f in got.fallbacks), got.matched_by, got.why)
        matched.add(got.matched_by)
        if chosen != (expected.tier, expected.fallbacks, expected.matched_by, expected.why):
            mismatches.append((info.model_dump(exclude_none=True), chosen, expected.chain, expected.why))
    assert not mismatches, mismatches[:5]
    assert matched == {"catalog", "family", "rules", "default"}


def test_why_names_the_rule_and_each_step_down(dispatcher):
    def why(**info):
        return dispatcher.select(DeviceInfo(**info)).why

    assert why(platform="android", soc_manufacturer="QTI", soc_model="SM8750", ram_bytes=12 * GIB) == ("catalog:SM8750",)
    assert why(platform="android", soc_model="SM8950", ram_bytes=2 * GIB, os_version="16") == (
        "family:snapdragon-8", "ram:npu")
    assert why(platform="android", soc_model="SM8950", ram_bytes=12 * GIB, os_version="9") == (
        "family:snapdragon-8", "os:npu")  # Android 9: no NNAPI 1.2 for npu; gpu (Android 7+) serves
    assert why(platform="android", gpu_renderer="Adreno (TM) 830", ram_bytes=3 * GIB) == ("rules:gpu",)
    assert why(platform="android") == ("default",)
    assert why(platform="other", soc_model="SM8650") == ("catalog:SM8650", "unserved:npu")
    assert why(platform="ios", soc_model="iPhone19,3") == ("family:iphone",)


def test_missing_tier_falls_down_the_chain(tmp_path):
    rules, chains = fixture_rules()
    no_npu = [("cpu", "tflite", "fp32", "xnnpack"), ("gpu", "tflite", "fp16", "gpu"), ("dsp", "tflite", "int8-full", "nnapi"),
              ("cpu", "coreml", "fp32", "coreml-cpu")]
    manifest = build_manifest(make_release(tmp_path / "art", no_npu), tmp_path / "m.json", release_id="r",
                              cfg=ManifestConfig(tiers=("cpu", "gpu", "dsp")), rules=rules, fallback_chains=chains)
    d = Dispatcher(manifest)
    flagship = d.select({"platform": "android", "soc_manufacturer": "QTI", "soc_model": "SM8650", "ram_bytes": 8 * GIB})
    assert flagship.classified_tier == "npu" and flagship.tier == "gpu"
    assert [f.id for f in flagship.fallbacks] == ["dsp-tflite-int8-full", "cpu-tflite-fp32"]
    iphone = d.select({"platform": "ios", "soc_model": "iPhone16,1"})
    assert iphone.tier == "cpu" and iphone.model.id == "cpu-coreml-fp32"


def test_answers_are_shared_and_bounded(dispatcher, monkeypatch):
    a = dispatcher.select({"platform": "android", "soc_manufacturer": "QTI", "soc_model": "SM8650", "ram_bytes": 8 * GIB})
    b = dispatcher.select({"platform": "android", "soc_manufacturer": "Qualcomm", "soc_model": "SM8650-AC",
                           "ram_bytes": 9 * GIB})
    assert a is b  # same answer, same pre-encoded body and ETag
    assert a.body.startswith(b"{") and a.etag.startswith('"')
    monkeypatch.setattr(dispatch_module, "MEMO_MAX", 50)
    d = Dispatcher(dispatcher.manifest)
    for i in range(500):
        d.select({"soc_model": f"unknown-{i}", "gpu_renderer": f"GPU {i}"})
    assert len(d._memo) <= 50 and len(d._cache) < 10  # hostile strings never grow the answer cache


def test_a_1_0_manifest_without_families_still_dispatches(tmp_path):
    """Manifests written before family rules (schema 1.0, iOS generations as a table) keep working."""
    rules, chains = fixture_rules()
    manifest = build_manifest(make_release(tmp_path / "art"), tmp_path / "m.json", release_id="old", cfg=ManifestConfig(),
                              rules=rules, fallback_chains=chains)
    raw = manifest.model_dump(mode="json")
    raw["schema_version"] = "1.0"
    del raw["tier_rules"]["families"]
    old = type(manifest).model_validate(raw)
    answer = Dispatcher(old).select({"platform": "ios", "soc_model": "iPhone30,1", "os_version": "19.0"})
    assert (answer.tier, answer.matched_by, answer.why) == ("npu", "rules", ("rules:ios-machine",))
    unknown = Dispatcher(old).select({"platform": "android", "soc_model": "SM8950", "ram_bytes": 12 * GIB})
    assert (unknown.tier, unknown.why) == ("cpu", ("default",))

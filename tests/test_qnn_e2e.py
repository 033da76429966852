"""End to end on a small export: a Snapdragon 8 Gen 3 asks the server and gets the v75 model.

cpu and npu tiers of a tiny generator at 32 px, ONNX only: the npu int8 QDQ model is compiled
for every Hexagon arch of the npu tier's catalog SoCs, each gated on the HTP emulator; the
manifest built from the folder (real tier rules) answers SM8650 with the v75 precompiled
model, then the QDQ model it came from. Play targets it the same way.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mobile_pipeline.exporters.qnn import qnn_unavailable_reason

UNAVAILABLE = qnn_unavailable_reason()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or "")
SIDE = 32
GIB = 1 << 30


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    import torch

    from mobile_pipeline.exporters.api import export_tier
    from mobile_pipeline.exporters.photos import bundled_photos, split_photos
    from mobile_pipeline.nets.generator import build_generator, trained_like

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("qnn_e2e")
    # No dilated branch: the npu tier forbids it (arch_constraints).
    generator = trained_like(build_generator("s12_e16-32-48_b3xfs_br-dw3.conv2_f-sta.sta.sta_u-nearest_a-relu"))
    cal, val = split_photos(bundled_photos(), 2, 2)
    reports = {}
    for tier in ("cpu", "npu"):  # same generator and side: the float ONNX is converted once
        for r in export_tier(generator, tier, root / "art" / tier, calibration=cal, validation=val, resolution=SIDE,
                             formats=("onnx",), progress=False):
            reports[r.artifact] = r
    return root, reports


def test_every_npu_arch_is_precompiled_and_gated(release):
    from mobile_pipeline.tiers.htp import tier_htp_archs

    root, reports = release
    archs = tier_htp_archs("npu")
    assert "v75" in archs
    for arch in archs:
        report = reports[f"npu_int8_htp-{arch}_ctx.onnx"]
        assert report.passed, report.reasons
        assert report.parity.runnable and report.parity.psnr_db >= report.parity.gate_db
        assert report.qnn.compiled and report.qnn.nodes_on_htp == report.qnn.nodes_total > 0
        assert report.qnn.context_bytes > 0 and report.qnn.emulated_frame_ms > 0 and report.qnn.psnr_vs_cpu_qdq_db > 30
        assert (root / "art" / "npu" / report.artifact).is_file()
    assert not any(name.startswith("cpu_") and "htp" in name for name in reports)  # cpu is no QNN tier


def test_server_answers_sm8650_with_the_v75_model(release, tmp_path):
    from mobile_pipeline.config import ManifestConfig
    from mobile_pipeline.manifest.builder import build_manifest
    from mobile_pipeline.manifest.play import build_play_targets, play_level_for
    from mobile_pipeline.serve.app import create_app
    from mobile_pipeline.serve.settings import ServeSettings

    root, _ = release
    manifest = build_manifest(root / "art", tmp_path / "manifest.json", release_id="qnn-e2e",
                              cfg=ManifestConfig(tiers=("cpu", "npu")))
    with TestClient(create_app(tmp_path / "manifest.json", ServeSettings(reload_interval_s=0, handle_sighup=False))) as c:
        body = c.get("/v1/select", params={"platform": "android", "soc_manufacturer": "QTI", "soc_model": "SM8650",
                                           "ram_bytes": 12 * GIB}).json()
        generic = c.get("/v1/select", params={"platform": "android", "soc_manufacturer": "Google",
                                              "soc_model": "Tensor G3", "ram_bytes": 12 * GIB}).json()
    assert body["model"]["id"] == "npu-onnx-int8-htp-v75" and body["model"]["htp_arch"] == "v75"
    assert body["model"]["runtime"] == "onnxruntime-qnn" and body["model"]["delegate"] == "qnn"
    assert [f["id"] for f in body["fallbacks"]] == ["npu-onnx-int8", "cpu-onnx-fp32"]
    assert generic["model"]["id"] == "npu-onnx-int8" and generic["model"]["htp_arch"] is None
    config, targets = build_play_targets(manifest)
    level = play_level_for(config, soc_manufacturer="QTI", soc_model="SM8650", ram_bytes=12 * GIB)
    assert targets[level] == ("npu", "v75")

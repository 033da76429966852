"""The dispatch server's HTTP surface: one outcome per test."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from manifest_fixtures import build_fixture_manifest, fixture_rules, make_release

from mobile_pipeline.config import ManifestConfig
from mobile_pipeline.manifest.builder import build_manifest
from mobile_pipeline.manifest.schema import SCHEMA_VERSION
from mobile_pipeline.serve.app import create_app
from mobile_pipeline.serve.settings import ServeSettings

FLAGSHIP = {"platform": "android", "soc_manufacturer": "QTI", "soc_model": "SM8650", "ram_bytes": 12 << 30,
            "os_version": "14", "accelerators": ["gpu", "npu"]}


@pytest.fixture(scope="module")
def manifest_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    build_fixture_manifest(root, "rel-1")
    return root / "manifest.json"


@pytest.fixture(scope="module")
def client(manifest_path):
    app = create_app(manifest_path, ServeSettings(reload_interval_s=0, handle_sighup=False, max_body_bytes=1024))
    with TestClient(app) as client:
        yield client


def test_get_select_answers_model_and_fallbacks(client):
    r = client.get("/v1/select", params=FLAGSHIP)
    assert r.status_code == 200
    body = r.json()
    assert body["tier"] == "npu" and body["matched_by"] == "catalog" and body["soc"] == "SM8650"
    assert body["why"] == ["fixture:SM8650"]  # the deciding rule (these tests' hand-written rules)
    assert body["model"]["id"] == "npu-tflite-int8-full"
    assert body["model"]["delegate"] == "qnn"  # Qualcomm's own delegate for the NPU tier
    assert set(body["model"]) >= {"id", "url", "sha256", "bytes", "format", "precision", "delegate"}
    assert [f["id"] for f in body["fallbacks"]] == ["gpu-tflite-fp16", "dsp-tflite-int8-full", "cpu-tflite-fp32"]
    assert r.headers["cache-control"] == "public, max-age=300"
    assert r.headers["etag"].startswith('"')


def test_post_select_matches_get(client):
    get = client.get("/v1/select", params=FLAGSHIP)
    post = client.post("/v1/select", json=FLAGSHIP)
    assert post.status_code == 200
    assert post.json() == get.json() and post.headers["etag"] == get.headers["etag"]


def test_accelerators_comma_separated_in_query(client):
    r = client.get("/v1/select", params={"platform": "android", "accelerators": "gpu,hexagon"})
    assert r.status_code == 200 and r.json()["tier"] == "dsp" and r.json()["matched_by"] == "rules"
    both = client.get("/v1/select", params=[("accelerators", "hexagon"), ("accelerators", "npu")])
    assert both.json()["tier"] == "npu"


def test_if_none_match_gives_304(client):
    etag = client.get("/v1/select", params=FLAGSHIP).headers["etag"]
    r = client.get("/v1/select", params=FLAGSHIP, headers={"If-None-Match": f'"other", {etag}'})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
    assert client.post("/v1/select", json=FLAGSHIP, headers={"If-None-Match": etag}).status_code == 304
    assert client.get("/v1/select", params=FLAGSHIP, headers={"If-None-Match": '"stale"'}).status_code == 200


def test_unknown_device_gets_cpu_model(client):
    r = client.get("/v1/select", params={"platform": "android", "soc_manufacturer": "Acme", "soc_model": "ZX-81",
                                         "ram_bytes": 64 << 30})
    assert r.status_code == 200
    assert r.json()["tier"] == "cpu" and r.json()["model"]["id"] == "cpu-tflite-fp32" and r.json()["fallbacks"] == []


def test_empty_query_is_a_valid_unknown_android_device(client):
    r = client.get("/v1/select")
    assert r.status_code == 200 and r.json()["tier"] == "cpu"


@pytest.mark.parametrize("params, field", [
    ({"ram_bytes": "-5"}, "ram_bytes"),
    ({"ram_bytes": str(1 << 50)}, "ram_bytes"),
    ({"ram_bytes": "lots"}, "ram_bytes"),
    ({"platform": "windows"}, "platform"),
    ({"os_version": "14; rm -rf /"}, "os_version"),
    ({"soc_modle": "SM8650"}, "soc_modle"),
])
def test_bad_query_is_422_naming_the_field(client, params, field):
    r = client.get("/v1/select", params=params)
    assert r.status_code == 422
    assert field in r.json()["error"] and r.json()["fields"][0]["field"] == field


@pytest.mark.parametrize("body, field", [
    ({"ram_bytes": -1}, "ram_bytes"),
    ({"platform": "android", "color": "red"}, "color"),
    ({"accelerators": ["gpu"] * 17}, "accelerators"),
    ({"soc_model": "x" * 65}, "soc_model"),
    ({"os_version": 14.0}, "os_version"),
])
def test_bad_body_is_422_naming_the_field(client, body, field):
    r = client.post("/v1/select", json=body)
    assert r.status_code == 422 and field in r.json()["error"]


def test_malformed_json_is_400(client):
    r = client.post("/v1/select", content=b'{"platform": "android",', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]


def test_missing_body_is_422(client):
    r = client.post("/v1/select")
    assert r.status_code == 422 and "body" in r.json()["error"]


def test_oversize_body_is_413(client):
    r = client.post("/v1/select", content=json.dumps({"app_version": "1", "pad": "x" * 5000}),
                    headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_oversize_streamed_body_without_length_is_413(client):
    def chunks():
        yield b'{"app_version": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'"}'

    r = client.post("/v1/select", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_overlong_query_is_414(client):
    assert client.get("/v1/select", params={"gpu_renderer": "A" * 3000}).status_code == 414


def test_paths_in_input_never_reach_the_file_system(client, manifest_path):
    r = client.get("/v1/select", params={"soc_model": "../../../../etc/passwd", "soc_manufacturer": "/dev/zero"})
    assert r.status_code == 200
    assert r.json()["model"]["url"].startswith("https://models.example.invalid/rel-1/")


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["release_id"] == "rel-1"


def test_manifest_info_has_version_and_hash(client, manifest_path):
    import hashlib

    r = client.get("/v1/manifest")
    assert r.status_code == 200
    info = r.json()
    assert info["release_id"] == "rel-1" and info["schema_version"] == SCHEMA_VERSION
    assert info["sha256"] == hashlib.sha256(manifest_path.read_bytes()).hexdigest()
    assert r.headers["etag"] == f'"{info["sha256"]}"'
    assert client.get("/v1/manifest", headers={"If-None-Match": r.headers["etag"]}).status_code == 304


def test_ios_device_without_models_for_platform_other_is_404(tmp_path):
    rules, chains = fixture_rules()
    only_android = [("cpu", "tflite", "fp32", "xnnpack"), ("gpu", "tflite", "fp16", "gpu"),
                    ("npu", "tflite", "int8-full", "nnapi"), ("dsp", "tflite", "int8-full", "nnapi")]
    path = tmp_path / "m.json"
    build_manifest(make_release(tmp_path / "art", only_android), path, release_id="r", cfg=ManifestConfig(),
                   rules=rules, fallback_chains=chains)
    with TestClient(create_app(path, ServeSettings(reload_interval_s=0, handle_sighup=False))) as c:
        r = c.get("/v1/select", params={"platform": "ios", "soc_model": "iPhone16,1"})
        assert r.status_code == 404 and "no model for platform 'ios'" in r.json()["error"]


def test_app_refuses_to_start_on_invalid_manifest(tmp_path):
    from mobile_pipeline.manifest.schema import ManifestInvalid

    path = tmp_path / "m.json"
    path.write_text('{"release_id": "x"}')
    with pytest.raises(ManifestInvalid, match="invalid manifest"):
        with TestClient(create_app(path, ServeSettings(reload_interval_s=0, handle_sighup=False))):
            pass


# ------------------------------------------------------- why, and its contract
@pytest.fixture(scope="module")
def real_client(tmp_path_factory):
    """A server over a manifest built from device_tiers/ (catalog, family rules, capability rules)."""
    root = tmp_path_factory.mktemp("serve-real")
    build_manifest(make_release(root / "art"), root / "manifest.json", release_id="real-1", cfg=ManifestConfig())
    app = create_app(root / "manifest.json", ServeSettings(reload_interval_s=0, handle_sighup=False))
    with TestClient(app) as client:
        yield client


def test_family_answer_carries_its_reasoning(real_client):
    device = {"platform": "android", "soc_manufacturer": "QTI", "soc_model": "SM8950", "ram_bytes": 2 << 30,
              "os_version": "16"}
    get = real_client.get("/v1/select", params=device)     # answered by the fast path
    post = real_client.post("/v1/select", json=device)     # and by FastAPI's route
    assert get.status_code == post.status_code == 200 and get.content == post.content
    body = get.json()
    assert (body["tier"], body["classified_tier"], body["matched_by"], body["soc"]) == ("gpu", "npu", "family", None)
    assert body["why"] == ["family:snapdragon-8", "ram:npu"]
    flagship = real_client.get("/v1/select", params={"soc_manufacturer": "QTI", "soc_model": "SM8750",
                                                      "gpu_renderer": "Adreno (TM) 830", "ram_bytes": 12 << 30}).json()
    assert (flagship["tier"], flagship["why"]) == ("npu", ["catalog:SM8750"])


def test_openapi_documents_the_answer_with_why(real_client):
    from mobile_pipeline.serve.schemas import SelectResponse

    spec = real_client.get("/openapi.json").json()
    for method in ("get", "post"):
        ok = spec["paths"]["/v1/select"][method]["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": "#/components/schemas/SelectResponse"}
    schema = spec["components"]["schemas"]["SelectResponse"]
    assert "why" in schema["required"] and schema["properties"]["why"]["type"] == "array"
    assert set(schema["properties"]["matched_by"]["enum"]) == {"catalog", "family", "rules", "default"}
    # real answers satisfy the documented model (extra fields are refused by it)
    for params in ({"soc_model": "SM8950"}, {"platform": "ios", "soc_model": "iPhone19,3"}, {}):
        SelectResponse.model_validate_json(real_client.get("/v1/select", params=params).content)

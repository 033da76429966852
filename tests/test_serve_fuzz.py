"""Property-based fuzzing of both /v1/select endpoints: whatever a client sends, never a 5xx.

Valid-looking device info must always get 200 with a model from the manifest; anything else
gets a 4xx. Example counts are modest so the file runs in seconds on 2 cores.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from manifest_fixtures import build_fixture_manifest

from mobile_pipeline.serve.app import create_app
from mobile_pipeline.serve.settings import ServeSettings

FIELDS = ["platform", "os_version", "soc_manufacturer", "soc_model", "gpu_renderer", "ram_bytes", "accelerators",
          "app_version"]
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])


@pytest.fixture(scope="module")
def manifest_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    build_fixture_manifest(root, "fuzz")
    return root / "manifest.json"


@pytest.fixture(scope="module")
def client(manifest_path):
    app = create_app(manifest_path, ServeSettings(reload_interval_s=0, handle_sighup=False))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def routed_client(manifest_path):
    """The same app without the GET fast path: every request goes through FastAPI's route."""
    app = create_app(manifest_path, ServeSettings(reload_interval_s=0, handle_sighup=False, fast_path=False))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


text = st.text(min_size=0, max_size=80)
junk = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), text,
                 st.lists(text, max_size=20), st.dictionaries(text, text, max_size=3))
plausible = st.fixed_dictionaries({}, optional={
    "platform": st.sampled_from(["android", "ios", "other"]),
    "os_version": st.from_regex(r"\A[0-9]{1,3}(\.[0-9]{1,3}){0,2}\Z"),
    "soc_manufacturer": st.sampled_from(["QTI", "Qualcomm", "Mediatek", "Samsung", "Google", "Apple", "", "Acme"]),
    "soc_model": st.one_of(st.sampled_from(["SM8650", "MT6877", "s5e9810", "Tensor G3", "iPhone16,1", "iPhone9,3"]),
                           st.text(max_size=64)),
    "gpu_renderer": st.one_of(st.sampled_from(["Adreno (TM) 750", "Mali-G715", "PowerVR"]), st.text(max_size=128)),
    "ram_bytes": st.integers(min_value=0, max_value=1 << 40),
    "accelerators": st.lists(st.sampled_from(["gpu", "npu", "hexagon", "ane", "nnapi", "x"]), max_size=16),
    "app_version": st.text(max_size=32),
})


def _check(response, valid: bool) -> None:
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        body = response.json()
        assert body["release_id"] == "fuzz" and body["model"]["url"].startswith("https://models.example.invalid/fuzz/")
    elif valid:
        # Plausible input may still be refused for its strings (e.g. whitespace-only), but only as 422.
        assert response.status_code == 422, response.text


@FUZZ
@given(body=plausible)
def test_post_plausible_devices(client, body):
    _check(client.post("/v1/select", json=body), valid=True)


@FUZZ
@given(body=st.one_of(junk, st.dictionaries(st.sampled_from(FIELDS + ["extra"]), junk, max_size=8)))
def test_post_arbitrary_json(client, body):
    # Python's encoder (unlike httpx's) writes NaN/Infinity too: the server must refuse those tokens, not crash.
    raw = json.dumps(body).encode()
    _check(client.post("/v1/select", content=raw, headers={"content-type": "application/json"}), valid=False)


@FUZZ
@given(raw=st.binary(max_size=300), content_type=st.sampled_from(["application/json", "text/plain", "", "x/y"]))
def test_post_arbitrary_bytes(client, raw, content_type):
    _check(client.post("/v1/select", content=raw, headers={"content-type": content_type}), valid=False)


@FUZZ
@given(params=st.lists(st.tuples(st.sampled_from(FIELDS + ["x", ""]), st.text(max_size=60)), max_size=10))
def test_get_arbitrary_query(client, params):
    _check(client.get("/v1/select", params=params), valid=False)


@FUZZ
@given(body=plausible)
def test_get_plausible_devices(client, body):
    params = {k: (",".join(v) if isinstance(v, list) else v) for k, v in body.items()}
    _check(client.get("/v1/select", params=params), valid=True)


@FUZZ
@given(body=plausible, junk_params=st.lists(st.tuples(st.sampled_from(FIELDS + ["x"]), st.text(max_size=20)), max_size=2),
       conditional=st.booleans())
def test_get_fast_path_answers_exactly_like_the_route(client, routed_client, body, junk_params, conditional):
    params = [(k, ",".join(v) if isinstance(v, list) else str(v)) for k, v in body.items()] + junk_params
    headers = {}
    if conditional:
        first = routed_client.get("/v1/select", params=params)
        headers["If-None-Match"] = first.headers.get("etag", '"none"')
    fast = client.get("/v1/select", params=params, headers=headers)
    routed = routed_client.get("/v1/select", params=params, headers=headers)
    assert fast.status_code == routed.status_code
    assert fast.content == routed.content
    for name in ("etag", "cache-control", "content-type", "content-length"):
        assert fast.headers.get(name) == routed.headers.get(name), name


@FUZZ
@given(body=st.one_of(plausible, st.dictionaries(st.sampled_from(FIELDS + ["x"]), junk, max_size=4)),
       conditional=st.booleans(), content_type=st.sampled_from(["application/json", "application/json; charset=utf-8",
                                                                 "text/plain"]))
def test_post_fast_path_answers_exactly_like_the_route(client, routed_client, body, conditional, content_type):
    raw = json.dumps(body).encode()
    headers = {"content-type": content_type}
    if conditional:
        first = routed_client.post("/v1/select", content=raw, headers=headers)
        headers["If-None-Match"] = first.headers.get("etag", '"none"')
    fast = client.post("/v1/select", content=raw, headers=headers)
    routed = routed_client.post("/v1/select", content=raw, headers=headers)
    assert fast.status_code == routed.status_code
    assert fast.content == routed.content
    for name in ("etag", "cache-control", "content-type", "content-length"):
        assert fast.headers.get(name) == routed.headers.get(name), name


def test_fuzz_client_sees_server_errors():
    """The checks above would catch a 5xx: this app raises on purpose and the client reports 500."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as c:
        with pytest.raises(AssertionError):
            _check(c.get("/boom"), valid=False)

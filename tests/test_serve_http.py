"""HTTP method handling: OPTIONS and 405 answers name every method a path serves."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from manifest_fixtures import build_fixture_manifest

from mobile_pipeline.serve.app import create_app
from mobile_pipeline.serve.settings import ServeSettings


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("http")
    build_fixture_manifest(root, "http")
    app = create_app(root / "manifest.json", ServeSettings(reload_interval_s=0, handle_sighup=False))
    with TestClient(app) as client:
        yield client


def test_options_select_lists_get_and_post(client):
    r = client.options("/v1/select")
    assert r.status_code == 204 and r.headers["allow"] == "GET, POST, OPTIONS" and r.content == b""


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_unsupported_method_on_select_is_405_with_every_allowed_method(client, method):
    r = client.request(method, "/v1/select", json={})
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST, OPTIONS"
    assert r.json() == {"error": f"method {method} is not allowed on /v1/select; allowed: GET, POST, OPTIONS"}


def test_other_paths_list_their_own_methods(client):
    assert client.post("/healthz").headers["allow"] == "GET, OPTIONS"
    assert client.options("/v1/manifest").headers["allow"] == "GET, OPTIONS"
    assert client.options("/nowhere").status_code == 404  # no resource, nothing to allow


def test_ram_bytes_must_be_an_integer(client):
    body = {"platform": "android", "ram_bytes": False}
    r = client.post("/v1/select", json=body)
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "ram_bytes"
    assert client.post("/v1/select", json={**body, "ram_bytes": 1.5}).status_code == 422
    assert client.get("/v1/select", params={"ram_bytes": "8589934592"}).status_code == 200  # query digits still work
    assert client.get("/v1/select", params={"ram_bytes": "lots"}).status_code == 422


def test_overlong_accelerator_name_is_422_naming_the_field(client):
    r = client.post("/v1/select", json={"accelerators": ["x" * 33]})
    assert r.status_code == 422 and r.json()["fields"][0]["field"].startswith("accelerators")

"""Hot reload: a valid new manifest is swapped in, an invalid one is refused and the old serves."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import pytest
from fastapi.testclient import TestClient
from manifest_fixtures import fixture_rules, make_release

from mobile_pipeline.config import ManifestConfig
from mobile_pipeline.manifest.builder import build_manifest
from mobile_pipeline.manifest.schema import ManifestInvalid
from mobile_pipeline.serve.app import create_app
from mobile_pipeline.serve.reload import ManifestStore, Reloader
from mobile_pipeline.serve.settings import ServeSettings
from mobile_pipeline.utils.atomic import atomic_write_text


@pytest.fixture()
def release(tmp_path):
    """(manifest path, text of release rel-1, text of release rel-2)."""
    rules, chains = fixture_rules()
    art = make_release(tmp_path / "art")
    texts = []
    for rid in ("rel-1", "rel-2"):
        build_manifest(art, tmp_path / f"{rid}.json", release_id=rid, cfg=ManifestConfig(), rules=rules,
                       fallback_chains=chains)
        texts.append((tmp_path / f"{rid}.json").read_text())
    path = tmp_path / "manifest.json"
    atomic_write_text(path, texts[0])
    return path, texts[0], texts[1]


def _invalid(text: str) -> str:
    raw = json.loads(text)
    raw["models"] = [m for m in raw["models"] if m["tier"] != "cpu"]  # no CPU fallback anywhere
    raw["release_id"] = "rel-broken"
    return json.dumps(raw)


def test_store_reloads_valid_and_rejects_invalid(release, caplog):
    path, text1, text2 = release
    store = ManifestStore(path)
    assert store.current.manifest.release_id == "rel-1"
    assert store.check() == "unchanged"
    os.utime(path)  # touched, same bytes: not a reload
    assert store.check() == "unchanged" and store.reloads == 0

    atomic_write_text(path, text2)
    before = store.current
    assert store.check() == "reloaded"
    assert store.current.manifest.release_id == "rel-2" and store.current is not before
    assert store.current.dispatcher.select({"soc_model": "SM8650"}).release_id == "rel-2"

    atomic_write_text(path, _invalid(text1))
    with caplog.at_level("ERROR", logger="mobile_pipeline.serve"):
        assert store.check() == "rejected"
    assert store.current.manifest.release_id == "rel-2"
    assert "no CPU fallback" in store.last_error and "still serving release rel-2" in caplog.text
    # The same bad bytes are not re-parsed or re-logged on every poll.
    caplog.clear()
    assert store.check(force=True) == "rejected" and caplog.text == ""

    path.write_text("{ truncated")
    assert store.check() == "rejected" and "invalid manifest" in store.last_error
    path.unlink()
    assert store.check() == "rejected" and "cannot stat" in store.last_error
    rejected = store.rejected
    assert store.check() == "rejected" and store.rejected == rejected  # still missing: counted and logged once
    atomic_write_text(path, text1)
    assert store.check() == "reloaded" and store.current.manifest.release_id == "rel-1"
    assert store.last_error is None and store.reloads == 2


def test_store_refuses_to_start_without_a_valid_manifest(tmp_path):
    with pytest.raises(ManifestInvalid, match="cannot read manifest"):
        ManifestStore(tmp_path / "absent.json")


def _wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_server_polls_and_swaps(release):
    path, text1, text2 = release
    app = create_app(path, ServeSettings(reload_interval_s=0.05, handle_sighup=False))
    with TestClient(app) as client:
        first = client.get("/v1/select", params={"soc_model": "SM8650"})
        assert first.json()["release_id"] == "rel-1"
        body = {"platform": "android", "soc_model": "SM8650"}
        assert client.post("/v1/select", json=body).json()["release_id"] == "rel-1"
        atomic_write_text(path, text2)
        assert _wait_for(lambda: client.get("/v1/manifest").json()["release_id"] == "rel-2")
        # Byte-identical requests after the swap: the fast path's raw-request memo must not
        # answer from the old manifest.
        second = client.get("/v1/select", params={"soc_model": "SM8650"})
        assert second.json()["release_id"] == "rel-2"
        assert client.post("/v1/select", json=body).json()["release_id"] == "rel-2"
        assert second.headers["etag"] != first.headers["etag"]  # caches see the new release

        atomic_write_text(path, _invalid(text1))
        assert _wait_for(lambda: client.get("/v1/manifest").json()["rejected_reloads"] == 1)
        info = client.get("/v1/manifest").json()
        assert info["release_id"] == "rel-2" and "no CPU fallback" in info["last_reload_error"]
        assert client.get("/v1/select", params={"soc_model": "SM8650"}).json()["release_id"] == "rel-2"
        assert client.get("/healthz").json()["last_reload_error"]


def test_sighup_reloads(release):
    path, _, text2 = release
    store = ManifestStore(path)

    async def scenario():
        reloader = Reloader(store, interval_s=0, handle_sighup=True)
        await reloader.start()
        try:
            # Same size and a restored mtime: only SIGHUP's forced re-hash can notice this edit.
            st = path.stat()
            atomic_write_text(path, text2)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
            assert store.check() == "unchanged" and store.current.manifest.release_id == "rel-1"
            assert reloader._sighup_installed  # else SIGHUP's default action would end pytest
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(250):
                if store.current.manifest.release_id == "rel-2":
                    return True
                await asyncio.sleep(0.02)
            return False
        finally:
            await reloader.stop()

    assert asyncio.run(scenario())

"""A table of real phones (tests/fixtures/phones.csv): the tier each should get, and why.

Each row is asked of the reference classifier (device_tiers/ directly) and of the dispatch
server's index (a manifest built from device_tiers/), so the table checks both and that they agree.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from manifest_fixtures import make_release

from mobile_pipeline.config import ManifestConfig
from mobile_pipeline.manifest.builder import build_manifest
from mobile_pipeline.serve.dispatch import Dispatcher
from mobile_pipeline.tiers.classifier import Classifier
from mobile_pipeline.tiers.device_info import DeviceInfo

TABLE = Path(__file__).parent / "fixtures" / "phones.csv"
GiB = 1 << 30


def _rows() -> list[dict[str, str]]:
    lines = [line for line in TABLE.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines))


ROWS = _rows()


def _device(row: dict[str, str]) -> DeviceInfo:
    return DeviceInfo(platform=row["platform"], os_version=row["os_version"] or None,
                      soc_manufacturer=row["soc_manufacturer"] or None, soc_model=row["soc_model"] or None,
                      gpu_renderer=row["gpu_renderer"] or None,
                      ram_bytes=int(float(row["ram_gib"]) * GiB) if row["ram_gib"] else None)


@pytest.fixture(scope="module")
def classifier():
    return Classifier(overrides=[])


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory):
    root = tmp_path_factory.mktemp("phones")
    return Dispatcher(build_manifest(make_release(root / "art"), root / "manifest.json", release_id="phones",
                                     cfg=ManifestConfig()))


def test_table_is_real_phones_2019_to_2026_with_reasons():
    assert len(ROWS) >= 30
    assert all(2019 <= int(r["year"]) <= 2026 and len(r["why"]) >= 3 for r in ROWS)
    assert {r["tier"] for r in ROWS} == {"cpu", "dsp", "gpu", "npu"}
    assert {r["matched_by"] for r in ROWS} == {"catalog", "family", "rules", "default"}
    models = {r["soc_model"] for r in ROWS}
    # the phones the issue names: 8 Elite / Elite Gen 5, the 865, and the 2024-2025 mid-rangers
    assert {"SM8750", "SM8850", "SM8250", "SM8735", "SM7635", "MT6878", "MT6993", "s5e8855"} <= models
    s25 = [r for r in ROWS if r["phone"].startswith("Samsung Galaxy S25") and "Ultra" not in r["phone"]]
    assert {(bool(r["gpu_renderer"]), bool(r["soc_model"])) for r in s25} == {(True, True), (False, True), (True, False)}


@pytest.mark.parametrize("row", ROWS, ids=[r["phone"] for r in ROWS])
def test_phone_gets_its_tier(classifier, dispatcher, row):
    device = _device(row)
    decision = classifier.classify(device)
    expected = (row["tier"], row["matched_by"])
    assert (decision.tier, decision.matched_by) == expected, decision.steps
    served = dispatcher.select(device)
    assert (served.tier, served.matched_by) == expected
    assert served.why == decision.why

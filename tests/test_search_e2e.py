"""A tiny end-to-end search writes every output and each winner is within its budget."""

from __future__ import annotations

import json

import pytest

from mobile_pipeline.config import preset_config
from mobile_pipeline.nets.complexity import count_macs, count_params
from mobile_pipeline.nets.spec import ArchSpec
from mobile_pipeline.search.driver import TierSearchError, run_search
from mobile_pipeline.search.latency import LatencyModel
from mobile_pipeline.search.space import TINY_CHOICES, iter_specs, largest_spec
from mobile_pipeline.tiers.table import load_tier_table
from search_fixtures import build_tiny_dataset, write_synthetic_lut


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    dataset = build_tiny_dataset(root / "dataset")
    table = load_tier_table()
    specs = list(iter_specs(TINY_CHOICES, 20))
    lut = write_synthetic_lut(root / "lut.json", specs, 256, reference=largest_spec(TINY_CHOICES))
    latency = LatencyModel.load(lut, tiers=table, calibration_path=root / "none.yaml")
    return root, dataset, table, latency


def test_tiny_search_writes_outputs_within_budget(setup):
    root, dataset, table, latency = setup
    out = root / "models"
    cfg = preset_config("tiny", cache_dir=str(root / "cache"))
    results = run_search(cfg, dataset, out, latency_model=latency, tier_table=table, progress=False)
    assert sorted(results) == ["cpu", "dsp", "gpu", "npu"]
    for tier, result in results.items():
        doc = json.loads((out / f"{tier}.json").read_text())
        spec = ArchSpec.from_string(doc["arch"])
        assert ArchSpec.from_dict(doc["spec"]) == spec == result.spec
        side = table[tier].resolution
        budgets = table[tier].budgets
        assert doc["macs"] == count_macs(spec, (side, side)) <= budgets.macs
        assert doc["params"] == count_params(spec) <= budgets.params
        assert doc["predicted_latency_ms"][tier] == pytest.approx(latency.predict_ms(spec, tier, (side, side)))
        assert doc["predicted_latency_ms"][tier] <= budgets.latency_ms
        assert set(doc["predicted_latency_ms"]) == {"cpu", "gpu", "dsp", "npu"}
        assert table[tier].allows_arch(spec) == []
        assert isinstance(doc["supernet_psnr_db"], float) and doc["supernet_psnr_db"] > 5
        from mobile_pipeline.train.checkpoint import load_generator

        assert load_generator(out / f"{tier}.pt").spec == spec
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = [json.loads(line) for line in (out / "search_log.jsonl").read_text().splitlines()]
    candidates = [e for e in events if e["event"] == "candidate"]
    assert {e["tier"] for e in candidates} == {"cpu", "gpu", "dsp", "npu"}
    assert len([e for e in candidates if e["tier"] == "cpu"]) <= preset_config("tiny").search.trials
    assert any(e["event"] == "supernet_trained" for e in events)
    # The trained supernet is cached by content: a second search reuses it (no retraining).
    again = run_search(cfg, dataset, root / "again", tiers=["cpu"], latency_model=latency, tier_table=table,
                       progress=False)
    assert again["cpu"].spec == results["cpu"].spec
    events = [json.loads(line) for line in (root / "again" / "search_log.jsonl").read_text().splitlines()]
    assert any(e["event"] == "supernet_loaded" for e in events)


def test_impossible_budget_fails_the_tier_naming_the_budget(setup):
    root, dataset, table, latency = setup
    cpu = table["cpu"]
    strict = dict(table)
    strict["cpu"] = cpu.model_copy(update={"budgets": cpu.budgets.model_copy(update={"macs": 1000})})
    cfg = preset_config("tiny", cache_dir=str(root / "cache"),
                        search={"supernet_steps": 0, "trials": 3, "population": 2, "sample_size": 1})
    with pytest.raises(TierSearchError, match=r"tier cpu: no candidate .* met macs <= 1000"):
        run_search(cfg, dataset, root / "strict", tiers=["cpu"], latency_model=latency, tier_table=strict,
                   progress=False)
    assert (root / "strict" / "search_log.jsonl").is_file()

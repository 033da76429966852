"""Stage cache: reuse on rerun, rerun only what changed, resume after a kill."""

from __future__ import annotations

from pathlib import Path

import pytest

from mobile_pipeline.stage_cache import Stage, StageCache, StageContext, tree_hash
from mobile_pipeline.utils.atomic import is_temporary


class Counter:
    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def stage(self, name: str, payload: str, deps: tuple[str, ...] = (), config=None) -> Stage:
        def run(ctx: StageContext) -> dict:
            self.calls[name] = self.calls.get(name, 0) + 1
            upstream = "".join((ctx.inputs[d] / "out.txt").read_text() for d in deps)
            (ctx.out_dir / "out.txt").write_text(payload + upstream)
            return {"payload": payload}

        return Stage(name, run, deps=deps, config=config)


def run_graph(root: Path, counter: Counter, a_payload: str = "A", b_config: int = 1) -> StageCache:
    cache = StageCache(root, log=lambda _: None)
    cache.run(counter.stage("a", a_payload, config={"x": 1}))
    cache.run(counter.stage("b", "B", deps=("a",), config={"y": b_config}))
    cache.run(counter.stage("c", "C", deps=("b",)))
    return cache


def test_rerun_with_nothing_changed_is_fully_cached(tmp_path: Path) -> None:
    counter = Counter()
    run_graph(tmp_path, counter)
    cache = run_graph(tmp_path, counter)
    assert counter.calls == {"a": 1, "b": 1, "c": 1}
    assert all(r.cached for r in cache.results.values())
    assert (cache.results["c"].out_dir / "out.txt").read_text() == "CBA"


def test_config_change_reruns_only_dependents(tmp_path: Path) -> None:
    counter = Counter()
    run_graph(tmp_path, counter)
    run_graph(tmp_path, counter, b_config=2)
    assert counter.calls == {"a": 1, "b": 2, "c": 1}  # b's bytes did not change: c stays cached


def test_upstream_content_change_propagates(tmp_path: Path) -> None:
    counter = Counter()
    run_graph(tmp_path, counter)
    cache = StageCache(tmp_path, log=lambda _: None)
    # same config, different code version producing different bytes
    stage_a = counter.stage("a", "A2", config={"x": 1})
    cache.run(Stage(stage_a.name, stage_a.run, config=stage_a.config, version="2"))
    cache.run(counter.stage("b", "B", deps=("a",), config={"y": 1}))
    assert counter.calls["b"] == 2
    assert (cache.results["b"].out_dir / "out.txt").read_text() == "BA2"


def test_killed_stage_leaves_partial_and_resumes(tmp_path: Path) -> None:
    seen: list[bool] = []

    def flaky(ctx: StageContext) -> dict:
        seen.append(ctx.resume)
        (ctx.out_dir / "step1").write_text("done")
        if len(seen) == 1:
            raise KeyboardInterrupt  # stands in for SIGINT mid-stage
        assert (ctx.out_dir / "step1").read_text() == "done"  # work kept for resume
        return {}

    stage = Stage("train", flaky)
    with pytest.raises(KeyboardInterrupt):
        StageCache(tmp_path, log=lambda _: None).run(stage)
    folder = tmp_path / "train"
    assert [p.name.endswith(".partial") for p in folder.iterdir()] == [True]
    result = StageCache(tmp_path, log=lambda _: None).run(stage)
    assert seen == [False, True]
    assert not result.out_dir.name.endswith(".partial")
    assert not any(p.name.endswith(".partial") for p in folder.iterdir())


def test_resume_drops_temporaries_of_the_killed_writer(tmp_path: Path) -> None:
    calls: list[bool] = []

    def writes(ctx: StageContext) -> dict:
        calls.append(ctx.resume)
        if not ctx.resume:
            (ctx.out_dir / "kept.txt").write_text("complete")
            (ctx.out_dir / ".model.onnx.k3x9.tmp.onnx").write_bytes(b"half a file")  # SIGKILL mid-write
            (ctx.out_dir / "tier" / ".pkg.mlpackage.q1.tmp").mkdir(parents=True)
            raise KeyboardInterrupt
        assert sorted(p.name for p in ctx.out_dir.rglob("*")) == ["kept.txt", "tier"]
        (ctx.out_dir / "model.onnx").write_bytes(b"whole")
        return {}

    stage = Stage("export", writes)
    with pytest.raises(KeyboardInterrupt):
        StageCache(tmp_path, log=lambda _: None).run(stage)
    result = StageCache(tmp_path, log=lambda _: None).run(stage)
    assert calls == [False, True]
    assert not any(is_temporary(p) for p in result.out_dir.rglob("*"))
    # A temporary never counts as output, even where a writer left one in a finished tree.
    before = tree_hash(result.out_dir)
    (result.out_dir / ".late.json.zz.tmp.json").write_text("{}")
    assert tree_hash(result.out_dir) == before


def test_external_input_change_invalidates(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes(b"1")
    calls = []

    def run(ctx: StageContext) -> dict:
        calls.append(1)
        return {}

    root = tmp_path / "cache"
    StageCache(root, log=lambda _: None).run(Stage("data", run, external=(photos,)))
    StageCache(root, log=lambda _: None).run(Stage("data", run, external=(photos,)))
    (photos / "b.png").write_bytes(b"2")
    StageCache(root, log=lambda _: None).run(Stage("data", run, external=(photos,)))
    assert len(calls) == 2


def test_stage_before_inputs_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="before its inputs"):
        StageCache(tmp_path, log=lambda _: None).run(Stage("b", lambda ctx: {}, deps=("a",)))

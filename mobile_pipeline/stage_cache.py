"""Content-addressed stage cache: the spine of ``mobile-pipeline release``.

Each stage is a node with declared inputs (config sections, upstream stages, external files)
and one output folder. Its cache key hashes the stage name and version, the JSON of the
config sections it reads, and the *content hashes* of its upstream outputs. So:

* a rerun with nothing changed finds every key and finishes in seconds;
* a config change reruns the stages that read that section and, only if their output bytes
  change, the stages below them;
* a killed stage leaves ``<key>.partial/`` (never a finished-looking folder); the rerun hands
  it back to the stage with ``resume=True`` (training resumes from its last checkpoint) and
  renames it to ``<key>/`` only when the stage returns.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobile_pipeline.utils.atomic import atomic_write_json, is_temporary, remove_temporaries

DONE_FILE = "_stage.json"


@dataclass(frozen=True)
class StageContext:
    """What a stage function gets: where to write, what its inputs produced, whether to resume."""

    out_dir: Path
    inputs: dict[str, Path]
    resume: bool


@dataclass(frozen=True)
class Stage:
    """A node of the release graph.

    Args:
        name: unique stage name.
        run: writes the stage's outputs into ``ctx.out_dir``; returns a JSON-able summary.
        deps: upstream stage names whose output folders are passed in ``ctx.inputs``.
        config: JSON-able values the stage reads (config sections); part of the key.
        external: files/folders outside the cache the stage reads (user photos); their
            names, sizes and mtimes are part of the key.
        version: bump when the stage's code changes its output for the same inputs.
    """

    name: str
    run: Callable[[StageContext], dict[str, Any]]
    deps: tuple[str, ...] = ()
    config: Any = None
    external: tuple[Path, ...] = ()
    version: str = "1"


@dataclass
class StageResult:
    name: str
    key: str
    out_dir: Path
    cached: bool
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)
    content_hash: str = ""


def stage_outputs(root: Path) -> Iterable[Path]:
    """Files a stage wrote under ``root``: not the done file, not a writer's temporaries."""
    for path in root.rglob("*"):
        parts = path.relative_to(root).parts
        if path.is_file() and path.name != DONE_FILE and not any(is_temporary(Path(part)) for part in parts):
            yield path


def tree_hash(root: Path) -> str:
    """sha256 over relative paths and file bytes of a folder (sorted, so order-free)."""
    digest = hashlib.sha256()
    for path in sorted(stage_outputs(root)):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(b"\0")
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def external_fingerprint(paths: Iterable[Path]) -> list[list[Any]]:
    """Cheap fingerprint of user inputs: (relative path, size, mtime_ns) of every file."""
    rows: list[list[Any]] = []
    for base in paths:
        base = Path(base)
        if base.is_file():
            stat = base.stat()
            rows.append([str(base), stat.st_size, stat.st_mtime_ns])
        elif base.is_dir():
            for path in sorted(p for p in base.rglob("*") if p.is_file()):
                stat = path.stat()
                rows.append([str(path.relative_to(base)), stat.st_size, stat.st_mtime_ns])
        else:
            rows.append([str(base), None, None])
    return rows


class StageCache:
    """Runs stages in order, reusing outputs whose key is already complete."""

    def __init__(self, root: Path, log: Callable[[str], None] = print) -> None:
        self.root = Path(root)
        self.log = log
        self.results: dict[str, StageResult] = {}

    def key_for(self, stage: Stage) -> str:
        missing = [dep for dep in stage.deps if dep not in self.results]
        if missing:
            raise RuntimeError(f"stage {stage.name!r} runs before its inputs {missing}")
        payload = {
            "stage": stage.name,
            "version": stage.version,
            "config": stage.config,
            "deps": {dep: self.results[dep].content_hash for dep in stage.deps},
            "external": external_fingerprint(stage.external),
        }
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def run(self, stage: Stage, index: int = 0, total: int = 0) -> StageResult:
        key = self.key_for(stage)
        final = self.root / stage.name / key
        partial = self.root / stage.name / f"{key}.partial"
        label = f"[{index}/{total}] {stage.name}" if total else stage.name
        done_file = final / DONE_FILE
        if done_file.is_file():
            record = json.loads(done_file.read_text(encoding="utf-8"))
            result = StageResult(stage.name, key, final, True, 0.0, record["summary"], record["content_hash"])
            self.log(f"{label:<16} cached   ({key})")
            self.results[stage.name] = result
            return result

        resume = partial.is_dir()
        if resume:  # a killed run's half-written temporaries are not outputs: drop them first
            remove_temporaries(partial)
        partial.mkdir(parents=True, exist_ok=True)
        self.log(f"{label:<16} {'resuming' if resume else 'running'}  ({key})")
        start = time.perf_counter()
        ctx = StageContext(out_dir=partial, inputs={dep: self.results[dep].out_dir for dep in stage.deps}, resume=resume)
        summary = stage.run(ctx) or {}
        seconds = time.perf_counter() - start
        content_hash = tree_hash(partial)
        atomic_write_json(partial / DONE_FILE, {"summary": summary, "content_hash": content_hash,
                                                "seconds": seconds, "key": key})
        if final.exists():  # a stale folder without a done file: replace it
            shutil.rmtree(final)
        os.replace(partial, final)
        self._prune_siblings(stage.name, keep=key)
        self.log(f"{label:<16} done     {seconds:7.1f} s")
        result = StageResult(stage.name, key, final, False, seconds, summary, content_hash)
        self.results[stage.name] = result
        return result

    def _prune_siblings(self, stage_name: str, keep: str, max_kept: int = 3) -> None:
        """Keep the few most recent completed outputs per stage so the cache does not grow forever."""
        folder = self.root / stage_name
        done = sorted((p for p in folder.iterdir() if (p / DONE_FILE).is_file() and p.name != keep),
                      key=lambda p: p.stat().st_mtime, reverse=True)
        for old in done[max_kept - 1:]:
            shutil.rmtree(old, ignore_errors=True)

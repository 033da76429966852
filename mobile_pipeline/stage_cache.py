"""Content-addressed stage cache: the spine of ``mobile-pipeline release``.

Each stage is a node with declared inputs (config sections, upstream stages, external files,
the ``device_tiers/`` files it reads) and one output folder. Its cache key hashes the stage
name and version, the package version, the JSON of the config sections it reads, the
*content hashes* of the ``device_tiers/`` files it declares in ``reads`` and of its upstream
outputs. So:

* a rerun with nothing changed finds every key and finishes in seconds;
* a config change reruns the stages that read that section and, only if their output bytes
  change, the stages below them;
* an edit of ``device_tiers/tiers.yaml`` (a budget), a ``bench calibrate`` that writes
  ``calibration.yaml`` / ``overrides.yaml``, or an imported measurement reruns exactly the
  stages that read that file, and a new package version reruns everything (code changed);
* a killed stage leaves ``<key>.partial/`` (never a finished-looking folder); the rerun hands
  it back to the stage with ``resume=True`` (training resumes from its last checkpoint) and
  renames it to ``<key>/`` only when the stage returns.

The done record (``<key>/_stage.json``) keeps the inputs the key was made of, so
:mod:`mobile_pipeline.stage_plan` can say *why* a stage would rerun (which config field,
which ``device_tiers/`` file, which upstream) without running anything.
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


def package_version() -> str:
    """The code version that is part of every key: ``mobile_pipeline.__version__``.

    Bump it (pyproject and ``__init__``) with a change that alters outputs for the same
    inputs and every stage reruns; ``Stage.version`` does the same for one stage.
    """
    from mobile_pipeline import __version__

    return __version__


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
        reads: files or folders under the configured ``device_tiers/`` folder the stage
            reads (``"tiers.yaml"``, ``"measurements"``); their content hashes are part of
            the key, a missing one counts as absent (creating it later reruns the stage).
        version: bump when the stage's code changes its output for the same inputs.
    """

    name: str
    run: Callable[[StageContext], dict[str, Any]]
    deps: tuple[str, ...] = ()
    config: Any = None
    external: tuple[Path, ...] = ()
    reads: tuple[str, ...] = ()
    version: str = "1"

    def __post_init__(self) -> None:
        for name in self.reads:
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise ValueError(f"stage {self.name!r}: reads entry {name!r} must be a path inside device_tiers/")


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


def content_hash(path: Path) -> str | None:
    """sha256 of a file's bytes, or :func:`tree_hash` of a folder; None when it does not exist."""
    path = Path(path)
    if path.is_file():
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        return digest.hexdigest()
    if path.is_dir():
        return tree_hash(path)
    return None


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


def key_of(payload: dict[str, Any]) -> str:
    """The cache key of a stage's input payload (16 hex of its sorted-key JSON's sha256)."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_done_record(stage_dir: Path) -> dict[str, Any] | None:
    """The done record of a completed stage folder, or None (not completed / unreadable)."""
    try:
        return json.loads((Path(stage_dir) / DONE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class StageCache:
    """Runs stages in order, reusing outputs whose key is already complete.

    Args:
        root: cache folder (one sub-folder per stage, one per key below it).
        log: progress lines.
        device_tiers: the folder a stage's ``reads`` resolve against (default: the
            project's ``device_tiers/``, the one the stages themselves load).
        code_version: part of every key (default :func:`package_version`).
    """

    def __init__(self, root: Path, log: Callable[[str], None] = print, *, device_tiers: Path | None = None,
                 code_version: str | None = None) -> None:
        from mobile_pipeline.utils.paths import device_tiers_dir

        self.root = Path(root)
        self.log = log
        self.device_tiers = Path(device_tiers) if device_tiers is not None else device_tiers_dir()
        self.code_version = code_version if code_version is not None else package_version()
        self.results: dict[str, StageResult] = {}

    def reads_hashes(self, stage: Stage) -> dict[str, str | None]:
        """Content hash of every ``device_tiers/`` file or folder the stage reads."""
        return {name: content_hash(self.device_tiers / name) for name in stage.reads}

    def payload_for(self, stage: Stage, dep_hashes: dict[str, str]) -> dict[str, Any]:
        """Everything the key hashes, as JSON-able data (stored in the done record)."""
        return {
            "stage": stage.name,
            "version": stage.version,
            "code": self.code_version,
            "config": json.loads(json.dumps(stage.config, sort_keys=True, default=str)),
            "deps": {dep: dep_hashes[dep] for dep in stage.deps},
            "external": json.loads(json.dumps(external_fingerprint(stage.external), default=str)),
            "reads": self.reads_hashes(stage),
        }

    def key_for(self, stage: Stage) -> str:
        return key_of(self._payload(stage))

    def _payload(self, stage: Stage) -> dict[str, Any]:
        missing = [dep for dep in stage.deps if dep not in self.results]
        if missing:
            raise RuntimeError(f"stage {stage.name!r} runs before its inputs {missing}")
        return self.payload_for(stage, {dep: self.results[dep].content_hash for dep in stage.deps})

    def run(self, stage: Stage, index: int = 0, total: int = 0) -> StageResult:
        payload = self._payload(stage)
        key = key_of(payload)
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
        output_hash = tree_hash(partial)
        atomic_write_json(partial / DONE_FILE, {"summary": summary, "content_hash": output_hash,
                                                "seconds": seconds, "key": key, "inputs": payload,
                                                "finished_at": time.time()})
        if final.exists():  # a stale folder without a done file: replace it
            shutil.rmtree(final)
        os.replace(partial, final)
        self._prune_siblings(stage.name, keep=key)
        self.log(f"{label:<16} done     {seconds:7.1f} s")
        result = StageResult(stage.name, key, final, False, seconds, summary, output_hash)
        self.results[stage.name] = result
        return result

    def _prune_siblings(self, stage_name: str, keep: str, max_kept: int = 3) -> None:
        """Keep the few most recent completed outputs per stage so the cache does not grow forever."""
        folder = self.root / stage_name
        done = sorted((p for p in folder.iterdir() if (p / DONE_FILE).is_file() and p.name != keep),
                      key=lambda p: p.stat().st_mtime, reverse=True)
        for old in done[max_kept - 1:]:
            shutil.rmtree(old, ignore_errors=True)

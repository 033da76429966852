"""What a run of the stage graph would do, and why, without running anything.

For each stage in order: its key is computed exactly as :class:`StageCache` would. A key with
a completed folder is *cached*. Otherwise the stage *will run*, and the reason is the
difference between its inputs now and the inputs recorded in the done record of its most
recent completed run: config fields (dotted paths, old -> new), ``device_tiers/`` files,
external inputs, the stage or package version, an upstream output.

An upstream stage that will run makes the key of everything below it unknowable: its output
bytes do not exist yet, and a rerun that writes the same bytes leaves its dependents cached.
Such a stage is reported as ``may rerun: depends on <stage> output`` unless something of its
own already changed (then it *will run*, with both reasons).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobile_pipeline.stage_cache import DONE_FILE, Stage, StageCache, key_of, read_done_record

#: How many changed config leaves a reason lists before it says "and N more".
_MAX_FIELDS = 6


@dataclass
class PlanRow:
    """One stage's verdict.

    Args:
        status: ``cached``, ``will run`` or ``may rerun``.
        reasons: why (empty when cached).
        key: the cache key, or None when an upstream will run (key unknown until it has).
    """

    stage: str
    status: str
    reasons: list[str] = field(default_factory=list)
    key: str | None = None

    def line(self) -> str:
        why = f" ({'; '.join(self.reasons)})" if self.reasons else ""
        key = f" [{self.key}]" if self.key else ""
        return f"{self.stage:<10} {self.status}{why}{key}"


def latest_record(root: Path, stage: str) -> dict[str, Any] | None:
    """Done record of the stage's most recent completed run in the cache (None: never ran)."""
    folder = Path(root) / stage
    if not folder.is_dir():
        return None
    best: tuple[float, dict[str, Any]] | None = None
    for child in folder.iterdir():
        done = child / DONE_FILE
        if child.name.endswith(".partial") or not done.is_file():
            continue
        record = read_done_record(child)
        if record is None:
            continue
        when = float(record.get("finished_at") or done.stat().st_mtime)
        if best is None or when > best[0]:
            best = (when, record)
    return best[1] if best else None


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested JSON into ``{"a.b.c": leaf}`` (lists stay leaves: they change as a whole)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, child in value.items():
            out.update(_leaves(child, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix or "config": value}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def config_changes(old: Any, new: Any) -> list[str]:
    """``field: old -> new`` for every config leaf that differs (added/removed included)."""
    before, after = _leaves(old), _leaves(new)
    changes = []
    for name in sorted(set(before) | set(after)):
        if before.get(name, "<absent>") != after.get(name, "<absent>"):
            changes.append(f"{name}: {_short(before.get(name, '<absent>'))} -> {_short(after.get(name, '<absent>'))}")
    return changes


def explain_change(old: dict[str, Any] | None, new: dict[str, Any], *, skip_deps: frozenset[str] = frozenset()) -> list[str]:
    """Why ``new`` inputs differ from the recorded ``old`` ones, one phrase per cause.

    ``skip_deps`` are upstream stages whose output is not known yet (reported elsewhere).
    """
    if old is None:
        return ["no cached run of this stage"]
    if "inputs" not in old:
        return ["the cached run predates recorded inputs (key changed)"]
    before = old["inputs"]
    reasons: list[str] = []
    if before.get("code") != new["code"]:
        reasons.append(f"package version {before.get('code')} -> {new['code']}")
    if before.get("version") != new["version"]:
        reasons.append(f"stage version {before.get('version')} -> {new['version']}")
    changed = config_changes(before.get("config"), new["config"])
    if changed:
        more = f", and {len(changed) - _MAX_FIELDS} more" if len(changed) > _MAX_FIELDS else ""
        reasons.append("config " + ", ".join(changed[:_MAX_FIELDS]) + more)
    old_reads, new_reads = before.get("reads", {}), new["reads"]
    for name in sorted(set(old_reads) | set(new_reads)):
        if name not in old_reads:
            reasons.append(f"now reads device_tiers/{name}")
        elif name not in new_reads:
            reasons.append(f"no longer reads device_tiers/{name}")
        elif old_reads[name] != new_reads[name]:
            verb = "created" if old_reads[name] is None else "deleted" if new_reads[name] is None else "changed"
            reasons.append(f"device_tiers/{name} {verb}")
    if before.get("external") != new["external"]:
        reasons.append("external inputs changed (files added, removed or modified)")
    old_deps = before.get("deps", {})
    for dep in new["deps"]:
        if dep in skip_deps:
            continue
        if old_deps.get(dep) != new["deps"][dep]:
            reasons.append(f"upstream {dep} output changed")
    return reasons or ["key changed"]


def plan(cache: StageCache, stages: list[Stage]) -> list[PlanRow]:
    """The verdict of every stage, in order; reads only the cache and the input files."""
    rows: list[PlanRow] = []
    known_hash: dict[str, str] = {}  # upstream output hashes that are known (cached stages)
    for stage in stages:
        unknown = [dep for dep in stage.deps if dep not in known_hash]
        record = latest_record(cache.root, stage.name)
        if unknown:
            # Compare what we can (own inputs) with the last run, upstream treated as unknown.
            placeholder = {dep: known_hash.get(dep, "") for dep in stage.deps}
            payload = cache.payload_for(stage, placeholder)
            own = explain_change(record, payload, skip_deps=frozenset(unknown))
            depends = f"depends on {', '.join(unknown)} output"
            if record is not None and "inputs" in record and own == ["key changed"]:
                rows.append(PlanRow(stage.name, "may rerun", [depends]))
            else:
                rows.append(PlanRow(stage.name, "will run", own + [f"also {depends}"]))
            continue
        payload = cache.payload_for(stage, {dep: known_hash[dep] for dep in stage.deps})
        key = key_of(payload)
        done = read_done_record(cache.root / stage.name / key)
        if done is not None:
            known_hash[stage.name] = done["content_hash"]
            rows.append(PlanRow(stage.name, "cached", [], key))
        else:
            rows.append(PlanRow(stage.name, "will run", explain_change(record, payload), key))
    return rows


def format_plan(rows: list[PlanRow]) -> str:
    """The table ``release --plan`` prints."""
    lines = [row.line() for row in rows]
    runs = sum(row.status == "will run" for row in rows)
    maybe = sum(row.status == "may rerun" for row in rows)
    cached = sum(row.status == "cached" for row in rows)
    lines.append(f"plan: {runs} will run, {maybe} may rerun (cached if their inputs come out the same), "
                 f"{cached} cached; nothing was run")
    return "\n".join(lines)

"""Build (or resume) the latency lookup table: one LiteRT measurement per distinct op.

The op set is collected by tracing many specs of the search space (plus the registry's
named specs) at the requested resolutions; each distinct :class:`~mobile_pipeline.search.ops.Op`
key is converted as a single-op model (NHWC I/O, as inside a converted network) and timed
with 1 interpreter thread. Every measured entry is written to the JSON immediately
(atomically), so an interrupted build resumes where it stopped. Conversions dominate (about
2 s each here), which is why the search space is a small discrete grid.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Iterable

from mobile_pipeline.nets.spec import ArchSpec
from mobile_pipeline.search.latency import LUT_VERSION, default_lut_path, spec_ops
from mobile_pipeline.search.ops import Op, op_module
from mobile_pipeline.utils.atomic import atomic_write_json

_log = logging.getLogger(__name__)

# The invoke overhead probe: an op so small its time is the interpreter's fixed cost.
_OVERHEAD_OP = Op("add", (8, 8, 8))
# Roofline probes for this machine: a compute-bound conv and a memory-bound add.
_COMPUTE_OP = Op("conv", (64, 96, 96), (("cout", 64), ("k", 3), ("s", 1), ("p", 1), ("d", 1), ("g", 1)))
_MEMORY_OP = Op("add", (32, 512, 512))


def collect_ops(specs: Iterable[ArchSpec], resolutions: Iterable[int], progress: bool = False) -> dict[str, Op]:
    """Distinct runtime ops of ``specs`` at every square resolution, keyed by LUT key."""
    from tqdm import tqdm

    ops: dict[str, Op] = {}
    specs = list(specs)
    resolutions = list(resolutions)
    for spec in tqdm(specs, desc="trace specs", disable=not progress, leave=False):
        for side in resolutions:
            for op in spec_ops(spec, (side, side)):
                ops.setdefault(op.key, op)
    return ops


def _load(path: Path) -> dict:
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") == LUT_VERSION:
            return data
        _log.warning("LUT %s has version %s; starting a new one", path, data.get("version"))
    return {"version": LUT_VERSION, "entries": {}}


def build_lut(specs: Iterable[ArchSpec], resolutions: Iterable[int], path: Path | None = None, *,
              reference: ArchSpec | None = None, progress: bool = True, max_seconds: float | None = None,
              rebuild: bool = False) -> Path:
    """Measure every op the specs produce that the LUT at ``path`` does not have yet.

    Args:
        specs: architectures whose ops must be covered.
        resolutions: square input sides to trace them at.
        path: LUT JSON (default ``device_tiers/latency_lut.json``).
        reference: spec whose ops (at the first resolution) define the tier roofline scale.
        progress: show a tqdm bar.
        max_seconds: stop (resumably) after this long.
        rebuild: discard existing entries first.
    """
    from tqdm import tqdm

    from mobile_pipeline.search.litert_timing import litert_versions, measure_module

    path = Path(path) if path else default_lut_path()
    resolutions = list(resolutions)
    data = {"version": LUT_VERSION, "entries": {}} if rebuild else _load(path)
    versions = litert_versions()
    if data.get("runtime") and data["runtime"] != versions:
        _log.warning("LUT %s was measured with %s, now %s: entries may be stale (use rebuild)",
                     path, data["runtime"], versions)
    data.update({"runtime": versions, "threads": 1, "timing": "p25 of invoke() times, NHWC single-op models"})
    wanted = collect_ops(specs, resolutions, progress=progress)
    if reference is not None:
        ref_ops = spec_ops(reference, (resolutions[0], resolutions[0]))
        data["reference_spec"] = reference.to_string()
        data["reference_hw"] = [resolutions[0], resolutions[0]]
        data["reference_ops"] = [op.key for op in ref_ops]
        for op in ref_ops:
            wanted.setdefault(op.key, op)
    data["resolutions"] = sorted(set(data.get("resolutions", [])) | set(resolutions))
    entries: dict = data.setdefault("entries", {})

    def save() -> None:
        atomic_write_json(path, data)

    def measure(op: Op) -> dict:
        module, inputs = op_module(op)
        return measure_module(module, inputs, channel_last=True)

    if "overhead_ms" not in data:
        data["overhead_ms"] = measure(_OVERHEAD_OP)["ms"]
    if not data.get("machine"):
        compute = measure(_COMPUTE_OP)
        memory = measure(_MEMORY_OP)
        data["machine"] = {
            "gflops": 2.0 * _COMPUTE_OP.macs / (compute["ms"] * 1e-3) / 1e9,
            "bandwidth_gbs": 3 * 4 * _MEMORY_OP.macs / (memory["ms"] * 1e-3) / 1e9,
            "probe_conv": _COMPUTE_OP.key, "probe_add": _MEMORY_OP.key,
        }
    save()
    todo = [op for key, op in sorted(wanted.items()) if key not in entries]
    started = time.monotonic()
    bar = tqdm(todo, desc="LUT ops", disable=not progress, unit="op")
    for op in bar:
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            _log.warning("LUT build stopped after %.0f s with %d ops left; rerun to resume", max_seconds,
                         len(todo) - bar.n)
            break
        bar.set_postfix_str(op.kind)
        try:
            entries[op.key] = measure(op)
        except Exception as err:  # one unconvertible op must not lose the rest; it is reported
            _log.error("LUT: cannot measure %s: %s", op.key, err)
            data.setdefault("failed", {})[op.key] = str(err)[:300]
        save()
    bar.close()
    return path


def default_lut_specs(count: int = 600, seed: int = 0, include_tiny: bool = False,
                      space: str = "default") -> tuple[list[ArchSpec], ArchSpec]:
    """Specs whose ops the LUT must cover for the ``space`` grid, and the roofline reference spec.

    The grid's random samples and extremes, the registry specs that lie inside the grid
    (stylizer-tiny and the ResNet baseline in the default grid), optionally the tiny grid.
    The committed LUT covers ``default`` at 256 px.
    """
    from mobile_pipeline.nets.registry import get_spec, list_specs
    from mobile_pipeline.nets.spec import SpecError
    from mobile_pipeline.search.space import SPACES, TINY_CHOICES, iter_specs, spec_to_sample

    choices = SPACES[space]
    specs = list(iter_specs(choices, count, seed))
    for name in list_specs():
        spec = get_spec(name)
        try:
            spec_to_sample(spec, choices)
        except SpecError:
            continue
        specs.append(spec)
    if include_tiny:
        specs += list(iter_specs(TINY_CHOICES, max(count // 10, 20), seed))
    return specs, get_spec("stylizer-tiny")

"""Helpers for the search tests: a synthetic latency LUT and a tiny dataset.

The committed LUT is measured data; tests that check the *arithmetic* of the latency model
or drive a whole search use a synthetic one (time = overhead + 1e-8 ms per MAC) whose
expected sums are known exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

from mobile_pipeline.nets.spec import ArchSpec
from mobile_pipeline.search.latency import LUT_VERSION, spec_ops

OVERHEAD_MS = 0.002
MS_PER_MAC = 1e-8


def write_synthetic_lut(path: Path, specs: list[ArchSpec], side: int, reference: ArchSpec) -> Path:
    """A LUT JSON covering ``specs`` at ``side`` px, each op costing overhead + MACs * 1e-8 ms."""
    entries = {}
    for spec in [*specs, reference]:
        for op in spec_ops(spec, (side, side)):
            entries[op.key] = {"ms": OVERHEAD_MS + MS_PER_MAC * op.macs, "runs": 1}
    data = {
        "version": LUT_VERSION,
        "overhead_ms": OVERHEAD_MS,
        "machine": {"gflops": 50.0, "bandwidth_gbs": 10.0},
        "reference_spec": reference.to_string(),
        "reference_ops": [op.key for op in spec_ops(reference, (side, side))],
        "entries": entries,
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def build_tiny_dataset(out_dir: Path) -> Path:
    """The tiny preset's dataset (scikit-image's bundled photos, 128 px)."""
    from mobile_pipeline.config import preset_config
    from mobile_pipeline.data.dataset import build_dataset

    build_dataset(preset_config("tiny").data, out_dir, progress=False)
    return out_dir

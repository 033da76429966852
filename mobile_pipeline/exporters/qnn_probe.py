"""Probe the search space through the HTP compiler: which choices run entirely on the NPU.

Each categorical choice of the search space (block kind, FS branch, fusion, upsampling,
activation: ``nets.spec``'s vocabularies, which ``search/space.py`` draws from) is built on
its own into a small generator (one field changed from :data:`BASE_SPEC`), given trained-like
weights, exported to QDQ ONNX exactly as the export stage does (int8 and w8a16), and compiled
for every Hexagon architecture with CPU fallback disabled. The result is data,
``device_tiers/htp_ops.yaml`` (``scripts/probe_htp_ops.py`` writes it); ``tiers/htp.py`` turns
its failures into the Qualcomm tiers' search constraints.

Trained-like weights matter: converters fold away a conv whose weights are all zero, and
the probe must compile the ops a trained model has.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from mobile_pipeline.nets.spec import ACTIVATIONS, BLOCK_KINDS, FS_BRANCHES, FUSIONS, UPSAMPLE_MODES, ArchSpec

#: Small but complete: two encoder stages (two skips to fuse), one body block.
BASE_SPEC = ArchSpec(stem_width=8, encoder_widths=(8, 16), num_blocks=1, block="fs", fs_branches=("dw3",),
                     fusion=("add", "add"), upsample="nearest", act="relu")
PROBE_SIDE = 64
_NOT_COMPUTE = {"QuantizeLinear", "DequantizeLinear"}


def probe_specs(base: ArchSpec = BASE_SPEC) -> list[tuple[str, str, ArchSpec]]:
    """``(field, value, spec)`` for every choice of every probed field, one field changed each."""
    out: list[tuple[str, str, ArchSpec]] = []
    out += [("block", v, dataclasses.replace(base, block=v)) for v in BLOCK_KINDS]
    out += [("fs_branches", v, dataclasses.replace(base, block="fs", fs_branches=(v,))) for v in FS_BRANCHES]
    out += [("fusion", v, dataclasses.replace(base, fusion=(v,) * len(base.encoder_widths))) for v in FUSIONS]
    out += [("upsample", v, dataclasses.replace(base, upsample=v)) for v in UPSAMPLE_MODES]
    out += [("act", v, dataclasses.replace(base, act=v)) for v in ACTIVATIONS]
    return out


def qdq_models(spec: ArchSpec, precisions: Iterable[str], side: int = PROBE_SIDE, seed: int = 0) -> dict[str, bytes]:
    """QDQ ONNX bytes of ``spec`` per precision, through the exporter's own conversion path."""
    import torch

    from mobile_pipeline.exporters import torch2onnx
    from mobile_pipeline.exporters.photos import bundled_photos, prepare_photos
    from mobile_pipeline.exporters.recipes import make_recipe
    from mobile_pipeline.nets.generator import build_generator, trained_like

    torch.manual_seed(seed)
    generator = trained_like(build_generator(spec), seed=seed)
    float_bytes = torch2onnx.export_float(generator, (side, side))
    calibration = prepare_photos(bundled_photos()[:2], (side, side))
    return {p: torch2onnx.convert(float_bytes, make_recipe("onnx", p), calibration) for p in precisions}


def compute_ops(model: bytes) -> list[str]:
    """Sorted op types of a QDQ model, without the quantize/dequantize boundary ops."""
    from mobile_pipeline.exporters.torch2onnx import list_ops

    ops, _ = list_ops(model)
    return sorted(set(ops) - _NOT_COMPUTE)


def probe_one(spec: ArchSpec, archs: Iterable[str], precisions: Iterable[str],
              side: int = PROBE_SIDE) -> tuple[list[str], dict[str, dict[str, object]]]:
    """``(ops, results)`` of one spec: results[precision][arch] = "ok" or the refused nodes."""
    from mobile_pipeline.exporters.qnn import compile_htp

    models = qdq_models(spec, precisions, side)
    results: dict[str, dict[str, object]] = {}
    ops: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="mp_htp_probe_") as tmp:
        for precision, data in models.items():
            ops.update(compute_ops(data))
            path = Path(tmp) / f"{precision}.onnx"
            path.write_bytes(data)
            results[precision] = {}
            for arch in archs:
                outcome = compile_htp(path, arch)
                if outcome.ok:
                    results[precision][arch] = "ok"
                elif outcome.unsupported:
                    results[precision][arch] = [f"{n}: {n.reason}" for n in outcome.unsupported]
                else:
                    results[precision][arch] = [f"error: {outcome.error}"]
    return sorted(ops), results


def probe_search_space(archs: Iterable[str], precisions: Iterable[str] = ("int8", "w8a16"), side: int = PROBE_SIDE,
                       only: Iterable[str] | None = None,
                       progress: Callable[[str], None] | None = print) -> dict:
    """The content of ``htp_ops.yaml``: every probe's ops and per-arch results.

    Args:
        archs: Hexagon architectures to compile for (``v68`` ...).
        precisions: QDQ precisions to export each probe in.
        only: probe only these fields (tests use one); None = all of :data:`PROBED_FIELDS`.

    Raises:
        QnnUnavailable: onnxruntime-qnn is missing or does not load here.
    """
    from mobile_pipeline.exporters.qnn import _ep_devices, qnn_versions

    _ep_devices()  # fail before any export when the compiler is not there
    archs, precisions = list(archs), list(precisions)
    wanted = set(only) if only is not None else None
    probes = []
    for field, value, spec in probe_specs():
        if wanted is not None and field not in wanted:
            continue
        ops, results = probe_one(spec, archs, precisions, side)
        probes.append({"field": field, "value": value, "spec": spec.to_string(), "ops": ops, "results": results})
        if progress is not None:
            bad = [f"{p}/{a}" for p, per in results.items() for a, r in per.items() if r != "ok"]
            progress(f"  {field}={value}: {'ok' if not bad else 'REFUSED on ' + ', '.join(bad)}")
    return {"generated": _dt.date.today(), "tool": "scripts/probe_htp_ops.py", "versions": qnn_versions(),
            "resolution": side, "archs": archs, "precisions": precisions, "probes": probes}


HEADER = """\
# What the Qualcomm HTP compiler accepts of the search space, per Hexagon architecture.
# GENERATED by scripts/probe_htp_ops.py (do not edit by hand; rerun it when onnxruntime-qnn,
# the search space or the exporter changes). Each probe is BASE_SPEC of
# mobile_pipeline/exporters/qnn_probe.py with one choice changed, exported to QDQ ONNX the way
# the export stage does, and compiled with session.disable_cpu_ep_fallback=1.
# results[precision][arch]: ok, or the nodes the compiler refused ("OpType 'node': reason").
# Read by mobile_pipeline/tiers/htp.py: a tier naming this file in `htp_op_support` gets the
# choices that failed on any of its Hexagon architectures as arch_constraints, and op types
# refused wherever they appeared as forbidden_ops.onnx.
"""


def dump_htp_ops(data: dict) -> str:
    """YAML text of :func:`probe_search_space`'s result: one flow-style line per result row."""
    import yaml

    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=200, allow_unicode=True)
    return HEADER + body

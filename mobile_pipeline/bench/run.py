"""``mobile-pipeline bench PATHS``: time every artifact on every local runtime; write bench.json + a chart.

Per artifact and runtime (see :mod:`mobile_pipeline.bench.runners`) the record holds load
time, first inference, warm latency p50/p90/p99 over ``cfg.runs`` runs after ``cfg.warmup``
warm-ups, peak memory (RSS high-water mark minus the RSS before loading) and output parity.

Parity reference, in order: the artifact's own ``<artifact>.reference.npz`` (arrays ``input``
and ``output``, NCHW float32) when the exporter wrote one; else its fp32 sibling (same tier,
architecture and input size; fp32 ONNX preferred, then fp32 TFLite) run on the same fixed
test image. An fp32 sibling the export gate rejected (float ops on an int8-only tier) still
serves as the reference: it is run once, not benchmarked.

Noise: the p90/p50 spread is recorded per record, and a spread above ``cfg.noise_warn_ratio``
is a warning (in bench.json and on stderr), because a noisy machine makes every number in
the table suspect.

Memory: in-process, so freed heap is returned to the OS (``malloc_trim``) and the kernel's
high-water mark reset (``/proc/self/clear_refs``) before each load; elsewhere RSS is sampled.

bench.json: ``{"version", "created", "machine", "config", "results": [record...], "warnings"}``;
each record is flat (``artifact``, ``sha256``, ``p50_ms``, ``status``...) so the manifest
builder can read it without knowing this module.
"""

from __future__ import annotations

import gc
import logging
import math
import sys
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from mobile_pipeline.bench.runners import (
    RuntimeSpec,
    RuntimeUnavailable,
    artifact_format,
    load_runner,
    machine_info,
    runtimes_for,
)
from mobile_pipeline.config import BenchConfig
from mobile_pipeline.utils.atomic import atomic_output, atomic_write_json, sha256_file

_log = logging.getLogger(__name__)

BENCH_VERSION = 1
BENCH_JSON = "bench.json"
BENCH_CHART = "bench_latency.png"
REFERENCE_SUFFIX = ".reference.npz"
_PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8-full", "int8", "w8a16", "w8", "w6-palette", "w4-palette")


class BenchError(RuntimeError):
    """Nothing to benchmark or an unusable path; the message says what was expected."""


# ----------------------------------------------------------------------------- discovery
def discover_artifacts(paths: Iterable[Path]) -> list[Path]:
    """Model files under the given files/folders (``rejected/`` folders and temporaries skipped)."""
    paths = list(paths)
    if not paths:
        raise BenchError("nothing to benchmark: no release folder or artifact given")
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise BenchError(f"{path}: no such file or folder; pass a release folder or artifact files")
        if path.is_file() or path.suffix == ".mlpackage":
            if artifact_format(path) is None:
                raise BenchError(f"{path}: not a model artifact (expected .onnx, .tflite, .mlpackage, .mlmodel or .pte)")
            found.append(path)
            continue
        for candidate in sorted(path.rglob("*")):
            rel = candidate.relative_to(path).parts
            # rejected/ holds artifacts that failed their gate; dot-folders are staging/temporaries.
            if "rejected" in rel or any(p.startswith(".") for p in rel) or any(p.endswith(".mlpackage") for p in rel[:-1]):
                continue
            if artifact_format(candidate) is not None and (candidate.is_file() or candidate.suffix == ".mlpackage"):
                found.append(candidate)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise BenchError(f"no artifacts (.onnx, .tflite, .mlpackage, .mlmodel, .pte) found under {', '.join(map(str, paths))}")
    return unique


def artifact_info(path: Path) -> dict[str, Any]:
    """Facts from ``<artifact>.report.json`` when present, else guessed from the file name."""
    from mobile_pipeline.exporters.report import load_report, report_path_for

    fmt = artifact_format(path)
    info: dict[str, Any] = {"artifact": path.name, "path": str(path), "format": fmt, "precision": None, "tier": None,
                            "arch": None, "layout": None, "export_parity_psnr_db": None, "export_passed": None}
    report_path = report_path_for(path)
    if report_path.is_file():
        report = load_report(report_path)
        info.update(precision=report.precision, tier=report.tier, arch=report.arch, layout=report.input.layout,
                    export_parity_psnr_db=report.parity.psnr_db, export_passed=report.passed)
    else:
        stem = path.name[: -len(path.suffix)] if path.suffix else path.name
        for precision in _PRECISIONS:  # exporter names: <stem>_<precision>.<suffix>
            if stem.endswith("_" + precision) or stem.endswith("-" + precision):
                info["precision"] = precision
                break
    info["sha256"] = sha256_file(path) if path.is_file() else None
    return info


def _stem(info: dict[str, Any]) -> str:
    """``cpu_int8-dynamic.tflite`` -> ``cpu``: exporter names are ``<stem>_<precision>.<suffix>``."""
    stem = info["artifact"].rsplit(".", 1)[0]
    if info.get("precision") and stem.endswith(info["precision"]):
        stem = stem[: -len(info["precision"])].rstrip("_-")
    return stem


def _siblings(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same model in another format/precision: same stem, and same tier/arch where both are known."""
    if _stem(a) != _stem(b):
        return False
    return all(a.get(k) is None or b.get(k) is None or a[k] == b[k] for k in ("tier", "arch"))


# ------------------------------------------------------------------------------- timing
def sample_image(input_hw: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A fixed 1x3xHxW image in [0,1]: smooth gradients plus texture, like a photo (not white noise)."""
    h, w = input_hw
    yy, xx = np.meshgrid(np.linspace(0, 1, h, dtype=np.float32), np.linspace(0, 1, w, dtype=np.float32), indexing="ij")
    rng = np.random.default_rng(seed)
    noise = rng.random((3, h, w), dtype=np.float32)
    img = np.stack([0.6 * xx + 0.2, 0.5 * yy + 0.3 * xx, 0.4 + 0.3 * np.sin(6 * xx * yy)]) * 0.8 + 0.2 * noise
    return np.clip(img, 0.0, 1.0)[None].astype(np.float32)


def _rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _release_free_memory() -> None:
    """Return freed heap pages to the OS (glibc ``malloc_trim``) so the previous artifact's
    freed arenas do not hide the next one's allocations from the RSS delta."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the delta may under-report after the first artifact
        pass


def _reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (Linux >= 4.0); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def latency_stats(times_ms: list[float]) -> dict[str, float]:
    """p50/p90/p99/mean/std/min of warm runs and the p90/p50 spread."""
    arr = np.asarray(times_ms, dtype=np.float64)
    p50, p90, p99 = (float(np.percentile(arr, q)) for q in (50, 90, 99))
    return {"p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "mean_ms": float(arr.mean()), "std_ms": float(arr.std()),
            "min_ms": float(arr.min()), "spread_p90_p50": p90 / p50 if p50 > 0 else math.inf}


def noise_warning(stats: dict[str, float], ratio: float, label: str) -> str | None:
    """The warning text when p90/p50 exceeds ``ratio`` (e.g. 1.2 = 20% noise), else None."""
    spread = stats["spread_p90_p50"]
    if spread > ratio:
        return (f"noisy timing for {label}: p90/p50 = {spread:.2f} > {ratio:.2f} "
                f"(p50 {stats['p50_ms']:.2f} ms, p90 {stats['p90_ms']:.2f} ms); close other programs or raise bench.runs")
    return None


def bench_one(path: Path, runtime: RuntimeSpec, cfg: BenchConfig, layout_hint: str | None = None,
              reference_input: np.ndarray | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Time one artifact on one runtime.

    Returns the record's timing fields and NCHW outputs: ``sample`` (on the fixed
    :func:`sample_image`, shared by all siblings for parity) and, when ``reference_input`` is
    given and fits, ``reference`` (on the artifact's own reference input).
    """
    record: dict[str, Any] = {"runtime": runtime.runtime, "delegate": runtime.delegate, "threads": runtime.threads,
                              "runs": cfg.runs, "warmup": cfg.warmup}
    _release_free_memory()
    base_rss = _rss_bytes()
    exact_peak = _reset_peak_rss()
    sampled_peak = base_rss
    start = time.perf_counter()
    try:
        runner = load_runner(path, runtime, layout_hint)
    except RuntimeUnavailable as err:
        return {**record, "status": "skipped", "reason": str(err)}, {}
    except Exception as err:  # a broken artifact is a result to report, not a crash of the whole bench
        return {**record, "status": "failed", "reason": f"load failed: {type(err).__name__}: {err}"}, {}
    record["load_ms"] = (time.perf_counter() - start) * 1e3
    try:
        native = runner.prepare(sample_image(runner.input_hw))
        start = time.perf_counter()
        out = runner.invoke(native)
        record["first_inference_ms"] = (time.perf_counter() - start) * 1e3
        sampled_peak = max(sampled_peak, _rss_bytes())
        for _ in range(cfg.warmup):
            runner.invoke(native)
        times = []
        for _ in range(cfg.runs):
            start = time.perf_counter()
            runner.invoke(native)
            times.append((time.perf_counter() - start) * 1e3)
        sampled_peak = max(sampled_peak, _rss_bytes())
        outputs = {"sample": runner.to_nchw(out)}
        if reference_input is not None and tuple(reference_input.shape[2:]) == runner.input_hw:
            outputs["reference"] = runner.to_nchw(runner.invoke(runner.prepare(reference_input)))
    except Exception as err:
        return {**record, "status": "failed", "reason": f"inference failed: {type(err).__name__}: {err}"}, {}
    finally:
        runner.close()
    peak = _peak_rss_bytes() if exact_peak else None
    record.update(latency_stats(times))
    record["input_hw"] = list(runner.input_hw)
    record["peak_rss_delta_mb"] = max((peak if peak is not None else sampled_peak) - base_rss, 0) / 2**20
    record["memory_method"] = "VmHWM" if peak is not None else "rss-samples"
    record["status"] = "ok"
    record["reason"] = None
    return record, outputs


# ------------------------------------------------------------------------------- parity
def _parity_psnr(output: np.ndarray, reference: np.ndarray) -> float:
    """PSNR by the project's one convention (quality.image: per-image mean, capped at 100 dB)."""
    from mobile_pipeline.quality.image import psnr

    return round(psnr(output, reference), 3)


def _reference_rank(info: dict[str, Any]) -> int:
    if info.get("precision") != "fp32":
        return 99
    return {"onnx": 0, "tflite": 1, "executorch": 2, "coreml": 3}.get(info["format"], 4)


def _add_parity(records: list[dict[str, Any]], outputs: dict[int, np.ndarray], infos: dict[str, dict[str, Any]],
                extra_refs: list[tuple[dict[str, Any], dict[str, Any], np.ndarray]] = ()) -> None:
    """Fill ``parity_*`` fields from the fp32 sibling's output on the same sample image (an artifact's own
    reference file, when present, overrides this afterwards in :func:`bench_artifacts`).

    ``extra_refs`` are (info, record, output) of fp32 artifacts that are not benchmarked (rejected by
    their export gate, e.g. for float ops on an int8-only tier) but still compute the reference answer.
    """
    pool = [(infos[records[j]["path"]], records[j], outputs[j]) for j in outputs] + list(extra_refs)
    for i, rec in enumerate(records):
        rec.update(parity_reference=None, parity_psnr_db=None, parity_max_abs_err=None)
        if i not in outputs:
            continue
        info = infos[rec["path"]]
        candidates = [(ref_info, ref_rec, out) for ref_info, ref_rec, out in pool
                      if ref_rec["path"] != rec["path"] and ref_rec["input_hw"] == rec["input_hw"]
                      and _reference_rank(ref_info) < 99 and _siblings(info, ref_info)]
        if not candidates:
            continue
        _, ref_rec, ref_out = min(candidates, key=lambda c: (_reference_rank(c[0]), c[1].get("reference_only", False),
                                                             c[1]["threads"]))
        note = " (export-rejected, reference only)" if ref_rec.get("reference_only") else ""
        rec["parity_reference"] = f"{ref_rec['artifact']} on {ref_rec['runtime']}{note}"
        rec["parity_psnr_db"] = _parity_psnr(outputs[i], ref_out)
        rec["parity_max_abs_err"] = float(np.max(np.abs(outputs[i] - ref_out)))


def _rejected_references(paths: list[Path], artifacts: list[Path]) -> list[Path]:
    """fp32 ONNX/TFLite artifacts in the ``rejected/`` folders next to what is benchmarked."""
    folders = {Path(p).resolve() for p in paths if Path(p).is_dir()} | {a.parent for a in artifacts}
    found = set()
    for folder in folders:
        for candidate in folder.rglob("rejected/*"):
            if artifact_format(candidate) in ("onnx", "tflite") and candidate.is_file():
                found.add(candidate.resolve())
    return sorted(p for p in found if artifact_info(p).get("precision") == "fp32")


def _load_own_reference(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    ref = path.with_name(path.name + REFERENCE_SUFFIX)
    if not ref.is_file():
        return None
    with np.load(ref) as data:
        if "input" not in data or "output" not in data:
            raise BenchError(f"{ref}: needs arrays 'input' and 'output' (NCHW float32 in [0,1])")
        return data["input"].astype(np.float32), data["output"].astype(np.float32)


# ------------------------------------------------------------------------------- driver
def bench_artifacts(paths: list[Path], cfg: BenchConfig, out_dir: Path, progress: bool = True,
                    runtimes: dict[str, list[RuntimeSpec]] | None = None) -> Path:
    """Benchmark every artifact under ``paths`` on every local runtime; returns bench.json's path.

    Args:
        paths: release folders and/or artifact files.
        cfg: warm-up/run counts, thread counts, noise threshold.
        out_dir: where bench.json and the chart go.
        progress: show a tqdm bar (stderr).
        runtimes: override the runtime list per format (tests, or to restrict a run).
    """
    from tqdm import tqdm

    artifacts = discover_artifacts(paths)
    infos = {str(p): artifact_info(p) for p in artifacts}
    jobs = [(p, rt) for p in artifacts for rt in (runtimes or {}).get(infos[str(p)]["format"],
                                                                       runtimes_for(infos[str(p)]["format"], cfg.threads))]
    records: list[dict[str, Any]] = []
    outputs: dict[int, np.ndarray] = {}
    warnings: list[str] = []
    own_refs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    own_outputs: dict[int, np.ndarray] = {}
    for p in artifacts:
        ref = _load_own_reference(p)
        if ref is not None:
            own_refs[str(p)] = ref
    _preload_runtimes({rt.runtime for _, rt in jobs})
    bar = tqdm(jobs, desc="bench", unit="run", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    for path, runtime in bar:
        bar.set_postfix_str(f"{path.name} {runtime.label}", refresh=True)
        info = infos[str(path)]
        reference_input = own_refs[str(path)][0] if str(path) in own_refs else None
        timing, outs = bench_one(path, runtime, cfg, info["layout"], reference_input)
        record = {**{k: v for k, v in info.items() if k != "layout"}, **timing}
        record["noise_warning"] = None
        if record["status"] == "ok":
            outputs[len(records)] = outs["sample"]
            if "reference" in outs:
                own_outputs[len(records)] = outs["reference"]
            message = noise_warning(record, cfg.noise_warn_ratio, f"{path.name} on {runtime.label}")
            if message:
                record["noise_warning"] = message
                warnings.append(message)
                bar.write(f"WARN {message}", file=sys.stderr)
        elif record["status"] == "failed":
            warnings.append(f"{path.name} on {runtime.label}: {record['reason']}")
        records.append(record)
    bar.close()
    extra_refs = []
    for ref_path in _rejected_references(list(paths), artifacts):
        ref_info = artifact_info(ref_path)
        ref_rec, ref_outs = bench_one(ref_path, runtimes_for(ref_info["format"], (1,))[0],
                                      BenchConfig(warmup=0, runs=1, threads=(1,)), ref_info["layout"])
        if ref_rec["status"] == "ok":
            ref_rec.update(path=str(ref_path), artifact=ref_path.name, reference_only=True)
            extra_refs.append((ref_info, ref_rec, ref_outs["sample"]))
    _add_parity(records, outputs, infos, extra_refs)
    for i, out in own_outputs.items():
        rec, ref_out = records[i], own_refs[records[i]["path"]][1]
        if ref_out.shape == out.shape:
            rec["parity_reference"] = Path(rec["path"]).name + REFERENCE_SUFFIX
            rec["parity_psnr_db"] = _parity_psnr(out, ref_out)
            rec["parity_max_abs_err"] = float(np.max(np.abs(out - ref_out)))
    for rec in records:
        for key, value in list(rec.items()):
            if isinstance(value, float) and key.endswith(("_ms", "_mb", "_p50")):
                rec[key] = round(value, 4)
        if rec.get("p50_ms"):
            # From the rounded figures, so the record agrees with itself even for sub-ms
            # timings, where 4-decimal rounding alone moves the ratio by ~0.2%.
            rec["spread_p90_p50"] = round(rec["p90_ms"] / rec["p50_ms"], 4)
    machine = machine_info()
    device = f"local {machine['machine']} {machine['cpu']}"
    for rec in records:
        rec["device"] = device
    out_dir = Path(out_dir)
    doc = {"version": BENCH_VERSION, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "machine": machine, "config": cfg.model_dump(mode="json"), "results": records, "warnings": warnings}
    chart = write_chart(records, out_dir / BENCH_CHART)
    doc["chart"] = chart.name if chart else None
    return atomic_write_json(out_dir / BENCH_JSON, doc)


def _preload_runtimes(names: set[str]) -> None:
    """Import the runtime libraries up front so the first artifact's load time and memory
    do not include importing onnxruntime / LiteRT (a one-off cost no app pays per model)."""
    modules = {"onnxruntime": "onnxruntime", "litert": "ai_edge_litert.interpreter", "executorch": "executorch.runtime"}
    for name in names:
        if name in modules:
            try:
                __import__(modules[name])
            except ImportError as err:  # reported per artifact as a failed load
                _log.warning("cannot import %s: %s", modules[name], err)


def write_chart(records: list[dict[str, Any]], path: Path) -> Path | None:
    """Horizontal bars: p50 per artifact x runtime, grouped by tier, coloured by format; whisker to p90."""
    rows = [r for r in records if r.get("status") == "ok"]
    if not rows:
        return None
    # The object API (no pyplot): no global figure state, no GUI backend, a faster import.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    rows.sort(key=lambda r: (r.get("tier") or "~", r["format"] or "", r.get("precision") or "", r["runtime"], r["threads"]))
    colors = {"onnx": "#4C72B0", "tflite": "#DD8452", "coreml": "#55A868", "executorch": "#8172B3"}
    labels = [f"{r.get('tier') or '-'} | {r['artifact']} | {r['runtime']} t{r['threads']}" for r in rows]
    p50 = [r["p50_ms"] for r in rows]
    err = [max(r["p90_ms"] - r["p50_ms"], 0.0) for r in rows]
    fig = Figure(figsize=(9, 0.35 * len(rows) + 1.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.barh(range(len(rows)), p50, xerr=[np.zeros(len(rows)), err], color=[colors.get(r["format"], "grey") for r in rows],
            capsize=2)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("latency p50 (ms), whisker to p90")
    ax.set_title("Local latency by tier and format")
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    ax.legend(handles, list(colors), loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path

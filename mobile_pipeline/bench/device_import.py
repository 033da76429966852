"""Import latency measured on real phones: TFLite ``benchmark_model`` logs and a JSON form.

``benchmark_model`` is the tool every Android ML engineer already runs (``adb shell
/data/local/tmp/benchmark_model --graph=... --num_threads=4 --use_gpu=true``). Its output
changed over the years (plain lines, ``INFO:`` prefixes, logcat ``I tflite  :`` prefixes,
scientific notation, p5/median/p95 added to the stats lines, three different memory lines),
so the parser reads by meaning, line by line, and only *requires* the one summary line::

    Inference timings in us: Init: 16242, First inference: 36026, Warmup (avg): 32458.7, Inference (avg): 28684

Everything else (threads, delegate flags, per-run statistics, memory) is recorded when
present. A log without that line is an interrupted or failed run; the error quotes the
tool's own ERROR lines or the last line, so the user sees why.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from mobile_pipeline.bench.measurement import (
    DeviceTag,
    LatencyStats,
    Measurement,
    MeasurementError,
    MemoryStats,
    store_measurement,
    store_measurement_set,
    validate_measurement,
)


class BenchmarkOutputError(MeasurementError):
    """A ``benchmark_model`` log that cannot be imported; the message names what is missing."""


# "INFO: ", "WARNING: ", "ERROR: " (newer tool), "I tflite  : " / "11-22 07:00:00.1 123 123 I tflite  : " (logcat).
_PREFIX = re.compile(r"^(?:(?:INFO|WARNING|ERROR|VERBOSE):\s*|.*?\b[VDIWEF]\s+tflite\s*:\s*)")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PARAM = re.compile(r"^(?P<key>[^:\[\]]+?)\s*:\s*\[(?P<value>[^\]]*)\]\s*$")
_SUMMARY = re.compile(r"Inference timings in us:\s*(?P<body>.*)$")
_STATS = re.compile(r"^count=(?P<count>" + _NUMBER + r")(?P<rest>(?:\s+\w+=" + _NUMBER + r")*)\s*$")
_PAIR = re.compile(r"(\w+)=(" + _NUMBER + r")")
_MEM_DELTA = re.compile(r"Memory footprint delta from the start of the tool \(MB\):\s*init=(" + _NUMBER + r")\s+overall=(" + _NUMBER + r")")
_MEM_PEAK = re.compile(r"^Peak memory footprint \(MB\):\s*init=(" + _NUMBER + r")\s+overall=(" + _NUMBER + r")")
_MEM_MONITOR = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring:\s*(" + _NUMBER + r")")
_MODEL_SIZE = re.compile(r"The input model file size \(MB\):\s*(" + _NUMBER + r")")
_LOADED = re.compile(r"^Loaded model\s+(\S+)")
_REPLACING = re.compile(r"Replacing (\d+)(?: out of (\d+))? node\(s\) with delegate \(([^)]+)\)")
_LOGCAT_ERROR = re.compile(r"^(?:.*?\s)?[EF]\s+tflite\s*:")

# Summary names as the tool prints them -> our keys (all converted to ms).
_SUMMARY_FIELDS: dict[str, str] = {
    "Init": "init_ms",
    "First inference": "first_inference_ms",
    "Warmup (avg)": "warmup_avg_ms",
    "Inference (avg)": "inference_avg_ms",
}
# Echoed flag names (lower-cased, spaces squeezed) -> our keys.
_FLAGS: dict[str, str] = {
    "use gpu": "use_gpu",
    "use nnapi": "use_nnapi",
    "use legacy nnapi": "use_nnapi",
    "use xnnpack": "use_xnnpack",
    "use hexagon": "use_hexagon",
}


def _strip(line: str) -> str:
    return _PREFIX.sub("", line.rstrip("\r\n")).strip()


def _as_bool(value: str) -> bool | None:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    return None


def _is_error(raw: str, line: str) -> bool:
    """ERROR: prefix, a logcat ``E tflite`` line, or the tool's own failure sentences."""
    return (raw.startswith("ERROR") or _LOGCAT_ERROR.match(raw) is not None
            or line.startswith(("Failed", "Benchmarking failed", "Aborted")) or "Segmentation fault" in line)


def _stats(match: re.Match[str]) -> dict[str, float]:
    """``count=50 first=... avg=2.95e+06 std=...`` -> {count, first_ms, avg_ms, ...} (us -> ms)."""
    out: dict[str, float] = {"count": int(float(match.group("count")))}
    for key, value in _PAIR.findall(match.group("rest")):
        out[f"{key}_ms"] = round(float(value) / 1000.0, 6)
    return out


def parse_benchmark_model_output(text: str, source: str = "<text>") -> dict[str, Any]:
    """Parse one ``benchmark_model`` log into a flat dict (times in ms, memory in MB).

    Args:
        text: the tool's complete stdout/stderr (or a logcat excerpt of it).
        source: file name for error messages.

    Returns:
        ``init_ms``, ``first_inference_ms``, ``warmup_avg_ms``, ``inference_avg_ms`` always;
        ``inference_stats`` / ``warmup_stats`` (count, min/max/avg/std, and p5/median/p95
        when the tool printed them), ``model_path``, ``num_threads``, ``use_gpu``,
        ``use_nnapi``, ``use_xnnpack``, ``use_hexagon``, ``delegate``, ``delegated_nodes`` /
        ``delegate_kernel`` / ``delegate_partial`` (from "Replacing N out of M node(s)..."),
        ``memory_mb``, ``model_size_mb`` and ``params`` (every echoed ``Name: [value]``).

    Raises:
        BenchmarkOutputError: no summary line (interrupted/failed run) or a summary line
            that lacks a field; the message names the field and quotes the tool's errors.
    """
    params: dict[str, str] = {}
    stats: list[dict[str, float]] = []
    summary: dict[str, float] | None = None
    summary_line = ""
    out: dict[str, Any] = {"tool": "benchmark_model"}
    memory: dict[str, float] = {}
    delegated: list[int] | None = None
    delegate_names: list[str] = []
    pairs = [(raw.strip(), _strip(raw)) for raw in text.splitlines()]
    pairs = [(raw, line) for raw, line in pairs if line]
    lines = [line for _, line in pairs]
    if not lines:
        raise BenchmarkOutputError(f"{source}: empty benchmark_model output; paste the tool's complete output")
    errors = [line for raw, line in pairs if _is_error(raw, line)]

    for line in lines:
        if (m := _PARAM.match(line)) is not None:
            params[" ".join(m.group("key").lower().split())] = m.group("value").strip()
        elif (m := _STATS.match(line)) is not None:
            stats.append(_stats(m))
        elif (m := _SUMMARY.search(line)) is not None:
            summary_line = line
            summary = {}
            for part in m.group("body").split(","):
                name, _, value = part.partition(":")
                name = name.strip()
                if name in _SUMMARY_FIELDS and re.fullmatch(_NUMBER, value.strip()):
                    summary[_SUMMARY_FIELDS[name]] = round(float(value) / 1000.0, 6)
        elif (m := _MEM_DELTA.search(line)) is not None:
            memory["init_delta_mb"], memory["overall_delta_mb"] = float(m.group(1)), float(m.group(2))
        elif (m := _MEM_PEAK.search(line)) is not None:
            memory["peak_init_mb"], memory["peak_overall_mb"] = float(m.group(1)), float(m.group(2))
        elif (m := _MEM_MONITOR.search(line)) is not None:
            memory["peak_monitored_mb"] = float(m.group(1))
        elif (m := _MODEL_SIZE.search(line)) is not None:
            out["model_size_mb"] = float(m.group(1))
        elif (m := _LOADED.match(line)) is not None:
            out.setdefault("model_path", m.group(1))
        elif (m := _REPLACING.search(line)) is not None:
            delegated = [int(m.group(1)), int(m.group(2))] if m.group(2) else [int(m.group(1))]
            delegate_names.append(m.group(3))

    if summary is None:
        if errors:
            quoted = "; ".join(errors[:4])
            raise BenchmarkOutputError(
                f"{source}: benchmark_model failed before timing anything ({quoted}). "
                "Fix the run (e.g. another delegate or --use_gpu=false) and import the output of a finished run.")
        raise BenchmarkOutputError(
            f"{source}: no 'Inference timings in us: ...' line: the run looks interrupted "
            f"(last line: {lines[-1][:120]!r}). Import the complete output of a finished benchmark_model run.")
    missing = [name for name, key in _SUMMARY_FIELDS.items() if key not in summary]
    if missing:
        raise BenchmarkOutputError(
            f"{source}: the 'Inference timings in us' line lacks {', '.join(repr(m) for m in missing)} "
            f"(read: {summary_line[:160]!r}); the log was probably cut or edited, import the tool's original output")
    if summary["inference_avg_ms"] <= 0:
        raise BenchmarkOutputError(f"{source}: 'Inference (avg)' is {summary['inference_avg_ms'] * 1000:g} us; not a valid timing")

    out.update(summary)
    out["params"] = params
    out.setdefault("model_path", params.get("graph") or None)
    threads = params.get("num threads") or params.get("#threads used for cpu inference")
    out["num_threads"] = int(threads) if threads and threads.lstrip("-").isdigit() and int(threads) > 0 else None
    for name, key in _FLAGS.items():
        if name in params and out.get(key) is not True:
            out[key] = _as_bool(params[name])
    for key in set(_FLAGS.values()):
        out.setdefault(key, None)
    if out["use_xnnpack"] is None and any("XNNPACK delegate" in line for line in lines):
        out["use_xnnpack"] = True
    out["delegate"] = _delegate(out)
    out["delegated_nodes"] = delegated
    out["delegate_kernel"] = delegate_names[-1] if delegate_names else None
    out["delegate_partial"] = bool(delegated and len(delegated) == 2 and delegated[0] < delegated[1]) or any(
        "will not be executed by the delegate" in line for line in lines)
    # The last stats line is the measured run; the one before it (if any) the warm-up.
    out["inference_stats"] = stats[-1] if stats else None
    out["warmup_stats"] = stats[-2] if len(stats) >= 2 else None
    out["memory_mb"] = memory
    return out


def _delegate(parsed: dict[str, Any]) -> str:
    for key, name in (("use_gpu", "gpu"), ("use_hexagon", "hexagon"), ("use_nnapi", "nnapi"), ("use_xnnpack", "xnnpack")):
        if parsed.get(key):
            return name
    return "cpu"


def measurement_from_benchmark_model(parsed: dict[str, Any], device: DeviceTag, *, artifact: str | None = None,
                                     extra: dict[str, Any] | None = None) -> Measurement:
    """Turn a parsed log into a :class:`Measurement` (``extra`` adds arch, tier, input_hw ...)."""
    stats = parsed.get("inference_stats") or {}
    latency: dict[str, Any] = {"avg_ms": parsed["inference_avg_ms"]}
    for ours, theirs in (("p50_ms", "median_ms"), ("std_ms", "std_ms"), ("min_ms", "min_ms"), ("max_ms", "max_ms")):
        if theirs in stats:
            latency[ours] = stats[theirs]
    if "count" in stats:
        latency["count"] = max(int(stats["count"]), 1)
    memory = parsed.get("memory_mb") or {}
    peak = memory.get("peak_monitored_mb", memory.get("peak_overall_mb"))
    name = artifact or (Path(parsed["model_path"]).name if parsed.get("model_path") else None)
    if not name:
        raise BenchmarkOutputError("the log names no model (no 'Graph: [...]' line); pass --artifact NAME")
    raw = {k: v for k, v in parsed.items() if k != "params"}
    raw["params"] = parsed.get("params", {})
    fields: dict[str, Any] = {
        "source": "benchmark_model",
        "device": device,
        "artifact": name,
        "format": "tflite",
        "delegate": parsed.get("delegate"),
        "num_threads": parsed.get("num_threads"),
        "latency": LatencyStats(**latency),
        "init_ms": parsed.get("init_ms"),
        "first_inference_ms": parsed.get("first_inference_ms"),
        "memory": MemoryStats(init_delta_mb=memory.get("init_delta_mb", memory.get("peak_init_mb")),
                              overall_delta_mb=memory.get("overall_delta_mb"), peak_mb=peak) if memory else None,
        "raw": raw,
    }
    if parsed.get("delegate_partial"):
        nodes = parsed.get("delegated_nodes") or []
        fields["notes"] = (f"{parsed.get('delegate')} delegate ran only {nodes[0]} of {nodes[1]} nodes; the rest fell back "
                           "to the CPU" if len(nodes) == 2 else "the delegate did not take the whole graph")
    fields.update({k: v for k, v in (extra or {}).items() if v is not None})
    return validate_measurement(_dump(fields), "benchmark_model import")


def _dump(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.model_dump() if hasattr(v, "model_dump") else v) for k, v in fields.items()}


def artifact_facts(artifact: str | Path | None) -> dict[str, Any]:
    """arch / tier / format / precision / input_hw from ``<artifact>.report.json`` when it exists."""
    if artifact is None:
        return {}
    path = Path(artifact)
    from mobile_pipeline.exporters.report import load_report, report_path_for

    report_path = report_path_for(path)
    if not report_path.is_file():
        return {"artifact": path.name}
    report = load_report(report_path)
    shape = report.input.shape
    hw = (shape[2], shape[3]) if report.input.layout == "NCHW" else (shape[1], shape[2])
    return {"artifact": report.artifact, "arch": report.arch, "tier": report.tier, "format": report.format,
            "precision": report.precision, "input_hw": hw}


def import_measurement(path: Path, *, soc_model: str | None = None, manufacturer: str | None = None,
                       device_name: str | None = None, artifact: str | Path | None = None, arch: str | None = None,
                       tier: str | None = None, input_hw: tuple[int, int] | None = None,
                       out_root: Path | None = None, now: datetime | None = None) -> list[Path]:
    """Import a ``benchmark_model`` log or a JSON measurement file; return the stored paths.

    A file is read as JSON when it parses as JSON (one measurement object, or a list of
    them), otherwise as a ``benchmark_model`` log. Command-line tags (``soc_model``,
    ``artifact``, ``arch``...) fill fields the file leaves empty; a JSON file that names a
    different SoC than ``--soc`` is an error rather than a silent relabel.

    ``artifact`` may be the path of an exported artifact: its report then supplies arch,
    tier, precision and input size, which calibration needs.
    """
    path = Path(path)
    if not path.is_file():
        raise MeasurementError(f"measurement file not found: {path}")
    text = path.read_text(encoding="utf-8", errors="replace")
    facts = artifact_facts(artifact)
    overrides = {"arch": arch, "tier": tier, "input_hw": tuple(input_hw) if input_hw else None}
    facts.update({k: v for k, v in overrides.items() if v is not None})
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if data is None:
        if not soc_model:
            raise MeasurementError(f"{path}: a benchmark_model log does not say which phone ran it; pass --soc SOC_MODEL")
        device = DeviceTag(soc_model=soc_model, manufacturer=manufacturer, device_name=device_name)
        parsed = parse_benchmark_model_output(text, source=str(path))
        measurements = [measurement_from_benchmark_model(parsed, device, artifact=facts.pop("artifact", None), extra=facts)]
    else:
        items = data if isinstance(data, list) else [data]
        if not items:
            raise MeasurementError(f"{path}: the JSON list holds no measurements")
        measurements = []
        for index, item in enumerate(items):
            origin = f"{path}" + (f"[{index}]" if isinstance(data, list) else "")
            measurements.append(_from_json(item, origin, soc_model, manufacturer, device_name, facts))
    return [store_measurement(m, out_root, now=now) for m in measurements]


def _from_json(item: Any, origin: str, soc_model: str | None, manufacturer: str | None, device_name: str | None,
               facts: dict[str, Any]) -> Measurement:
    if not isinstance(item, dict):
        raise MeasurementError(f"{origin}: a measurement must be a JSON object, got {type(item).__name__}")
    item = dict(item)
    device = dict(item.get("device") or {})
    if soc_model:
        if device.get("soc_model") and device["soc_model"] != soc_model:
            raise MeasurementError(f"{origin}: device.soc_model is {device['soc_model']!r} but --soc says {soc_model!r}; "
                                   "drop one of them")
        device["soc_model"] = soc_model
    for key, value in (("manufacturer", manufacturer), ("device_name", device_name)):
        if value and not device.get(key):
            device[key] = value
    if not device.get("soc_model"):
        raise MeasurementError(f"{origin}: device.soc_model is missing; add it to the file or pass --soc SOC_MODEL")
    item["device"] = device
    for key, value in facts.items():
        if item.get(key) is None:
            item[key] = list(value) if isinstance(value, tuple) else value
    return validate_measurement(item, origin)


# ------------------------------------------------------------------------------- AI Hub
def is_aihub_file(path: Path) -> bool:
    """A wheel, a YAML file, or JSON shaped like an AI Hub perf.yaml / profile job."""
    path = Path(path)
    if path.suffix in (".whl", ".yaml", ".yml"):
        return True
    if path.suffix != ".json" or not path.is_file():
        return False
    from mobile_pipeline.bench.aihub import is_aihub_document

    try:
        return is_aihub_document(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def import_aihub(path: Path, *, models: list[str] | None = None, device: str | None = None, runtime: str | None = None,
                 precision: str | None = None, device_soc: dict[str, str] | None = None, origin: str | None = None,
                 out_root: Path | None = None, now: datetime | None = None) -> tuple[list[Path], list[str]]:
    """Store the measurements of an AI Hub perf.yaml, profile-job JSON or qai-hub-models wheel.

    One JSON list per model under ``<out_root>/aihub/``. Returns the stored paths and the notes
    on what was skipped (failed jobs, devices whose numbers AI Hub copies, unknown devices).
    """
    from mobile_pipeline.bench.aihub import AIHubImportError, load_aihub_devices, read_aihub_file, read_aihub_wheel

    path = Path(path)
    if not path.is_file():
        raise MeasurementError(f"AI Hub file not found: {path}")
    devices = load_aihub_devices(extra=device_soc)
    if path.suffix == ".whl":
        result = read_aihub_wheel(path, models, devices=devices)
    else:
        if models and len(models) > 1:
            raise AIHubImportError(f"{path}: one file holds one model; --model names {len(models)}")
        result = read_aihub_file(path, model=models[0] if models else None, device=device, runtime=runtime,
                                 precision=precision, origin=origin, devices=devices)
    if not result.measurements:
        raise AIHubImportError(f"{path}: no usable measurement (" + "; ".join(result.skipped[:4]) + ")")
    by_model: dict[str, list[Measurement]] = {}
    for m in result.measurements:
        by_model.setdefault(m.reference_model or m.artifact, []).append(m)
    stored = [store_measurement_set(group, name, out_root, now=now) for name, group in sorted(by_model.items())]
    return stored, list(dict.fromkeys(result.skipped))  # one note per reason, not per precision

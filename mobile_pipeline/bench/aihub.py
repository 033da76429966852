"""Import Qualcomm AI Hub on-device profiles: ``perf.yaml`` files, profile-job JSON, the wheel.

AI Hub profiles published networks on real phones and ships the numbers with the
``qai-hub-models`` package, one ``qai_hub_models/models/<model>/perf.yaml`` per network::

    precisions: {<precision>: {components: {<component>: {performance_metrics:
        {<device name>: {<runtime>: {inference_time_milliseconds, estimated_peak_memory_range_mb,
                                     layer_counts, primary_compute_unit, tool_versions,
                                     job_id, job_status}}}}}}}

A profile job of one's own (``hub.ProfileJob.download_profile()``) has the same facts as
``execution_summary`` (microseconds, bytes) and ``execution_detail`` (one entry per layer with
its compute unit); it does not name the device, runtime or model, so those come from the
command line. A single perf.yaml record saved as JSON is accepted the same way.

Every number becomes a :class:`~mobile_pipeline.bench.measurement.Measurement` with
``source: aihub``, the published network in ``reference_model``, the device mapped to its SoC
(``device_tiers/aihub_devices.yaml``), runtime, precision, compute unit, layer counts, tool
versions and the file it came from. Devices whose numbers AI Hub copies from another chipset
are skipped, and so are failed jobs; the import says so. These measurements calibrate the
device latency model (:mod:`mobile_pipeline.bench.device_fit`); they never move a device
between tiers (they time someone else's network).
"""

from __future__ import annotations

import json
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mobile_pipeline.bench.measurement import Measurement, MeasurementError, validate_measurement
from mobile_pipeline.utils.paths import device_tiers_dir
from mobile_pipeline.utils.validation import field_messages

DEVICES_FILENAME = "aihub_devices.yaml"
# Runtimes whose artifact is a file format we also export.
_FORMATS = {"tflite": "tflite", "onnx": "onnx", "precompiled_qnn_onnx": "onnx"}
_PERF_PATH = re.compile(r"(?:^|/)qai_hub_models/models/(?P<model>[A-Za-z0-9_.-]+)/perf\.yaml$")
_WHEEL = re.compile(r"qai_hub_models-(?P<version>[0-9][^-]*)-")


class AIHubImportError(MeasurementError):
    """An AI Hub file that cannot be imported; the message names what is missing and what to pass."""


class AIHubDevice(BaseModel):
    """One AI Hub device: which SoC it is (see ``device_tiers/aihub_devices.yaml``)."""

    model_config = ConfigDict(extra="forbid")

    soc_model: str = Field(min_length=1, max_length=64)
    chipset: str | None = None
    htp: int | None = Field(None, ge=60, le=120)
    form_factor: Literal["phone", "tablet", "iot", "auto", "compute", "xr"] = "phone"
    same_silicon: str | None = None
    copy_of: str | None = None

    @property
    def is_phone(self) -> bool:
        return self.form_factor in ("phone", "tablet")

    @property
    def tier_soc(self) -> str:
        """The SoC whose tier this device measures (a proxy board measures its phone twin)."""
        return self.same_silicon or self.soc_model


def load_aihub_devices(path: Path | None = None, extra: dict[str, str] | None = None) -> dict[str, AIHubDevice]:
    """The device table, plus ``extra`` {device name: SoC model} from the command line."""
    import yaml

    path = Path(path) if path else device_tiers_dir() / DEVICES_FILENAME
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise AIHubImportError(f"cannot read the AI Hub device table {path}: {err}") from None
    if not isinstance(raw, dict):
        raise AIHubImportError(f"{path}: top level must map device name -> {{soc_model: ...}}")
    devices: dict[str, AIHubDevice] = {}
    for name, entry in raw.items():
        try:
            devices[str(name)] = AIHubDevice.model_validate(entry)
        except ValidationError as err:
            raise AIHubImportError("\n  ".join([f"{path}: device {name!r}:", *field_messages(err)])) from None
    for name, soc in (extra or {}).items():
        devices[name] = AIHubDevice(soc_model=soc)
    return devices


@dataclass
class AIHubImport:
    """What one file gave: the measurements and, for everything left out, why."""

    measurements: list[Measurement] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def extend(self, other: "AIHubImport") -> None:
        self.measurements += other.measurements
        self.skipped += other.skipped


@dataclass(frozen=True)
class _Context:
    model: str
    origin: str
    devices: dict[str, AIHubDevice]


def _record_measurement(ctx: _Context, *, device_name: str, runtime: str, precision: str, component: str | None,
                        ms: float, compute_unit: str | None, layer_counts: dict[str, int] | None,
                        tool_versions: dict[str, str] | None, peak_mb: tuple[float, float] | None,
                        job_id: str | None, extra_raw: dict[str, Any] | None = None) -> Measurement:
    device = ctx.devices[device_name]
    reference = ctx.model if not component or _same_name(component, ctx.model) else f"{ctx.model}/{component}"
    raw: dict[str, Any] = {"job_id": job_id, "component": component, "chipset": device.chipset, "htp": device.htp,
                           "form_factor": device.form_factor}
    if device.same_silicon:
        raw["same_silicon"] = device.same_silicon
    if peak_mb is not None:
        raw["peak_memory_range_mb"] = list(peak_mb)
    raw.update(extra_raw or {})
    item: dict[str, Any] = {
        "source": "aihub",
        "device": {"soc_model": device.soc_model, "manufacturer": "QTI", "device_name": device_name,
                   "platform": "android" if device.is_phone else "other"},
        "artifact": f"{reference}.{precision}.{runtime}",
        "reference_model": reference,
        "format": _FORMATS.get(runtime),
        "precision": precision,
        "delegate": compute_unit.lower() if compute_unit else None,
        "runtime": runtime,
        "compute_unit": compute_unit,
        "layer_counts": layer_counts,
        "tool_versions": tool_versions,
        "latency": {"avg_ms": ms},
        "memory": {"peak_mb": float(peak_mb[1])} if peak_mb is not None else None,
        "origin": ctx.origin,
        "notes": f"AI Hub estimated inference time{f' (job {job_id})' if job_id else ''}",
        "raw": {k: v for k, v in raw.items() if v is not None},
    }
    return validate_measurement({k: v for k, v in item.items() if v is not None}, f"{ctx.origin} {device_name}/{runtime}")


def _same_name(component: str, model: str) -> bool:
    squash = lambda text: re.sub(r"[^a-z0-9]", "", text.lower())  # noqa: E731
    return squash(component) == squash(model)


def _device_ok(ctx: _Context, name: str, result: AIHubImport) -> bool:
    device = ctx.devices.get(name)
    if device is None:
        result.skipped.append(f"{ctx.model}: unknown device {name!r} (add it to device_tiers/{DEVICES_FILENAME} "
                              f"or pass --device-soc '{name}=SOC_MODEL')")
        return False
    if device.copy_of:
        result.skipped.append(f"{ctx.model}: {name}: AI Hub copies these numbers from {device.copy_of}; not a measurement")
        return False
    return True


def _str_map(value: Any) -> dict[str, str] | None:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else None


def _int_map(value: Any) -> dict[str, int] | None:
    if not isinstance(value, dict):
        return None
    return {str(k): int(v) for k, v in value.items() if isinstance(v, (int, float))}


def _perf_record(ctx: _Context, record: Any, *, device_name: str, runtime: str, precision: str,
                 component: str | None, result: AIHubImport) -> None:
    where = f"{ctx.model} {precision}/{component or '-'}/{device_name}/{runtime}"
    if not isinstance(record, dict):
        raise AIHubImportError(f"{ctx.origin}: {where}: expected a mapping of profile fields, got {type(record).__name__}")
    status = record.get("job_status", "Passed")
    ms = record.get("inference_time_milliseconds")
    if status != "Passed" or ms is None:
        result.skipped.append(f"{where}: job {record.get('job_id', '?')} {status}, no time")
        return
    if not isinstance(ms, (int, float)) or ms <= 0:
        raise AIHubImportError(f"{ctx.origin}: {where}: inference_time_milliseconds must be a positive number, got {ms!r}")
    memory = record.get("estimated_peak_memory_range_mb")
    peak = (float(memory["min"]), float(memory["max"])) if isinstance(memory, dict) and {"min", "max"} <= set(memory) else None
    result.measurements.append(_record_measurement(
        ctx, device_name=device_name, runtime=runtime, precision=precision, component=component, ms=float(ms),
        compute_unit=record.get("primary_compute_unit"), layer_counts=_int_map(record.get("layer_counts")),
        tool_versions=_str_map(record.get("tool_versions")), peak_mb=peak, job_id=record.get("job_id")))


def parse_perf_yaml(data: dict[str, Any], *, model: str, origin: str, devices: dict[str, AIHubDevice]) -> AIHubImport:
    """Every passed (device, runtime, precision) of one model's perf.yaml."""
    ctx = _Context(model, origin, devices)
    precisions = data.get("precisions")
    if not isinstance(precisions, dict) or not precisions:
        raise AIHubImportError(f"{origin}: no 'precisions' mapping: not an AI Hub perf.yaml")
    result = AIHubImport()
    for precision, per_precision in precisions.items():
        components = (per_precision or {}).get("components")
        if not isinstance(components, dict):
            raise AIHubImportError(f"{origin}: precisions.{precision} has no 'components' mapping")
        for component, per_component in components.items():
            metrics = (per_component or {}).get("performance_metrics") or {}
            for device_name, runtimes in metrics.items():
                if not _device_ok(ctx, str(device_name), result):
                    continue
                for runtime, record in (runtimes or {}).items():
                    _perf_record(ctx, record, device_name=str(device_name), runtime=str(runtime),
                                 precision=str(precision), component=str(component), result=result)
    return result


def parse_profile_job(data: dict[str, Any], *, model: str, device_name: str, runtime: str, precision: str,
                      origin: str, devices: dict[str, AIHubDevice]) -> AIHubImport:
    """A downloaded profile job (``execution_summary`` / ``execution_detail``) or one perf.yaml record."""
    ctx = _Context(model, origin, devices)
    result = AIHubImport()
    if not _device_ok(ctx, device_name, result):
        if device_name not in devices:
            raise AIHubImportError(result.skipped[-1].split(": ", 1)[1])
        return result
    if "inference_time_milliseconds" in data:
        _perf_record(ctx, data, device_name=device_name, runtime=runtime, precision=precision, component=None,
                     result=result)
        return result
    summary = data.get("execution_summary")
    if not isinstance(summary, dict) or not isinstance(summary.get("estimated_inference_time"), (int, float)):
        raise AIHubImportError(f"{origin}: execution_summary.estimated_inference_time (microseconds) is missing: "
                               "import the JSON of a finished profile job (ProfileJob.download_profile())")
    detail = data.get("execution_detail") or []
    units = Counter(str(layer.get("compute_unit", "")).upper() for layer in detail if isinstance(layer, dict))
    counts = {unit.lower(): n for unit, n in units.items() if unit in ("NPU", "GPU", "CPU")}
    if counts:
        counts["total"] = sum(counts.values())
    primary = max(("NPU", "GPU", "CPU"), key=lambda unit: units.get(unit, 0)) if counts else None
    low_high = summary.get("inference_memory_peak_range")
    peak = (low_high[0] / 2**20, low_high[1] / 2**20) if isinstance(low_high, (list, tuple)) and len(low_high) == 2 else None
    extra = {key: summary[key] / 1000.0 for key in ("first_load_time", "warm_load_time")
             if isinstance(summary.get(key), (int, float))}
    result.measurements.append(_record_measurement(
        ctx, device_name=device_name, runtime=runtime, precision=precision, component=None,
        ms=float(summary["estimated_inference_time"]) / 1000.0, compute_unit=primary, layer_counts=counts or None,
        tool_versions=_str_map(data.get("tool_versions")), peak_mb=peak, job_id=data.get("job_id"),
        extra_raw={f"{k[:-5]}_ms" if k.endswith("_time") else k: v for k, v in extra.items()}))
    return result


def is_aihub_document(data: Any) -> bool:
    """True for a perf.yaml, a profile job download, or a single perf.yaml record."""
    return isinstance(data, dict) and ("precisions" in data or "execution_summary" in data
                                       or "inference_time_milliseconds" in data)


def model_from_path(path: Path | str) -> str | None:
    """``.../qai_hub_models/models/<model>/perf.yaml`` -> ``<model>`` (or the parent folder of a perf.yaml)."""
    text = Path(path).as_posix()
    if (match := _PERF_PATH.search(text)) is not None:
        return match.group("model")
    return Path(path).parent.name if Path(path).name == "perf.yaml" else None


def read_aihub_document(data: Any, *, origin: str, model: str | None = None, device: str | None = None,
                        runtime: str | None = None, precision: str | None = None,
                        devices: dict[str, AIHubDevice] | None = None) -> AIHubImport:
    """Dispatch a parsed document to the right reader; the error says which option is missing."""
    devices = devices if devices is not None else load_aihub_devices()
    if not is_aihub_document(data):
        raise AIHubImportError(f"{origin}: not an AI Hub profile: expected a perf.yaml ('precisions: ...'), a profile "
                               "job download ('execution_summary: ...') or one perf.yaml record "
                               "('inference_time_milliseconds: ...')")
    if not model:
        raise AIHubImportError(f"{origin}: which network is this? pass --model MODEL_ID (the qai_hub_models/models "
                               "folder name, e.g. quicksrnetsmall)")
    if "precisions" in data:
        return parse_perf_yaml(data, model=model, origin=origin, devices=devices)
    missing = [flag for flag, value in (("--device", device), ("--runtime", runtime), ("--precision", precision))
               if not value]
    if missing:
        raise AIHubImportError(f"{origin}: a profile job does not say where it ran; pass {', '.join(missing)} "
                               "(e.g. --device 'Samsung Galaxy S24' --runtime tflite --precision w8a8)")
    return parse_profile_job(data, model=model, device_name=str(device), runtime=str(runtime),
                             precision=str(precision), origin=origin, devices=devices)


def read_aihub_file(path: Path, *, model: str | None = None, device: str | None = None, runtime: str | None = None,
                    precision: str | None = None, origin: str | None = None,
                    devices: dict[str, AIHubDevice] | None = None) -> AIHubImport:
    """Read a perf.yaml / profile JSON file (YAML parses both)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise AIHubImportError(f"cannot read {path}: {err}") from None
    return read_aihub_document(data, origin=origin or str(path), model=model or model_from_path(path), device=device,
                               runtime=runtime, precision=precision, devices=devices)


def read_aihub_wheel(path: Path, models: list[str] | None = None,
                     devices: dict[str, AIHubDevice] | None = None) -> AIHubImport:
    """Every (or the named) model's perf.yaml inside a ``qai_hub_models-*.whl``, read as a zip."""
    import yaml

    path = Path(path)
    version = (m.group("version") if (m := _WHEEL.search(path.name)) else "unknown version")
    devices = devices if devices is not None else load_aihub_devices()
    result = AIHubImport()
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as err:
        raise AIHubImportError(f"cannot open {path} as a wheel: {err}") from None
    with archive:
        found = {model_from_path(name): name for name in archive.namelist() if _PERF_PATH.search(name)}
        wanted = models or sorted(k for k in found if k)
        missing = [m for m in wanted if m not in found]
        if missing:
            raise AIHubImportError(f"{path.name} has no perf.yaml for {missing}; it has {len(found)} models, e.g. "
                                   f"{sorted(k for k in found if k)[:8]}")
        for model in wanted:
            data = yaml.safe_load(archive.read(found[model]).decode("utf-8"))
            result.extend(parse_perf_yaml(data, model=model, devices=devices,
                                          origin=f"qai-hub-models {version}: {found[model]}"))
    return result


def parse_device_soc(pairs: list[str] | None) -> dict[str, str]:
    """``["Galaxy X=SM9999", ...]`` -> {name: soc}; the error quotes the bad entry."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, soc = pair.rpartition("=")
        if not sep or not name.strip() or not soc.strip():
            raise AIHubImportError(f"--device-soc expects 'DEVICE NAME=SOC_MODEL', got {pair!r}")
        out[name.strip()] = soc.strip()
    return out


def dump_measurements(measurements: list[Measurement]) -> str:
    """A JSON list with one measurement per line: compact, and diffs line by line."""
    rows = [json.dumps(m.model_dump(mode="json", exclude_none=True), sort_keys=True) for m in measurements]
    return "[\n" + ",\n".join(rows) + "\n]\n"

"""One latency measurement of one artifact on one real device, as stored in ``device_tiers/measurements/``.

Measurements are data that calibration reads back (per-tier latency scales, tier moves), so
they are validated on the way in and on the way out: unknown keys are rejected (a typo such
as ``avg_ms`` at the top level is an error naming the field, not a silently ignored number).
The same model is the documented JSON import form for sources other than ``benchmark_model``
(a Core ML performance report transcribed by hand, an app's own timing); see
``device_tiers/measurements/README.md``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mobile_pipeline.utils.atomic import atomic_write_json
from mobile_pipeline.utils.paths import device_tiers_dir
from mobile_pipeline.utils.validation import field_messages

SCHEMA_VERSION = 1
# "aihub": a published Qualcomm AI Hub profile (perf.yaml / profile job) of a reference network
Source = Literal["benchmark_model", "coreml_report", "app_timing", "coreml_verify", "aihub", "other"]
#: Sources measured on a computer, not a phone: calibration (tier scales, device moves) skips them.
NOT_A_PHONE_SOURCES: frozenset[str] = frozenset({"coreml_verify"})


class MeasurementError(ValueError):
    """A measurement file or import that cannot be used; the message names the field or file."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceTag(_Strict):
    """The phone a measurement was taken on.

    Args:
        soc_model: Android ``Build.SOC_MODEL`` (``SM8650``) or iOS machine id (``iPhone16,1``);
            the key the tier classifier and the overrides file use.
        manufacturer: ``Build.SOC_MANUFACTURER`` (``QTI``, ``Mediatek``); optional.
        device_name: marketing or model name (``Pixel 8``), for humans only.
        platform: ``android``, ``ios`` or ``other``.
        tier: the device's tier when known better than the classifier (optional).
    """

    soc_model: str = Field(min_length=1, max_length=64)
    manufacturer: str | None = Field(None, max_length=64)
    device_name: str | None = Field(None, max_length=128)
    platform: Literal["android", "ios", "other"] = "android"
    tier: str | None = None


class LatencyStats(_Strict):
    """Latency of the warm runs, in milliseconds. ``avg_ms`` is required; the rest when known."""

    avg_ms: float = Field(gt=0)
    p50_ms: float | None = Field(None, gt=0)
    p90_ms: float | None = Field(None, gt=0)
    p99_ms: float | None = Field(None, gt=0)
    std_ms: float | None = Field(None, ge=0)
    min_ms: float | None = Field(None, gt=0)
    max_ms: float | None = Field(None, gt=0)
    count: int | None = Field(None, ge=1)

    @property
    def typical_ms(self) -> float:
        """The median when known (robust to a few slow runs), else the mean."""
        return self.p50_ms if self.p50_ms is not None else self.avg_ms


class MemoryStats(_Strict):
    """Memory in MB as the tool reports it (approximate on phones)."""

    init_delta_mb: float | None = Field(None, ge=0)
    overall_delta_mb: float | None = Field(None, ge=0)
    peak_mb: float | None = Field(None, ge=0)


class ParityEvidence(_Strict):
    """The artifact run by its own runtime against the reference stored at export (``verify-coreml``).

    ``artifact_sha256`` binds the evidence to exact bytes (for a ``.mlpackage`` the exporter's
    tree hash, the report's ``sha256``): a re-exported artifact is not verified by it.
    """

    artifact_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    runtime: str = Field(min_length=1, max_length=128, description="e.g. 'coremltools 9.0 predict, compute units ALL'.")
    host: str | None = Field(None, max_length=128, description="e.g. 'macOS 15.1 arm64 (Mac14,2)'.")
    psnr_db: float | None = Field(None, ge=0, description="None when the output could not be compared (see problem).")
    max_abs_err: float | None = Field(None, ge=0)
    gate_db: float = Field(gt=0)
    images: int = Field(ge=1)
    passed: bool
    problem: str | None = Field(None, max_length=500, description="Why the output could not be compared.")

    @model_validator(mode="after")
    def _passed_matches_gate(self) -> "ParityEvidence":
        expected = self.psnr_db is not None and self.psnr_db >= self.gate_db
        if self.passed != expected:
            raise ValueError(f"passed={self.passed} contradicts psnr_db {self.psnr_db} against gate_db {self.gate_db}")
        return self


class Measurement(_Strict):
    """One artifact timed on one device. This is also the JSON import form (see the README)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    source: Source
    device: DeviceTag
    artifact: str = Field(min_length=1, description="Artifact file name (e.g. stylizer-cpu-fp32.tflite).")
    arch: str | None = Field(None, description="Architecture string of the generator; needed for calibration.")
    tier: str | None = Field(None, description="Tier the artifact was exported for.")
    format: Literal["onnx", "tflite", "coreml", "executorch"] | None = None
    precision: str | None = None
    input_hw: tuple[int, int] | None = None
    delegate: str | None = Field(None, description="xnnpack, gpu, nnapi, hexagon, ane, cpu ...")
    num_threads: int | None = Field(None, ge=1)
    latency: LatencyStats
    init_ms: float | None = Field(None, ge=0)
    first_inference_ms: float | None = Field(None, ge=0)
    memory: MemoryStats | None = None
    measured_at: datetime | None = None
    imported_at: datetime | None = None
    notes: str | None = None
    parity: ParityEvidence | None = Field(None, description="Parity of the artifact on this machine's runtime "
                                                            "(written by `export verify-coreml`); verifies it in the manifest.")
    # Where the number comes from, for the profiles of published networks (AI Hub) that the
    # device latency model is fitted on; a measurement of one of our artifacts leaves them empty.
    reference_model: str | None = Field(None, description="Published network that ran (AI Hub model id), not ours.")
    runtime: str | None = Field(None, description="tflite, qnn_dlc, qnn_context_binary, onnx, ...")
    compute_unit: str | None = Field(None, description="Primary compute unit the profiler reported: NPU, GPU, CPU.")
    layer_counts: dict[str, int] | None = Field(None, description="Layers per compute unit, e.g. {npu: 13, total: 13}.")
    tool_versions: dict[str, str] | None = Field(None, description="qairt, tflite, onnx_runtime ... versions.")
    origin: str | None = Field(None, description="The file (and package version) the number was read from.")
    raw: dict[str, Any] = Field(default_factory=dict, description="Everything the parser read, for audits.")

    @model_validator(mode="after")
    def _ordered_percentiles(self) -> "Measurement":
        lat = self.latency
        known = [v for v in (lat.p50_ms, lat.p90_ms, lat.p99_ms) if v is not None]
        if known != sorted(known):
            raise ValueError("latency percentiles must satisfy p50_ms <= p90_ms <= p99_ms")
        return self


def default_measurements_dir() -> Path:
    return device_tiers_dir() / "measurements"


def validate_measurement(raw: Any, origin: str) -> Measurement:
    """Validate one measurement mapping; errors list every bad field with its path."""
    if not isinstance(raw, dict):
        raise MeasurementError(f"{origin}: a measurement must be a JSON object, got {type(raw).__name__}")
    try:
        return Measurement.model_validate(raw)
    except ValidationError as err:
        lines = field_messages(err, unknown_key="unknown key (see device_tiers/measurements/README.md for the fields)",
                               missing="required field is missing")
        raise MeasurementError("\n  ".join([f"{origin}: invalid measurement:", *lines])) from None


_UNSAFE = re.compile(r"[^A-Za-z0-9._,-]+")


def safe_name(text: str) -> str:
    """A file-system-safe form of a SoC model or artifact name (``iPhone16,1`` stays readable)."""
    cleaned = _UNSAFE.sub("_", text).strip("._")
    return cleaned[:80] or "unnamed"


def store_measurement(measurement: Measurement, root: Path | None = None, now: datetime | None = None) -> Path:
    """Write to ``<root>/<soc>/<timestamp>-<artifact>.json`` atomically; never overwrites."""
    root = Path(root) if root is not None else default_measurements_dir()
    now = now or datetime.now(timezone.utc)
    if measurement.imported_at is None:
        measurement = measurement.model_copy(update={"imported_at": now})
    folder = root / safe_name(measurement.device.soc_model)
    stem = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{safe_name(measurement.artifact)}"
    path = folder / f"{stem}.json"
    counter = 1
    while path.exists():  # two imports in the same second keep both
        path = folder / f"{stem}-{counter}.json"
        counter += 1
    atomic_write_json(path, measurement.model_dump(mode="json", exclude_none=True))
    return path


def store_measurement_set(measurements: list[Measurement], name: str, root: Path | None = None,
                          folder: str = "aihub", now: datetime | None = None) -> Path:
    """Write many measurements as one JSON list, ``<root>/<folder>/<timestamp>-<name>.json``.

    A published profile file holds hundreds of numbers (devices x runtimes x precisions); one
    file per import keeps the store reviewable. Never overwrites.
    """
    if not measurements:
        raise MeasurementError(f"{name}: nothing to store")
    root = Path(root) if root is not None else default_measurements_dir()
    now = now or datetime.now(timezone.utc)
    items = [(m if m.imported_at is not None else m.model_copy(update={"imported_at": now})) for m in measurements]
    stem = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{safe_name(name)}"
    path = root / folder / f"{stem}.json"
    counter = 1
    while path.exists():
        path = root / folder / f"{stem}-{counter}.json"
        counter += 1
    atomic_write_json(path, [m.model_dump(mode="json", exclude_none=True) for m in items])
    return path


def load_measurements(root: Path | None = None) -> list[tuple[Path, Measurement]]:
    """Every stored measurement under ``root`` (sorted by path); a bad file is an error naming it.

    A file holds one measurement (one import of a log) or a list of them (an AI Hub profile set).
    """
    root = Path(root) if root is not None else default_measurements_dir()
    found: list[tuple[Path, Measurement]] = []
    if not root.is_dir():
        return found
    for path in sorted(root.glob("*/*.json")):
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise MeasurementError(f"{path}: not valid JSON ({err}); fix or delete the file") from None
        if isinstance(raw, list):
            found += [(path, validate_measurement(item, f"{path}[{i}]")) for i, item in enumerate(raw)]
        else:
            found.append((path, validate_measurement(raw, str(path))))
    return found

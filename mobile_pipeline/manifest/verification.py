"""Which artifacts were verified after export: parity evidence from imported measurements.

Core ML cannot run off macOS, so a release built on Linux records its Core ML artifacts as
``verified: false``. ``mobile-pipeline export verify-coreml`` runs them on a Mac against the
reference stored at export and writes measurements with a ``parity`` block; once
``mobile-pipeline bench import`` has stored them under ``device_tiers/measurements/``, the
manifest build finds the evidence here, by the artifact's exact hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mobile_pipeline.manifest.errors import ManifestBuildError


@dataclass(frozen=True)
class Verification:
    """The latest parity evidence for one artifact hash."""

    passed: bool
    summary: str  # "coremltools 9.0 predict (ALL) on macOS 15.1: 71.2 dB >= gate 60 dB, 4 images"
    source: Path


def load_verifications(measurements_dir: Path | None = None) -> dict[str, Verification]:
    """``artifact sha256 -> Verification`` from every stored measurement with parity evidence.

    When one artifact was verified several times, the most recent measurement decides.

    Raises:
        ManifestBuildError: a stored measurement is invalid (the message names the file).
    """
    from mobile_pipeline.bench.measurement import MeasurementError, load_measurements

    try:
        stored = load_measurements(measurements_dir)
    except MeasurementError as err:
        raise ManifestBuildError(f"cannot read the imported measurements: {err}") from None
    latest: dict[str, tuple[datetime, Verification]] = {}
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    for path, m in stored:
        if m.parity is None:
            continue
        when = m.measured_at or m.imported_at or epoch
        when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
        p = m.parity
        result = p.problem or f"{p.psnr_db:.1f} dB {'>=' if p.passed else '<'} gate {p.gate_db:.0f} dB"
        summary = f"{p.runtime}{f' on {p.host}' if p.host else ''}: {result}, {p.images} image(s) ({path.name})"
        current = latest.get(p.artifact_sha256)
        if current is None or when >= current[0]:
            latest[p.artifact_sha256] = (when, Verification(p.passed, summary, path))
    return {sha: verification for sha, (_, verification) in latest.items()}

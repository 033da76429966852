"""Build ``manifest.json`` from validated artifacts and the tier rules.

Only artifacts whose ``<artifact>.report.json`` says ``passed=True`` enter, and nothing
under a ``rejected/`` folder is even read. An artifact that was never run on its own runtime
(Core ML built off macOS) is *unverified* unless an imported measurement carries passing
parity evidence for its exact hash (``export verify-coreml`` on a Mac, then ``bench
import``); ``ManifestConfig.require_verified`` decides per format whether an unverified one
is left out or included marked ``verified: false``. Evidence of *failed* parity always
leaves it out. Each file is re-hashed: the manifest promises a
sha256 to every phone, so it must be the hash of the bytes that will be uploaded.

Folder artifacts (Core ML ``.mlpackage``) are verified against the exporter's tree hash and
shipped as a reproducible ``.mlpackage.zip`` (``packaging: zip``; ``content_sha256`` keeps the
tree hash). An ExecuTorch ``.pte`` is listed once per platform it runs on (an XNNPACK one
for Android and iOS, a Core ML-delegated one for iOS), each entry with its own OS floor and
the delegate baked into the file. The builder refuses (``ManifestBuildError``, message naming the file or tier and the fix):
a report whose artifact is missing, a size or hash mismatch, a tier without any model, a
platform without a CPU fallback, two artifacts claiming the same tier/format/precision.
The manifest is written atomically: a failed build leaves the previous one in place.
"""

from __future__ import annotations

import json
import logging
import re
import string
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from mobile_pipeline.config import ManifestConfig
from mobile_pipeline.exporters.report import REPORT_SUFFIX, ArtifactReport, TensorSpec, report_path_for
from mobile_pipeline.exporters.validate import artifact_digest
from mobile_pipeline.manifest.errors import ManifestBuildError
from mobile_pipeline.manifest.schema import (
    IOSpec,
    LatencyFigures,
    Manifest,
    ModelEntry,
    TierRules,
)
from mobile_pipeline.manifest.tier_source import rules_from_tiers
from mobile_pipeline.manifest.verification import Verification, load_verifications
from mobile_pipeline.utils.atomic import atomic_output, atomic_write_text, sha256_file

__all__ = ["ManifestBuildError", "build_manifest", "collect_models", "check_coverage", "find_reports", "load_bench",
           "zip_package"]

_log = logging.getLogger(__name__)

_RELEASE_ID_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
PLATFORM_OF_FORMAT = {"tflite": "android", "coreml": "ios", "onnx": "any"}

# Core ML weight compression needs newer OS versions than the release's floor
# (coremltools: palettization and linear int8 weights need the iOS 16 opset).
_COREML_MIN_IOS = {"w8": "16.0", "w6-palette": "16.0", "w4-palette": "16.0"}
# ExecuTorch's prebuilt iOS runtime (its Swift package) declares iOS 17 as its platform floor.
EXECUTORCH_MIN_IOS = "17.0"
# NNAPI and the Hexagon/QNN delegates are Android 8.1+ (API 27).
_DELEGATE_MIN_SDK = {"nnapi": 27, "hexagon": 27, "qnn": 27}


def find_reports(artifacts_dir: Path) -> list[Path]:
    """Every ``*.report.json`` under ``artifacts_dir``, skipping ``rejected/`` and temporaries."""
    found = []
    for path in sorted(artifacts_dir.rglob(f"*{REPORT_SUFFIX}")):
        rel = path.relative_to(artifacts_dir)
        if "rejected" in rel.parts[:-1] or any(part.startswith(".") for part in rel.parts):
            continue
        found.append(path)
    return found


def _version_max(a: str, b: str) -> str:
    key = lambda v: tuple(int(x) for x in v.split("."))  # noqa: E731
    return a if key(a) >= key(b) else b


def _io(spec: TensorSpec) -> IOSpec:
    return IOSpec.model_validate(spec.model_dump())


def _url(template: str, release_id: str, file: str, sha256: str) -> str:
    return template.format(release_id=quote(release_id, safe=""), file=quote(file), sha256=sha256)


def check_url_template(template: str) -> None:
    """Refuse placeholders other than {release_id}, {file}, {sha256} before any work."""
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    unknown = names - {"release_id", "file", "sha256"}
    if unknown:
        raise ManifestBuildError(
            f"manifest.url_template has unknown placeholder(s) {sorted(unknown)}; use {{release_id}}, {{file}}, {{sha256}}"
        )
    if "file" not in names and "sha256" not in names:
        raise ManifestBuildError("manifest.url_template must contain {file} or {sha256} so each model has its own URL")


def zip_package(folder: Path) -> Path:
    """``X.mlpackage/`` -> ``X.mlpackage.zip`` next to it, byte-for-byte reproducible.

    A phone downloads one file per model, so folder artifacts (Core ML packages) ship zipped.
    Sorted entries and fixed timestamps make the same content give the same bytes, so a rebuilt
    manifest keeps the same sha256 and caches stay valid.
    """
    out = folder.with_name(folder.name + ".zip")
    with atomic_output(out) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for item in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(f"{folder.name}/{item.relative_to(folder).as_posix()}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, item.read_bytes())
    return out


def load_bench(bench_json: Path) -> dict[str, dict[str, Any]]:
    """Measured latency per artifact, keyed by file name and by sha256.

    Accepts bench.json as ``{"results": [...]}`` or a plain list; each row names its artifact
    (``artifact`` or ``path``) and/or ``sha256`` and gives ``p50_ms`` (or ``median_ms``) and
    optionally ``p90_ms``, ``runtime``, ``threads``, ``device``. When an artifact was measured
    several times (thread counts) the fastest p50 is kept: the app picks its thread count.
    """
    try:
        data = json.loads(Path(bench_json).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ManifestBuildError(f"cannot read bench results {bench_json}: {err}") from None
    rows = data.get("results", data.get("rows", [])) if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise ManifestBuildError(f"{bench_json}: expected a list of results under 'results'")
    by_key: dict[str, dict[str, Any]] = {}
    for row in rows:
        if not isinstance(row, dict):
            continue
        p50 = row.get("p50_ms", row.get("median_ms"))
        if not isinstance(p50, (int, float)) or row.get("status", "ok") not in ("ok", "passed", True):
            continue
        keys = [str(row[k]) for k in ("sha256",) if row.get(k)]
        for k in ("artifact", "path", "file"):
            if row.get(k):
                keys.append(Path(str(row[k])).name)
        for key in keys:
            if key not in by_key or p50 < by_key[key]["p50_ms"]:
                by_key[key] = {"p50_ms": float(p50), **{k: row.get(k) for k in ("p90_ms", "runtime", "threads", "device")}}
    return by_key


def _measured(bench: dict[str, dict[str, Any]], file: str, sha256: str) -> dict[str, Any]:
    row = bench.get(sha256) or bench.get(Path(file).name)
    if row is None:
        return {}
    where = ", ".join(f"{k}={row[k]}" for k in ("device", "runtime", "threads") if row.get(k) is not None)
    p90 = row.get("p90_ms")
    return {"measured_p50_ms": row["p50_ms"], "measured_p90_ms": float(p90) if isinstance(p90, (int, float)) else None,
            "measured_on": where or None}


class _Predictor:
    """Predicted latency on the tier's reference device and its source; (None, None) without a latency model."""

    def __init__(self) -> None:
        self._model: Any = None
        self._failed = False

    def __call__(self, arch: str | None, tier: str, input_hw: tuple[int, int]) -> tuple[float | None, str | None]:
        if arch is None or self._failed:
            return None, None
        try:
            if self._model is None:
                from mobile_pipeline.search.latency import LatencyModel

                self._model = LatencyModel.load()
            ms = round(float(self._model.predict_ms(arch, tier, input_hw)), 3)
            return ms, self._model.scale_sources.get(tier)
        except Exception as err:  # the latency model is optional here: log and leave the figure empty
            _log.warning("manifest: no predicted latency (%s: %s)", type(err).__name__, err)
            self._failed = True
            return None, None


def _input_hw(spec: IOSpec) -> tuple[int, int]:
    shape = spec.shape
    return (shape[2], shape[3]) if spec.layout == "NCHW" else (shape[1], shape[2])


def collect_models(artifacts_dir: Path, release_id: str, cfg: ManifestConfig,
                   bench: dict[str, dict[str, Any]] | None = None,
                   verifications: dict[str, Verification] | None = None,
                   excluded: list[str] | None = None) -> tuple[list[ModelEntry], int]:
    """Model entries from passed reports, and the number of failed reports skipped.

    Args:
        verifications: parity evidence by artifact hash (:func:`load_verifications`).
        excluded: when given, receives ``"<id>: <why>"`` for every passed artifact left out
            because it is unverified and its format requires verification (or failed it).
    """
    entries: list[ModelEntry] = []
    seen: dict[str, Path] = {}
    skipped = 0
    predict = _Predictor()
    for report_path in find_reports(artifacts_dir):
        try:
            report = ArtifactReport.model_validate_json(report_path.read_text(encoding="utf-8"))
        except (OSError, ValidationError) as err:
            raise ManifestBuildError(f"{report_path} is not a valid artifact report: {err}") from None
        if not report.passed:
            skipped += 1
            continue
        artifact = report.artifact_path(report_path)
        if not artifact.exists():
            raise ManifestBuildError(
                f"{report_path} reports artifact {artifact.name}, but {artifact} is missing: re-export it or delete the report"
            )
        # Folders (.mlpackage) hash as the exporter does: over 'relpath\0filehash' lines.
        digest, size = artifact_digest(artifact)
        if digest != report.sha256:
            raise ManifestBuildError(
                f"hash mismatch for {artifact}: report says sha256 {report.sha256}, file has {digest}; "
                "the file changed after export: re-export it"
            )
        if size != report.bytes:
            raise ManifestBuildError(f"size mismatch for {artifact}: report says {report.bytes} bytes, file has {size}")
        verified, verified_reason, verified_by = bool(report.verified), report.verified_reason, None
        evidence = (verifications or {}).get(report.sha256)
        model_key = f"{report.tier}-{report.format}-{report.precision}"
        if evidence is not None and not evidence.passed:
            _note_excluded(excluded, f"{model_key}: failed its parity check after export: {evidence.summary}")
            continue
        if evidence is not None and not verified:
            verified, verified_reason, verified_by = True, None, evidence.summary
        if not verified and cfg.require_verified.get(report.format, True):
            _note_excluded(excluded, f"{model_key}: unverified and manifest.require_verified.{report.format} is true "
                                     f"({verified_reason})")
            continue
        content_sha256 = None
        if artifact.is_dir():
            content_sha256 = digest
            artifact = zip_package(artifact)
            digest, size = sha256_file(artifact), artifact.stat().st_size
        if not report.tier:
            raise ManifestBuildError(f"{report_path} has no tier: export with tier=... so the manifest can dispatch it")
        file = artifact.relative_to(artifacts_dir).as_posix()
        io_in = _io(report.input)
        predicted_ms, predicted_source = predict(report.arch, report.tier, _input_hw(io_in))
        latency = LatencyFigures(
            predicted_ms=predicted_ms, predicted_source=predicted_source,
            **_measured(bench or {}, file, digest),
        )
        htp_arch = compiled_from = None
        base_id = f"{report.tier}-{report.format}-{report.precision}"
        platforms = _platforms_of(report)
        if report.qnn is not None:
            # Precompiled for one Hexagon architecture: Android phones with that NPU only.
            platforms, htp_arch = ("android",), report.qnn.htp_arch
            base_id += f"-htp-{htp_arch}"
            compiled_from = _source_id(report_path.parent / report.qnn.source_artifact, report_path)
        for platform in platforms:
            # A file listed for several platforms (an XNNPACK .pte) gets one entry each, so each
            # carries its own OS floor; the id says which.
            model_id = base_id + (f"-{platform}" if len(platforms) > 1 else "")
            if model_id in seen:
                raise ManifestBuildError(
                    f"two artifacts claim {model_id}: {seen[model_id]} and {artifact}; keep one of them"
                )
            seen[model_id] = artifact
            entries.append(ModelEntry(
                id=model_id, tier=report.tier, platform=platform, format=report.format, precision=report.precision,
                file=file, url=_url(cfg.url_template, release_id, file, digest), sha256=digest, bytes=size,
                input=io_in, output=_io(report.output), runtime=report.runtime, delegate=report.delegate_hint,
                min_os=_min_os(report, platform, cfg), arch=report.arch, parity_psnr_db=report.parity.psnr_db,
                latency=latency, verified=verified, verified_reason=verified_reason, verified_by=verified_by,
                packaging="zip" if content_sha256 else "file", content_sha256=content_sha256,
                htp_arch=htp_arch, compiled_from=compiled_from,
            ))
    ids = {e.id for e in entries}
    for entry in entries:
        if entry.compiled_from is not None and entry.compiled_from not in ids:
            raise ManifestBuildError(
                f"{entry.file} was compiled from model {entry.compiled_from}, which has no passed report here; "
                "a precompiled model ships with its QDQ source: re-export the tier"
            )
    return entries, skipped


def _platforms_of(report: ArtifactReport) -> tuple[str, ...]:
    """Model platforms an artifact serves: by format, and for a .pte by the delegate inside it."""
    if report.format == "executorch":
        return ("ios",) if report.delegate_hint == "coreml" else ("android", "ios")
    return (PLATFORM_OF_FORMAT[report.format],)


def _min_os(report: ArtifactReport, platform: str, cfg: ManifestConfig) -> str | None:
    """The OS floor of one entry: the release's, raised by what the format or delegate needs."""
    if platform == "android":
        return str(max(cfg.min_android_sdk, _DELEGATE_MIN_SDK.get(report.delegate_hint or "", 0)))
    if platform != "ios":
        return None
    floor = _version_max(cfg.min_ios, _COREML_MIN_IOS.get(report.precision, cfg.min_ios))
    if report.format == "executorch":
        floor = _version_max(floor, EXECUTORCH_MIN_IOS)
        target = str(report.recipe.get("minimum_deployment_target", "")) if report.delegate_hint == "coreml" else ""
        if target.startswith("iOS"):  # the Core ML program inside the .pte has its own floor
            floor = _version_max(floor, f"{int(target[3:])}.0")
    return floor


def _note_excluded(excluded: list[str] | None, line: str) -> None:
    _log.warning("manifest: left out %s", line)
    if excluded is not None:
        excluded.append(line)


def _source_id(source: Path, report_path: Path) -> str:
    """The manifest id of the QDQ model a precompiled model names as its source."""
    try:
        report = ArtifactReport.model_validate_json(report_path_for(source).read_text(encoding="utf-8"))
    except (OSError, ValidationError) as err:
        raise ManifestBuildError(
            f"{report_path} names source model {source.name}, whose report cannot be read ({err}); re-export the tier"
        ) from None
    return f"{report.tier}-{report.format}-{report.precision}"


def check_coverage(models: list[ModelEntry], rules: TierRules, chains: dict[str, tuple[str, ...]],
                   required_tiers: tuple[str, ...], artifacts_dir: Path, skipped: int) -> None:
    """Every model's tier is known; every required tier has a model; every platform that has models has a CPU model."""
    for m in models:
        if m.tier not in rules.tiers:
            raise ManifestBuildError(
                f"{artifacts_dir / m.file} is exported for tier {m.tier!r}, which the tier rules do not know "
                f"({list(rules.tiers)}); re-export it for one of those"
            )
    have = {m.tier for m in models}
    for tier in required_tiers:
        if tier not in have:
            raise ManifestBuildError(
                f"tier {tier!r} has no model: no passed artifact report under {artifacts_dir} names tier {tier!r} "
                f"({skipped} failed report(s) skipped); export that tier or drop it from manifest.tiers"
            )
    platforms = {m.platform for m in models}
    served = [p for p in ("android", "ios") if p in platforms or "any" in platforms]
    for platform in served:
        runs = (platform, "any")
        if not any(m.tier == rules.default_tier and m.platform in runs for m in models):
            wanted = {"android": "tflite (or onnx)", "ios": "coreml (or onnx)"}[platform]
            raise ManifestBuildError(
                f"platform {platform!r} has no CPU fallback: no {rules.default_tier!r}-tier model runs there; "
                f"export a {wanted} variant for tier {rules.default_tier!r}"
            )
        if chains.get(platform, ())[-1:] != (rules.default_tier,):
            raise ManifestBuildError(f"fallback chain for {platform!r} does not end with {rules.default_tier!r}")


def build_manifest(artifacts_dir: Path, out_path: Path, *, release_id: str, cfg: ManifestConfig,
                   bench_json: Path | None = None, rules: TierRules | None = None,
                   fallback_chains: dict[str, tuple[str, ...]] | None = None,
                   measurements_dir: Path | None = None, excluded: list[str] | None = None) -> Manifest:
    """Verify the artifacts, attach tier rules and fallback chains, write ``out_path`` atomically.

    Args:
        artifacts_dir: folder holding artifacts and their ``.report.json`` (searched recursively).
        out_path: where ``manifest.json`` goes.
        release_id: the release's id (letters, digits, ``.``, ``_``, ``-``).
        cfg: URL template, OS floors, tiers that must have a model.
        bench_json: optional bench results; adds measured latency per artifact.
        rules, fallback_chains: default to the ones derived from ``mobile_pipeline.tiers``.
        measurements_dir: imported measurements holding parity evidence (default
            ``device_tiers/measurements``).
        excluded: receives the passed artifacts left out as unverified (see :func:`collect_models`).
    """
    artifacts_dir = Path(artifacts_dir)
    if not artifacts_dir.is_dir():
        raise ManifestBuildError(f"artifacts folder not found: {artifacts_dir}")
    if not re.match(_RELEASE_ID_RE, release_id):
        raise ManifestBuildError(
            f"release id {release_id!r} is not usable: 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    check_url_template(cfg.url_template)
    if rules is None or fallback_chains is None:
        derived_rules, derived_chains = rules_from_tiers()
        rules = rules or derived_rules
        fallback_chains = fallback_chains or derived_chains
    bench = load_bench(bench_json) if bench_json is not None else None
    models, skipped = collect_models(artifacts_dir, release_id, cfg, bench, load_verifications(measurements_dir),
                                     excluded)
    if not models:
        raise ManifestBuildError(
            f"no passed artifact reports under {artifacts_dir} ({skipped} failed, rejected/ ignored); run the export stage first"
        )
    required = tuple(cfg.tiers) if cfg.tiers is not None else rules.tiers
    unknown = [t for t in required if t not in rules.tiers]
    if unknown:
        raise ManifestBuildError(f"manifest.tiers names unknown tier(s) {unknown}; the tier rules know {list(rules.tiers)}")
    check_coverage(models, rules, fallback_chains, required, artifacts_dir, skipped)
    # Tiers that have no model are still valid targets: the dispatcher walks down the chain.
    try:
        manifest = Manifest(
            release_id=release_id, created_at=datetime.now(UTC).replace(microsecond=0), models=tuple(models),
            tier_rules=rules, fallback_chains={p: tuple(c) for p, c in fallback_chains.items()},
            format_preference={p: tuple(f) for p, f in cfg.format_preference.items()},
        )
    except ValidationError as err:
        raise ManifestBuildError(f"manifest for {release_id} is invalid: {err}") from None
    atomic_write_text(out_path, manifest.model_dump_json(indent=2) + "\n")
    _log.info("manifest: %d models (%d failed reports skipped) -> %s", len(models), skipped, out_path)
    return manifest

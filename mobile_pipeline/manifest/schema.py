"""The tier-selection manifest: a versioned pydantic schema, exported as JSON Schema.

The manifest is the only thing the dispatch server reads, so it is self-contained: every
model with its hash, size and tensor specs, the tier rules (catalog SoCs with vendor aliases,
iPhone machine-id families, GPU families, accelerator names, RAM and OS bounds) and the
per-platform fallback chains. A phone can be dispatched without ``device_tiers/``.

Structural rules live in the model validators, so the builder and the server's hot reload
refuse the same broken manifests (file existence and hashes are checked by the builder only:
the server never touches model files).

``schema_version`` is ``MAJOR.MINOR``: a reader accepts any minor of its major and refuses
another major with a message telling the operator to upgrade the server.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mobile_pipeline.config import DEFAULT_FORMAT_PREFERENCE
from mobile_pipeline.utils.validation import field_messages, valid_regex

# 1.1: families (tier rules); htp_arch on SoC rules and precompiled models, compiled_from.
# 1.2: ExecuTorch (.pte) models, one entry per platform, and a configurable format preference.
SCHEMA_VERSION = "1.2"
SCHEMA_MAJOR = 1

Format = Literal["onnx", "tflite", "coreml", "executorch"]
ModelPlatform = Literal["android", "ios", "any"]
DevicePlatform = Literal["android", "ios", "other"]

CPU_TIER = "cpu"
_SHA256_RE = r"^[0-9a-f]{64}$"
_ID_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_VERSION_RE = r"^[0-9]{1,3}(\.[0-9]{1,3}){0,3}$"
_HTP_ARCH_RE = r"^v[0-9]{2,3}$"

# Which model platforms a device platform can run; "any" (ONNX) runs everywhere ONNX Runtime does.
PLATFORM_RUNS: dict[str, tuple[str, ...]] = {
    "android": ("android", "any"),
    "ios": ("ios", "any"),
    "other": ("any",),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IOSpec(_Strict):
    """One input or output tensor as the on-device runtime sees it."""

    name: str
    shape: tuple[int, ...]
    layout: Literal["NCHW", "NHWC"]
    dtype: Literal["float32", "float16", "int8", "uint8"]
    value_range: tuple[float, float] = (0.0, 1.0)
    scale: float | None = Field(None, description="int8/uint8 I/O: real = (q - zero_point) * scale")
    zero_point: int | None = None


class LatencyFigures(_Strict):
    """Predicted (latency model, tier reference device) and measured (bench.json) latency."""

    predicted_ms: float | None = Field(None, ge=0)
    predicted_source: str | None = Field(
        None, description="Where predicted_ms comes from: 'fitted to measured phones: <phone> ...', "
                          "'calibrated (own measurements): ...' or 'uncalibrated (datasheet): ...'.")
    measured_p50_ms: float | None = Field(None, ge=0)
    measured_p90_ms: float | None = Field(None, ge=0)
    measured_on: str | None = Field(None, description="Where the measurement ran (runtime, threads, device).")


class ModelEntry(_Strict):
    """One downloadable artifact."""

    id: str = Field(pattern=_ID_RE, description="Unique within the manifest: <tier>-<format>-<precision>, plus "
                                                "-htp-<arch> when precompiled, or -<platform> for a file listed per "
                                                "platform (an XNNPACK .pte).")
    tier: str
    platform: ModelPlatform
    format: Format
    precision: str
    file: str = Field(description="Path relative to the artifacts folder (posix).")
    url: str
    sha256: str = Field(pattern=_SHA256_RE, description="Of the downloaded file (the zip for packaged models).")
    bytes: int = Field(gt=0)
    packaging: Literal["file", "zip"] = Field("file", description="zip: a folder artifact (.mlpackage), unzip before use.")
    content_sha256: str | None = Field(None, pattern=_SHA256_RE, description="Exporter's tree hash of a zipped folder.")
    input: IOSpec
    output: IOSpec
    runtime: str = Field(description="onnxruntime, litert, coreml or executorch.")
    delegate: str | None = Field(None, description="Delegate hint; for executorch the backend baked into the .pte "
                                                   "(xnnpack, coreml), which the app cannot change.")
    min_os: str | None = Field(None, pattern=_VERSION_RE, description="Android API level or iOS version.")
    arch: str | None = None
    parity_psnr_db: float | None = None
    verified: bool = Field(True, description="The artifact ran on its own runtime and matched the reference. False: "
                                             "included unverified by the release's manifest.require_verified choice "
                                             "(Core ML built off macOS); verified_reason says why.")
    verified_reason: str | None = Field(None, description="Why the artifact is not verified (None when verified).")
    verified_by: str | None = Field(None, description="Where verification happened when not at export (e.g. "
                                                      "coremltools predict on a Mac, from an imported measurement).")
    latency: LatencyFigures = LatencyFigures()
    htp_arch: str | None = Field(
        None, pattern=_HTP_ARCH_RE,
        description="Precompiled for this Hexagon NPU architecture only (an EPContext model): served first to phones "
                    "whose SoC rule has the same htp_arch, never to others.")
    compiled_from: str | None = Field(None, description="Id of the QDQ model a precompiled model was compiled from.")

    @field_validator("file")
    @classmethod
    def _relative_file(cls, value: str) -> str:
        # The file name travels to clients and into URLs: never absolute, never upward.
        if value.startswith("/") or "\\" in value or ".." in value.split("/") or not value:
            raise ValueError(f"file must be a relative posix path inside the artifacts folder, got {value!r}")
        return value


class SocRule(_Strict):
    """A catalog SoC (or a calibrated override) and its tier."""

    manufacturer: str = Field(description="Canonical vendor (qualcomm, mediatek, samsung, google, apple, ...).")
    model: str = Field(description="As Android reports it in Build.SOC_MODEL (SM8650, MT6989) or the Apple chip.")
    aliases: tuple[str, ...] = Field((), description="Other model strings for the same silicon (board names, bins).")
    tier: str
    name: str | None = Field(None, description="Marketing name, for people.")
    reported_manufacturers: tuple[str, ...] = Field(
        (), description="Build.SOC_MANUFACTURER spellings this SoC reports (QTI, Qualcomm, ...); for Play targeting."
    )
    int8_accelerator: bool = Field(False, description="Has a DSP/NPU: the int8 (dsp) model is worth trying as a fallback.")
    source: Literal["catalog", "override", "fixture"] = "catalog"
    htp_arch: str | None = Field(None, pattern=_HTP_ARCH_RE,
                                 description="Qualcomm: Hexagon NPU architecture (v68 ... v81); None = no HTP.")


class GpuRule(_Strict):
    """GL_RENDERER / Metal name family -> tier. Rules are tried in order; the first match wins."""

    pattern: str = Field(max_length=200, description="Regex, matched case-insensitively anywhere in the renderer.")
    tier: str
    description: str = ""
    min_cores: int | None = Field(None, ge=1, description="Applies only when the renderer reports MPn/MCn >= this.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        return valid_regex(value)


class TierBounds(_Strict):
    """Hard requirements of a tier; a device below them moves down its fallback chain."""

    min_ram_bytes: int | None = Field(None, ge=0)
    min_os: dict[str, str] = Field(default_factory=dict, description="platform -> minimum OS version.")

    @field_validator("min_os")
    @classmethod
    def _versions(cls, value: dict[str, str]) -> dict[str, str]:
        for platform, version in value.items():
            if not re.match(_VERSION_RE, version):
                raise ValueError(f"min_os[{platform}] must look like '14' or '17.2', got {version!r}")
        return value


Generations = tuple[tuple[int, str], ...]


class FamilyRule(_Strict):
    """A chip the catalog does not know, placed by its family (``device_tiers/families.yaml``).

    ``soc`` rules match a whole normalised Build.SOC_MODEL (lower case, letters and digits, bin
    and package suffixes also tried), ``ios`` rules an iOS machine id, ``gpu`` rules search the
    GL_RENDERER and need ``min_ram_bytes`` of reported RAM to corroborate the flagship they name.
    """

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,47}$")
    kind: Literal["soc", "ios", "gpu"]
    pattern: str = Field(max_length=200, description="Regex; a named group `gen` (digits) selects a step.")
    steps: Generations = Field((), description="((min gen, tier), ...) highest first; or use `tier`.")
    tier: str | None = None
    min_ram_bytes: int | None = Field(None, ge=0, description="gpu rules: reported RAM needed to corroborate.")
    int8_accelerator: bool = Field(False, description="Members have a DSP/NPU: the int8 (dsp) model is a fallback.")
    description: str = ""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        return valid_regex(value)

    @model_validator(mode="after")
    def _one_answer(self) -> "FamilyRule":
        if bool(self.steps) == (self.tier is not None):
            raise ValueError(f"family {self.id}: give exactly one of steps or tier")
        if self.steps and "gen" not in re.compile(self.pattern).groupindex:
            raise ValueError(f"family {self.id}: steps need a named group (?P<gen>...) in pattern")
        minimums = [m for m, _ in self.steps]
        if minimums != sorted(minimums, reverse=True):
            raise ValueError(f"family {self.id}: steps must be listed highest first")
        return self


class TierRules(_Strict):
    """Device -> tier, as data (exported from ``mobile_pipeline.tiers``; the server needs nothing else).

    Precedence: catalog SoC / iOS machine id, then family rules (SoC numbering, then GPU family
    with RAM), then capability evidence (GPU rules, reported accelerators, iOS generation, Apple
    chip name; the best tier any of them supports), then ``default_tier``. Bounds then step the
    device down its platform's chain.
    """

    tiers: tuple[str, ...] = Field(description="Every tier, best first; rank for 'best evidence wins'.")
    default_tier: str = CPU_TIER
    manufacturer_aliases: dict[str, str] = Field(
        default_factory=dict, description="lower-case reported vendor -> canonical vendor (qti -> qualcomm)."
    )
    socs: tuple[SocRule, ...] = ()
    ios_machines: dict[str, str] = Field(
        default_factory=dict, description="iOS machine id (iPhone16,1) -> SoC model in `socs` (A17 Pro)."
    )
    ios_generations: dict[str, Generations] = Field(
        default_factory=dict,
        description="Unknown iOS ids: family (iphone, ipad) -> ((min major, tier), ...) highest first.",
    )
    apple_chips: dict[str, Generations] = Field(
        default_factory=dict, description="Metal name 'Apple A15 GPU': chip line (a, m) -> ((min number, tier), ...).",
    )
    families: tuple[FamilyRule, ...] = Field(
        (), description="Family rules (schema 1.1+), tried in order after the catalog: soc/ios by model, then gpu.")
    gpu_rules: tuple[GpuRule, ...] = Field((), description="Android GPU families, first match wins.")
    accelerators: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="platform -> reported accelerator name -> tier it is evidence for."
    )
    int8_evidence: tuple[str, ...] = Field((), description="Accelerator names that show an int8 DSP/NPU.")
    int8_tiers: tuple[str, ...] = Field(("dsp", "npu"), description="A device placed in these tiers has int8 evidence.")
    int8_fallback_tiers: tuple[str, ...] = Field(
        ("dsp",), description="Tiers offered as a fallback only with int8 evidence (their model is a full-int8 graph)."
    )
    bounds: dict[str, TierBounds] = Field(default_factory=dict, description="tier -> requirements.")
    vendor_delegates: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="tier -> canonical vendor -> delegate hint for Android formats (qualcomm -> qnn, mediatek -> neuron).",
    )

    @model_validator(mode="after")
    def _references(self) -> "TierRules":
        known = set(self.tiers)
        if self.default_tier not in known:
            raise ValueError(f"tier_rules.default_tier {self.default_tier!r} is not in tier_rules.tiers {list(self.tiers)}")
        if len(known) != len(self.tiers):
            raise ValueError(f"tier_rules.tiers has duplicates: {list(self.tiers)}")
        named = {
            "gpu_rules": [r.tier for r in self.gpu_rules],
            "socs": [s.tier for s in self.socs],
            "families": [t for f in self.families for t in ((f.tier,) if f.tier else tuple(s for _, s in f.steps))],
            "accelerators": [t for m in self.accelerators.values() for t in m.values()],
            "ios_generations": [t for g in self.ios_generations.values() for _, t in g],
            "apple_chips": [t for g in self.apple_chips.values() for _, t in g],
            "bounds": list(self.bounds),
            "vendor_delegates": list(self.vendor_delegates),
            "int8_fallback_tiers": list(self.int8_fallback_tiers),
            "int8_tiers": list(self.int8_tiers),
        }
        for where, tiers in named.items():
            bad = sorted({t for t in tiers if t not in known})
            if bad:
                raise ValueError(f"tier_rules.{where} names unknown tier(s) {bad}; known: {list(self.tiers)}")
        for where, table in (("ios_generations", self.ios_generations), ("apple_chips", self.apple_chips)):
            for family, steps in table.items():
                if [m for m, _ in steps] != sorted((m for m, _ in steps), reverse=True):
                    raise ValueError(f"tier_rules.{where}.{family} must list thresholds highest first")
        ids = [f.id for f in self.families]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"tier_rules.families has duplicate id(s) {dupes}")
        soc_models = {soc.model.lower() for soc in self.socs}
        missing = sorted({m for m in self.ios_machines.values() if m.lower() not in soc_models})
        if missing:
            raise ValueError(f"tier_rules.ios_machines points at SoC(s) {missing} missing from tier_rules.socs")
        return self


class Manifest(_Strict):
    """What the dispatch server serves and the release ships."""

    schema_version: str = Field(SCHEMA_VERSION, pattern=r"^[0-9]+\.[0-9]+$")
    release_id: str = Field(pattern=_ID_RE)
    created_at: datetime
    models: tuple[ModelEntry, ...] = Field(min_length=1)
    tier_rules: TierRules
    fallback_chains: dict[DevicePlatform, tuple[str, ...]] = Field(
        description="Per device platform, tiers best first; a device starts at its tier and moves right. Ends with cpu."
    )
    format_preference: dict[DevicePlatform, tuple[Format, ...]] = Field(
        default_factory=lambda: {k: tuple(v) for k, v in DEFAULT_FORMAT_PREFERENCE.items()},  # type: ignore[misc]
        description="Within a tier, which format a platform takes first (release config: manifest.format_preference).",
    )

    @field_validator("schema_version")
    @classmethod
    def _major(cls, value: str) -> str:
        major = int(value.split(".")[0])
        if major != SCHEMA_MAJOR:
            raise ValueError(
                f"schema_version {value} is not readable by this version (reads {SCHEMA_MAJOR}.x); upgrade mobile_pipeline"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Manifest":
        ids = [m.id for m in self.models]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"models: duplicate id(s) {dupes}")
        known = set(self.tier_rules.tiers)
        bad = sorted({m.tier for m in self.models if m.tier not in known})
        if bad:
            raise ValueError(f"models: tier(s) {bad} are not in tier_rules.tiers {list(known)}")
        for platform, chain in self.fallback_chains.items():
            unknown = [t for t in chain if t not in known]
            if unknown:
                raise ValueError(f"fallback_chains.{platform}: unknown tier(s) {unknown}")
            if not chain or chain[-1] != self.tier_rules.default_tier:
                raise ValueError(
                    f"fallback_chains.{platform} must end with the CPU tier {self.tier_rules.default_tier!r}, got {list(chain)}"
                )
        by_id = {m.id: m for m in self.models}
        for m in self.models:
            if (m.htp_arch is None) != (m.compiled_from is None):
                raise ValueError(f"models: {m.id} needs both htp_arch and compiled_from, or neither")
            if m.htp_arch is None:
                continue
            source = by_id.get(m.compiled_from)  # type: ignore[arg-type]
            if source is None or source.htp_arch is not None or source.tier != m.tier:
                raise ValueError(f"models: {m.id} is compiled_from {m.compiled_from!r}, which is not a generic model "
                                 f"of tier {m.tier!r} in this manifest")
            if m.platform != "android":
                raise ValueError(f"models: {m.id} is precompiled for Hexagon {m.htp_arch}: its platform must be android")
        for platform in self.platforms():
            if platform not in self.fallback_chains:
                raise ValueError(f"fallback_chains has no chain for platform {platform!r}, which has models")
            if not self.models_for(platform, self.tier_rules.default_tier):
                raise ValueError(
                    f"platform {platform!r} has no CPU fallback: no {self.tier_rules.default_tier!r}-tier model "
                    f"runs there (export a {self.format_preference.get(platform, ('onnx',))[0]} variant for the cpu tier)"
                )
        return self

    def platforms(self) -> list[str]:
        """Device platforms that have at least one model they can run."""
        present = {m.platform for m in self.models}
        return [p for p, runs in PLATFORM_RUNS.items() if any(r in present for r in runs)]

    def models_for(self, platform: str, tier: str) -> list[ModelEntry]:
        """Generic models of ``tier`` that run on device ``platform``, in preference order (format, then
        manifest order). Models precompiled for one NPU architecture are not generic: see :meth:`precompiled_for`."""
        runs = PLATFORM_RUNS.get(platform, ("any",))
        prefs = self.format_preference.get(platform, ())  # type: ignore[call-overload]
        candidates = [m for m in self.models if m.tier == tier and m.platform in runs and m.htp_arch is None]
        rank = {fmt: i for i, fmt in enumerate(prefs)}
        return sorted(candidates, key=lambda m: rank.get(m.format, len(rank)))

    def precompiled_for(self, platform: str, tier: str, htp_arch: str | None) -> list[ModelEntry]:
        """Models of ``tier`` precompiled for ``htp_arch``, then the QDQ models they came from.

        The order a phone with that Hexagon NPU tries them: the precompiled context (no
        on-device compile), then the generic QDQ model (its QNN EP compiles it on the phone).
        Within each group int8 comes before w8a16 (the real-time budget was sized for int8).
        """
        if htp_arch is None:
            return []
        runs = PLATFORM_RUNS.get(platform, ("any",))
        rank = {"int8": 0, "w8a16": 1}
        compiled = sorted((m for m in self.models if m.tier == tier and m.htp_arch == htp_arch and m.platform in runs),
                          key=lambda m: rank.get(m.precision, len(rank)))
        by_id = {m.id: m for m in self.models}
        sources = [by_id[m.compiled_from] for m in compiled if m.compiled_from in by_id]
        return compiled + list({m.id: m for m in sources}.values())


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate ``manifest.json``; errors name the file and the field."""
    from pydantic import ValidationError

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ManifestInvalid(f"cannot read manifest {path}: {err.strerror or err}") from None
    try:
        return Manifest.model_validate_json(text)
    except ValidationError as err:
        lines = field_messages(err, limit=10)
        raise ManifestInvalid("\n  ".join([f"invalid manifest {path}:", *lines])) from None


class ManifestInvalid(ValueError):
    """A manifest file that fails the schema; the message names the file and fields."""


def manifest_json_schema() -> dict:
    """The JSON Schema of the manifest, as committed in ``schemas/manifest.schema.json``."""
    schema = Manifest.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://mobile-pipeline.invalid/schemas/manifest-{SCHEMA_VERSION}.json"
    return schema


def manifest_json_schema_text() -> str:
    """The committed file's exact text (sorted keys, 2-space indent, trailing newline)."""
    return json.dumps(manifest_json_schema(), indent=2, sort_keys=True) + "\n"

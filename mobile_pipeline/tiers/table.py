"""The tier table: ``device_tiers/tiers.yaml`` as validated pydantic objects.

Search reads the budgets and arch constraints, export reads the variants, forbidden ops and
``int8_only``, the latency model reads the roofline, the manifest reads delegates. All of
them go through :func:`load_tier_table`, so a typo in the YAML fails once, here, with the
file, the tier and the field in the message instead of surfacing as a wrong model later.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mobile_pipeline.config import TIER_NAMES
from mobile_pipeline.nets.spec import ACTIVATIONS, BLOCK_KINDS, FS_BRANCHES, FUSIONS, UPSAMPLE_MODES
from mobile_pipeline.tiers.htp import HtpConstraints
from mobile_pipeline.utils.paths import device_tiers_dir
from mobile_pipeline.utils.validation import field_messages

Format = Literal["onnx", "tflite", "coreml", "executorch"]
VariantPlatform = Literal["android", "ios", "any"]

#: Precision names per format (the contract shared with export, bench and manifest).
PRECISIONS: dict[str, tuple[str, ...]] = {
    "onnx": ("fp32", "fp16", "int8", "w8a16"),
    "tflite": ("fp32", "fp16", "int8-dynamic", "int8-full"),
    "coreml": ("fp32", "fp16", "w8", "w6-palette", "w4-palette"),
    # ExecuTorch .pte: fp32 / int8 lowered to XNNPACK (Android and iOS), fp16 to Core ML (iOS).
    "executorch": ("fp32", "int8", "fp16"),
}
#: Precisions whose compute is fully integer (what an int8-only DSP/NPU can run); w8a16 is
#: int8 weights with int16 activations, integer throughout (the Hexagon HTP runs it).
FULL_INT8_PRECISIONS: frozenset[str] = frozenset({"int8", "int8-full", "w8a16"})
#: Formats that ``int8_only`` applies to: the ANE computes in fp16, so Core ML is exempt.
INT8_ONLY_FORMATS: frozenset[str] = frozenset({"onnx", "tflite"})
#: ArchSpec fields that ``arch_constraints`` may restrict, with their vocabularies.
ARCH_CHOICES: dict[str, tuple[str, ...]] = {
    "block": BLOCK_KINDS,
    "fs_branches": FS_BRANCHES,
    "fusion": FUSIONS,
    "upsample": UPSAMPLE_MODES,
    "act": ACTIVATIONS,
}
KNOWN_VENDORS: tuple[str, ...] = ("qualcomm", "mediatek", "samsung", "google", "apple", "hisilicon", "unisoc")


class TierTableError(ValueError):
    """``tiers.yaml`` is missing or invalid; the message names the file, tier and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierBudgets(_Strict):
    """Per-frame limits a tier's architecture must meet (at the tier's resolution)."""

    macs: int = Field(gt=0, description="Multiply-accumulates per frame at the tier resolution.")
    params: int = Field(gt=0)
    latency_ms: float = Field(gt=0, description="Predicted model time per frame on the reference device.")
    peak_activation_bytes: int = Field(gt=0, description="As counted by nets.complexity (float32 bytes).")


class Variant(_Strict):
    """One artifact export must produce for a tier."""

    format: Format
    precision: str
    platform: VariantPlatform = "any"

    @model_validator(mode="after")
    def _known_precision(self) -> "Variant":
        allowed = PRECISIONS[self.format]
        if self.precision not in allowed:
            raise ValueError(f"precision {self.precision!r} is not valid for {self.format}; choose from {list(allowed)}")
        if self.format == "coreml" and self.platform == "android":
            raise ValueError("coreml variants run on iOS only; use platform: ios")
        if self.format == "executorch" and self.precision == "fp16" and self.platform != "ios":
            raise ValueError("executorch fp16 variants are lowered to Core ML and run on iOS only; use platform: ios")
        return self

    @property
    def key(self) -> str:
        """``tflite-int8-full``: a stable name for file names and manifest ids."""
        return f"{self.format}-{self.precision}"


class Roofline(_Strict):
    """Peak compute (G ops/s in the tier's precision) and DRAM bandwidth of the reference device."""

    gflops: float = Field(gt=0)
    bandwidth_gbs: float = Field(gt=0)

    def time_ms(self, ops: float, bytes_moved: float) -> float:
        """Roofline lower bound on time: the slower of compute and memory traffic."""
        return max(ops / (self.gflops * 1e9), bytes_moved / (self.bandwidth_gbs * 1e9)) * 1e3


class TierSpec(_Strict):
    """One compute tier. See ``device_tiers/tiers.yaml`` for units and sources."""

    name: str
    reference_device: str = Field(min_length=1)
    reference_soc: str = Field(min_length=1)
    resolution: int = Field(ge=32, le=2048)
    target_fps: float = Field(gt=0, le=240)
    budgets: TierBudgets
    variants: list[Variant] = Field(min_length=1)
    delegate: str = Field(min_length=1)
    platform_delegates: dict[Literal["android", "ios"], str] = Field(default_factory=dict)
    vendor_delegates: dict[str, str] = Field(default_factory=dict)
    forbidden_ops: dict[Format, list[str]] = Field(default_factory=dict)
    arch_constraints: dict[str, list[str]] = Field(default_factory=dict)
    int8_only: bool = False
    roofline: Roofline
    htp_op_support: str | None = Field(
        None, description="Probe file under device_tiers/ (htp_ops.yaml): its failures for this tier's Hexagon "
                          "architectures join arch_constraints and forbidden_ops.onnx at load time.")
    htp_constraints: HtpConstraints | None = Field(None, description="Set by the loader from htp_op_support.")

    @field_validator("resolution")
    @classmethod
    def _divisible(cls, value: int) -> int:
        # The generator needs sides divisible by 2**stages; 32 covers up to 5 stages.
        if value % 32:
            raise ValueError(f"resolution must be a multiple of 32 (got {value})")
        return value

    @field_validator("vendor_delegates")
    @classmethod
    def _known_vendor_keys(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(KNOWN_VENDORS))
        if unknown:
            raise ValueError(f"unknown vendor(s) {unknown}; use {list(KNOWN_VENDORS)}")
        return value

    @field_validator("arch_constraints")
    @classmethod
    def _known_arch_values(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for field, banned in value.items():
            if field not in ARCH_CHOICES:
                raise ValueError(f"arch_constraints: unknown ArchSpec field {field!r}; use {sorted(ARCH_CHOICES)}")
            bad = [v for v in banned if v not in ARCH_CHOICES[field]]
            if bad:
                raise ValueError(f"arch_constraints.{field}: {bad} not in {list(ARCH_CHOICES[field])}")
            if set(banned) >= set(ARCH_CHOICES[field]) and field not in ("fs_branches",):
                raise ValueError(f"arch_constraints.{field} forbids every choice; nothing could be searched")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "TierSpec":
        frame_ms = 1000.0 / self.target_fps
        if self.budgets.latency_ms > frame_ms:
            raise ValueError(
                f"budgets.latency_ms {self.budgets.latency_ms} exceeds the frame time {frame_ms:.1f} ms at target_fps {self.target_fps}"
            )
        keys = [v.key + "/" + v.platform for v in self.variants]
        if len(set(keys)) != len(keys):
            raise ValueError(f"variants has duplicates: {keys}")
        if self.int8_only:
            float_variants = [v.key for v in self.variants
                              if v.format in INT8_ONLY_FORMATS and v.precision not in FULL_INT8_PRECISIONS]
            if float_variants:
                raise ValueError(f"int8_only tier lists float variants {float_variants}; use int8-full (tflite) / int8 (onnx)")
        for fmt, ops in self.forbidden_ops.items():
            if len(set(ops)) != len(ops):
                raise ValueError(f"forbidden_ops.{fmt} has duplicates")
        return self

    # ----------------------------------------------------------------- helpers
    def int8_required(self, fmt: str) -> bool:
        """Whether a ``fmt`` artifact of this tier must be fully integer."""
        return self.int8_only and fmt in INT8_ONLY_FORMATS

    def delegate_for(self, platform: str = "android", vendor: str | None = None) -> str:
        """Delegate hint for a device: iOS first, then the SoC vendor's own, else the default."""
        if platform == "ios" and "ios" in self.platform_delegates:
            return self.platform_delegates["ios"]
        if vendor and vendor in self.vendor_delegates:
            return self.vendor_delegates[vendor]
        return self.platform_delegates.get("android", self.delegate) if platform == "android" else self.delegate

    def variants_for(self, platform: str) -> list[Variant]:
        """Variants a device of ``platform`` can use (``any`` matches every platform)."""
        return [v for v in self.variants if v.platform in (platform, "any")]

    def allows_arch(self, spec: Any) -> list[str]:
        """Violations of ``arch_constraints`` by an ArchSpec (empty list = allowed)."""
        problems = []
        for field, banned in self.arch_constraints.items():
            if field == "fs_branches" and getattr(spec, "block", "fs") != "fs":
                continue  # branches only exist in FS blocks
            value = getattr(spec, field, None)
            values = value if isinstance(value, (tuple, list)) else (value,)
            hit = sorted({v for v in values if v in banned})
            if hit:
                problems.append(f"{field}={','.join(hit)} is not allowed on tier {self.name}")
        return problems

    def macs_at(self, side: int) -> int:
        """The MAC budget rescaled to another square side (MACs grow with pixel count)."""
        return int(self.budgets.macs * (side / self.resolution) ** 2)


def default_tier_path() -> Path:
    return device_tiers_dir() / "tiers.yaml"


def _dependency_stamp(folder: Path) -> tuple[int, ...]:
    """mtimes of the files the HTP constraints are derived from (catalog, overrides, probe)."""
    stamps = []
    for name in ("catalog.yaml", "overrides.yaml", "htp_ops.yaml"):
        try:
            stamps.append((folder / name).stat().st_mtime_ns)
        except OSError:
            stamps.append(0)
    return tuple(stamps)


def load_tier_table(path: Path | None = None) -> dict[str, TierSpec]:
    """Load and validate ``tiers.yaml``; keys in tier order (cpu, gpu, dsp, npu).

    Raises:
        TierTableError: missing file, bad YAML, missing/unknown tier, or an invalid field;
            the message names the file, tier and field.
    """
    path = Path(path) if path is not None else default_tier_path()
    resolved = path.resolve()
    try:
        stamp = resolved.stat().st_mtime_ns
    except OSError as err:
        raise TierTableError(f"{path}: tier table not found ({err.strerror}); expected device_tiers/tiers.yaml") from None
    # Copy so callers that mutate the dict cannot poison the cache (TierSpecs are frozen).
    return dict(_load_cached(resolved, (stamp, *_dependency_stamp(device_tiers_dir()))))


@lru_cache(maxsize=8)
def _load_cached(path: Path, _stamp: tuple[int, ...]) -> dict[str, TierSpec]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise TierTableError(f"{path}: not valid YAML: {err}") from None
    return parse_tier_table(raw, source=str(path), base_dir=path.parent)


def parse_tier_table(raw: Any, source: str = "tiers.yaml", base_dir: Path | None = None) -> dict[str, TierSpec]:
    """Validate an already-parsed mapping ``{tier: {...}}`` (used by tests and tools)."""
    if not isinstance(raw, dict):
        raise TierTableError(f"{source}: expected a mapping of tier name -> definition, got {type(raw).__name__}")
    unknown = [name for name in raw if name not in TIER_NAMES]
    if unknown:
        raise TierTableError(f"{source}: unknown tier(s) {unknown}; the tiers are {list(TIER_NAMES)}")
    missing = [name for name in TIER_NAMES if name not in raw]
    if missing:
        raise TierTableError(f"{source}: missing tier(s) {missing}; every one of {list(TIER_NAMES)} needs a definition")
    table: dict[str, TierSpec] = {}
    for name in TIER_NAMES:
        body = raw[name]
        if not isinstance(body, dict):
            raise TierTableError(f"{source}: tier {name!r} must be a mapping, got {type(body).__name__}")
        if "name" in body and body["name"] != name:
            raise TierTableError(f"{source}: tier {name!r} has name {body['name']!r}; drop the field or make it match")
        if "htp_constraints" in body:
            raise TierTableError(f"{source}: tier {name!r}: htp_constraints is computed from htp_op_support; remove it")
        try:
            table[name] = TierSpec(**{**body, "name": name})
            if table[name].htp_op_support:
                table[name] = _with_htp_constraints(table[name], body, base_dir or device_tiers_dir())
        except ValidationError as err:
            raise TierTableError(f"{source}: tier {name!r}: {_format_errors(err)}") from None
        except ValueError as err:  # HtpOpsError / CatalogError name their file
            raise TierTableError(f"{source}: tier {name!r}: htp_op_support: {err}") from None
    _check_ordering(table, source)
    return table


def _with_htp_constraints(spec: TierSpec, body: dict[str, Any], base_dir: Path) -> TierSpec:
    """The tier with the HTP probe's failures (for its Hexagon archs and QDQ precisions) merged in.

    The hand-written ``arch_constraints`` stay (other delegates' limits); the probe adds the
    choices the QNN compiler refused. A tier without Qualcomm HTP SoCs gets nothing added.
    """
    from mobile_pipeline.tiers.htp import htp_constraints, load_htp_op_support, tier_htp_archs

    archs = tier_htp_archs(spec.name)
    precisions = tuple(dict.fromkeys(v.precision for v in spec.variants
                                     if v.format == "onnx" and v.precision in ("int8", "w8a16")))
    if not archs or not precisions:
        return spec
    # Next to the tiers.yaml being read, else the project's device_tiers/ (a copied table).
    path = base_dir / spec.htp_op_support
    if not path.is_file():
        path = device_tiers_dir() / spec.htp_op_support
    found = htp_constraints(load_htp_op_support(path), archs, precisions, source=spec.htp_op_support)
    merged = {field: list(values) for field, values in spec.arch_constraints.items()}
    for field, values in found.arch_constraints.items():
        merged[field] = list(dict.fromkeys([*merged.get(field, []), *values]))
    forbidden = {fmt: list(ops) for fmt, ops in spec.forbidden_ops.items()}
    forbidden["onnx"] = list(dict.fromkeys([*forbidden.get("onnx", []), *found.forbidden_onnx_ops]))
    return TierSpec(**{**body, "name": spec.name, "arch_constraints": merged, "forbidden_ops": forbidden,
                       "htp_constraints": found})


def _check_ordering(table: dict[str, TierSpec], source: str) -> None:
    """Budgets must grow from cpu to the accelerators, compared per pixel (resolutions differ)."""
    per_pixel = {name: spec.budgets.macs / spec.resolution**2 for name, spec in table.items()}
    for weaker, stronger in (("cpu", "dsp"), ("dsp", "gpu"), ("dsp", "npu")):
        if per_pixel[weaker] > per_pixel[stronger]:
            raise TierTableError(
                f"{source}: budgets.macs per pixel of {weaker!r} ({per_pixel[weaker]:.0f}) exceeds {stronger!r} "
                f"({per_pixel[stronger]:.0f}); tiers must not invert their own budgets"
            )
    platforms = {p for spec in table.values() for v in spec.variants for p in ((v.platform,) if v.platform != "any" else ("android", "ios"))}
    cpu_platforms = {p for v in table["cpu"].variants for p in ((v.platform,) if v.platform != "any" else ("android", "ios"))}
    if not platforms <= cpu_platforms:
        raise TierTableError(f"{source}: the cpu tier needs a variant for every platform ({sorted(platforms - cpu_platforms)} missing)")


def _format_errors(err: ValidationError) -> str:
    return "; ".join(field_messages(err, root="(tier)"))

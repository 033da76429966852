"""The SoC catalog: ``device_tiers/catalog.yaml`` as validated entries plus lookup indexes.

Phones report their chip inconsistently: ``QTI`` or ``Qualcomm``; ``Mediatek`` or
``MediaTek``; ``MT6833V/ZA`` for an MT6833; ``Tensor G3`` or the board name ``zuma``; iPhones
only give a machine id (``iPhone15,2``). This module owns that mess: it normalises vendor and
model strings and answers lookups from dictionaries built once per file version, so the
classifier and the dispatcher never scan the list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mobile_pipeline.config import TIER_NAMES
from mobile_pipeline.tiers.table import KNOWN_VENDORS
from mobile_pipeline.utils.data_files import load_cached
from mobile_pipeline.utils.paths import device_tiers_dir
from mobile_pipeline.utils.validation import field_messages

Vendor = Literal["qualcomm", "mediatek", "samsung", "google", "apple", "hisilicon", "unisoc"]
AcceleratorKind = Literal["npu", "dsp", "tpu", "ane", "none"]

#: Normalised Build.SOC_MANUFACTURER spellings -> canonical vendor.
VENDOR_ALIASES: dict[str, str] = {
    "qualcomm": "qualcomm", "qti": "qualcomm", "qcom": "qualcomm", "qualcommtechnologies": "qualcomm",
    "snapdragon": "qualcomm",
    "mediatek": "mediatek", "mtk": "mediatek",
    "samsung": "samsung", "samsungelectronics": "samsung", "samsungsemiconductor": "samsung",
    "exynos": "samsung", "slsi": "samsung", "samsunglsi": "samsung",
    "google": "google", "googlellc": "google",
    "apple": "apple",
    "hisilicon": "hisilicon", "hisi": "hisilicon", "huawei": "hisilicon",
    "unisoc": "unisoc", "spreadtrum": "unisoc", "sprd": "unisoc",
}
# Corporate noise dropped before the alias lookup ("Qualcomm Technologies, Inc" -> qualcomm).
_NOISE_WORDS = frozenset({"inc", "ltd", "co", "llc", "corp", "corporation", "limited", "technologies",
                          "technology", "electronics", "semiconductor", "communications", "tm", "the"})
# Package/bin suffixes: MT6833V/ZA, MT6769V/CZ, SM8550-AC.
_MODEL_BASE = re.compile(r"^(mt\d{4}|sm\d{4}|sdm\d{3}|s5e\d{4}|exynos\d{3,4}|kirin\d{3,4}|sc\d{4}[a-z]?|t\d{3})")
_IOS_ID = re.compile(r"^(iphone|ipad|ipod|watch|appletv|mac)(\d{1,3}),(\d{1,3})$")


class CatalogError(ValueError):
    """``catalog.yaml`` is missing or invalid; the message names the file, entry and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CpuInfo(_Strict):
    cores: int = Field(ge=1, le=32)
    max_ghz: float = Field(gt=0.3, le=6.0)
    layout: str = Field(min_length=1)


class GpuInfo(_Strict):
    family: str = Field(min_length=1)
    renderer: str = Field(min_length=1, description="Regex matched case-insensitively against GL_RENDERER / Metal name.")

    @field_validator("renderer")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"renderer is not a valid regex: {err}") from None
        return value


#: Hexagon Tensor Processor architectures ONNX Runtime's QNN HTP backend compiles for.
HTP_ARCHS: tuple[str, ...] = ("v68", "v69", "v73", "v75", "v79", "v81")


class AcceleratorInfo(_Strict):
    kind: AcceleratorKind
    name: str = Field(min_length=1)
    htp_arch: Literal["v68", "v69", "v73", "v75", "v79", "v81"] | None = Field(
        None, description="Qualcomm only: the Hexagon Tensor Processor architecture of the SoC (what QNN's "
                          "htp_arch option and a precompiled context binary target); None = no HTP.")


class PerfFigures(_Strict):
    """Public performance figures; ``source`` says where they come from."""

    accel_tops_int8: float | None = Field(None, gt=0)
    gpu_gflops_fp32: float | None = Field(None, gt=0)
    cpu_gops_int8: float | None = Field(None, gt=0)
    cpu_gflops_fp32: float | None = Field(None, gt=0)
    source: str = Field(min_length=8)

    @model_validator(mode="after")
    def _has_a_figure(self) -> "PerfFigures":
        if all(v is None for v in (self.accel_tops_int8, self.gpu_gflops_fp32, self.cpu_gops_int8, self.cpu_gflops_fp32)):
            raise ValueError("perf needs at least one figure (or drop the perf block)")
        return self


class SocEntry(_Strict):
    """One chip (or one family that Android reports under one SOC_MODEL)."""

    vendor: Vendor
    model: str = Field(min_length=1, max_length=64)
    manufacturers: list[str] = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    ios_machine_ids: list[str] = Field(default_factory=list)
    name: str = Field(min_length=1)
    year: int = Field(ge=2010, le=2030)
    cpu: CpuInfo
    gpu: GpuInfo
    accelerator: AcceleratorInfo
    ram_gb: float = Field(gt=0, le=64)
    perf: PerfFigures | None = None
    tier: Literal["cpu", "gpu", "dsp", "npu"]
    note: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "SocEntry":
        for spelling in self.manufacturers:
            if normalize_vendor(spelling) != self.vendor:
                raise ValueError(f"manufacturers: {spelling!r} does not normalise to vendor {self.vendor!r}")
        if self.ios_machine_ids and self.vendor != "apple":
            raise ValueError("ios_machine_ids is for Apple entries only")
        for machine in self.ios_machine_ids:
            if not _IOS_ID.match(machine.lower()):
                raise ValueError(f"ios_machine_ids: {machine!r} is not like 'iPhone15,2'")
        if self.tier in ("dsp", "npu") and self.accelerator.kind == "none":
            raise ValueError(f"tier {self.tier} needs an accelerator; accelerator.kind is 'none'")
        if self.accelerator.htp_arch is not None and (self.vendor != "qualcomm" or self.accelerator.kind != "npu"):
            raise ValueError("accelerator.htp_arch is for Qualcomm parts whose accelerator.kind is npu (an HTP)")
        return self

    @property
    def key(self) -> tuple[str, str]:
        """``(vendor, normalised model)``: unique across the catalog."""
        return (self.vendor, normalize_model(self.model))

    def model_spellings(self) -> list[str]:
        """The model and its aliases, as written in the YAML (for Play targeting / manifest)."""
        return [self.model, *self.aliases]


# ----------------------------------------------------------------------- normalisation
@lru_cache(maxsize=4096)
def normalize_vendor(value: object) -> str | None:
    """``"Qualcomm Technologies, Inc"``/``"QTI"``/``"qcom"`` -> ``"qualcomm"``; unknown -> None."""
    if not isinstance(value, str) or not value.strip():
        return None
    words = [w for w in re.split(r"[^a-z0-9]+", value.lower()) if w and w not in _NOISE_WORDS]
    if not words:
        return None
    joined = "".join(words)
    if joined in VENDOR_ALIASES:
        return VENDOR_ALIASES[joined]
    # "Samsung Electronics Co" leaves "samsung"; "MediaTek Inc." leaves "mediatek"; try words.
    for word in words:
        if word in VENDOR_ALIASES:
            return VENDOR_ALIASES[word]
    return None


@lru_cache(maxsize=8192)
def normalize_model(value: object) -> str:
    """Case/space/punctuation-insensitive key: ``"Tensor G3"`` -> ``"tensorg3"``; ``"iPhone15,2"`` kept with its comma."""
    if not isinstance(value, str):
        return ""
    text = value.strip().lower()
    if _IOS_ID.match(text.replace(" ", "")):
        return text.replace(" ", "")
    return re.sub(r"[^a-z0-9]+", "", text)


def model_candidates(value: object) -> tuple[str, ...]:
    """Keys to try, most specific first: the whole string, before '/', '-', then the family base."""
    if not isinstance(value, str) or not value.strip():
        return ()
    raw = value.strip().lower()
    keys = [normalize_model(raw)]
    for sep in ("/", "-", "_", " "):
        head = raw.split(sep, 1)[0]
        if head and head != raw:
            keys.append(normalize_model(head))
    match = _MODEL_BASE.match(keys[0])
    if match:
        keys.append(match.group(1))
    seen: list[str] = []
    for key in keys:
        if key and key not in seen:
            seen.append(key)
    return tuple(seen)


# --------------------------------------------------------------------------- catalog
@dataclass(frozen=True)
class Catalog:
    """Entries plus the lookup indexes the classifier uses (built once per file version)."""

    entries: tuple[SocEntry, ...]
    by_vendor_model: dict[tuple[str, str], SocEntry]
    by_model: dict[str, SocEntry]          # only spellings that are unique across vendors
    by_ios_machine: dict[str, SocEntry]

    def lookup(self, manufacturer: object, model: object) -> SocEntry | None:
        """Find a chip by (manufacturer, model) with aliases; by model alone when the vendor is unknown."""
        candidates = model_candidates(model)
        if not candidates:
            return None
        if candidates[0] in self.by_ios_machine:
            return self.by_ios_machine[candidates[0]]
        vendor = normalize_vendor(manufacturer)
        for key in candidates:
            if vendor is not None:
                hit = self.by_vendor_model.get((vendor, key))
                if hit is not None:
                    return hit
            else:
                hit = self.by_model.get(key)
                if hit is not None:
                    return hit
        # A known vendor with a model the vendor index lacks: the model alone may still be
        # unambiguous (e.g. a Samsung phone reporting SOC_MANUFACTURER=Samsung for an SM8550).
        if vendor is not None:
            for key in candidates:
                hit = self.by_model.get(key)
                if hit is not None:
                    return hit
        return None

    def by_key(self, vendor: str, model: str) -> SocEntry | None:
        return self.by_vendor_model.get((vendor, normalize_model(model)))


def default_catalog_path() -> Path:
    return device_tiers_dir() / "catalog.yaml"


def load_catalog(path: Path | None = None) -> list[SocEntry]:
    """Load and validate ``catalog.yaml`` (cached until the file changes)."""
    return list(load_catalog_index(path).entries)


def load_catalog_index(path: Path | None = None) -> Catalog:
    """The catalog with its lookup indexes (cached until the file changes)."""
    path = Path(path) if path is not None else default_catalog_path()
    return load_cached(path, build_catalog, CatalogError,
                       missing="SoC catalog not found ({reason}); expected device_tiers/catalog.yaml")


def build_catalog(raw: object, source: str = "catalog.yaml") -> Catalog:
    """Validate a parsed YAML list and build the indexes; duplicates are errors."""
    if not isinstance(raw, list):
        raise CatalogError(f"{source}: expected a list of SoC entries, got {type(raw).__name__}")
    entries: list[SocEntry] = []
    for index, item in enumerate(raw):
        label = item.get("model", f"#{index}") if isinstance(item, dict) else f"#{index}"
        if not isinstance(item, dict):
            raise CatalogError(f"{source}: entry {label} must be a mapping, got {type(item).__name__}")
        try:
            entries.append(SocEntry(**item))
        except ValidationError as err:
            details = "; ".join(field_messages(err, root="(entry)"))
            raise CatalogError(f"{source}: entry {label!r}: {details}") from None

    by_vendor_model: dict[tuple[str, str], SocEntry] = {}
    model_owners: dict[str, set[tuple[str, str]]] = {}
    model_first: dict[str, SocEntry] = {}
    by_ios: dict[str, SocEntry] = {}
    for entry in entries:
        for spelling in entry.model_spellings():
            key = (entry.vendor, normalize_model(spelling))
            other = by_vendor_model.get(key)
            if other is not None and other is not entry:
                raise CatalogError(f"{source}: model {spelling!r} of {entry.name!r} already belongs to {other.name!r}")
            by_vendor_model[key] = entry
            model_owners.setdefault(key[1], set()).add(entry.key)
            model_first.setdefault(key[1], entry)
        for machine in entry.ios_machine_ids:
            mkey = normalize_model(machine)
            if mkey in by_ios:
                raise CatalogError(f"{source}: iOS machine id {machine!r} listed for {by_ios[mkey].name!r} and {entry.name!r}")
            by_ios[mkey] = entry
    models = [normalize_model(e.model) for e in entries]
    dupes = sorted({m for m in models if models.count(m) > 1})
    if dupes:
        raise CatalogError(f"{source}: duplicate model(s) {dupes}")
    by_model = {key: model_first[key] for key, owners in model_owners.items() if len(owners) == 1}
    return Catalog(tuple(entries), by_vendor_model, by_model, by_ios)


def tier_of(entries: list[SocEntry], tier: str) -> list[SocEntry]:
    """Entries assigned to ``tier`` (helper for reports and Play targeting)."""
    if tier not in TIER_NAMES:
        raise ValueError(f"unknown tier {tier!r}; choose from {list(TIER_NAMES)}")
    return [e for e in entries if e.tier == tier]


assert set(KNOWN_VENDORS) == set(Vendor.__args__)  # noqa: S101 - import-time consistency of two constants

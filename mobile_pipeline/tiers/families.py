"""Family rules: ``device_tiers/families.yaml`` -- a chip the catalog does not know, placed by family.

The catalog always lags: every year brings new part numbers. Vendors number parts by series and
generation (SM8750 -> SM8850, MT6991 -> MT6993, s5e9945 -> s5e9955, "Tensor G4" -> "Tensor G5",
iPhone17,x -> iPhone18,x), and some GPU families ship only in one vendor's flagships (Adreno 8xx,
Immortalis, Xclipse 9xx). A family rule turns either into a tier, so next year's flagship gets its
family's tier instead of the CPU model, and the answer says ``matched_by: family`` so the operator
sees which phones need a catalog entry.

The rules are data (the YAML says why each scheme means what it means); this module validates them
and matches. :class:`FamilyMatcher` is the one matching implementation: the reference classifier
builds it from the YAML, the dispatch server from the manifest's copy of the same rules, so the two
cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mobile_pipeline.tiers.catalog import Vendor, model_candidates
from mobile_pipeline.utils.data_files import load_cached
from mobile_pipeline.utils.paths import device_tiers_dir
from mobile_pipeline.utils.validation import field_messages, valid_regex

FamilyKind = Literal["soc", "ios", "gpu"]
Tier = Literal["cpu", "gpu", "dsp", "npu"]
GiB = 1 << 30
_RENDERER_MAX = 128  # the GPU capability rules look at the same prefix


class FamiliesError(ValueError):
    """``families.yaml`` is missing or invalid; the message names the file, rule and field."""


class FamilyRule(BaseModel):
    """One numbering scheme or GPU family (see the field notes at the top of families.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,47}$")
    kind: FamilyKind
    vendor: Vendor | None = None
    pattern: str = Field(min_length=2, max_length=200)
    steps: tuple[tuple[int, Tier], ...] = ()
    tier: Tier | None = None
    min_ram_gib: float | None = Field(None, gt=0, le=64)
    int8: bool = False
    why: str = Field(min_length=10)
    exceptions: dict[str, str] = Field(default_factory=dict)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        return valid_regex(value)

    @model_validator(mode="after")
    def _consistent(self) -> "FamilyRule":
        has_gen = "gen" in re.compile(self.pattern).groupindex
        if bool(self.steps) == (self.tier is not None):
            raise ValueError("give exactly one of steps (per generation) or tier")
        if self.steps and not has_gen:
            raise ValueError("steps need a named group (?P<gen>...) in pattern")
        minimums = [m for m, _ in self.steps]
        if minimums != sorted(minimums, reverse=True) or len(set(minimums)) != len(minimums):
            raise ValueError(f"steps must be listed highest generation first, without repeats: {minimums}")
        if self.min_ram_gib is not None and self.kind != "gpu":
            raise ValueError("min_ram_gib corroborates GPU-renderer rules only (kind: gpu)")
        if self.kind in ("soc", "gpu") and self.vendor is None:
            raise ValueError(f"a {self.kind} rule names the vendor whose scheme it is")
        return self


# ------------------------------------------------------------------------ matching
@dataclass(frozen=True)
class CompiledFamily:
    """A rule ready to match; built from the YAML (:class:`FamilyRule`) or from a manifest."""

    id: str
    kind: str
    regex: re.Pattern[str]
    steps: tuple[tuple[int, str], ...]
    tier: str | None
    min_ram_bytes: int | None
    int8: bool
    why: str

    def tier_for(self, gen: int | None) -> str | None:
        if self.tier is not None:
            return self.tier
        if gen is None:
            return None
        return next((tier for minimum, tier in self.steps if gen >= minimum), None)


@dataclass(frozen=True)
class FamilyMatch:
    """A family rule's answer for one device."""

    rule: CompiledFamily
    tier: str
    gen: int | None
    matched: str  # the normalised model key or the renderer text that matched

    @property
    def token(self) -> str:
        """The compact form used in /v1/select's ``why``."""
        return f"family:{self.rule.id}"

    def describe(self) -> str:
        gen = f" generation {self.gen}" if self.gen is not None and self.rule.steps else ""
        return f"family {self.rule.id}: {self.matched!r}{gen} -> {self.tier} ({self.rule.why})"


def compile_rules(rules: Iterable[FamilyRule]) -> tuple[CompiledFamily, ...]:
    """YAML rules -> matchable rules (RAM threshold in bytes, as the manifest carries it)."""
    return tuple(
        CompiledFamily(r.id, r.kind, re.compile(r.pattern, re.IGNORECASE), tuple(r.steps), r.tier,
                       None if r.min_ram_gib is None else int(r.min_ram_gib * GiB), r.int8, r.why)
        for r in rules
    )


class FamilyMatcher:
    """First matching rule wins, in file order, within each kind."""

    def __init__(self, rules: Sequence[CompiledFamily]) -> None:
        self.rules = tuple(rules)
        self._soc = tuple(r for r in self.rules if r.kind == "soc")
        self._ios = tuple(r for r in self.rules if r.kind == "ios")
        self._gpu = tuple(r for r in self.rules if r.kind == "gpu")

    def match_model(self, platform: str, model: str | None) -> FamilyMatch | None:
        """A Build.SOC_MODEL (any platform but ios) or an iOS machine id (ios) by numbering scheme."""
        candidates = model_candidates(model)
        if not candidates:
            return None
        if platform == "ios":
            return _first(self._ios, candidates[:1])
        return _first(self._soc, candidates)

    def match_gpu(self, platform: str, renderer: str | None, ram_bytes: int | None) -> tuple[FamilyMatch | None, str | None]:
        """A GL_RENDERER family (android only), corroborated by RAM.

        Returns ``(match, note)``: ``note`` says why a renderer family that matched was not used
        (RAM too small or not reported), for the explanation; both None when nothing matched.
        """
        if platform != "android" or not renderer or not isinstance(renderer, str):
            return None, None
        text = renderer[:_RENDERER_MAX]
        for rule in self._gpu:
            found = rule.regex.search(text)
            if found is None:
                continue
            tier = rule.tier_for(_gen(found))
            if tier is None:
                continue
            if rule.min_ram_bytes is not None and (ram_bytes is None or ram_bytes < rule.min_ram_bytes):
                reported = "no RAM reported" if ram_bytes is None else f"{ram_bytes / GiB:.1f} GiB reported"
                return None, (f"family {rule.id}: {text.strip()!r} would mean {tier}, but {reported} does not "
                              f"corroborate it (needs {rule.min_ram_bytes / GiB:.1f} GiB); not used")
            return FamilyMatch(rule, tier, _gen(found), text.strip()), None
        return None, None


def _gen(found: re.Match[str]) -> int | None:
    value = found.groupdict().get("gen")
    return int(value) if value is not None else None


def _first(rules: Sequence[CompiledFamily], candidates: Sequence[str]) -> FamilyMatch | None:
    for rule in rules:
        for key in candidates:
            found = rule.regex.fullmatch(key)
            if found is None:
                continue
            tier = rule.tier_for(_gen(found))
            if tier is not None:
                return FamilyMatch(rule, tier, _gen(found), key)
    return None


# --------------------------------------------------------------------------- loading
def default_families_path() -> Path:
    return device_tiers_dir() / "families.yaml"


def load_families(path: Path | None = None) -> list[FamilyRule]:
    """Validated family rules (cached until the file changes); a missing file means none."""
    path = Path(path) if path is not None else default_families_path()
    return load_cached(path, parse_families, FamiliesError)


def parse_families(raw: object, source: str = "families.yaml") -> list[FamilyRule]:
    """``{soc: [...], ios: [...], gpu: [...]}`` -> rules; ids are unique across kinds."""
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise FamiliesError(f"{source}: expected a mapping with soc / ios / gpu lists, got {type(raw).__name__}")
    unknown = sorted(set(raw) - {"soc", "ios", "gpu"})
    if unknown:
        raise FamiliesError(f"{source}: unknown section(s) {unknown}; use soc, ios, gpu")
    rules: list[FamilyRule] = []
    for kind in ("soc", "ios", "gpu"):
        items = raw.get(kind) or []
        if not isinstance(items, list):
            raise FamiliesError(f"{source}: {kind} must be a list of rules, got {type(items).__name__}")
        for index, item in enumerate(items):
            label = item.get("id", f"#{index}") if isinstance(item, dict) else f"#{index}"
            if not isinstance(item, dict):
                raise FamiliesError(f"{source}: {kind} rule {label} must be a mapping")
            try:
                rules.append(FamilyRule(kind=kind, **item))
            except (ValidationError, TypeError) as err:
                details = "; ".join(field_messages(err, root="(rule)")) if isinstance(err, ValidationError) else str(err)
                raise FamiliesError(f"{source}: {kind} rule {label!r}: {details}") from None
    ids = [r.id for r in rules]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise FamiliesError(f"{source}: duplicate rule id(s) {dupes}")
    return rules

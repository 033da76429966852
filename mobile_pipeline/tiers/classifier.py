"""Device info -> compute tier + ordered fallback chain, and the chain of rules that decided it. Never raises.

Order of evidence, strongest first:
  1. ``device_tiers/overrides.yaml`` (what calibration measured on real devices),
  2. the SoC catalog (vendor aliases, model suffixes, iOS machine ids),
  3. family rules (``device_tiers/families.yaml``): vendor numbering schemes (SM8xyz, MT69xx,
     s5e99x5, "Tensor G<n>", iPhone<n>,<m>) and GPU families that only ship in one vendor's
     flagships (Adreno 8xx, Immortalis, Xclipse 9xx), the latter corroborated by RAM,
  4. capability rules (GPU renderer, reported accelerators, Apple GPU name),
  5. the CPU tier.
Every answer then passes the tier's OS and RAM floors (stepping down the platform's chain),
and the fallbacks are the lighter tiers of that chain the device can also run.

Each decision carries ``why``, compact tokens (``catalog:SM8750``, ``family:snapdragon-8``,
``ram:npu``) that the dispatch server returns in the same form, and ``steps``, the same chain in
sentences for ``mobile-pipeline tiers explain``.

Decisions are cached by the tuple of reported fields and the indexes are built once per file
version.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from mobile_pipeline.tiers import explain
from mobile_pipeline.tiers.catalog import Catalog, SocEntry, load_catalog_index
from mobile_pipeline.tiers.device_info import DeviceInfo
from mobile_pipeline.tiers.families import FamilyMatcher, FamilyRule, compile_rules, load_families
from mobile_pipeline.tiers.overrides import Override, OverrideIndex, load_overrides
from mobile_pipeline.tiers.rules import (
    ACCELERATOR_TIERS,
    FALLBACK_CHAINS,
    TIER_RANK,
    apple_chip_tier,
    gpu_rule_for,
    os_allows,
    ram_allows,
)

__all__ = ["FALLBACK_CHAINS", "Classifier", "TierDecision", "classify", "default_classifier"]

log = logging.getLogger(__name__)
MatchedBy = Literal["catalog", "family", "rules", "default"]
_INT8_EVIDENCE = frozenset(name for name, tier in ACCELERATOR_TIERS.items() if tier in ("dsp", "npu"))


@dataclass(frozen=True, slots=True)
class TierDecision:
    """The classifier's answer.

    Attributes:
        tier: the tier whose model the device should load first.
        fallbacks: lighter tiers to try, in order, if that model fails to load (ends in cpu
            unless ``tier`` is cpu).
        matched_by: ``catalog`` (overrides included), ``family`` (a family rule: the chip needs
            a catalog entry), ``rules`` (capability evidence) or ``default``.
        soc: the catalog entry when the chip is known.
        reason: one human-readable sentence for logs and the API.
        overridden: True when an overrides.yaml entry decided the tier.
        why: compact tokens, the form /v1/select returns: the deciding rule (``catalog:SM8750``,
            ``override:SM8650``, ``family:<id>``, ``rules:<kind>``, ``default``), then one
            token per tier stepped over (``unserved:<tier>``, ``os:<tier>``, ``ram:<tier>``).
        steps: the same chain as sentences, followed by the fallback chain (``tiers explain``).
        family: the id of the family rule that decided, if one did.
    """

    tier: str
    fallbacks: tuple[str, ...]
    matched_by: MatchedBy
    soc: SocEntry | None
    reason: str
    overridden: bool = field(default=False)
    why: tuple[str, ...] = field(default=())
    steps: tuple[str, ...] = field(default=())
    family: str | None = field(default=None)

    @property
    def chain(self) -> tuple[str, ...]:
        """``(tier, *fallbacks)``."""
        return (self.tier, *self.fallbacks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "fallbacks": list(self.fallbacks),
            "matched_by": self.matched_by,
            "soc": None if self.soc is None else {"vendor": self.soc.vendor, "model": self.soc.model, "name": self.soc.name},
            "family": self.family,
            "reason": self.reason,
            "overridden": self.overridden,
            "why": list(self.why),
            "steps": list(self.steps),
        }


_Key = tuple[str, str | None, str | None, str | None, str | None, int | None, tuple[str, ...]]


@dataclass(frozen=True)
class _Evidence:
    """What decided the wanted tier, before OS/RAM bounds."""

    tier: str
    matched_by: MatchedBy
    token: str
    sentence: str
    int8: bool
    family: str | None = None


class Classifier:
    """Classifies devices against one catalog + families + overrides snapshot.

    Args:
        catalog: the indexed catalog (default: ``device_tiers/catalog.yaml``).
        overrides: calibrated moves (default: ``device_tiers/overrides.yaml``; an invalid
            file is logged and ignored so classification keeps working).
        families: family rules (default: ``device_tiers/families.yaml``; an invalid file is
            logged and ignored: unknown chips then go straight to the capability rules).
        cache_size: decisions remembered per distinct device report.
    """

    def __init__(self, catalog: Catalog | None = None, overrides: list[Override] | None = None,
                 families: list[FamilyRule] | None = None, cache_size: int = 65536) -> None:
        self.catalog = catalog if catalog is not None else load_catalog_index()
        if overrides is None:
            try:
                overrides = load_overrides()
            except ValueError as err:
                log.error("ignoring invalid overrides file: %s", err)
                overrides = []
        if families is None:
            try:
                families = load_families()
            except ValueError as err:
                log.error("ignoring invalid families file: %s", err)
                families = []
        self.overrides = OverrideIndex(overrides)
        self.family_rules: tuple[FamilyRule, ...] = tuple(families)
        self.families = FamilyMatcher(compile_rules(self.family_rules))
        self._cached = lru_cache(maxsize=cache_size)(self._decide)

    # ------------------------------------------------------------------ public API
    def classify(self, info: DeviceInfo | dict | Any) -> TierDecision:
        """Tier and fallbacks for ``info`` (a DeviceInfo, a raw dict, or anything). Never raises."""
        try:
            device, dropped = _coerce(info)
            decision = self._cached(_key(device))
            if dropped:
                note = f"ignored invalid field(s): {', '.join(dropped)}"
                return dataclasses.replace(decision, reason=f"{decision.reason}; {note}", steps=(note, *decision.steps))
            return decision
        except Exception as err:  # noqa: BLE001 - the contract is "never raises"; log and serve CPU
            log.exception("classifier failed; serving the cpu tier")
            return TierDecision("cpu", (), "default", None, f"classification failed ({type(err).__name__}); cpu tier",
                                why=("default",))

    # ------------------------------------------------------------------- internals
    def _decide(self, key: _Key) -> TierDecision:
        platform, os_text, manufacturer, model, renderer, ram, accelerators = key
        os_version = _os_tuple(os_text)
        chain = FALLBACK_CHAINS.get(platform, FALLBACK_CHAINS["other"])
        steps: list[str] = []

        entry = self.catalog.lookup(manufacturer, model) if model else None
        if entry is not None and (entry.vendor == "apple") != (platform == "ios"):
            # an iPhone id on "android" (or a Snapdragon on "ios") is garbage, not a match
            steps.append(f"catalog: {model!r} is {entry.name}, which does not run on {platform}: ignored")
            entry = None
        override = self.overrides.find(manufacturer, model) if model else None
        if override is None and entry is not None:
            # An override written for the chip ("A16", "SM8650") also covers its machine ids
            # and alias spellings ("iPhone15,2", "pineapple").
            override = self.overrides.find(entry.manufacturers[0], entry.model)

        if override is not None:
            chip = entry.model if entry is not None else override.soc_model
            evidence = _Evidence(override.tier, "catalog", f"override:{chip}",
                                 f"override ({override.source}, {override.date}): {override.reason}",
                                 entry is not None and entry.accelerator.kind != "none")
            steps.append(explain.override_line(override, entry))
        elif entry is not None:
            evidence = _Evidence(entry.tier, "catalog", f"catalog:{entry.model}",
                                 f"catalog: {entry.name} ({entry.model}) is {entry.tier}", entry.accelerator.kind != "none")
            steps.append(explain.catalog_line(entry, model))
        else:
            steps.append(explain.no_catalog_line(platform, manufacturer, model))
            evidence = self._family(platform, model, renderer, ram, steps) or self._rules(
                platform, renderer, accelerators, steps)

        tier, notes, skipped = _step_down(evidence.tier, chain, platform, os_version, ram)
        steps.extend(explain.bound_lines(evidence.tier, tier, chain, platform, os_version, ram))
        why = evidence.sentence + (f"; {'; '.join(notes)}" if notes else "")
        matched_by = evidence.matched_by
        if matched_by == "rules" and tier == "cpu":
            matched_by = "default"
        # The dsp model is a full-int8 graph for a DSP/NPU delegate: only worth trying where
        # there is evidence of one (on a GPU-only phone it would just run on the CPU).
        has_int8 = evidence.tier in ("dsp", "npu") or bool(set(accelerators) & _INT8_EVIDENCE) or evidence.int8
        fallbacks = tuple(
            t for t in chain[chain.index(tier) + 1:]
            if os_allows(t, platform, os_version) and ram_allows(t, ram) and (t != "dsp" or has_int8)
        ) if tier in chain else ()
        steps.extend(explain.fallback_lines(tier, fallbacks, chain, platform, os_version, ram, has_int8))
        return TierDecision(tier, fallbacks, matched_by, entry, why, overridden=override is not None,
                            why=(evidence.token, *skipped), steps=tuple(steps), family=evidence.family)

    def _family(self, platform: str, model: str | None, renderer: str | None, ram: int | None,
                steps: list[str]) -> _Evidence | None:
        """A family rule's answer: the SoC numbering scheme first, then a GPU family with RAM."""
        match = self.families.match_model(platform, model) if model else None
        if match is None:
            match, note = self.families.match_gpu(platform, renderer, ram)
            if note:
                steps.append(note)
        if match is None:
            return None
        steps.append(match.describe())
        return _Evidence(match.tier, "family", match.token, f"family {match.rule.id}: {match.matched} is {match.tier}",
                         match.rule.int8, match.rule.id)

    def _rules(self, platform: str, renderer: str | None, accelerators: tuple[str, ...],
               steps: list[str]) -> _Evidence:
        """Capability evidence when neither catalog nor family knows the chip: the strongest tier any rule supports."""
        found: list[tuple[str, str, str]] = []  # (tier, token, sentence)
        if platform == "ios":
            hit = apple_chip_tier(renderer)
            if hit is not None:
                found.append((hit[0], "rules:apple-gpu", hit[1]))
            if "ane" in accelerators:
                found.append(("npu", "rules:accelerator", "reports a Neural Engine"))
        elif platform == "android":
            rule = gpu_rule_for(renderer)
            if rule is not None:
                found.append((rule.tier, "rules:gpu", f"GPU {renderer!r} is {rule.description}"))
            for name in accelerators:
                tier = ACCELERATOR_TIERS.get(name)
                if tier is not None and name != "ane":
                    found.append((tier, "rules:accelerator", f"reports accelerator {name!r}"))
        if not found:
            sentence = "unknown SoC and no capability evidence: cpu"
            steps.append(f"rules: {sentence}")
            return _Evidence("cpu", "default", "default", sentence, False)
        best = max(found, key=lambda item: TIER_RANK[item[0]])  # first of equals, like the dispatcher
        sentence = f"unknown SoC; {best[2]}: cpu" if best[0] == "cpu" else f"rules: {best[2]}"
        steps.append(f"rules: {best[2]} -> {best[0]}")
        return _Evidence(best[0], "rules" if best[0] != "cpu" else "default", best[1], sentence, False)


# ---------------------------------------------------------------------- helpers
def _step_down(wanted: str, chain: tuple[str, ...], platform: str, os_version: tuple[int, ...] | None,
               ram: int | None) -> tuple[str, list[str], tuple[str, ...]]:
    """The strongest tier of ``chain`` not above ``wanted`` that the OS and RAM allow.

    Returns ``(tier, notes, tokens)``: sentences for ``reason`` and the ``why`` tokens of every
    tier stepped over (``unserved:`` when ``wanted`` is not in the platform's chain at all).
    """
    notes: list[str] = []
    tokens: list[str] = [] if wanted in chain else [f"unserved:{wanted}"]
    for tier in chain:
        if TIER_RANK[tier] > TIER_RANK[wanted]:
            continue
        if not os_allows(tier, platform, os_version):
            notes.append(f"{tier} needs a newer {platform} than {'.'.join(map(str, os_version or ()))}")
            tokens.append(f"os:{tier}")
            continue
        if not ram_allows(tier, ram):
            notes.append(f"{tier} needs more RAM than {ram} bytes")
            tokens.append(f"ram:{tier}")
            continue
        if tier != wanted and not notes:
            notes.append(f"{wanted} is not served on {platform}")
        return tier, notes, tuple(tokens)
    return "cpu", notes, tuple(tokens)


def _os_tuple(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return None


def _key(device: DeviceInfo) -> _Key:
    return (device.platform, device.os_version, device.soc_manufacturer, device.soc_model,
            device.gpu_renderer, device.ram_bytes, tuple(device.accelerators))


def _coerce(info: Any) -> tuple[DeviceInfo, list[str]]:
    """A DeviceInfo from whatever came in; invalid fields are dropped (and named), never fatal."""
    if isinstance(info, DeviceInfo):
        return info, []
    if not isinstance(info, dict):
        return DeviceInfo(), [f"<input of type {type(info).__name__}>"] if info is not None else []
    try:
        return DeviceInfo.model_validate(info), []
    except ValidationError:
        pass
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for name, value in info.items():
        if not isinstance(name, str) or name not in DeviceInfo.model_fields:
            dropped.append(repr(name)[:40])
            continue
        try:
            DeviceInfo.model_validate({name: value})
            kept[name] = value
        except (ValidationError, TypeError, ValueError):
            dropped.append(name)
    try:
        return DeviceInfo.model_validate(kept), dropped
    except (ValidationError, TypeError, ValueError):
        return DeviceInfo(), sorted(set(dropped) | set(kept))


# ------------------------------------------------------------- default instance
_LOCK = threading.Lock()
_DEFAULT: dict[str, Any] = {"classifier": None, "stamp": None, "checked": 0.0}
_RECHECK_SECONDS = 1.0


def _files_stamp() -> tuple[int, ...]:
    from mobile_pipeline.tiers.catalog import default_catalog_path
    from mobile_pipeline.tiers.families import default_families_path
    from mobile_pipeline.tiers.overrides import default_overrides_path

    stamps = []
    for path in (default_catalog_path(), default_overrides_path(), default_families_path()):
        try:
            stamps.append(Path(path).stat().st_mtime_ns)
        except OSError:
            stamps.append(0)
    return tuple(stamps)


def default_classifier() -> Classifier:
    """The process-wide classifier over ``device_tiers/``; rebuilt when its files change."""
    now = time.monotonic()
    current = _DEFAULT["classifier"]
    if current is not None and now - _DEFAULT["checked"] < _RECHECK_SECONDS:
        return current
    with _LOCK:
        stamp = _files_stamp()
        if _DEFAULT["classifier"] is None or stamp != _DEFAULT["stamp"]:
            _DEFAULT["classifier"] = Classifier()
            _DEFAULT["stamp"] = stamp
        _DEFAULT["checked"] = now
        return _DEFAULT["classifier"]


def classify(info: DeviceInfo | dict | Any) -> TierDecision:
    """Classify with the default catalog and overrides. Never raises (falls back to cpu)."""
    try:
        classifier = default_classifier()
    except Exception as err:  # noqa: BLE001 - a broken catalog file must not take the server down
        log.exception("cannot load the device catalog; serving the cpu tier")
        return TierDecision("cpu", (), "default", None, f"catalog unavailable ({type(err).__name__}); cpu tier",
                            why=("default",))
    return classifier.classify(info)


# ------------------------------------------------------------ read-only summary
def tier_rules(classifier: Classifier | None = None) -> dict[str, Any]:
    """The classification rules as plain JSON-able data (see :func:`mobile_pipeline.tiers.summary.tier_rules`)."""
    from mobile_pipeline.tiers.summary import tier_rules as _tier_rules

    return _tier_rules(classifier if classifier is not None else default_classifier())

"""Device info -> compute tier + ordered fallback chain. Never raises.

Order of evidence, strongest first:
  1. ``device_tiers/overrides.yaml`` (what calibration measured on real devices),
  2. the SoC catalog (vendor aliases, model suffixes, iOS machine ids),
  3. capability rules (GPU renderer family, reported accelerators, iOS generation),
  4. the CPU tier.
Every answer then passes the tier's OS and RAM floors (stepping down the platform's chain),
and the fallbacks are the lighter tiers of that chain the device can also run.

The dispatch server calls this for every request, so decisions are cached by the tuple of
reported fields and the indexes are built once per file version.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from mobile_pipeline.tiers.catalog import Catalog, SocEntry, load_catalog_index, normalize_vendor
from mobile_pipeline.tiers.device_info import DeviceInfo
from mobile_pipeline.tiers.overrides import Override, OverrideIndex, load_overrides
from mobile_pipeline.tiers.rules import (
    ACCELERATOR_TIERS,
    FALLBACK_CHAINS,
    TIER_RANK,
    apple_chip_tier,
    gpu_rule_for,
    ios_tier_from_machine,
    os_allows,
    ram_allows,
)

__all__ = ["FALLBACK_CHAINS", "Classifier", "TierDecision", "classify", "default_classifier"]

log = logging.getLogger(__name__)
MatchedBy = Literal["catalog", "rules", "default"]
_INT8_EVIDENCE = frozenset(name for name, tier in ACCELERATOR_TIERS.items() if tier in ("dsp", "npu"))


@dataclass(frozen=True, slots=True)
class TierDecision:
    """The classifier's answer.

    Attributes:
        tier: the tier whose model the device should load first.
        fallbacks: lighter tiers to try, in order, if that model fails to load (ends in cpu
            unless ``tier`` is cpu).
        matched_by: ``catalog`` (overrides included), ``rules`` or ``default``.
        soc: the catalog entry when the chip is known.
        reason: one human-readable sentence for logs and the API.
        overridden: True when an overrides.yaml entry decided the tier.
    """

    tier: str
    fallbacks: tuple[str, ...]
    matched_by: MatchedBy
    soc: SocEntry | None
    reason: str
    overridden: bool = field(default=False)

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
            "reason": self.reason,
            "overridden": self.overridden,
        }


_Key = tuple[str, str | None, str | None, str | None, str | None, int | None, tuple[str, ...]]


class Classifier:
    """Classifies devices against one catalog + overrides snapshot.

    Args:
        catalog: the indexed catalog (default: ``device_tiers/catalog.yaml``).
        overrides: calibrated moves (default: ``device_tiers/overrides.yaml``; an invalid
            file is logged and ignored so classification keeps working).
        cache_size: decisions remembered per distinct device report.
    """

    def __init__(self, catalog: Catalog | None = None, overrides: list[Override] | None = None,
                 cache_size: int = 65536) -> None:
        self.catalog = catalog if catalog is not None else load_catalog_index()
        if overrides is None:
            try:
                overrides = load_overrides()
            except ValueError as err:
                log.error("ignoring invalid overrides file: %s", err)
                overrides = []
        self.overrides = OverrideIndex(overrides)
        self._cached = lru_cache(maxsize=cache_size)(self._decide)

    # ------------------------------------------------------------------ public API
    def classify(self, info: DeviceInfo | dict | Any) -> TierDecision:
        """Tier and fallbacks for ``info`` (a DeviceInfo, a raw dict, or anything). Never raises."""
        try:
            device, dropped = _coerce(info)
            decision = self._cached(_key(device))
            if dropped:
                return _with_reason(decision, f"{decision.reason}; ignored invalid field(s): {', '.join(dropped)}")
            return decision
        except Exception as err:  # noqa: BLE001 - the contract is "never raises"; log and serve CPU
            log.exception("classifier failed; serving the cpu tier")
            return TierDecision("cpu", (), "default", None, f"classification failed ({type(err).__name__}); cpu tier")

    # ------------------------------------------------------------------- internals
    def _decide(self, key: _Key) -> TierDecision:
        platform, os_text, manufacturer, model, renderer, ram, accelerators = key
        os_version = _os_tuple(os_text)
        chain = FALLBACK_CHAINS.get(platform, FALLBACK_CHAINS["other"])

        entry = self.catalog.lookup(manufacturer, model) if model else None
        if entry is not None and (entry.vendor == "apple") != (platform == "ios"):
            entry = None  # an iPhone id on "android" (or a Snapdragon on "ios") is garbage, not a match
        override = self.overrides.find(manufacturer, model) if model else None
        if override is None and entry is not None:
            # An override written for the chip ("A16", "SM8650") also covers its machine ids
            # and alias spellings ("iPhone15,2", "pineapple").
            override = self.overrides.find(entry.manufacturers[0], entry.model)

        if override is not None:
            wanted, matched_by = override.tier, "catalog"
            why = f"override ({override.source}, {override.date}): {override.reason}"
        elif entry is not None:
            wanted, matched_by = entry.tier, "catalog"
            why = f"catalog: {entry.name} ({entry.model}) is {entry.tier}"
        else:
            wanted, why = self._rules(platform, model, renderer, accelerators)
            matched_by = "rules" if wanted != "cpu" else "default"

        tier, limits = _step_down(wanted, chain, platform, os_version, ram)
        if limits:
            why = f"{why}; {limits}"
        if matched_by == "rules" and tier == "cpu":
            matched_by = "default"
        # The dsp model is a full-int8 graph for a DSP/NPU delegate: only worth trying where
        # there is evidence of one (on a GPU-only phone it would just run on the CPU).
        has_int8 = (wanted in ("dsp", "npu") or bool(set(accelerators) & _INT8_EVIDENCE)
                    or (entry is not None and entry.accelerator.kind != "none"))
        fallbacks = tuple(
            t for t in chain[chain.index(tier) + 1:]
            if os_allows(t, platform, os_version) and ram_allows(t, ram) and (t != "dsp" or has_int8)
        ) if tier in chain else ()
        return TierDecision(tier, fallbacks, matched_by, entry, why, overridden=override is not None)

    def _rules(self, platform: str, model: str | None, renderer: str | None,
               accelerators: tuple[str, ...]) -> tuple[str, str]:
        """Capability evidence when the chip is unknown: the strongest tier any rule supports."""
        found: list[tuple[str, str]] = []
        if platform == "ios":
            for hit in (ios_tier_from_machine(model), apple_chip_tier(renderer)):
                if hit is not None:
                    found.append(hit)
            if "ane" in accelerators:
                found.append(("npu", "reports a Neural Engine"))
        elif platform == "android":
            rule = gpu_rule_for(renderer)
            if rule is not None:
                found.append((rule.tier, f"GPU {renderer!r} is {rule.description}"))
            for name in accelerators:
                tier = ACCELERATOR_TIERS.get(name)
                if tier is not None and name != "ane":
                    found.append((tier, f"reports accelerator {name!r}"))
        if not found:
            return "cpu", "unknown SoC and no capability evidence: cpu"
        best = max(found, key=lambda item: TIER_RANK[item[0]])
        if best[0] == "cpu":
            return "cpu", f"unknown SoC; {best[1]}: cpu"
        return best[0], f"rules: {best[1]}"


# ---------------------------------------------------------------------- helpers
def _step_down(wanted: str, chain: tuple[str, ...], platform: str, os_version: tuple[int, ...] | None,
               ram: int | None) -> tuple[str, str]:
    """The strongest tier of ``chain`` not above ``wanted`` that the OS and RAM allow."""
    notes = []
    for tier in chain:
        if TIER_RANK[tier] > TIER_RANK[wanted]:
            continue
        if not os_allows(tier, platform, os_version):
            notes.append(f"{tier} needs a newer {platform} than {'.'.join(map(str, os_version or ()))}")
            continue
        if not ram_allows(tier, ram):
            notes.append(f"{tier} needs more RAM than {ram} bytes")
            continue
        if tier != wanted and not notes:
            notes.append(f"{wanted} is not served on {platform}")
        return tier, "; ".join(notes)
    return "cpu", "; ".join(notes)


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


def _with_reason(decision: TierDecision, reason: str) -> TierDecision:
    return TierDecision(decision.tier, decision.fallbacks, decision.matched_by, decision.soc, reason, decision.overridden)


# ------------------------------------------------------------- default instance
_LOCK = threading.Lock()
_DEFAULT: dict[str, Any] = {"classifier": None, "stamp": None, "checked": 0.0}
_RECHECK_SECONDS = 1.0


def _files_stamp() -> tuple[int, ...]:
    from mobile_pipeline.tiers.catalog import default_catalog_path
    from mobile_pipeline.tiers.overrides import default_overrides_path

    stamps = []
    for path in (default_catalog_path(), default_overrides_path()):
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
        return TierDecision("cpu", (), "default", None, f"catalog unavailable ({type(err).__name__}); cpu tier")
    return classifier.classify(info)


# ------------------------------------------------------------ read-only summary
def tier_rules(classifier: Classifier | None = None) -> dict[str, Any]:
    """The classification rules as plain JSON-able data, for the manifest and Play targeting.

    Overrides are already applied to ``soc_models`` (a calibrated move shows up under its new
    tier). Shape::

        {
          "schema_version": 1,
          "default_tier": "cpu",
          "fallback_chains": {"android": [...], "ios": [...], "other": ["cpu"]},
          "manufacturer_aliases": {"qualcomm": ["QTI", "Qualcomm", "qti", ...], ...},
          "gpu_family_keys": {"adreno 7": "gpu", "adreno 702": "cpu", "mali-g7": "gpu", ...},
                                # keys most specific first, see rules.gpu_family_keys()
          "accelerator_tiers": {"npu": "npu", "hexagon": "dsp", ...},
          "ios_machines": {"iPhone15,2": "A16", ...},          # machine id -> chip model
          "vendor_delegates": {"npu": {"qualcomm": "qnn", ...}, ...},
          "tiers": {
            "<tier>": {
              "soc_models": [{"vendor", "model", "aliases", "manufacturers", "name", "source"}],
              "ios_machine_ids": ["iPhone15,2", ...],
              "gpu_families": [{"pattern", "description", "min_cores"}],   # regex, case-insensitive
              "accelerators": ["npu", "apu", ...],                         # reported names
              "min_ram_bytes": int, "max_ram_bytes": null,
              "min_os": {"android": "10", "ios": "16"},
            }, ...
          },
        }

    ``manufacturers`` are the literal Build.SOC_MANUFACTURER spellings (what Play's
    ``system_on_chips`` matches); the classifier itself also accepts any alias that
    normalises to the vendor (``manufacturer_aliases`` lists those too).
    """
    from mobile_pipeline.config import TIER_NAMES
    from mobile_pipeline.tiers.catalog import VENDOR_ALIASES
    from mobile_pipeline.tiers.rules import GPU_FAMILY_KEYS, GPU_RULES, TIER_BOUNDS

    classifier = classifier if classifier is not None else default_classifier()
    tiers: dict[str, dict[str, Any]] = {}
    for tier in TIER_NAMES:
        bounds = TIER_BOUNDS[tier]
        tiers[tier] = {
            "soc_models": [],
            "ios_machine_ids": [],
            "gpu_families": [
                {"pattern": rule.pattern, "description": rule.description, "min_cores": rule.min_cores}
                for rule in GPU_RULES if rule.tier == tier
            ],
            "accelerators": sorted(name for name, t in ACCELERATOR_TIERS.items() if t == tier),
            "min_ram_bytes": bounds.min_ram_bytes,
            "max_ram_bytes": None,
            "min_os": {platform: ".".join(map(str, version)) for platform, version in sorted(bounds.min_os.items())},
        }

    spellings: dict[str, set[str]] = {}
    covered: set[int] = set()
    for entry in classifier.catalog.entries:
        spellings.setdefault(entry.vendor, set()).update(entry.manufacturers)
        override = classifier.overrides.find(entry.manufacturers[0], entry.model)
        tier = override.tier if override is not None else entry.tier
        if override is not None:
            covered.add(id(override))
        for machine in entry.ios_machine_ids:
            machine_override = classifier.overrides.find("Apple", machine)
            if machine_override is not None:  # written for this machine id itself
                covered.add(id(machine_override))
                tiers[machine_override.tier]["ios_machine_ids"].append(machine)
            else:
                tiers[tier]["ios_machine_ids"].append(machine)
        tiers[tier]["soc_models"].append({
            "vendor": entry.vendor,
            "model": entry.model,
            "aliases": list(entry.aliases),
            "manufacturers": list(entry.manufacturers),
            "name": entry.name,
            "source": "override" if override is not None else "catalog",
        })
    for override in classifier.overrides.overrides:
        if id(override) in covered:
            continue
        vendor = normalize_vendor(override.manufacturer) if override.manufacturer else None
        tiers[override.tier]["soc_models"].append({
            "vendor": vendor,
            "model": override.soc_model,
            "aliases": [],
            "manufacturers": [override.manufacturer] if override.manufacturer else sorted(spellings.get(vendor or "", ())),
            "name": override.soc_model,
            "source": "override",
        })
    ios_machines = {machine: entry.model for entry in classifier.catalog.entries for machine in entry.ios_machine_ids}
    table = _tier_table_or_none()
    vendor_delegates = {name: dict(spec.vendor_delegates) for name, spec in table.items()} if table else {}
    aliases = {vendor: sorted(set(spellings.get(vendor, ())) | {key for key, v in VENDOR_ALIASES.items() if v == vendor})
               for vendor in sorted(set(VENDOR_ALIASES.values()))}
    return {
        "schema_version": 1,
        "default_tier": "cpu",
        "fallback_chains": {platform: list(chain) for platform, chain in FALLBACK_CHAINS.items()},
        "manufacturer_aliases": aliases,
        "gpu_family_keys": dict(sorted(GPU_FAMILY_KEYS.items())),
        "accelerator_tiers": dict(sorted(ACCELERATOR_TIERS.items())),
        "ios_machines": ios_machines,
        "vendor_delegates": vendor_delegates,
        "tiers": tiers,
    }


def _tier_table_or_none() -> dict[str, Any] | None:
    from mobile_pipeline.tiers.table import load_tier_table

    try:
        return load_tier_table()
    except ValueError as err:  # the summary must not fail because of an unrelated file
        log.error("tier table unavailable for tier_rules(): %s", err)
        return None

"""``tier_rules()``: the classifier's tables as plain JSON-able data.

The manifest builder (:mod:`mobile_pipeline.manifest.tier_source`) and the Play device-targeting
export read the rules through this summary, so the dispatch server, the store and the reference
classifier agree on what each tier means.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mobile_pipeline.tiers.catalog import normalize_vendor
from mobile_pipeline.tiers.rules import ACCELERATOR_TIERS, FALLBACK_CHAINS

if TYPE_CHECKING:
    from mobile_pipeline.tiers.classifier import Classifier

log = logging.getLogger(__name__)


def tier_rules(classifier: Classifier) -> dict[str, Any]:
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
          "families": [{"id", "kind", "vendor", "pattern", "steps", "tier", "min_ram_bytes",
                        "int8", "why"}],                  # device_tiers/families.yaml, in order
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
        "families": [
            {"id": rule.id, "kind": rule.kind, "vendor": rule.vendor, "pattern": rule.pattern,
             "steps": [list(step) for step in rule.steps], "tier": rule.tier,
             "min_ram_bytes": None if rule.min_ram_gib is None else int(rule.min_ram_gib * (1 << 30)),
             "int8": rule.int8, "why": rule.why}
            for rule in classifier.family_rules
        ],
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

"""Tier rules as an index: device facts -> tier, built once per manifest.

The dispatch server answers every phone from this index, so it is built at load time: the
catalog is dicts keyed by (vendor, model) and model, iOS machine ids a dict, and the few
capability rules are pre-compiled. The Play config export uses the same index, so both
agree on which SoC lands in which tier.

Semantics mirror the reference classifier (:mod:`mobile_pipeline.tiers.classifier`), whose
tables the manifest carries: catalog first (iOS machine id; else vendor + model with
aliases and package/bin suffixes stripped; else the model alone when unambiguous; Apple chips
only on iOS and the others only off it), then family rules (the SoC or machine-id numbering
scheme, then a GPU family corroborated by RAM), then capability evidence (Android: the first
matching GPU rule and reported accelerators; iOS: machine-id generation of 1.0 manifests, Metal
chip name, reported ANE), the best-ranked tier winning, then the default tier. A test checks the
two agree, tier, fallbacks and ``why`` tokens, on a broad device table. String normalisation and
family matching are the tiers package's own code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mobile_pipeline.manifest.schema import GpuRule, SocRule, TierRules
from mobile_pipeline.tiers.catalog import model_candidates, normalize_model, normalize_vendor
from mobile_pipeline.tiers.families import CompiledFamily, FamilyMatcher

_IOS_MACHINE = re.compile(r"^(iphone|ipad|ipod)(\d{1,3}),\d{1,3}$", re.IGNORECASE)
_APPLE_CHIP = re.compile(r"apple\W*(a|m)(\d{1,2})", re.IGNORECASE)
_CORES = re.compile(r"\b(?:mp|mc)\s*(\d{1,2})\b", re.IGNORECASE)


@dataclass(frozen=True)
class Match:
    """The rules' answer before bounds.

    Attributes:
        tier: the tier the evidence supports.
        matched_by: ``catalog``, ``family``, ``rules`` or ``default``.
        soc: the catalog entry, if any.
        int8: evidence of an int8 DSP/NPU (decides whether the dsp model is a fallback).
        token: the deciding rule, as /v1/select's ``why`` starts (``catalog:SM8750``,
            ``family:snapdragon-8``, ``rules:gpu``, ``default``). Only manifest values: the
            dispatcher keys its answer cache on it.
    """

    tier: str
    matched_by: str
    soc: SocRule | None
    int8: bool
    token: str = "default"


def _step(steps: tuple[tuple[int, str], ...], number: int) -> str | None:
    for minimum, tier in steps:
        if number >= minimum:
            return tier
    return None


class RuleIndex:
    """Lookup structures for one :class:`TierRules`."""

    def __init__(self, rules: TierRules) -> None:
        self.rules = rules
        # Higher is stronger: tiers are listed best first.
        self.strength = {tier: len(rules.tiers) - i for i, tier in enumerate(rules.tiers)}
        self.aliases = {k.lower(): v.lower() for k, v in rules.manufacturer_aliases.items()}
        self.by_pair: dict[tuple[str, str], SocRule] = {}
        owners: dict[str, set[tuple[str, str]]] = {}
        first: dict[str, SocRule] = {}
        for soc in rules.socs:
            vendor = soc.manufacturer.lower()
            for spelling in (soc.model, *soc.aliases):
                key = normalize_model(spelling)
                self.by_pair.setdefault((vendor, key), soc)
                owners.setdefault(key, set()).add((vendor, normalize_model(soc.model)))
                first.setdefault(key, soc)
        # A spelling shared by two chips is ambiguous on its own: (vendor, model) lookups only.
        self.by_model = {key: first[key] for key, chips in owners.items() if len(chips) == 1}
        self.ios_machines: dict[str, SocRule] = {}
        for machine, model in rules.ios_machines.items():
            soc = self.by_pair.get(("apple", normalize_model(model))) or first.get(normalize_model(model))
            if soc is not None:  # the schema refuses dangling names
                self.ios_machines[normalize_model(machine)] = soc
        self.gpu_rules: tuple[tuple[re.Pattern[str], GpuRule], ...] = tuple(
            (re.compile(rule.pattern, re.IGNORECASE), rule) for rule in rules.gpu_rules
        )
        self.families = FamilyMatcher(tuple(
            CompiledFamily(f.id, f.kind, re.compile(f.pattern, re.IGNORECASE), tuple(f.steps), f.tier,
                           f.min_ram_bytes, f.int8_accelerator, f.description)
            for f in rules.families
        ))
        self.accelerators = {p: {k.lower(): v for k, v in m.items()} for p, m in rules.accelerators.items()}
        self.int8_evidence = frozenset(n.lower() for n in rules.int8_evidence)
        self.int8_tiers = frozenset(rules.int8_tiers)

    def canonical_vendor(self, manufacturer: str | None) -> str | None:
        if not manufacturer:
            return None
        return self.aliases.get(manufacturer.strip().lower()) or normalize_vendor(manufacturer)

    def find_soc(self, platform: str, manufacturer: str | None, model: str | None) -> SocRule | None:
        """The catalog entry for a reported SoC or iOS machine id, or None."""
        candidates = model_candidates(model)
        if not candidates:
            return None
        soc = self.ios_machines.get(candidates[0])
        if soc is None:
            vendor = self.canonical_vendor(manufacturer)
            if vendor is not None:
                for key in candidates:
                    soc = self.by_pair.get((vendor, key))
                    if soc is not None:
                        break
            if soc is None:
                # Unknown vendor, or a vendor string that does not own this model (a Samsung
                # phone reporting Samsung for its Snapdragon): the model alone decides.
                for key in candidates:
                    soc = self.by_model.get(key)
                    if soc is not None:
                        break
        if soc is not None and (soc.manufacturer.lower() == "apple") != (platform == "ios"):
            return None  # an iPhone id on "android" (or a Snapdragon on "ios") is garbage, not a match
        return soc

    def gpu_tier(self, renderer: str) -> str | None:
        text = renderer[:128]
        cores_match = _CORES.search(text)
        cores = int(cores_match.group(1)) if cores_match else None
        for regex, rule in self.gpu_rules:
            if regex.search(text) and (rule.min_cores is None or (cores is not None and cores >= rule.min_cores)):
                return rule.tier
        return None

    def capability_tier(self, platform: str, model: str | None, renderer: str | None,
                        accelerators: tuple[str, ...]) -> tuple[str, str] | None:
        """``(tier, kind)`` of the strongest capability evidence (the first of equals), or None."""
        found: list[tuple[str, str]] = []
        if platform == "ios":
            machine = _IOS_MACHINE.match(model.strip()) if model else None
            if machine:
                tier = _step(self.rules.ios_generations.get(machine.group(1).lower(), ()), int(machine.group(2)))
                if tier is not None:
                    found.append((tier, "ios-machine"))
            chip = _APPLE_CHIP.search(renderer[:128]) if renderer else None
            if chip:
                tier = _step(self.rules.apple_chips.get(chip.group(1).lower(), ()), int(chip.group(2)))
                if tier is not None:
                    found.append((tier, "apple-gpu"))
        elif platform == "android" and renderer:
            tier = self.gpu_tier(renderer)
            if tier is not None:
                found.append((tier, "gpu"))
        names = self.accelerators.get(platform, {})
        found.extend((names[a], "accelerator") for a in accelerators if a in names)
        return max(found, key=lambda item: self.strength[item[0]]) if found else None

    def match(self, platform: str, manufacturer: str | None, model: str | None,
              gpu_renderer: str | None, accelerators: tuple[str, ...], ram_bytes: int | None = None) -> Match:
        soc = self.find_soc(platform, manufacturer, model) if model else None
        family_int8 = False
        if soc is not None:
            tier, matched_by, token = soc.tier, "catalog", f"{soc.source}:{soc.model}"
        else:
            family = self.families.match_model(platform, model) if model else None
            if family is None:
                family = self.families.match_gpu(platform, gpu_renderer, ram_bytes)[0]
            if family is not None:
                tier, matched_by, token, family_int8 = family.tier, "family", family.token, family.rule.int8
            else:
                found = self.capability_tier(platform, model, gpu_renderer, accelerators)
                if found is None:
                    tier, token = self.rules.default_tier, "default"
                else:
                    tier, token = found[0], f"rules:{found[1]}"
                matched_by = "rules" if tier != self.rules.default_tier else "default"
        int8 = (tier in self.int8_tiers or any(a in self.int8_evidence for a in accelerators)
                or (soc is not None and soc.int8_accelerator) or family_int8)
        return Match(tier, matched_by, soc, int8, token)

"""The manifest's tier rules, taken from the reference classifier (``mobile_pipeline.tiers``).

``classifier.tier_rules()`` gives the tables (catalog SoCs with overrides applied, family
rules, GPU families, accelerator names, RAM/OS floors, fallback chains); the catalog adds which
chips have an int8 accelerator and each Qualcomm chip's Hexagon architecture (``htp_arch``: the
dispatcher serves models precompiled for it first); the tier table adds per-vendor delegates.
The Apple-chip thresholds live in code there (``apple_chip_tier``), so they are read off that
function by probing each generation number: the manifest then carries them as data and a
release's dispatch does not depend on the server's code version. iOS machine-id generations
are family rules now (``device_tiers/families.yaml``), so ``ios_generations`` stays empty in
new manifests (a 1.0 manifest's table is still honoured by the server).
"""

from __future__ import annotations

from typing import Any

from mobile_pipeline.manifest.errors import ManifestBuildError
from mobile_pipeline.manifest.schema import FamilyRule, GpuRule, SocRule, TierBounds, TierRules

_PROBE_MAX = 60  # generation numbers probed (an Apple A60 is far beyond today's A19)


def _thresholds(tier_of: Any, numbers: range) -> tuple[tuple[int, str], ...]:
    """Compress ``number -> tier`` (monotone in practice) into ((min number, tier), ...) highest first."""
    steps: list[tuple[int, str]] = []
    previous = None
    for number in numbers:
        tier = tier_of(number)
        if tier is not None and tier != previous:
            steps.append((number, tier))
            previous = tier
    return tuple(sorted(steps, reverse=True))


def rules_from_tiers() -> tuple[TierRules, dict[str, tuple[str, ...]]]:
    """``(TierRules, fallback chains)`` as the classifier sees them today.

    Raises:
        ManifestBuildError: the tiers package or its data files are missing or invalid.
    """
    try:
        from mobile_pipeline.tiers.catalog import load_catalog
        from mobile_pipeline.tiers.classifier import tier_rules
        from mobile_pipeline.tiers.rules import ACCELERATOR_TIERS, TIER_RANK, apple_chip_tier
        from mobile_pipeline.tiers.table import load_tier_table
    except ImportError as err:
        raise ManifestBuildError(f"the tier classifier (mobile_pipeline.tiers) is not available: {err}") from None
    try:
        data = tier_rules()
        catalog = load_catalog()
        table = load_tier_table()
    except ValueError as err:  # CatalogError / TierTableError name the file and field
        raise ManifestBuildError(f"cannot read the tier rules: {err}") from None

    int8_chips = {(e.vendor, e.model) for e in catalog if e.accelerator.kind != "none"}
    htp_archs = {(e.vendor, e.model): e.accelerator.htp_arch for e in catalog}
    tiers_best_first = tuple(sorted(data["tiers"], key=lambda t: -TIER_RANK[t]))
    socs: list[SocRule] = []
    ios_machines: dict[str, str] = {}
    gpu_rules: list[GpuRule] = []
    bounds: dict[str, TierBounds] = {}
    for tier in tiers_best_first:
        body = data["tiers"][tier]
        for soc in body["soc_models"]:
            socs.append(SocRule(
                manufacturer=soc["vendor"] or "unknown", model=soc["model"], aliases=tuple(soc["aliases"]),
                tier=tier, name=soc["name"], reported_manufacturers=tuple(soc["manufacturers"]),
                int8_accelerator=(soc["vendor"], soc["model"]) in int8_chips or tier in ("dsp", "npu"),
                source=soc["source"], htp_arch=htp_archs.get((soc["vendor"], soc["model"])),
            ))
        for machine in body["ios_machine_ids"]:
            owner = next((s["model"] for s in body["soc_models"] if s["vendor"] == "apple"
                          and machine in _machines_of(catalog, s["model"])), None)
            if owner is not None:
                ios_machines[machine] = owner
        bounds[tier] = TierBounds(min_ram_bytes=body["min_ram_bytes"] or None, min_os=dict(body["min_os"]))
    # GPU rules keep the classifier's global order (first match wins), not the per-tier grouping.
    from mobile_pipeline.tiers.rules import GPU_RULES

    for rule in GPU_RULES:
        gpu_rules.append(GpuRule(pattern=rule.pattern, tier=rule.tier, description=rule.description,
                                 min_cores=rule.min_cores))
    aliases = {spelling.lower(): vendor for vendor, spellings in data["manufacturer_aliases"].items()
               for spelling in spellings}

    def chip(line: str):
        return lambda n: (apple_chip_tier(f"Apple {line}{n} GPU") or (None,))[0]

    rules = TierRules(
        tiers=tiers_best_first,
        default_tier=data["default_tier"],
        manufacturer_aliases=aliases,
        socs=tuple(socs),
        ios_machines=ios_machines,
        families=tuple(
            FamilyRule(id=f["id"], kind=f["kind"], pattern=f["pattern"], steps=tuple(tuple(s) for s in f["steps"]),
                       tier=f["tier"], min_ram_bytes=f["min_ram_bytes"], int8_accelerator=f["int8"],
                       description=f["why"])
            for f in data["families"]
        ),
        apple_chips={line: _thresholds(chip(line.upper()), range(1, _PROBE_MAX)) for line in ("a", "m")},
        gpu_rules=tuple(gpu_rules),
        accelerators={
            "android": {n: t for n, t in ACCELERATOR_TIERS.items() if n != "ane"},
            "ios": {n: t for n, t in ACCELERATOR_TIERS.items() if n == "ane"},
        },
        int8_evidence=tuple(sorted(n for n, t in ACCELERATOR_TIERS.items() if t in ("dsp", "npu"))),
        int8_tiers=("dsp", "npu"),
        int8_fallback_tiers=("dsp",),
        bounds=bounds,
        vendor_delegates={name: dict(spec.vendor_delegates) for name, spec in table.items() if spec.vendor_delegates},
    )
    chains = {platform: tuple(chain) for platform, chain in data["fallback_chains"].items()}
    return rules, chains


def _machines_of(catalog: list, model: str) -> list[str]:
    return next((e.ios_machine_ids for e in catalog if e.vendor == "apple" and e.model == model), [])

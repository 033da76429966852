"""Google Play device targeting: the manifest's tier rules as a bundletool device tier config.

Play delivers tier-specific asset packs by *device tier*: ``device_groups`` (each a list of
``device_selectors``; a device is in a group if any selector matches, and a selector matches
if all its conditions do) and a ``device_tier_set`` whose levels run 1, 2, ... with the
highest matching level winning and level 0 the implicit fallback. Our CPU tier is level 0.

Generation uses the manifest's tier rules, the same data the HTTP dispatcher serves from,
and a test checks that Play and the server put every catalog SoC at every RAM size in the
same tier. A SoC appears in the group of its own tier and of every lighter tier it may step
down to, each group with that tier's RAM floor: a phone below the NPU tier's RAM floor then
still matches the GPU level, exactly as the dispatcher steps it down. Play selectors cannot express GPU families, reported
accelerators or OS versions: those capability rules apply only in the HTTP dispatcher. Nor can they
express family rules (a selector names exact SoC models, not numbering schemes): a chip that only a
family rule knows (next year's SM8x50) gets Play's level 0 until it has a catalog entry, while the
dispatcher already serves its family's tier. The server's ``matched_by: family`` answers list the chips
that need one.
Models precompiled for one Hexagon NPU architecture get a level just above their tier's,
targeting the SoCs with that architecture (:func:`build_play_targets`).

:func:`validate_play_config` implements bundletool's ``DeviceTierConfigValidator`` and
``DeviceGroupConfigValidator`` rules plus the Play Console's selector limit, and runs
before every write.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mobile_pipeline.manifest.schema import Manifest
from mobile_pipeline.utils.atomic import atomic_write_json
from mobile_pipeline.utils.validation import field_messages

GROUP_NAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")  # bundletool DeviceGroupConfigValidator
MAX_SELECTORS_PER_GROUP = 5
MAX_SOCS_PER_SELECTOR = 20  # keeps selectors readable in the Play Console; groups split instead


class PlayConfigError(ValueError):
    """A device tier config that bundletool or Play would refuse; lists every problem."""


class _Proto(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceRam(_Proto):
    min_bytes: int | None = Field(None, ge=0, description="Included bound.")
    max_bytes: int | None = Field(None, ge=0, description="Excluded bound.")


class DeviceId(_Proto):
    build_brand: str
    build_device: str


class SystemFeature(_Proto):
    name: str


class SystemOnChip(_Proto):
    manufacturer: str = Field(description="Build.SOC_MANUFACTURER")
    model: str = Field(description="Build.SOC_MODEL")


class DeviceSelector(_Proto):
    device_ram: DeviceRam | None = None
    included_device_ids: list[DeviceId] = Field(default_factory=list)
    excluded_device_ids: list[DeviceId] = Field(default_factory=list)
    required_system_features: list[SystemFeature] = Field(default_factory=list)
    forbidden_system_features: list[SystemFeature] = Field(default_factory=list)
    system_on_chips: list[SystemOnChip] = Field(default_factory=list)


class DeviceGroup(_Proto):
    name: str
    device_selectors: list[DeviceSelector] = Field(default_factory=list)


class DeviceTier(_Proto):
    level: int
    device_group_names: list[str] = Field(default_factory=list)


class DeviceTierSet(_Proto):
    device_tiers: list[DeviceTier] = Field(default_factory=list)


class DeviceTierConfig(_Proto):
    device_groups: list[DeviceGroup] = Field(default_factory=list)
    device_tier_set: DeviceTierSet = DeviceTierSet()


def _problems(config: DeviceTierConfig) -> list[str]:
    problems: list[str] = []
    if not config.device_groups:
        problems.append("the device tier config must contain at least one group")
    names = [g.name for g in config.device_groups]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"duplicated device group name {name!r}")
    for group in config.device_groups:
        where = f"device group {group.name!r}"
        if not group.name:
            problems.append("device groups must specify a name")
        elif not GROUP_NAME_RE.match(group.name):
            problems.append(f"{where}: name must match {GROUP_NAME_RE.pattern}")
        if not group.device_selectors:
            problems.append(f"{where} must specify at least one selector")
        if len(group.device_selectors) > MAX_SELECTORS_PER_GROUP:
            problems.append(f"{where} has {len(group.device_selectors)} selectors; at most {MAX_SELECTORS_PER_GROUP} allowed")
        for i, sel in enumerate(group.device_selectors):
            swhere = f"{where} selector {i}"
            ram = sel.device_ram
            if ram is not None and ram.min_bytes is not None and ram.max_bytes is not None and ram.max_bytes <= ram.min_bytes:
                problems.append(f"{swhere}: device_ram.max_bytes ({ram.max_bytes}) must exceed min_bytes ({ram.min_bytes})")
            has_condition = (ram is not None and (ram.min_bytes or ram.max_bytes)) or any(
                (sel.included_device_ids, sel.excluded_device_ids, sel.required_system_features,
                 sel.forbidden_system_features, sel.system_on_chips))
            if not has_condition:
                problems.append(f"{swhere} has no condition and would match every device")
            for soc in sel.system_on_chips:
                if not soc.manufacturer.strip() or not soc.model.strip():
                    problems.append(f"{swhere}: system_on_chips entries need a manufacturer and a model")
            for dev in (*sel.included_device_ids, *sel.excluded_device_ids):
                if not dev.build_brand.strip() or not dev.build_device.strip():
                    problems.append(f"{swhere}: device ids need build_brand and build_device")
            for feature in (*sel.required_system_features, *sel.forbidden_system_features):
                if not feature.name.strip():
                    problems.append(f"{swhere}: system features need a name")
    tiers = config.device_tier_set.device_tiers
    if tiers:
        levels = [t.level for t in tiers]
        if min(levels) <= 0:
            problems.append(f"each tier must specify a positive level (level 0 is implicit), found {min(levels)}")
        for level in range(1, max(levels) + 1):
            count = levels.count(level)
            if count == 0:
                problems.append(f"tier {level} is undefined: levels must be contiguous from 1 to {max(levels)}")
            elif count > 1:
                problems.append(f"tier {level} should be uniquely defined, but it was defined {count} times")
        known = set(names)
        for tier in tiers:
            if not tier.device_group_names:
                problems.append(f"tier {tier.level} must specify at least one group")
            for name in tier.device_group_names:
                if name not in known:
                    problems.append(f"tier {tier.level} must specify existing groups, but found undefined group {name!r}")
    return problems


def validate_play_config(raw: dict[str, Any] | DeviceTierConfig) -> DeviceTierConfig:
    """Check a device tier config against bundletool's rules; raise listing every problem."""
    if isinstance(raw, DeviceTierConfig):
        config = raw
    else:
        try:
            config = DeviceTierConfig.model_validate(raw)
        except ValidationError as err:
            lines = field_messages(err)
            raise PlayConfigError("invalid device tier config:\n  " + "\n  ".join(lines)) from None
    problems = _problems(config)
    if problems:
        raise PlayConfigError("invalid device tier config:\n  " + "\n  ".join(problems))
    return config


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


class PlayTarget(NamedTuple):
    """What one device tier level delivers: a tier's models, precompiled for ``htp_arch`` when set."""

    tier: str
    htp_arch: str | None = None


def build_play_config(manifest: Manifest) -> tuple[dict[str, Any], dict[int, str]]:
    """The device tier config and its level -> tier table (level 0 = the CPU tier).

    Raises:
        PlayConfigError: the manifest has no Android models, or the result breaks a rule.
    """
    config, targets = build_play_targets(manifest)
    return config, {level: target.tier for level, target in targets.items()}


def build_play_targets(manifest: Manifest) -> tuple[dict[str, Any], dict[int, PlayTarget]]:
    """The device tier config and its level -> :class:`PlayTarget` table.

    Models precompiled for a Hexagon architecture get a level of their own right above their
    tier's, whose group lists the tier's SoCs with that architecture (same RAM floor): such a
    phone matches both groups and Play's "highest level wins" delivers the precompiled pack,
    as the dispatcher answers it first; a stronger tier's level still outranks both.
    """
    from mobile_pipeline.manifest.rules import RuleIndex

    rules = manifest.tier_rules
    strength = RuleIndex(rules).strength
    chain = manifest.fallback_chains.get("android", ())
    served = [t for t in chain if manifest.models_for("android", t)]
    if not served:
        raise PlayConfigError("the manifest has no Android models: nothing to target on Google Play")
    archs = sorted({m.htp_arch for m in manifest.models if m.htp_arch is not None}, key=lambda a: (len(a), a))
    # Weakest first; the worst served tier's plain level is 0 (implicit).
    targets = [PlayTarget(tier, arch) for tier in reversed(served)
               for arch in (None, *[a for a in archs if manifest.precompiled_for("android", tier, a)])]
    members: dict[PlayTarget, list[tuple[str, str]]] = {t: [] for t in targets}
    for soc in rules.socs:
        if soc.manufacturer.lower() == "apple":
            continue  # Apple chips are not Android SoCs
        spellings = soc.reported_manufacturers or (soc.manufacturer,)
        # The dispatcher steps a device down to the strongest served tier not above its own
        # that its RAM allows; listing the SoC in each such group (each with its RAM floor)
        # makes Play's "highest matching level" land on the same tier.
        for target in targets:
            if strength[target.tier] <= strength[soc.tier] and target.htp_arch in (None, soc.htp_arch):
                members[target].extend((m, soc.model) for m in spellings)
    groups: list[dict[str, Any]] = []
    device_tiers: list[dict[str, Any]] = []
    for target in targets:
        if target == PlayTarget(served[-1]) or not members[target]:
            continue
        bound = rules.bounds.get(target.tier)
        ram = {"min_bytes": bound.min_ram_bytes} if bound is not None and bound.min_ram_bytes else None
        socs = sorted(set(members[target]), key=lambda p: (p[1].lower(), p[0].lower()))
        selectors = []
        for chunk in _chunks(socs, MAX_SOCS_PER_SELECTOR):
            selector: dict[str, Any] = {"system_on_chips": [{"manufacturer": m, "model": s} for m, s in chunk]}
            if ram:
                selector["device_ram"] = ram
            selectors.append(selector)
        names = []
        base = f"tier_{re.sub(r'[^A-Za-z0-9_]', '_', target.tier)}" + (f"_htp_{target.htp_arch}" if target.htp_arch else "")
        for i, part in enumerate(_chunks(selectors, MAX_SELECTORS_PER_GROUP)):
            name = base + (f"_{i + 1}" if i else "")
            groups.append({"name": name, "device_selectors": part})
            names.append(name)
        device_tiers.append({"level": 0, "device_group_names": names, "_target": target})
    # Renumber contiguously: a served tier without any catalog SoC gets no level.
    level_targets = {0: PlayTarget(served[-1])}
    for new_level, entry in enumerate(device_tiers, start=1):
        entry["level"] = new_level
        level_targets[new_level] = entry.pop("_target")
    config = {"device_groups": groups, "device_tier_set": {"device_tiers": device_tiers}}
    validate_play_config(config)
    return config, level_targets


def write_play_config(manifest: Manifest, out_path: Path) -> dict[str, Any]:
    """Validate and write the device tier config atomically; returns it."""
    config, _ = build_play_config(manifest)
    atomic_write_json(out_path, config)
    return config


def play_level_for(config: dict[str, Any] | DeviceTierConfig, *, soc_manufacturer: str | None = None, soc_model: str | None = None,
                   ram_bytes: int | None = None, features: tuple[str, ...] = (),
                   device_id: tuple[str, str] | None = None) -> int:
    """The level Play would give a device: the highest level with a matching group, else 0.

    Mirrors Play's matching so tests can check that Play and the dispatcher agree.
    """
    parsed = validate_play_config(config)

    def ram_ok(sel: DeviceSelector) -> bool:
        if sel.device_ram is None:
            return True
        if ram_bytes is None:
            return False
        lo, hi = sel.device_ram.min_bytes, sel.device_ram.max_bytes
        return (not lo or ram_bytes >= lo) and (not hi or ram_bytes < hi)

    def matches(sel: DeviceSelector) -> bool:
        if not ram_ok(sel):
            return False
        if sel.system_on_chips and not any(
            soc_manufacturer is not None and soc_model is not None
            and s.manufacturer.lower() == soc_manufacturer.lower() and s.model.lower() == soc_model.lower()
            for s in sel.system_on_chips
        ):
            return False
        ids = [(d.build_brand, d.build_device) for d in sel.included_device_ids]
        if ids and device_id not in ids:
            return False
        if device_id in [(d.build_brand, d.build_device) for d in sel.excluded_device_ids]:
            return False
        if any(f.name not in features for f in sel.required_system_features):
            return False
        return not any(f.name in features for f in sel.forbidden_system_features)

    in_group = {g.name for g in parsed.device_groups if any(matches(s) for s in g.device_selectors)}
    levels = [t.level for t in parsed.device_tier_set.device_tiers if in_group & set(t.device_group_names)]
    return max(levels, default=0)

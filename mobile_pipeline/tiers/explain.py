"""Sentences for the chain of rules behind a tier decision (``mobile-pipeline tiers explain``).

The classifier calls the ``*_line(s)`` helpers while it decides, so the explanation is the
decision's own record, not a second reading of the rules. :func:`render` formats a decision
(and, with a release manifest, the dispatch server's answer) for a terminal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mobile_pipeline.tiers.rules import TIER_BOUNDS, TIER_RANK, os_allows, ram_allows

if TYPE_CHECKING:
    from mobile_pipeline.tiers.catalog import SocEntry
    from mobile_pipeline.tiers.classifier import TierDecision
    from mobile_pipeline.tiers.device_info import DeviceInfo
    from mobile_pipeline.tiers.overrides import Override

GiB = 1 << 30


def _gib(value: int) -> str:
    return f"{value / GiB:.1f} GiB"


def _version(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


# ------------------------------------------------------------- decision records
def catalog_line(entry: SocEntry, reported: str | None) -> str:
    spelled = "" if reported is None or reported.strip() == entry.model else f" (reported as {reported.strip()!r})"
    htp = f", HTP {entry.accelerator.htp_arch}" if entry.accelerator.htp_arch else ""
    note = entry.note.split(". ")[0].rstrip(".") if entry.note else ""  # the first sentence says why
    return f"catalog: {entry.name} [{entry.vendor} {entry.model}{spelled}{htp}] -> {entry.tier}" + (f" ({note})" if note else "")


def override_line(override: Override, entry: SocEntry | None) -> str:
    base = f" (catalog alone: {entry.tier})" if entry is not None else ""
    return f"override {override.soc_model} ({override.source}, {override.date}): {override.reason} -> {override.tier}{base}"


def no_catalog_line(platform: str, manufacturer: str | None, model: str | None) -> str:
    if not model:
        what = "iOS machine id" if platform == "ios" else "SoC model"
        return f"catalog: no {what} reported"
    who = f"{manufacturer} " if manufacturer else ""
    return f"catalog: no entry for {who}{model!r}"


def bound_lines(wanted: str, served: str, chain: tuple[str, ...], platform: str,
                os_version: tuple[int, ...] | None, ram: int | None) -> list[str]:
    """One line per tier from ``wanted`` down to ``served``: which OS/RAM floor it met or missed."""
    lines = [] if wanted in chain else [f"{wanted} is not served on {platform}: its chain is {' -> '.join(chain)}"]
    for tier in chain:
        if TIER_RANK[tier] > TIER_RANK[wanted]:
            continue
        lines.append(f"{tier}: {_bounds_text(tier, platform, os_version, ram)}")
        if tier == served:
            break
    return lines


def _bounds_text(tier: str, platform: str, os_version: tuple[int, ...] | None, ram: int | None) -> str:
    parts, ok = [], True
    floor = TIER_BOUNDS[tier].min_os.get(platform)
    if floor is not None:
        if os_version is None:
            parts.append(f"needs {platform} {_version(floor)}+, OS not reported (allowed: the app checks again)")
        elif os_allows(tier, platform, os_version):
            parts.append(f"{platform} {_version(os_version)} >= {_version(floor)}")
        else:
            parts.append(f"{platform} {_version(os_version)} < {_version(floor)}")
            ok = False
    need = TIER_BOUNDS[tier].min_ram_bytes
    if need:
        if ram is None:
            parts.append(f"needs {_gib(need)} RAM, RAM not reported (allowed)")
        elif ram_allows(tier, ram):
            parts.append(f"RAM {_gib(ram)} >= {_gib(need)}")
        else:
            parts.append(f"RAM {_gib(ram)} < {_gib(need)}")
            ok = False
    detail = "; ".join(parts) if parts else "no floor"
    return f"{detail} -> {'serve' if ok else 'step down'}"


def fallback_lines(served: str, fallbacks: tuple[str, ...], chain: tuple[str, ...], platform: str,
                   os_version: tuple[int, ...] | None, ram: int | None, has_int8: bool) -> list[str]:
    if served not in chain:
        return ["fallbacks: none"]
    lines = [f"fallbacks: {' -> '.join(fallbacks) if fallbacks else 'none'}"]
    for tier in chain[chain.index(served) + 1:]:
        if tier in fallbacks:
            continue
        if not os_allows(tier, platform, os_version) or not ram_allows(tier, ram):
            lines.append(f"  {tier} left out: {_bounds_text(tier, platform, os_version, ram)}")
        elif tier == "dsp" and not has_int8:
            lines.append("  dsp left out: no int8 DSP/NPU evidence (the full-int8 model would run on the CPU)")
    return lines


# ---------------------------------------------------------------- terminal text
def describe_device(info: DeviceInfo) -> str:
    parts = [info.platform + (f" {info.os_version}" if info.os_version else "")]
    soc = " ".join(p for p in (info.soc_manufacturer, info.soc_model) if p)
    if soc:
        parts.append(soc)
    if info.gpu_renderer:
        parts.append(repr(info.gpu_renderer))
    if info.ram_bytes is not None:
        parts.append(f"{_gib(info.ram_bytes)} RAM")
    if info.accelerators:
        parts.append("accelerators " + ",".join(info.accelerators))
    return ", ".join(parts)


def render(info: DeviceInfo, decision: TierDecision, selection: Any | None = None) -> str:
    """The explanation for a terminal; with ``selection`` (a dispatcher answer) also its models."""
    lines = [f"device: {describe_device(info)}", f"tier:   {decision.tier}   (matched by {decision.matched_by})"]
    if decision.matched_by == "family":
        lines.append("        -> a family rule placed this chip: add it to device_tiers/catalog.yaml")
    split = next((i for i, s in enumerate(decision.steps) if s.startswith("fallbacks:")), len(decision.steps))
    lines.append("decided by:")
    lines += [f"  {i}. {step}" for i, step in enumerate(decision.steps[:split], start=1)]
    lines.append(f"chain:  {' -> '.join(decision.chain)}")
    lines += [f"  {s.strip()}" for s in decision.steps[split + 1:]]
    lines.append(f"why:    {' '.join(decision.why)}   (the compact form /v1/select returns)")
    if selection is not None:
        lines.append(f"served by release {selection.release_id}: {selection.model.id} ({selection.model.delegate or '-'})"
                     + "".join(f" -> {ref.id}" for ref in selection.fallbacks))
        if tuple(selection.why) != tuple(decision.why):
            lines.append(f"  the release's manifest decides differently: why {' '.join(selection.why)} "
                         "(its rules are older or newer than device_tiers/)")
    return "\n".join(lines)

"""Play for On-device AI: the release's Android models as an AI pack an app drops in.

Play delivers models in *AI packs* (Gradle plugin ``com.android.ai-pack``; install-time,
fast-follow or on-demand) and picks a per-device variant of a pack by *device targeting*: an
XML ``device-targeting-config`` of device groups, each up to 5 selectors (RAM range, device
ids, system features, SoC manufacturer/model). A pack's asset folder suffixed
``#group_<name>`` goes to that group's devices; the first group in the file that a device
matches wins, and a device matching none gets the implicit ``other`` group.

The release writes (``play_ai_packs/``)::

    <pack>/build.gradle                                  the AI pack module (drop it in the project root)
    <pack>/src/main/assets/<pack>#group_tier_npu/        the npu tier's model + model.json
    <pack>/src/main/assets/<pack>#group_other/           the default (cpu) tier: every other device
    app/device_targeting_config.xml                      one device group per targetable tier, best first
    app/build.gradle.snippet, settings.gradle.snippet,   the wiring (assetPacks, deviceTargetingConfig,
    gradle.properties.snippet, README.md                 deviceGroup split, the feature flag)
    ai_packs.json                                        tiers <-> groups, files, hashes, the limits checked

One pack per model family (the stylizer); its folder is named after the pack so several packs
never clash on an asset path. The groups come from :func:`android_tier_groups`, the same SoCs
and RAM floors as the bundletool JSON (kept for asset-pack users), ordered best tier first so
"first matching group" lands a device on the tier the dispatcher would serve. Models
precompiled for one Hexagon architecture (QNN contexts) are not packed: each group carries the
tier's generic model, which the QNN EP compiles on the phone; the bundletool JSON and the
dispatcher deliver the precompiled ones. Each
group folder holds the model the manifest serves an Android device of that tier (its format
preference applies) plus the default tier's model as a fallback, and a ``model.json`` naming
them; Play strips the suffix, so the app always reads ``<pack>/model.json``.

Before anything is written the plan is checked against Play's documented limits (5 selectors
per group, 10,000 device ids and 100 system features per group, group and pack names, 1.5 GB
compressed download per pack) and the XML is parsed back and compared with the plan; a breach
raises :class:`AiPackError` listing every problem. The folder is written atomically.
"""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mobile_pipeline.manifest.play import GROUP_NAME_RE
from mobile_pipeline.manifest.schema import Manifest, ModelEntry
from mobile_pipeline.utils.atomic import atomic_output, sha256_file

NAMESPACE = "http://schemas.android.com/apk/config"
DEFAULT_GROUP = "other"  # Play's implicit group for devices that match none; never declared
DELIVERY_MODES = ("install-time", "fast-follow", "on-demand")
PACK_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # "start with a letter ... letters, numbers, underscores"
# Documented limits (developer.android.com/google/play/on-device-ai, "Considerations" and
# "Available device properties").
MAX_SELECTORS_PER_GROUP = 5
MAX_DEVICE_IDS_PER_GROUP = 10_000
MAX_SYSTEM_FEATURES_PER_GROUP = 100
MAX_PACK_DOWNLOAD_BYTES = 1_500_000_000  # "Individual AI packs can be up to 1.5GB, based on their compressed download"
AI_DELIVERY_DEPENDENCY = "com.google.android.play:ai-delivery:0.1.1-alpha01"
OUT_DIR = "play_ai_packs"


class AiPackError(ValueError):
    """An AI-pack layout Play would refuse; the message lists every problem and what to change."""


@dataclass(frozen=True)
class Selector:
    """One ``config:device-selector``: all its properties must match (RAM range AND any listed SoC ...)."""

    ram_min_bytes: int | None = None
    ram_max_bytes: int | None = None
    system_on_chips: tuple[tuple[str, str], ...] = ()  # (manufacturer, model)
    included_device_ids: tuple[tuple[str, str], ...] = ()  # (brand, device)
    excluded_device_ids: tuple[tuple[str, str], ...] = ()
    required_system_features: tuple[str, ...] = ()
    forbidden_system_features: tuple[str, ...] = ()


@dataclass(frozen=True)
class Group:
    """One ``config:device-group`` (any selector matches) and the tier it delivers."""

    name: str
    tier: str
    selectors: tuple[Selector, ...]


@dataclass(frozen=True)
class PackFile:
    """One model file in one group's asset folder."""

    group: str
    role: str  # primary | fallback
    entry: ModelEntry
    source: Path


@dataclass
class AiPackPlan:
    """Everything the layout will hold, checked before a byte is written."""

    release_id: str
    pack: str
    delivery: str
    default_tier: str
    groups: list[Group]
    files: list[PackFile] = field(default_factory=list)
    untargeted: dict[str, str] = field(default_factory=dict)  # tier -> why Play cannot target it
    vendor_delegates: dict[str, dict[str, str]] = field(default_factory=dict)  # tier -> SoC vendor -> delegate

    def tiers(self) -> dict[str, str]:
        """tier -> group name (the default tier -> ``other``)."""
        return {**{g.tier: g.name for g in self.groups}, self.default_tier: DEFAULT_GROUP}

    def group_files(self, group: str) -> list[PackFile]:
        return [f for f in self.files if f.group == group]


# ----------------------------------------------------------------------------- tiers
@dataclass(frozen=True)
class TierGroup:
    """One Android tier Play can target: the SoCs that reach it and the tier's RAM floor."""

    tier: str
    min_ram_bytes: int | None
    socs: tuple[tuple[str, str], ...]  # (Build.SOC_MANUFACTURER spelling, Build.SOC_MODEL), sorted


def android_tier_groups(manifest: Manifest) -> tuple[list[TierGroup], str]:
    """Targetable Android tiers, best first, and the default tier (the worst served, Play's fallback).

    The same membership rule as the bundletool JSON (:func:`.play.build_play_targets`): a SoC
    is listed for its own tier and for every lighter served tier it may step down to, each
    with that tier's RAM floor, so the first group a phone matches is the tier the dispatcher
    serves it. A served tier without any catalog SoC cannot be targeted and is left out.

    Raises:
        AiPackError: the manifest has no Android models.
    """
    from mobile_pipeline.manifest.rules import RuleIndex

    rules = manifest.tier_rules
    strength = RuleIndex(rules).strength
    served = [t for t in manifest.fallback_chains.get("android", ()) if manifest.models_for("android", t)]
    if not served:
        raise AiPackError("no AI pack: the manifest has no Android models")
    targeted = served[:-1]  # the worst served tier is Play's implicit default group
    members: dict[str, set[tuple[str, str]]] = {t: set() for t in targeted}
    for soc in rules.socs:
        if soc.manufacturer.lower() == "apple":
            continue  # Apple chips are not Android SoCs
        for tier in targeted:
            if strength[tier] <= strength[soc.tier]:
                members[tier].update((m, soc.model) for m in (soc.reported_manufacturers or (soc.manufacturer,)))
    groups = []
    for tier in targeted:
        if members[tier]:
            bound = rules.bounds.get(tier)
            ram = bound.min_ram_bytes if bound is not None and bound.min_ram_bytes else None
            socs = tuple(sorted(members[tier], key=lambda p: (p[1].lower(), p[0].lower())))
            groups.append(TierGroup(tier, ram, socs))
    return groups, served[-1]


def group_name(tier: str) -> str:
    """``tier_<tier>``, the bundletool JSON's group name for the same tier."""
    return f"tier_{re.sub(r'[^A-Za-z0-9_]', '_', tier)}"


# ----------------------------------------------------------------------------- plan
def plan_ai_pack(manifest: Manifest, artifacts_dir: Path, *, pack: str = "stylizer",
                 delivery: str = "install-time") -> AiPackPlan:
    """Groups from the manifest's Android tier rules, files from its models (nothing written).

    Raises:
        AiPackError: no Android models, or a model file is missing.
    """
    tier_groups, default_tier = android_tier_groups(manifest)
    groups = [Group(group_name(g.tier), g.tier, (Selector(ram_min_bytes=g.min_ram_bytes, system_on_chips=g.socs),))
              for g in tier_groups]
    plan = AiPackPlan(manifest.release_id, pack, delivery, default_tier, groups,
                      vendor_delegates={t: dict(m) for t, m in manifest.tier_rules.vendor_delegates.items()})
    chain = manifest.fallback_chains.get("android", ())
    for tier in chain:
        if tier != default_tier and tier not in {g.tier for g in groups} and manifest.models_for("android", tier):
            plan.untargeted[tier] = "no catalog SoC is in this tier, so no Play selector can reach it"
    fallback = manifest.models_for("android", default_tier)[0]
    for tier, group in plan.tiers().items():
        primary = manifest.models_for("android", tier)[0]
        chosen = [("primary", primary)] + ([("fallback", fallback)] if fallback.id != primary.id else [])
        for role, entry in chosen:
            source = Path(artifacts_dir) / entry.file
            if not source.is_file():
                raise AiPackError(f"model {entry.id} for AI pack group {group!r} is missing: {source} "
                                  "(rebuild the manifest from the export folder)")
            plan.files.append(PackFile(group, role, entry, source))
    return plan


# ----------------------------------------------------------------------------- limits
def _compressed_bytes(paths: list[Path]) -> int:
    """Deflated size (what Play's compressed download roughly is) of the files, streamed."""
    total = 0
    for path in paths:
        compressor = zlib.compressobj(6)
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                total += len(compressor.compress(chunk))
        total += len(compressor.flush())
    return total


def check_plan(plan: AiPackPlan, *, max_pack_bytes: int = MAX_PACK_DOWNLOAD_BYTES) -> None:
    """Raise :class:`AiPackError` listing every breach of Play's AI-pack and targeting rules."""
    problems: list[str] = []
    if not PACK_NAME_RE.match(plan.pack):
        problems.append(f"pack name {plan.pack!r}: must start with a letter and hold only letters, digits and "
                        "underscores (manifest.ai_pack_name)")
    if plan.delivery not in DELIVERY_MODES:
        problems.append(f"delivery {plan.delivery!r}: choose one of {list(DELIVERY_MODES)} (manifest.ai_pack_delivery)")
    names = [g.name for g in plan.groups]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"device group {name!r} is defined twice")
    for group in plan.groups:
        where = f"device group {group.name!r} (tier {group.tier})"
        if not GROUP_NAME_RE.match(group.name):
            problems.append(f"{where}: name must match {GROUP_NAME_RE.pattern}")
        if group.name == DEFAULT_GROUP:
            problems.append(f"{where}: {DEFAULT_GROUP!r} is Play's implicit default group and must not be declared")
        count = len(group.selectors)
        if not 1 <= count <= MAX_SELECTORS_PER_GROUP:
            problems.append(f"{where} has {count} selectors; Play allows 1 to {MAX_SELECTORS_PER_GROUP} per group "
                            "(merge SoCs that share a RAM floor into one selector)")
        ids = sum(len(s.included_device_ids) + len(s.excluded_device_ids) for s in group.selectors)
        if ids > MAX_DEVICE_IDS_PER_GROUP:
            problems.append(f"{where} lists {ids} device ids; at most {MAX_DEVICE_IDS_PER_GROUP} per group")
        features = sum(len(s.required_system_features) + len(s.forbidden_system_features) for s in group.selectors)
        if features > MAX_SYSTEM_FEATURES_PER_GROUP:
            problems.append(f"{where} lists {features} system features; at most {MAX_SYSTEM_FEATURES_PER_GROUP} per group")
        for i, sel in enumerate(group.selectors):
            swhere = f"{where} selector {i}"
            if not any((sel.ram_min_bytes, sel.ram_max_bytes, sel.system_on_chips, sel.included_device_ids,
                        sel.excluded_device_ids, sel.required_system_features, sel.forbidden_system_features)):
                problems.append(f"{swhere} has no condition and would match every device")
            if sel.ram_min_bytes and sel.ram_max_bytes and sel.ram_max_bytes <= sel.ram_min_bytes:
                problems.append(f"{swhere}: ram-max-bytes {sel.ram_max_bytes} must exceed ram-min-bytes {sel.ram_min_bytes}")
            if any(not m.strip() or not model.strip() for m, model in sel.system_on_chips):
                problems.append(f"{swhere}: every system-on-chip needs a manufacturer and a model")
    for group in [g.name for g in plan.groups] + [DEFAULT_GROUP]:
        files = plan.group_files(group)
        if not files:
            problems.append(f"group {group!r} has no model")
            continue
        basenames = [f.entry.file.rsplit("/", 1)[-1] for f in files]
        for clash in sorted({b for b in basenames if basenames.count(b) > 1}):
            problems.append(f"group {group!r}: two models are both named {clash!r}")
        raw = sum(f.entry.bytes for f in files)
        # Raw bytes bound the compressed download from above; deflate only when that is not enough.
        if raw > max_pack_bytes and _compressed_bytes([f.source for f in files]) > max_pack_bytes:
            problems.append(f"pack {plan.pack!r} variant for group {group!r} downloads {raw:,} bytes "
                            f"(compressed more than {max_pack_bytes:,}), over Play's per-pack limit; ship a smaller "
                            "precision for that tier or split the models into several packs")
    if problems:
        raise AiPackError("AI pack layout breaks Play's rules:\n  " + "\n  ".join(problems))


# ----------------------------------------------------------------------------- XML
def _q(tag: str) -> str:
    return f"{{{NAMESPACE}}}{tag}"


def device_targeting_xml(plan: AiPackPlan) -> str:
    """The ``config:device-targeting-config`` document, groups in priority (best tier first) order."""
    ET.register_namespace("config", NAMESPACE)
    root = ET.Element(_q("device-targeting-config"))
    root.append(ET.Comment(
        f" mobile_pipeline release {plan.release_id}: one group per tier, best first (Play serves the first group a "
        f"device matches); devices matching none get the implicit '{DEFAULT_GROUP}' group = tier {plan.default_tier}. "))
    for group in plan.groups:
        node = ET.SubElement(root, _q("device-group"), {"name": group.name})
        for sel in group.selectors:
            attrs = {}
            if sel.ram_min_bytes:
                attrs["ram-min-bytes"] = str(sel.ram_min_bytes)
            if sel.ram_max_bytes:
                attrs["ram-max-bytes"] = str(sel.ram_max_bytes)
            snode = ET.SubElement(node, _q("device-selector"), attrs)
            for brand, device in sel.included_device_ids:
                ET.SubElement(snode, _q("included-device-id"), {"brand": brand, "device": device})
            for brand, device in sel.excluded_device_ids:
                ET.SubElement(snode, _q("excluded-device-id"), {"brand": brand, "device": device})
            for name in sel.required_system_features:
                ET.SubElement(snode, _q("required-system-feature"), {"name": name})
            for name in sel.forbidden_system_features:
                ET.SubElement(snode, _q("forbidden-system-feature"), {"name": name})
            for manufacturer, model in sel.system_on_chips:
                ET.SubElement(snode, _q("system-on-chip"), {"manufacturer": manufacturer, "model": model})
    ET.indent(root, space="    ")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def parse_device_targeting_xml(text: str) -> list[tuple[str, tuple[Selector, ...]]]:
    """(group name, selectors) in file order; :class:`AiPackError` when it is not such a document."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as err:
        raise AiPackError(f"device targeting config is not well-formed XML: {err}") from None
    if root.tag != _q("device-targeting-config"):
        raise AiPackError(f"root element is {root.tag}, expected config:device-targeting-config in {NAMESPACE}")
    groups = []
    for node in root:
        if not isinstance(node.tag, str):
            continue  # comments
        if node.tag != _q("device-group") or "name" not in node.attrib:
            raise AiPackError(f"unexpected element {node.tag} under device-targeting-config (need named device-groups)")
        selectors = []
        for snode in node:
            if snode.tag != _q("device-selector"):
                raise AiPackError(f"group {node.attrib['name']!r}: unexpected element {snode.tag}")

            def pairs(tag: str, a: str, b: str) -> tuple[tuple[str, str], ...]:
                return tuple((c.attrib[a], c.attrib[b]) for c in snode if c.tag == _q(tag))  # noqa: B023

            ram = [snode.attrib.get(k) for k in ("ram-min-bytes", "ram-max-bytes")]
            selectors.append(Selector(
                ram_min_bytes=int(ram[0]) if ram[0] else None, ram_max_bytes=int(ram[1]) if ram[1] else None,
                system_on_chips=pairs("system-on-chip", "manufacturer", "model"),
                included_device_ids=pairs("included-device-id", "brand", "device"),
                excluded_device_ids=pairs("excluded-device-id", "brand", "device"),
                required_system_features=tuple(c.attrib["name"] for c in snode if c.tag == _q("required-system-feature")),
                forbidden_system_features=tuple(c.attrib["name"] for c in snode if c.tag == _q("forbidden-system-feature")),
            ))
        groups.append((node.attrib["name"], tuple(selectors)))
    return groups


# ----------------------------------------------------------------------------- gradle
def _pack_gradle(plan: AiPackPlan) -> str:
    return (f"// AI pack of mobile_pipeline release {plan.release_id}. Copy this folder into the project root.\n"
            "plugins {\n    id 'com.android.ai-pack'\n}\n\n"
            "aiPack {\n"
            f'    packName = "{plan.pack}"\n'
            "    dynamicDelivery {\n"
            f'        deliveryType = "{plan.delivery}"\n'
            "    }\n}\n")


def _app_gradle(plan: AiPackPlan) -> str:
    dependency = ("" if plan.delivery == "install-time" else
                  f'\ndependencies {{\n    // fast-follow / on-demand packs are fetched with the Play AI Delivery Library\n'
                  f'    implementation "{AI_DELIVERY_DEPENDENCY}"\n}}\n')
    return ("// Merge into app/build.gradle (device_targeting_config.xml sits next to it).\n"
            "android {\n"
            f'    assetPacks = [":{plan.pack}"]\n'
            "    bundle {\n"
            "        deviceTargetingConfig = file('device_targeting_config.xml')\n"
            "        deviceGroup {\n"
            "            enableSplit = true      // one split per device group\n"
            f'            defaultGroup = "{DEFAULT_GROUP}"  // the group standalone APKs get\n'
            "        }\n    }\n}\n" + dependency)


def _readme(plan: AiPackPlan) -> str:
    rows = "\n".join(f"| `{g}` | {t} | " + ", ".join(f"`{f.entry.file.rsplit('/', 1)[-1]}` ({f.role})"
                                                     for f in plan.group_files(g)) + " |"
                     for t, g in plan.tiers().items())
    access = ("`context.getAssets().open(\"" + plan.pack + "/model.json\")` (install-time packs are APK assets)"
              if plan.delivery == "install-time" else
              "`AiPackManager.getPackLocation(\"" + plan.pack + "\").assetsPath()` + `/" + plan.pack + "/model.json` "
              "after `fetch()`")
    untargeted = "".join(f"\nNot targetable: tier {t}: {why}." for t, why in plan.untargeted.items())
    return f"""# Play AI pack `{plan.pack}` (release {plan.release_id})

Drop-in layout for Play for On-device AI ({plan.delivery} delivery):

1. Copy `{plan.pack}/` into the project root and `app/device_targeting_config.xml` into the app module.
2. Merge `settings.gradle.snippet`, `app/build.gradle.snippet` and `gradle.properties.snippet`
   (AI packs need the Android Gradle Plugin 8.8+, device targeting 8.10+).
3. At run time read {access}:
   it names the model file, its runtime, delegate and I/O, the SoC vendors' own delegates,
   and the fallback to use when the first cannot be initialised.

| device group | tier | files |
|---|---|---|
{rows}

Groups are listed best tier first: Play gives a device the first group it matches, the same
tier the dispatch server would serve. SoC selectors need Android 12 (API 31) or later; older
devices fall into `{DEFAULT_GROUP}`.{untargeted}
"""


# ----------------------------------------------------------------------------- write
def _model_json(plan: AiPackPlan, group: str, tier: str) -> dict[str, Any]:
    def describe(f: PackFile) -> dict[str, Any]:
        e = f.entry
        return {"role": f.role, "id": e.id, "tier": e.tier, "file": e.file.rsplit("/", 1)[-1], "sha256": e.sha256,
                "bytes": e.bytes, "format": e.format, "precision": e.precision, "runtime": e.runtime,
                "delegate": e.delegate, "input": e.input.model_dump(mode="json"),
                "output": e.output.model_dump(mode="json")}

    # A group spans SoC vendors: the app applies the vendor's own delegate (qnn on Qualcomm ...)
    # to LiteRT/ONNX models as the dispatcher does; a .pte or Core ML model keeps its own.
    return {"release_id": plan.release_id, "pack": plan.pack, "group": group, "tier": tier,
            "vendor_delegates": plan.vendor_delegates.get(tier, {}),
            "models": [describe(f) for f in plan.group_files(group)]}


def _index(plan: AiPackPlan, max_pack_bytes: int) -> dict[str, Any]:
    return {
        "release_id": plan.release_id, "pack": plan.pack, "delivery": plan.delivery,
        "default_group": DEFAULT_GROUP, "default_tier": plan.default_tier,
        "tiers": plan.tiers(),
        "groups": [{"name": g.name, "tier": g.tier, "selectors": [asdict(s) for s in g.selectors]} for g in plan.groups],
        "files": [{"group": f.group, "role": f.role, "model": f.entry.id, "sha256": f.entry.sha256,
                   "bytes": f.entry.bytes,
                   "path": f"{plan.pack}/src/main/assets/{plan.pack}#group_{f.group}/{f.entry.file.rsplit('/', 1)[-1]}"}
                  for f in plan.files],
        "untargeted_tiers": plan.untargeted,
        "limits_checked": {"selectors_per_group": MAX_SELECTORS_PER_GROUP, "device_ids_per_group": MAX_DEVICE_IDS_PER_GROUP,
                           "system_features_per_group": MAX_SYSTEM_FEATURES_PER_GROUP,
                           "pack_download_bytes": max_pack_bytes},
    }


def write_ai_packs(manifest: Manifest, artifacts_dir: Path, out_dir: Path, *, pack: str = "stylizer",
                   delivery: str = "install-time", max_pack_bytes: int = MAX_PACK_DOWNLOAD_BYTES) -> AiPackPlan:
    """Plan, check, render, re-parse, then write the layout to ``out_dir`` in one rename.

    Raises:
        AiPackError: a Play limit is broken, a model is missing, or the XML does not say what
            the plan says; nothing is written then.
    """
    plan = plan_ai_pack(manifest, artifacts_dir, pack=pack, delivery=delivery)
    check_plan(plan, max_pack_bytes=max_pack_bytes)
    xml = device_targeting_xml(plan)
    parsed = parse_device_targeting_xml(xml)
    if parsed != [(g.name, g.selectors) for g in plan.groups]:
        raise AiPackError("the rendered device targeting XML does not match the planned groups (a bug: report it)")
    files: dict[str, bytes | Path] = {
        "app/device_targeting_config.xml": xml.encode(),
        "app/build.gradle.snippet": _app_gradle(plan).encode(),
        "settings.gradle.snippet": f"include ':{plan.pack}'\n".encode(),
        "gradle.properties.snippet": b"android.experimental.enableDeviceTargetingConfigApi=true\n",
        f"{plan.pack}/build.gradle": _pack_gradle(plan).encode(),
        "README.md": _readme(plan).encode(),
        "ai_packs.json": (json.dumps(_index(plan, max_pack_bytes), indent=2) + "\n").encode(),
    }
    for tier, group in plan.tiers().items():
        folder = f"{plan.pack}/src/main/assets/{plan.pack}#group_{group}"
        files[f"{folder}/model.json"] = (json.dumps(_model_json(plan, group, tier), indent=2) + "\n").encode()
        for f in plan.group_files(group):
            files[f"{folder}/{f.entry.file.rsplit('/', 1)[-1]}"] = f.source
    with atomic_output(Path(out_dir), is_dir=True) as tmp:
        for rel, content in files.items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, target)
            else:
                target.write_bytes(content)
        for f in plan.files:  # what lands is what the manifest promised
            copied = tmp / f"{plan.pack}/src/main/assets/{plan.pack}#group_{f.group}" / f.entry.file.rsplit("/", 1)[-1]
            if sha256_file(copied) != f.entry.sha256:
                raise AiPackError(f"{f.source} changed since the manifest was built (sha256 differs); rebuild the manifest")
    return plan

"""``Dispatcher(manifest).select(device_info)``: the one lookup the server and tests share.

Everything that does not depend on the asking device is computed when the manifest loads:
the rule index, the best model per (platform, tier), each platform's chain, and (lazily, once
per distinct answer) the response body and its ETag. A lookup is therefore a few dict gets
plus a bounds check per chain step, and the server writes pre-encoded bytes.

Unknown or partial device info never fails: it gets the platform's CPU model. The only
error is a platform for which the release has no model at all (``NoModelForPlatform``).

A catalog SoC with a Hexagon NPU (``htp_arch`` on its rule) first gets the models
precompiled for that architecture in its served tier, then the QDQ model they were compiled
from, then the tier's usual answer and fallbacks (``Manifest.precompiled_for``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

from mobile_pipeline.manifest.rules import RuleIndex
from mobile_pipeline.manifest.schema import Manifest, ModelEntry
from mobile_pipeline.tiers.device_info import DeviceInfo


MEMO_MAX = 100_000


class NoModelForPlatform(LookupError):
    """The release ships nothing that runs on the device's platform."""


@dataclass(frozen=True)
class ModelRef:
    """What a phone needs to download and run one model."""

    id: str
    tier: str
    url: str
    sha256: str
    bytes: int
    format: str
    precision: str
    runtime: str
    delegate: str | None
    min_os: str | None
    packaging: str
    htp_arch: str | None = None  # set on a model precompiled for that Hexagon NPU architecture only

    @classmethod
    def from_entry(cls, entry: ModelEntry) -> "ModelRef":
        return cls(entry.id, entry.tier, entry.url, entry.sha256, entry.bytes, entry.format,
                   entry.precision, entry.runtime, entry.delegate, entry.min_os, entry.packaging, entry.htp_arch)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Selection:
    """The answer for one device: a model, the fallbacks to try in order, and why.

    ``why`` is the chain of rules in compact form, the same tokens the reference classifier
    gives (``mobile-pipeline tiers explain`` prints them in sentences): the deciding rule
    (``catalog:SM8750``, ``override:SM8650``, ``family:snapdragon-8``, ``rules:gpu``,
    ``default``), then one token per tier stepped over on the way to ``tier``
    (``unserved:npu`` not in the platform's chain, ``absent:npu`` no such model in this
    release, ``os:npu`` OS too old, ``ram:npu`` too little RAM).

    ``body`` (JSON bytes) and ``etag`` are computed once per distinct answer and shared by
    every device that gets the same answer.
    """

    release_id: str
    platform: str
    tier: str
    classified_tier: str
    matched_by: str
    soc: str | None
    model: ModelRef
    fallbacks: tuple[ModelRef, ...]
    body: bytes = field(repr=False, compare=False)
    etag: str = field(compare=False)
    why: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "release_id": self.release_id,
            "platform": self.platform,
            "tier": self.tier,
            "classified_tier": self.classified_tier,
            "matched_by": self.matched_by,
            "soc": self.soc,
            "why": list(self.why),
            "model": self.model.to_dict(),
            "fallbacks": [ref.to_dict() for ref in self.fallbacks],
        }


class Dispatcher:
    """Device info -> :class:`Selection`, from an index built once per manifest."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.index = RuleIndex(manifest.tier_rules)
        rules = manifest.tier_rules
        self._best: dict[tuple[str, str], ModelRef] = {}
        self._chains: dict[str, tuple[str, ...]] = {}
        for platform in manifest.platforms():
            chain = manifest.fallback_chains[platform]  # type: ignore[index]
            self._chains[platform] = chain
            for tier in rules.tiers:
                models = manifest.models_for(platform, tier)
                if models:
                    self._best[(platform, tier)] = ModelRef.from_entry(models[0])
        # (platform, tier, htp_arch) -> precompiled models, then their QDQ sources.
        self._precompiled: dict[tuple[str, str, str], tuple[ModelRef, ...]] = {}
        for arch in sorted({m.htp_arch for m in manifest.models if m.htp_arch is not None}):
            for platform in self._chains:
                for tier in rules.tiers:
                    entries = manifest.precompiled_for(platform, tier, arch)
                    if entries:
                        self._precompiled[(platform, tier, arch)] = tuple(ModelRef.from_entry(e) for e in entries)
        self._int8_fallback = frozenset(rules.int8_fallback_tiers)
        self._min_ram = {t: b.min_ram_bytes for t, b in rules.bounds.items() if b.min_ram_bytes}
        self._min_os: dict[tuple[str, str], tuple[int, ...]] = {
            (t, p): tuple(int(x) for x in v.split("."))
            for t, b in rules.bounds.items() for p, v in b.min_os.items()
        }
        self._vendor_delegates = {t: {v.lower(): d for v, d in m.items()} for t, m in rules.vendor_delegates.items()}
        self._delegate_vendors = {v for m in self._vendor_delegates.values() for v in m}
        # Keys hold only values from the manifest (tiers, catalog models, known vendors), never
        # raw client strings, so the cache is bounded by the manifest's size.
        self._cache: dict[tuple, Selection] = {}
        # Memo of whole answers keyed by what the device reported (RAM reduced to which bounds it
        # meets: tier floors and the family rules' RAM corroboration). Hot devices then cost one
        # tuple and one dict get; the memo is cleared when it reaches MEMO_MAX, so hostile
        # clients sending endless new strings cannot grow it.
        self._ram_steps = sorted(set(self._min_ram.values())
                                 | {f.min_ram_bytes for f in rules.families if f.min_ram_bytes is not None})
        self._memo: dict[tuple, Selection] = {}

    @property
    def release_id(self) -> str:
        return self.manifest.release_id

    def select(self, info: DeviceInfo | dict[str, Any]) -> Selection:
        """The model for ``info`` and its ordered fallbacks.

        Raises:
            pydantic.ValidationError: ``info`` is a dict with invalid fields.
            NoModelForPlatform: the release has no model for the device's platform.
        """
        if not isinstance(info, DeviceInfo):
            info = DeviceInfo.model_validate(info)
        ram = info.ram_bytes
        memo_key = (info.platform, info.soc_manufacturer, info.soc_model, info.gpu_renderer, info.accelerators,
                    -1 if ram is None else bisect_right(self._ram_steps, ram), info.os_version)
        selection = self._memo.get(memo_key)
        if selection is None:
            selection = self._select(info)
            if len(self._memo) >= MEMO_MAX:
                self._memo.clear()
            self._memo[memo_key] = selection
        return selection

    def _select(self, info: DeviceInfo) -> Selection:
        platform = info.platform
        chain = self._chains.get(platform)
        if chain is None:
            raise NoModelForPlatform(
                f"release {self.release_id} has no model for platform {platform!r} "
                f"(it serves {sorted(self._chains)})"
            )
        match = self.index.match(platform, info.soc_manufacturer, info.soc_model, info.gpu_renderer, info.accelerators,
                                 info.ram_bytes)
        served, skipped = self._served_tiers(platform, chain, match.tier, match.int8, info)
        matched_by = match.matched_by
        if matched_by == "rules" and served[0] == chain[-1]:
            matched_by = "default"
        vendor = match.soc.manufacturer.lower() if match.soc else self.index.canonical_vendor(info.soc_manufacturer)
        if vendor not in self._delegate_vendors or platform == "ios":
            vendor = None
        why = (match.token, *skipped)
        htp_arch = match.soc.htp_arch if match.soc is not None and (platform, served[0], match.soc.htp_arch) in \
            self._precompiled else None
        key = (platform, served, match.tier, matched_by, match.soc.model if match.soc else None, vendor, why,
               htp_arch)
        selection = self._cache.get(key)
        if selection is None:
            selection = self._build(key)
            self._cache[key] = selection
        return selection

    def _refusal(self, platform: str, tier: str, ram: int | None, os_version: tuple[int, ...] | None) -> str | None:
        """Why the device may not be served ``tier`` (``absent``, ``os``, ``ram``), or None when it may."""
        if (platform, tier) not in self._best:
            return "absent"
        min_os = self._min_os.get((tier, platform))
        if min_os is not None and os_version is not None and os_version < min_os:
            return "os"
        min_ram = self._min_ram.get(tier)
        if min_ram is not None and ram is not None and ram < min_ram:
            return "ram"
        return None

    def _served_tiers(self, platform: str, chain: tuple[str, ...], wanted: str, int8: bool,
                      info: DeviceInfo) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """``(served, skipped)``: the device's tier (the strongest chain tier not above ``wanted``
        that it may run) and its fallbacks; and a ``why`` token per tier stepped over."""
        ram, os_version = info.ram_bytes, info.os_version_tuple()
        strength = self.index.strength
        limit = strength[wanted]
        skipped = [] if wanted in chain else [f"unserved:{wanted}"]
        start = len(chain) - 1  # the CPU model is the floor, whatever the bounds say
        for i, tier in enumerate(chain):
            if strength[tier] > limit:
                continue
            refusal = self._refusal(platform, tier, ram, os_version)
            if refusal is None:
                start = i
                break
            skipped.append(f"{refusal}:{tier}")
        fallbacks = tuple(
            t for t in chain[start + 1:]
            if self._refusal(platform, t, ram, os_version) is None and (int8 or t not in self._int8_fallback)
        )
        return (chain[start], *fallbacks), tuple(skipped)

    def _with_vendor_delegate(self, ref: ModelRef, vendor: str | None) -> ModelRef:
        """The SoC vendor's own delegate (QNN on Qualcomm, Neuron on MediaTek) for Android formats.

        Not for a ``.pte``: ExecuTorch bakes its delegate into the file at export time."""
        if vendor is None or ref.format in ("coreml", "executorch"):
            return ref
        delegate = self._vendor_delegates.get(ref.tier, {}).get(vendor)
        return ref if delegate is None else dataclasses.replace(ref, delegate=delegate)

    def _build(self, key: tuple) -> Selection:
        platform, served, classified, matched_by, soc, vendor, why, htp_arch = key
        refs = [self._with_vendor_delegate(self._best[(platform, t)], vendor) for t in served]
        if htp_arch is not None:
            # This SoC's NPU: its precompiled model, the QDQ source, then the usual answer.
            head = [self._with_vendor_delegate(r, vendor) for r in self._precompiled[(platform, served[0], htp_arch)]]
            ids = {r.id for r in head}
            refs = head + [r for r in refs if r.id not in ids]
        payload = {
            "release_id": self.release_id,
            "platform": platform,
            "tier": served[0],
            "classified_tier": classified,
            "matched_by": matched_by,
            "soc": soc,
            "why": list(why),
            "model": refs[0].to_dict(),
            "fallbacks": [ref.to_dict() for ref in refs[1:]],
        }
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        return Selection(self.release_id, platform, served[0], classified, matched_by, soc,
                         refs[0], tuple(refs[1:]), body, etag, why)

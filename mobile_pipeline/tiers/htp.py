"""Qualcomm Hexagon NPUs per tier, and what their compiler accepts of the search space.

Two facts decide what the release does for Qualcomm phones, and both are data:

* which Hexagon Tensor Processor architectures a tier serves: the ``accelerator.htp_arch``
  of the Qualcomm SoCs the catalog (with calibration overrides applied, as the classifier
  applies them) puts in that tier. Export compiles one precompiled model per architecture
  (:func:`tier_htp_socs`);
* which search-space choices compile for those architectures: ``device_tiers/htp_ops.yaml``,
  written by ``scripts/probe_htp_ops.py`` from the QNN compiler itself (CPU fallback
  disabled). :func:`htp_constraints` turns its failures into the tier's ``arch_constraints``
  and ONNX ``forbidden_ops``; the tier table merges them at load time, so the search and the
  export gate apply what the compiler said rather than a hand-kept list.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mobile_pipeline.utils.data_files import load_cached
from mobile_pipeline.utils.validation import field_messages

#: ArchSpec fields the probe covers (the search space's categorical choices).
PROBED_FIELDS: tuple[str, ...] = ("block", "fs_branches", "fusion", "upsample", "act")
Result = Literal["ok"] | list[str]


class HtpOpsError(ValueError):
    """``htp_ops.yaml`` is missing, invalid, or does not cover what a tier needs."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Probe(_Strict):
    """One search-space choice compiled on its own in a small generator.

    ``results[precision][arch]`` is ``ok`` or the compiler's refusal: the unsupported nodes
    as ``"OpType 'node': reason"`` (or one ``"error: ..."`` line when it named none).
    """

    field: str
    value: str
    spec: str = Field(description="Architecture string of the probed generator.")
    ops: list[str] = Field(description="ONNX op types of its QDQ model, QuantizeLinear/DequantizeLinear left out.")
    results: dict[str, dict[str, Result]]

    @field_validator("field")
    @classmethod
    def _known_field(cls, value: str) -> str:
        if value not in PROBED_FIELDS:
            raise ValueError(f"field {value!r} is not a probed ArchSpec field {list(PROBED_FIELDS)}")
        return value

    def failures(self, archs: tuple[str, ...], precisions: tuple[str, ...]) -> list[str]:
        """``"v73 int8: Resize 'x': reason"`` for every (arch, precision) that did not compile."""
        out = []
        for precision in precisions:
            for arch in archs:
                result = self.results.get(precision, {}).get(arch, "ok")
                if result != "ok":
                    out += [f"{arch} {precision}: {line}" for line in result]
        return out


class HtpOpSupport(_Strict):
    """The probe's output file (``device_tiers/htp_ops.yaml``)."""

    generated: _dt.date
    tool: str
    versions: dict[str, str] = Field(description="onnxruntime_qnn, qnn_sdk, onnxruntime the probe ran with.")
    resolution: int = Field(ge=16)
    archs: list[str] = Field(min_length=1)
    precisions: list[str] = Field(min_length=1)
    probes: list[Probe] = Field(min_length=1)

    def covers(self, archs: tuple[str, ...], precisions: tuple[str, ...]) -> list[str]:
        """What the file lacks to answer for these archs and precisions (empty = covered)."""
        missing = [f"arch {a}" for a in archs if a not in self.archs]
        missing += [f"precision {p}" for p in precisions if p not in self.precisions]
        return missing


class HtpConstraints(_Strict):
    """What the probe forbids for one tier: merged into its arch_constraints / forbidden_ops."""

    source: str
    generated: _dt.date
    versions: dict[str, str]
    archs: tuple[str, ...]
    precisions: tuple[str, ...]
    arch_constraints: dict[str, list[str]] = Field(default_factory=dict)
    forbidden_onnx_ops: list[str] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list, description="Per banned choice: which arch refused which node.")


def default_htp_ops_path() -> Path:
    from mobile_pipeline.utils.paths import device_tiers_dir

    return device_tiers_dir() / "htp_ops.yaml"


def load_htp_op_support(path: Path | None = None) -> HtpOpSupport:
    """Read and validate the probe file (cached until it changes)."""
    path = Path(path) if path is not None else default_htp_ops_path()
    return load_cached(path, _parse_htp_ops, HtpOpsError,
                       missing="HTP op support not found ({reason}); run scripts/probe_htp_ops.py")


def _parse_htp_ops(raw: object, source: str) -> HtpOpSupport:
    try:
        return HtpOpSupport.model_validate(raw)
    except ValidationError as err:
        raise HtpOpsError(f"{source}: " + "; ".join(field_messages(err))) from None


def htp_constraints(support: HtpOpSupport, archs: tuple[str, ...], precisions: tuple[str, ...],
                    source: str = "htp_ops.yaml") -> HtpConstraints:
    """The choices and ONNX ops a tier must avoid so its model compiles on all ``archs``.

    A choice is banned when its probe failed for any of the tier's architectures in any of
    its QDQ precisions. An ONNX op type is forbidden only when it was refused in every probe
    that contained it: ``Resize`` refused for bilinear but compiled for nearest bans the
    choice ``upsample: bilinear``, not the op.

    Raises:
        HtpOpsError: the file has no results for one of ``archs`` / ``precisions``.
    """
    missing = support.covers(archs, precisions)
    if missing:
        raise HtpOpsError(f"{source} has no probe results for {', '.join(missing)}; "
                          f"rerun scripts/probe_htp_ops.py (it probes {support.archs} x {support.precisions})")
    banned: dict[str, list[str]] = {}
    reasons: list[str] = []
    refused_ops: set[str] = set()
    accepted_ops: set[str] = set()
    for probe in support.probes:
        failures = probe.failures(archs, precisions)
        if not failures:
            accepted_ops.update(probe.ops)
            continue
        if probe.value not in banned.setdefault(probe.field, []):
            banned[probe.field].append(probe.value)
        more = f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""
        reasons.append(f"{probe.field}={probe.value}: {failures[0]}{more}")
        for line in failures:
            op = line.split(": ", 1)[1].split(" ", 1)[0]
            if not op.startswith("error"):
                refused_ops.add(op)
    return HtpConstraints(
        source=source, generated=support.generated, versions=dict(support.versions), archs=archs, precisions=precisions,
        arch_constraints={k: v for k, v in banned.items() if v},
        forbidden_onnx_ops=sorted(refused_ops - accepted_ops), reasons=reasons,
    )


# --------------------------------------------------------------------- SoCs per tier
def _arch_order(arch: str) -> int:
    return int(arch.lstrip("v")) if arch.lstrip("v").isdigit() else 0


def tier_htp_socs(tier: str) -> dict[str, list[str]]:
    """``{htp_arch: [SoC model, ...]}`` of the Qualcomm SoCs in ``tier``, archs oldest first.

    Tier membership is the classifier's: a calibration override that moved a chip to another
    tier counts there. SoCs without an HTP (``htp_arch: null``) are left out.
    """
    from mobile_pipeline.tiers.catalog import load_catalog_index
    from mobile_pipeline.tiers.overrides import OverrideIndex, load_overrides

    overrides = OverrideIndex(load_overrides())
    by_arch: dict[str, list[str]] = {}
    for entry in load_catalog_index().entries:
        arch = entry.accelerator.htp_arch
        if entry.vendor != "qualcomm" or arch is None:
            continue
        override = overrides.find(entry.manufacturers[0], entry.model)
        if (override.tier if override is not None else entry.tier) == tier:
            by_arch.setdefault(arch, []).append(entry.model)
    return {arch: by_arch[arch] for arch in sorted(by_arch, key=_arch_order)}


def tier_htp_archs(tier: str) -> tuple[str, ...]:
    """The Hexagon architectures of ``tier``'s Qualcomm SoCs, oldest first."""
    return tuple(tier_htp_socs(tier))

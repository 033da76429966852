"""Device moves from on-device calibration: ``device_tiers/overrides.yaml``.

The catalog states what a chip *should* do; bench calibration records what it *did*. When
the two disagree (an NPU whose driver rejects our ops, a GPU faster than expected), the bench
engineer appends an override here, and the classifier applies it before the catalog.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mobile_pipeline.tiers.catalog import model_candidates, normalize_model, normalize_vendor
from mobile_pipeline.utils.atomic import atomic_write_text
from mobile_pipeline.utils.data_files import load_cached
from mobile_pipeline.utils.paths import device_tiers_dir
from mobile_pipeline.utils.validation import field_messages


class OverridesError(ValueError):
    """``overrides.yaml`` is invalid; the message names the file, entry and field."""


class Override(BaseModel):
    """One calibrated move of a chip (or one iOS machine id) to a tier."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    soc_model: str = Field(min_length=1, max_length=64)
    manufacturer: str | None = Field(None, max_length=64, description="Any alias; None matches the model alone.")
    tier: Literal["cpu", "gpu", "dsp", "npu"]
    reason: str = Field(min_length=3)
    source: str = Field(min_length=1, description="Where the evidence lives (bench json, ticket).")
    date: _dt.date


class OverrideIndex:
    """Overrides by normalised model; entries with a manufacturer win over model-only ones."""

    def __init__(self, overrides: list[Override]) -> None:
        self.overrides = tuple(overrides)
        self._by_model: dict[str, list[Override]] = {}
        # Later entries are newer calibrations: iterate reversed so they come first.
        for item in reversed(self.overrides):
            self._by_model.setdefault(normalize_model(item.soc_model), []).append(item)

    def __len__(self) -> int:
        return len(self.overrides)

    def find(self, manufacturer: object, model: object) -> Override | None:
        """Newest override for this chip: same manufacturer first, then model-only entries.

        A device that reports no manufacturer can match any entry for its model; one that
        reports a different manufacturer than the override names does not.
        """
        if not self._by_model:
            return None
        reported = _manufacturer_key(manufacturer)
        for key in model_candidates(model):
            items = self._by_model.get(key)
            if not items:
                continue
            for item in items:
                if item.manufacturer is not None and reported is not None and _manufacturer_key(item.manufacturer) == reported:
                    return item
            for item in items:
                if item.manufacturer is None:
                    return item
            if reported is None:
                return items[0]
        return None


def _manufacturer_key(value: object) -> str | None:
    """Canonical vendor when known (QTI == Qualcomm), else the normalised spelling."""
    if not isinstance(value, str) or not value.strip():
        return None
    return normalize_vendor(value) or normalize_model(value)


def default_overrides_path() -> Path:
    return device_tiers_dir() / "overrides.yaml"


def load_overrides(path: Path | None = None) -> list[Override]:
    """Validated overrides; a missing file means none (calibration has not run yet)."""
    path = Path(path) if path is not None else default_overrides_path()
    return load_cached(path, parse_overrides, OverridesError)


def parse_overrides(raw: object, source: str = "overrides.yaml") -> list[Override]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise OverridesError(f"{source}: expected a list of overrides, got {type(raw).__name__}")
    result = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise OverridesError(f"{source}: entry #{index} must be a mapping, got {type(item).__name__}")
        try:
            result.append(Override(**item))
        except ValidationError as err:
            details = "; ".join(field_messages(err, root="(entry)"))
            raise OverridesError(f"{source}: entry #{index} ({item.get('soc_model', '?')}): {details}") from None
    return result


def append_override(override: Override, path: Path | None = None) -> Path:
    """Append one override (atomically rewriting the file); used by bench calibration."""
    path = Path(path) if path is not None else default_overrides_path()
    existing = load_overrides(path)
    items = [o.model_dump(mode="json", exclude_none=True) for o in [*existing, override]]
    header = "# Device moves written by bench calibration; applied before the catalog.\n"
    return atomic_write_text(path, header + yaml.safe_dump(items, sort_keys=False))

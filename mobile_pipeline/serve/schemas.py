"""The /v1/select answer as a pydantic model: the documented contract of the pre-encoded body.

The routes and the fast path write :class:`~mobile_pipeline.serve.dispatch.Selection` bytes
directly (validating each answer would cost more than the lookup); these models exist so the
OpenAPI document describes that body, and a test validates real answers against them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SelectedModel(BaseModel):
    """One downloadable model (the manifest entry the phone should fetch)."""

    model_config = ConfigDict(extra="forbid")

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
    htp_arch: str | None = Field(
        None, description="Set on a model precompiled for one Hexagon NPU architecture (v68 ... v81): only phones "
                          "with that SoC get it, before the generic int8 model it was compiled from.")


class SelectResponse(BaseModel):
    """The model a device should load, its fallbacks, and why."""

    model_config = ConfigDict(extra="forbid")

    release_id: str
    platform: Literal["android", "ios", "other"]
    tier: str = Field(description="The tier served (after OS/RAM bounds and what the release ships).")
    classified_tier: str = Field(description="The tier the evidence supports before bounds.")
    matched_by: Literal["catalog", "family", "rules", "default"] = Field(
        description="catalog (or a calibrated override), family (a family rule placed a chip the catalog lacks: "
                    "add it to the catalog), rules (capability evidence) or default (the CPU tier).")
    soc: str | None = Field(description="The catalog SoC model when the chip is known.")
    why: list[str] = Field(
        description="The chain of rules, compact: the deciding rule (catalog:SM8750, override:SM8650, "
                    "family:snapdragon-8, rules:gpu, rules:accelerator, rules:apple-gpu, default), then one token per "
                    "tier stepped over (unserved:<tier> not on this platform, absent:<tier> not in this release, "
                    "os:<tier> OS too old, ram:<tier> too little RAM). `mobile-pipeline tiers explain` prints "
                    "the same chain in sentences.",
        examples=[["catalog:SM8750"], ["family:snapdragon-8", "ram:npu"]])
    model: SelectedModel
    fallbacks: list[SelectedModel] = Field(description="Models to try in order if `model` fails to load.")

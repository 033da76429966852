"""Dependencies: what routes get injected (settings, the current manifest).

All ``async``: they only read attributes, and a sync dependency would cost a thread-pool hop
per request.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from mobile_pipeline.serve.reload import Loaded, ManifestStore
from mobile_pipeline.serve.settings import ServeSettings


async def get_settings(request: Request) -> ServeSettings:
    return request.app.state.settings


async def get_store(request: Request) -> ManifestStore:
    return request.app.state.store


async def get_loaded(request: Request) -> Loaded:
    """The manifest at the time the request arrived; a reload mid-request does not affect it."""
    return request.app.state.store.current


@dataclass(frozen=True)
class SelectContext:
    """What /v1/select needs, in one dependency (each dependency costs per request)."""

    loaded: Loaded
    settings: ServeSettings


async def get_select_context(request: Request) -> SelectContext:
    state = request.app.state
    return SelectContext(state.store.current, state.settings)

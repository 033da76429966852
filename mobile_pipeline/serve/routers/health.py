"""``/healthz``: liveness plus what is being served (for load balancers and people)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from mobile_pipeline.serve.deps import get_store
from mobile_pipeline.serve.reload import ManifestStore

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(store: Annotated[ManifestStore, Depends(get_store)]) -> dict:
    current = store.current
    return {
        "status": "ok",
        "release_id": current.manifest.release_id,
        "manifest_sha256": current.sha256,
        "last_reload_error": store.last_error,
    }

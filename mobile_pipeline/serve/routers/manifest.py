"""``/v1/manifest``: which manifest is being served (version, hash, reload counters)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from mobile_pipeline.serve.deps import get_store
from mobile_pipeline.serve.reload import ManifestStore
from mobile_pipeline.serve.query import etag_matches

router = APIRouter(prefix="/v1", tags=["manifest"])


@router.get("/manifest")
async def manifest_info(request: Request, response: Response, store: Annotated[ManifestStore, Depends(get_store)]):
    current = store.current
    manifest = current.manifest
    etag = f'"{current.sha256}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    inm = request.headers.get("if-none-match")
    if inm is not None and etag_matches(inm, etag):
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return {
        "release_id": manifest.release_id,
        "schema_version": manifest.schema_version,
        "created_at": manifest.created_at.isoformat(),
        "sha256": current.sha256,
        "models": len(manifest.models),
        "tiers": list(manifest.tier_rules.tiers),
        "platforms": manifest.platforms(),
        "loaded_at": current.loaded_at,
        "reloads": store.reloads,
        "rejected_reloads": store.rejected,
        "last_reload_error": store.last_error,
    }

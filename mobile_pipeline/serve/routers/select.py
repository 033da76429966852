"""``/v1/select``: device info in, model and fallbacks out.

GET takes the fields as query parameters (``accelerators`` repeated or comma-separated),
POST takes the same fields as a JSON object. Both answer pre-encoded bytes with a strong
ETag and Cache-Control; a matching ``If-None-Match`` gets 304. POST is a read-only lookup
(it only carries its query in a body), so the same conditional rule applies to it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, Response

from mobile_pipeline.serve.deps import SelectContext, get_select_context
from mobile_pipeline.serve.dispatch import Selection
from mobile_pipeline.serve.query import etag_matches, parse_select_query
from mobile_pipeline.serve.schemas import SelectResponse
from mobile_pipeline.serve.settings import ServeSettings
from mobile_pipeline.tiers.device_info import DeviceInfo

router = APIRouter(prefix="/v1", tags=["select"])

_SELECT_RESPONSES = {
    200: {"description": "The chosen model, its fallbacks (best first) and the rules that decided (`why`).",
          "model": SelectResponse},
    304: {"description": "Not modified (If-None-Match matched the ETag)."},
    400: {"description": "Body is not JSON."},
    404: {"description": "The release has no model for this platform."},
    413: {"description": "Body too large."},
    414: {"description": "Query string too long."},
    422: {"description": "A field is invalid; the message names it."},
}


def _answer(selection: Selection, request: Request, settings: ServeSettings) -> Response:
    headers = {"ETag": selection.etag, "Cache-Control": f"public, max-age={settings.cache_max_age_s}"}
    inm = request.headers.get("if-none-match")
    if inm is not None and etag_matches(inm, selection.etag):
        return Response(status_code=304, headers=headers)
    return Response(selection.body, media_type="application/json", headers=headers)


def _query_parameters() -> list[dict]:
    """OpenAPI parameters for GET, from DeviceInfo (the route parses the query itself)."""
    schema = DeviceInfo.model_json_schema()
    params = []
    for name, prop in schema["properties"].items():
        if name == "accelerators":
            prop = {"type": "array", "items": {"type": "string", "maxLength": 32}, "maxItems": 16}
        params.append({"name": name, "in": "query", "required": False, "schema": prop,
                       "style": "form", "explode": True})
    return params


@router.get("/select", responses=_SELECT_RESPONSES, openapi_extra={"parameters": _query_parameters()})
async def select_get(request: Request, ctx: Annotated[SelectContext, Depends(get_select_context)]) -> Response:
    """Select by query parameters, e.g. ``?platform=android&soc_manufacturer=QTI&soc_model=SM8650``.

    The query is parsed by :func:`parse_select_query` rather than declared parameter by
    parameter: FastAPI's per-parameter machinery cost more than the whole lookup, and
    DeviceInfo validates anyway. (:mod:`mobile_pipeline.serve.fastpath` answers the common
    case before routing; this route is the reference it must match, and answers errors.)
    """
    info = parse_select_query(request.query_params.multi_items())
    return _answer(ctx.loaded.dispatcher.select(info), request, ctx.settings)


@router.post("/select", responses=_SELECT_RESPONSES)
async def select_post(
    request: Request,
    info: Annotated[DeviceInfo, Body()],
    ctx: Annotated[SelectContext, Depends(get_select_context)],
) -> Response:
    """Select by a JSON device-info object (the fields of ``DeviceInfo``)."""
    return _answer(ctx.loaded.dispatcher.select(info), request, ctx.settings)

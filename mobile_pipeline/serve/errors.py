"""Bad input -> 4xx with the field named; oversize input refused before it is parsed.

``RequestLimits`` is plain ASGI (no ``BaseHTTPMiddleware``: it would copy every body and
cost throughput): it answers 413 for a body over the limit (by ``Content-Length`` or while
streaming) and 414 for an over-long query string, before any route runs.

A method a path does not serve gets 405 with ``Allow`` naming *every* method the path has
(the router alone names only the first route's: ``GET`` for ``/v1/select``, though POST
works), and ``OPTIONS`` on any served path answers 204 with the same ``Allow``.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mobile_pipeline.serve.dispatch import NoModelForPlatform

_log = logging.getLogger("mobile_pipeline.serve")


def _json_bytes(status_detail: dict[str, Any]) -> bytes:
    return json.dumps(status_detail, separators=(",", ":")).encode()


class RequestLimits:
    """ASGI middleware: body size (413) and query length (414) limits."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_query_bytes: int) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_query = max_query_bytes

    async def _refuse(self, send: Send, status: int, message: str) -> None:
        body = _json_bytes({"error": message})
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if len(scope.get("query_string", b"")) > self.max_query:
            await self._refuse(send, 414, f"query string longer than {self.max_query} bytes")
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._refuse(send, 400, "Content-Length is not a number")
                    return
                if declared > self.max_body:
                    await self._refuse(send, 413, f"request body larger than {self.max_body} bytes")
                    return
                break
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        # Bodies are small (the limit is KBs): read it all here, refusing past the limit,
        # then replay it. Counting inside the app's receive would not work: FastAPI turns
        # any error while reading the body into its own 400.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._refuse(send, 413, f"request body larger than {self.max_body} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        await self.app(scope, replay_body(body, receive), send)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands an already-read request body to the next app once, then
    defers to the real one (for the disconnect message)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _field(loc: tuple | list) -> str:
    # ("body", "ram_bytes") -> "ram_bytes"; ("query", "soc_model") -> "soc_model"
    parts = [str(p) for p in loc if p not in ("body", "query")]
    return ".".join(parts) or "body"


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each bad field; 400 when the body is not JSON at all."""
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse({"error": "request body is not valid JSON", "fields": []}, status_code=400)
    fields = [{"field": _field(e.get("loc", ())), "message": e.get("msg", "invalid")} for e in errors[:10]]
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return JSONResponse({"error": f"invalid device info: {summary}", "fields": fields}, status_code=422)


async def no_model(request: Request, exc: NoModelForPlatform) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=404)


_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _template_regex(template: str) -> re.Pattern[str]:
    """``/v1/items/{id}`` -> a regex matching concrete paths of that template."""
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$")


def allowed_methods(app: FastAPI, path: str) -> tuple[str, ...]:
    """Every method some route serves at ``path`` (OpenAPI operations and plain routes), plus OPTIONS.

    Read off the OpenAPI document and the app's plain routes rather than the router's
    internals, and remembered per path (the route table does not change after start-up).
    """
    cache: dict[str, tuple[str, ...]] | None = getattr(app.state, "allowed_methods_cache", None)
    if cache is None:
        cache = app.state.allowed_methods_cache = {}
    if path in cache:
        return cache[path]
    methods: set[str] = set()
    for template, operations in (app.openapi().get("paths") or {}).items():
        if _template_regex(template).match(path):
            methods.update(m.upper() for m in operations if m.upper() in _METHOD_ORDER)
    for route in app.routes:  # /openapi.json, /docs ... are plain routes outside the schema
        regex, route_methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and route_methods and regex.match(path):
            methods.update(route_methods)
    found = tuple(m for m in _METHOD_ORDER if m in methods | ({"OPTIONS"} if methods else set()))
    if len(cache) < 1024:  # unknown paths never get here (404 first); bounded anyway
        cache[path] = found
    return found


async def method_not_allowed(request: Request, exc: StarletteHTTPException) -> Response:
    """405 with the full ``Allow`` list; ``OPTIONS`` on a served path is 204 with the same list."""
    if exc.status_code != 405:
        return await http_exception_handler(request, exc)
    allowed = allowed_methods(request.app, request.url.path) or tuple(
        m.strip() for m in (exc.headers or {}).get("Allow", "").split(",") if m.strip())
    allow = ", ".join(allowed)
    if request.method == "OPTIONS":
        return Response(status_code=204, headers={"Allow": allow})
    return JSONResponse({"error": f"method {request.method} is not allowed on {request.url.path}; allowed: {allow}"},
                        status_code=405, headers={"Allow": allow})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(NoModelForPlatform, no_model)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, method_not_allowed)  # type: ignore[arg-type]  # type: ignore[arg-type]

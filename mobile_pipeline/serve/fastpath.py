"""``/v1/select`` answered before FastAPI's routing: the one hot endpoint, at server speed.

Per request, FastAPI's router, dependency solving, body handling and response classes cost
several times the lookup itself (profiled: ~5x the Dispatcher on this machine). This ASGI
layer answers a well-formed ``GET /v1/select`` (query) or ``POST /v1/select`` (JSON body)
directly, with the same pre-encoded bytes and headers as the routes in
:mod:`mobile_pipeline.serve.routers.select`. Anything it cannot answer (every error
included) falls through to FastAPI with the body replayed, so each 4xx message still comes
from one place and the routes stay the documented reference; a property test checks that
both give byte-identical answers.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from mobile_pipeline.serve.dispatch import Selection
from mobile_pipeline.serve.errors import replay_body
from mobile_pipeline.serve.query import etag_matches, parse_select_query
from mobile_pipeline.tiers.device_info import DeviceInfo

_JSON = b"application/json"
_PATH = "/v1/select"


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


#: Raw requests remembered per manifest, and the longest query/body worth remembering:
#: bounds the memo to ~50 MB even when every request is distinct.
RAW_MEMO_MAX = 50_000
RAW_KEY_MAX_BYTES = 1024


class SelectFastPath:
    """ASGI middleware: answer valid ``/v1/select`` requests without routing.

    Phones of one model send byte-identical requests, so the answer is also remembered by the
    raw query string (or JSON body): a repeat skips query parsing and DeviceInfo validation,
    which cost more than the lookup itself. The memo belongs to one manifest (dispatcher) and
    is dropped when a reload swaps it.
    """

    def __init__(self, app: ASGIApp, enabled: bool = True) -> None:
        self.app = app
        self.enabled = enabled
        self._memo: dict[tuple[str, bytes], Selection] = {}
        self._memo_owner: object | None = None

    def _remembered(self, scope: Scope, method: str, raw: bytes, parse) -> Selection:
        """The selection for a raw request; ``parse()`` -> DeviceInfo runs only on a miss
        (its errors, and NoModelForPlatform, propagate: the route answers those)."""
        dispatcher = scope["app"].state.store.current.dispatcher
        if dispatcher is not self._memo_owner:
            self._memo, self._memo_owner = {}, dispatcher
        key = (method, raw)
        selection = self._memo.get(key)
        if selection is None:
            selection = dispatcher.select(parse())
            if len(raw) <= RAW_KEY_MAX_BYTES:
                if len(self._memo) >= RAW_MEMO_MAX:
                    self._memo.clear()
                self._memo[key] = selection
        return selection

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] != "http" or scope["path"] != _PATH:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method == "GET":
            query = scope["query_string"]
            try:
                # Same decoding as Starlette's QueryParams.
                selection = self._remembered(scope, "GET", query, lambda: parse_select_query(
                    parse_qsl(query.decode("latin-1"), keep_blank_values=True)))
                answer = self._prepare(scope, selection)
            except Exception:  # noqa: BLE001 - the route re-does the work and answers the precise 4xx
                await self.app(scope, receive, send)
                return
            await self._send(send, *answer)
            return
        content_type = _header(scope, b"content-type") or b""
        if method != "POST" or content_type.split(b";", 1)[0].strip().lower() != _JSON:
            await self.app(scope, receive, send)
            return
        # The body is small (RequestLimits has already bounded and buffered it).
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            answer = self._prepare(scope, self._remembered(scope, "POST", body,
                                                           lambda: DeviceInfo.model_validate_json(body)))
        except Exception:  # noqa: BLE001 - FastAPI parses again and answers the precise 4xx
            answer = None
        if answer is not None:
            await self._send(send, *answer)
            return
        await self.app(scope, replay_body(body, receive), send)

    @staticmethod
    def _prepare(scope: Scope, selection: Selection) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Status, headers and body of ``selection``'s answer (304 when If-None-Match matches)."""
        state = scope["app"].state
        headers = [(b"etag", selection.etag.encode()),
                   (b"cache-control", f"public, max-age={state.settings.cache_max_age_s}".encode())]
        inm = _header(scope, b"if-none-match")
        if inm is not None and etag_matches(inm.decode("latin-1"), selection.etag):
            return 304, headers, b""
        body = selection.body
        headers += [(b"content-length", str(len(body)).encode()), (b"content-type", _JSON)]
        return 200, headers, body

    @staticmethod
    async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

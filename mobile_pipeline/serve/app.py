"""``create_app(manifest_path, settings)``: the FastAPI dispatch server.

The manifest is loaded (and validated) in the lifespan, the reloader polls it and listens
for SIGHUP, and routes read the current manifest through a dependency. Nothing a client
sends is used as a path: model locations come only from the manifest.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI

from mobile_pipeline import __version__
from mobile_pipeline.serve.errors import RequestLimits, install_error_handlers
from mobile_pipeline.serve.fastpath import SelectFastPath
from mobile_pipeline.serve.reload import ManifestStore, Reloader
from mobile_pipeline.serve.routers import health, manifest, select
from mobile_pipeline.serve.settings import ServeSettings


class DispatchApp(FastAPI):
    """FastAPI with the request limits and the ``/v1/select`` fast path in front of it.

    Both are plain ASGI layers entered *before* FastAPI's own stack (its telemetry hooks,
    body limit and Starlette's error middleware cost ~10 us per request, more than the
    answer itself), so a valid select never enters the framework; everything else, and every
    select the fast path cannot answer, continues into FastAPI unchanged. Profiled in process
    (no sockets): 17.4 us per GET /v1/select with these layers as FastAPI middleware, 5-10 us
    in front of it. OpenTelemetry instrumentation of FastAPI therefore does not see the
    fast-path answers.
    """

    def __init__(self, *args, settings: ServeSettings, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.state.settings = settings
        framework = super().__call__
        self._entry = RequestLimits(SelectFastPath(framework, enabled=settings.fast_path),
                                    max_body_bytes=settings.max_body_bytes, max_query_bytes=settings.max_query_bytes)

    async def __call__(self, scope, receive, send) -> None:
        scope["app"] = self  # what Starlette sets; the fast path reads the manifest store from it
        await self._entry(scope, receive, send)


def create_app(manifest_path: str | Path | None = None, settings: ServeSettings | None = None) -> FastAPI:
    """Build the app. ``manifest_path`` wins over ``settings.manifest_path``.

    Raises (at startup, in the lifespan): ``ManifestInvalid`` when the manifest is missing
    or invalid; a server must not start without something valid to serve.
    """
    settings = settings or ServeSettings()
    path = Path(manifest_path) if manifest_path is not None else settings.manifest_path
    if path is None:
        raise ValueError("create_app needs a manifest path (argument or settings.manifest_path)")
    settings = settings.model_copy(update={"manifest_path": path})

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = ManifestStore(path)
        reloader = Reloader(store, settings.reload_interval_s, settings.handle_sighup)
        app.state.store = store
        app.state.reloader = reloader
        await reloader.start()
        try:
            yield
        finally:
            await reloader.stop()

    app = DispatchApp(
        title="mobile_pipeline dispatch",
        version=__version__,
        description="Device info in, the right stylizer model and its fallbacks out.",
        lifespan=lifespan,
        settings=settings,
    )
    install_error_handlers(app)
    app.include_router(select.router)
    app.include_router(manifest.router)
    app.include_router(health.router)
    return app

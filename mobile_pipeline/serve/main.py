"""Builds the app from ``MP_SERVE_*`` environment variables; nothing else lives here.

    MP_SERVE_MANIFEST_PATH=export/demo/manifest.json uvicorn --factory mobile_pipeline.serve.main:build
"""

from __future__ import annotations

from fastapi import FastAPI

from mobile_pipeline.serve.app import create_app
from mobile_pipeline.serve.settings import ServeSettings


def build() -> FastAPI:
    return create_app(settings=ServeSettings.from_env())

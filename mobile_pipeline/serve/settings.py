"""Server settings: a plain pydantic model, injected into routes through a dependency.

(``pydantic-settings`` is not a dependency; :meth:`ServeSettings.from_env` reads the few
``MP_SERVE_*`` variables a container deployment needs.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

_ENV_PREFIX = "MP_SERVE_"


class ServeSettings(BaseModel):
    """How the dispatch server behaves; everything has a production default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    manifest_path: Path | None = Field(None, description="manifest.json to serve (create_app's argument wins).")
    reload_interval_s: float = Field(2.0, ge=0, le=3600, description="Manifest poll interval; 0 disables polling.")
    handle_sighup: bool = Field(True, description="Reload on SIGHUP (main thread only).")
    max_body_bytes: int = Field(16 * 1024, ge=256, le=1 << 20, description="Larger request bodies get 413.")
    max_query_bytes: int = Field(2048, ge=256, le=1 << 16, description="Longer query strings get 414.")
    fast_path: bool = Field(True, description="Answer valid /v1/select requests before FastAPI routing (same bytes).")
    cache_max_age_s: int = Field(300, ge=0, le=86400, description="Cache-Control max-age of /v1/select answers.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> "ServeSettings":
        """Settings from ``MP_SERVE_<FIELD>`` variables (e.g. ``MP_SERVE_RELOAD_INTERVAL_S=5``)."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name in cls.model_fields:
            key = _ENV_PREFIX + name.upper()
            if key in environ:
                values[name] = environ[key]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

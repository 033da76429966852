"""Serve a manifest over HTTP: device info in, model and fallbacks out (one uvicorn worker).

GET/POST /v1/select, /v1/manifest, /healthz. The manifest is re-read when it changes
(polled every --reload-interval seconds) and on SIGHUP; an invalid one is refused and the
previous one keeps serving.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", type=Path, required=True, help="manifest.json to serve")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument("--reload-interval", type=float, default=2.0, metavar="S",
                        help="seconds between manifest checks; 0 = only on SIGHUP (default 2)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--access-log", action="store_true", help="log every request (costs throughput)")


def run(args: argparse.Namespace) -> int:
    import logging

    from pydantic import ValidationError

    from mobile_pipeline.manifest.schema import ManifestInvalid, load_manifest
    from mobile_pipeline.serve.settings import ServeSettings

    try:
        manifest = load_manifest(args.manifest)  # fail here with the field named, not inside uvicorn
        settings = ServeSettings.from_env(reload_interval_s=args.reload_interval)
    except (ManifestInvalid, ValidationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"error: --port must be 1..65535, got {args.port}", file=sys.stderr)
        return 2
    # After the checks: a bad manifest is refused without paying for the server's imports.
    import uvicorn

    from mobile_pipeline.serve.app import create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"serving release {manifest.release_id} ({len(manifest.models)} models) on http://{args.host}:{args.port}",
          file=sys.stderr)
    app = create_app(args.manifest, settings)
    uvicorn.run(app, host=args.host, port=args.port, workers=1, log_level=args.log_level,
                access_log=args.access_log)
    return 0

"""Write ``schemas/manifest.schema.json`` from the pydantic model (a test checks it is current).

    python -m mobile_pipeline.manifest.export_schema [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mobile_pipeline.manifest.schema import manifest_json_schema_text
from mobile_pipeline.utils.atomic import atomic_write_text
from mobile_pipeline.utils.paths import project_root


def schema_path() -> Path:
    return project_root() / "schemas" / "manifest.schema.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file is stale; write nothing")
    args = parser.parse_args(argv)
    path, text = schema_path(), manifest_json_schema_text()
    current = path.read_text(encoding="utf-8") if path.is_file() else None
    if args.check:
        print(f"{path}: {'up to date' if current == text else 'STALE'}")
        return 0 if current == text else 1
    atomic_write_text(path, text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

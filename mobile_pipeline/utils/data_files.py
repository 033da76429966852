"""Validated data files under device_tiers/, re-read only when the file changes.

The classifier, the dispatcher and the manifest builder read the same small YAML files for
every device; parsing them each time would cost more than the lookup. :func:`load_cached`
keys the parsed result on the file's path and modification time, so an edit (``bench
calibrate`` rewriting overrides) is picked up at the next call, and a missing file reads as
empty.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any


def load_cached(path: Path, parse: Callable[[Any, str], list], error: type[Exception]) -> list:
    """``parse(raw_yaml, source)`` of ``path`` (cached per mtime); [] when the file is missing.

    Raises:
        error: the file is not valid YAML (the message names it), or whatever ``parse`` raises.
    """
    try:
        stamp = Path(path).resolve().stat().st_mtime_ns
    except OSError:
        return []
    return list(_parsed(Path(path).resolve(), stamp, parse, error))


@lru_cache(maxsize=16)
def _parsed(path: Path, _mtime_ns: int, parse: Callable[[Any, str], list], error: type[Exception]) -> tuple:
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise error(f"{path}: not valid YAML: {err}") from None
    return tuple(parse(raw, str(path)))

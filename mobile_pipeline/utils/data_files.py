"""Validated data files under device_tiers/, re-read only when the file changes.

The classifier, the dispatcher and the manifest builder read the same small YAML files for
every device; parsing them each time would cost more than the lookup. :func:`load_cached`
keys the parsed result on the file's path and modification time, so an edit (``bench
calibrate`` rewriting overrides) is picked up at the next call. Optional files (overrides,
family rules) read as empty when missing; required ones (the catalog, the HTP probe results)
raise with a message that says what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any


def load_cached(path: Path, parse: Callable[[Any, str], Any], error: type[Exception], *,
                missing: str | None = None) -> Any:
    """``parse(raw_yaml, source)`` of ``path``, cached per modification time.

    Args:
        parse: builds the validated result; a list result is returned as a fresh list each call
            (callers may extend it), any other result as the cached object.
        missing: None = a missing file reads as ``[]``; else the message of the ``error`` raised
            for a missing file, after ``"<path>: "``, with ``{reason}`` filled by the OS error.

    Raises:
        error: the file is missing (with ``missing``) or not valid YAML (the message names
            it), or whatever ``parse`` raises.
    """
    try:
        stamp = Path(path).resolve().stat().st_mtime_ns
    except OSError as err:
        if missing is None:
            return []
        raise error(f"{path}: " + missing.format(reason=err.strerror)) from None
    parsed = _parsed(Path(path).resolve(), stamp, parse, error)
    return list(parsed) if isinstance(parsed, tuple) else parsed


@lru_cache(maxsize=16)
def _parsed(path: Path, _mtime_ns: int, parse: Callable[[Any, str], Any], error: type[Exception]) -> Any:
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise error(f"{path}: not valid YAML: {err}") from None
    result = parse(raw, str(path))
    return tuple(result) if isinstance(result, list) else result  # cached: immutable

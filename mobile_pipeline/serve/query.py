"""Parsing shared by the /v1/select route and its fast path: query -> DeviceInfo, ETag matching."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from mobile_pipeline.tiers.device_info import DeviceInfo

FIELDS = frozenset(DeviceInfo.model_fields)
_INTEGER_FIELDS = frozenset({"ram_bytes"})


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison over a comma-separated If-None-Match list (``*`` matches)."""
    bare = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == bare:
            return True
    return False


def validation_error(err: ValidationError, where: str) -> RequestValidationError:
    """A pydantic error as FastAPI's, with the location prefixed (``query`` / ``body``)."""
    return RequestValidationError([{**e, "loc": (where, *e["loc"])} for e in err.errors(include_url=False)])


def parse_select_query(items: Iterable[tuple[str, str]]) -> DeviceInfo:
    """``[("soc_model", "SM8650"), ("accelerators", "gpu,npu"), ...]`` -> DeviceInfo.

    ``accelerators`` may repeat or be comma-separated; other fields must appear once; unknown
    names are refused (a typo such as ``soc_modle`` would otherwise silently give the CPU model).

    Raises:
        RequestValidationError: naming each bad or unknown field.
    """
    values: dict[str, object] = {}
    unknown: list[str] = []
    for name, value in items:
        if name not in FIELDS:
            unknown.append(name)
        elif name == "accelerators":
            accelerators = values.setdefault(name, [])
            accelerators.extend(a for a in value.split(",") if a.strip())  # type: ignore[union-attr]
        elif name in values:
            previous = values[name]
            values[name] = [*previous, value] if isinstance(previous, list) else [previous, value]  # fails validation
        elif name in _INTEGER_FIELDS and value.isascii() and value.isdigit():
            values[name] = int(value)  # a query has only strings; the model takes integers strictly
        else:
            values[name] = value
    if unknown:
        raise RequestValidationError([
            {"type": "extra_forbidden", "loc": ("query", name), "msg": "unknown parameter (check the spelling)",
             "input": None} for name in sorted(set(unknown))
        ])
    try:
        return DeviceInfo.model_validate(values)
    except ValidationError as err:
        raise validation_error(err, "query") from None

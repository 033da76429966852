"""One wording for pydantic validation errors everywhere a user's file or input is rejected."""

from __future__ import annotations

from pydantic import ValidationError


def field_messages(err: ValidationError, *, root: str = "<root>", prefix: str = "", unknown_key: str | None = None,
                   missing: str | None = None, limit: int | None = None) -> list[str]:
    """``"field.path: message"`` for each error of ``err`` (at most ``limit``).

    Args:
        root: the name used when an error has no field path (the whole object).
        prefix: prepended to every field path (``data.`` for a config section).
        unknown_key: replaces pydantic's "Extra inputs are not permitted" with advice.
        missing: replaces pydantic's "Field required".
    """
    lines = []
    for item in err.errors()[:limit]:
        field = prefix + (".".join(str(part) for part in item["loc"]) or root)
        message = item["msg"]
        if unknown_key and item["type"] == "extra_forbidden":
            message = unknown_key
        elif missing and item["type"] == "missing":
            message = missing
        lines.append(f"{field}: {message}")
    return lines


def valid_regex(value: str) -> str:
    """``value`` if it compiles as a regular expression; else a ValueError that quotes it.

    For pydantic ``field_validator``s of pattern fields (catalog rules, family rules), so a
    bad pattern in a data file is rejected with the field named when the file is loaded, not
    at the first device that reaches it.
    """
    import re

    try:
        re.compile(value)
    except re.error as err:
        raise ValueError(f"pattern {value!r} is not a valid regex: {err}") from None
    return value

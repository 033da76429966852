"""Aligned plain-text tables, as the benchmark scripts and reports print them."""

from __future__ import annotations

from collections.abc import Sequence


def text_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns left-aligned to their widest cell, two spaces apart, a dash rule under the headers."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths))

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])

"""The tables ``pagekit`` prints: one formatter, so every table reads the same.

A missing value is a blank cell (never ``None``, ``NaN`` or ``NaT``), a float is rounded
(a confidence to one decimal; a column of whole numbers, such as word counts that pandas
holds as floats because some are missing, has no decimals), a time is ``YYYY-MM-DD
HH:MM``, a flag is ``yes`` or blank, text is one line, and numbers align right. Standard
library only: the rows may come from pandas or from plain dicts.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

# Decimals of the float columns pagekit prints; another float column gets one decimal,
# or none when all its values are whole.
DECIMALS: dict[str, int] = {
    "confidence": 1,
    "skew": 1,
    "review_threshold": 1,
    "duration_s": 1,
    "pages_per_min": 1,
}
GAP = "  "


def is_missing(value: Any) -> bool:
    """None, NaN, and pandas' ``NA`` and ``NaT``."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in ("NAType", "NaTType")


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def cell(value: Any, decimals: int | None = None) -> str:
    """One value as the tables show it (``decimals`` for a float; None: as it comes)."""
    if is_missing(value):
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        return f"{value:.{decimals}f}" if decimals is not None else f"{value:g}"
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, date):
        return f"{value:%Y-%m-%d}"
    if isinstance(value, (list, tuple, set)):
        return ", ".join(cell(v) for v in value)
    return " ".join(str(value).split())  # one line: a multi-line error would break the rows


def _decimals(name: str, values: list[Any], given: Mapping[str, int]) -> int | None:
    """How many decimals a column's floats get."""
    if name in given:
        return given[name]
    floats = [float(v) for v in values if _is_number(v) and not isinstance(v, numbers.Integral)]
    floats = [v for v in floats if not math.isnan(v)]
    if not floats:
        return None
    return 0 if all(v.is_integer() for v in floats) else 1


def format_table(
    rows: Iterable[Mapping[str, Any]] | Any,
    columns: Sequence[str] | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    decimals: Mapping[str, int] | None = None,
) -> str:
    """``rows`` (dicts, or a pandas DataFrame) as aligned text, a header line first.

    ``columns`` picks and orders them (default: the first row's keys, or the frame's);
    ``headers`` renames some; ``decimals`` overrides :data:`DECIMALS`.
    """
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a DataFrame
        columns = list(columns if columns is not None else rows.columns)
        rows = rows.to_dict("records")
    rows = list(rows)
    if columns is None:
        columns = list(rows[0]) if rows else []
    given = {**DECIMALS, **(decimals or {})}
    names = dict(headers or {})
    cells: list[list[str]] = []  # per column, its header first
    right: list[bool] = []
    for c in columns:
        values = [row.get(c) for row in rows]
        places = _decimals(c, values, given)
        present = [v for v in values if not is_missing(v)]
        right.append(bool(present) and all(_is_number(v) for v in present))
        cells.append([names.get(c, c), *(cell(v, places) for v in values)])
    widths = [max(map(len, column)) for column in cells]
    lines = []
    for line in zip(*cells, strict=True):
        parts = [
            text.rjust(width) if align else text.ljust(width)
            for text, width, align in zip(line, widths, right, strict=True)
        ]
        lines.append(GAP.join(parts).rstrip())
    return "\n".join(lines)


def ago(when: datetime | None, now: datetime) -> str:
    """``when`` relative to ``now`` (both naive UTC, as the store keeps times): "3 min ago"."""
    if when is None or is_missing(when):
        return ""
    seconds = max(0, int((now - when).total_seconds()))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    days = seconds // 86400
    return f"{days} day{'s' if days != 1 else ''} ago"

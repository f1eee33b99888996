"""Result values as a results file holds them, shared by every sink.

A results row may hold text, numbers, Decimals, booleans, dates, timezone-aware datetimes,
lists and dicts (an extracted table), enums and paths (a download). Each is brought to one of
str, int, float, Decimal, date, naive datetime (Europe/Amsterdam, as the clerk's clock shows) or
None; a sink then decides how its format writes that.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from tasks.errors import DataError

CellValue = str | int | float | Decimal | dt.date | dt.datetime | None

# Control characters that XML 1.0 (and so xlsx) cannot hold; tab, newline and return can stay.
_NOT_IN_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@cache
def amsterdam() -> ZoneInfo:
    """The clerk's time zone (loaded on first use: on Windows it needs the tzdata package)."""
    return ZoneInfo("Europe/Amsterdam")


def plain_text(text: str) -> str:
    """`text` without the control characters a spreadsheet cannot hold."""
    return _NOT_IN_XML.sub("", text) if _NOT_IN_XML.search(text) else text


def cell_value(value: Any, *, column: str, row: int) -> CellValue:
    """One result value as a plain cell value; DataError for a type no results file can hold.

    Booleans become 'ja'/'nee', aware datetimes Europe/Amsterdam wall time, lists and dicts
    compact JSON, enums their value, paths their text. Infinite or NaN numbers become text.
    """
    kind = type(value)
    if value is None or kind is str or kind is int or kind is dt.date:
        return value  # type: ignore[no-any-return]
    if isinstance(value, bool):
        return "ja" if value else "nee"
    if isinstance(value, Enum):
        return cell_value(value.value, column=column, row=row)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, Decimal):
        return value if value.is_finite() else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None and value.utcoffset() is not None:
            return value.astimezone(amsterdam()).replace(tzinfo=None)
        return value.replace(tzinfo=None)
    if isinstance(value, dt.date):
        return value
    if isinstance(value, list | tuple | dict):
        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json)
        except (TypeError, ValueError) as exc:
            raise _unwritable(value, column, row, str(exc)) from exc
    if isinstance(value, os.PathLike):
        return os.fsdecode(value)
    raise _unwritable(value, column, row)


def _json(value: Any) -> Any:
    """What json.dumps cannot write itself: dates, Decimals, enums, paths."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, os.PathLike):
        return os.fsdecode(value)
    raise TypeError(f"a {type(value).__name__} value cannot be written as JSON")


def _unwritable(value: Any, column: str, row: int, detail: str = "") -> DataError:
    extra = f" ({detail})" if detail else ""
    return DataError(
        f"results column {column!r}, row {row}: a value of type {type(value).__name__} cannot "
        f"be written to a results file{extra}; give the column text, a number or a date"
    )

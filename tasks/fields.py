"""Typed values of a work item's fields: parsing a raw cell into a date, BSN, postcode, and so on.

Shared by every source so that a BSN column means the same in xlsx, csv or an app export.
Messages are in Dutch: a clerk reads them on the row in the results sheet.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any


class FieldType(StrEnum):
    """The kinds of value a column can hold."""

    TEXT = "text"
    INTEGER = "integer"
    DECIMAL = "decimal"
    DATE = "date"
    BSN = "bsn"
    POSTCODE = "postcode"
    KENTEKEN = "kenteken"
    YESNO = "yesno"


class FieldValueError(ValueError):
    """A raw cell cannot be read as its column's type; the message is for the clerk."""


_BSN_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)
_POSTCODE = re.compile(r"^\s*([1-9][0-9]{3})\s?([A-Za-z]{2})\s*$")
_KENTEKEN = re.compile(r"^[A-Z0-9]{6}$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(\.\d{3})+$")
_DMY = re.compile(r"^\s*(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})\s*$")
_ISO = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})(?:[ T]00:00(?::00)?)?\s*$")
_YES = {"ja", "j", "yes", "y", "true", "waar", "1", "x"}
_NO = {"nee", "n", "no", "false", "onwaar", "0", ""}
_EXCEL_EPOCH = dt.date(1899, 12, 30)


def is_valid_bsn(value: str) -> bool:
    """True when `value` is nine digits passing the elfproef (11-check) and not all zeros."""
    if len(value) != 9 or not value.isdigit() or value == "000000000":
        return False
    total = sum(int(digit) * weight for digit, weight in zip(value, _BSN_WEIGHTS, strict=True))
    return total % 11 == 0


def parse_value(field_type: FieldType, raw: Any, *, column: str) -> Any:
    """Read a raw cell (str, int, float, date, datetime, bool or None) as `field_type`.

    Returns None for an empty cell; raises FieldValueError with a message naming the column,
    never the value itself when the value could be personal data.
    """
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return None
    parser = _PARSERS[field_type]
    return parser(raw, column)


def _text(raw: Any, column: str) -> str:
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    if isinstance(raw, dt.datetime) and raw.time() == dt.time():
        return raw.date().isoformat()
    return str(raw).strip()


def _integer(raw: Any, column: str) -> int:
    if isinstance(raw, bool):
        raise FieldValueError(f"kolom {column}: geen geheel getal")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    text = str(raw).strip()
    if isinstance(raw, str) and _THOUSANDS.match(text):  # 1.234.567; but '2.0' is no integer
        text = text.replace(".", "")
    try:
        return int(text)
    except ValueError:
        raise FieldValueError(f"kolom {column}: geen geheel getal") from None


def _decimal(raw: Any, column: str) -> Decimal:
    if isinstance(raw, bool):
        raise FieldValueError(f"kolom {column}: geen bedrag of getal")
    if isinstance(raw, int | float):
        return Decimal(str(raw))
    text = str(raw).strip().replace("€", "").replace(" ", "")
    if "," in text and text.rfind(",") > text.rfind("."):  # Dutch notation: 1.234,56
        text = text.replace(".", "").replace(",", ".")
    else:  # 1,234.56
        text = text.replace(",", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise FieldValueError(f"kolom {column}: geen bedrag of getal") from None
    if not value.is_finite():
        raise FieldValueError(f"kolom {column}: geen bedrag of getal")
    return value


def _date(raw: Any, column: str) -> dt.date:
    if isinstance(raw, dt.datetime):
        return raw.date()
    if isinstance(raw, dt.date):
        return raw
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        if 1 <= raw < 2958466:  # Excel serial day numbers up to 31-12-9999
            return _EXCEL_EPOCH + dt.timedelta(days=int(raw))
        raise FieldValueError(f"kolom {column}: geen geldige datum (dd-mm-jjjj)")
    text = str(raw)
    match = _DMY.match(text)
    parts: tuple[int, int, int] | None = None
    if match:
        parts = (int(match[3]), int(match[2]), int(match[1]))
    elif iso := _ISO.match(text):
        parts = (int(iso[1]), int(iso[2]), int(iso[3]))
    if parts is None:
        raise FieldValueError(f"kolom {column}: geen geldige datum (dd-mm-jjjj)")
    try:
        return dt.date(*parts)
    except ValueError:
        raise FieldValueError(f"kolom {column}: datum bestaat niet") from None


def _bsn(raw: Any, column: str) -> str:
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    text = str(raw).strip().replace(" ", "").replace(".", "")
    if text.isdigit() and len(text) == 8:  # Excel drops the leading zero of a number
        text = "0" + text
    if not is_valid_bsn(text):
        raise FieldValueError(f"kolom {column}: geen geldig BSN (elfproef)")
    return text


def _postcode(raw: Any, column: str) -> str:
    match = _POSTCODE.match(str(raw))
    if not match:
        raise FieldValueError(f"kolom {column}: geen geldige postcode (1234 AB)")
    return f"{match[1]} {match[2].upper()}"


def _kenteken(raw: Any, column: str) -> str:
    text = str(raw).strip().upper().replace("-", "").replace(" ", "")
    if not _KENTEKEN.match(text):
        raise FieldValueError(f"kolom {column}: geen geldig kenteken")
    return text


def _yesno(raw: Any, column: str) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, float) and raw.is_integer():  # a spreadsheet's number 1 is 1.0
        raw = int(raw)
    text = str(raw).strip().lower()
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise FieldValueError(f"kolom {column}: verwacht ja of nee")


_PARSERS = {
    FieldType.TEXT: _text,
    FieldType.INTEGER: _integer,
    FieldType.DECIMAL: _decimal,
    FieldType.DATE: _date,
    FieldType.BSN: _bsn,
    FieldType.POSTCODE: _postcode,
    FieldType.KENTEKEN: _kenteken,
    FieldType.YESNO: _yesno,
}


def field_name(header: str) -> str:
    """The name a template uses for a column header: 'Ingangs datum' -> 'ingangs_datum'."""
    name = re.sub(r"[^0-9a-z]+", "_", header.strip().lower()).strip("_")
    return name or "kolom"

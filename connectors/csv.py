"""CSV files as Dutch offices have them: read in any encoding and delimiter Excel writes, written
so that Dutch Excel opens them right.

Reading with `encoding: auto` takes UTF-8 with or without BOM (and UTF-16 with BOM, Excel's
"Unicode text"), else Windows-1252 (Excel's "CSV" on Windows). `delimiter: auto` chooses between
';' (Dutch Excel), ',' and tab by which one splits the header row and the rows below it alike.
Row numbers are records, as Excel numbers them when it opens the file.

Writing gives UTF-8 with BOM, ';' between fields, dates as dd-mm-jjjj and decimal commas. Text
that Excel would run as a formula (=, +, -, @ followed by more than a number) gets a leading
apostrophe.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Any

from connectors.files import (
    atomic_write,
    describe_text_or_binary,
    require_closed_in_excel,
    require_file,
    workbook_problem,
)
from connectors.rows import Place, RowReader
from connectors.values import cell_value
from tasks.definition import SinkSpec, SourceSpec
from tasks.errors import ConnectorError, DataError
from tasks.plugins import SourceRow

_CSV_SUFFIXES = (".csv", ".txt")
_DELIMITERS = (";", ",", "\t")  # in order of preference when they split a file equally well
_SNIFF_RECORDS = 50
_SNIFF_CHARACTERS = 256 * 1024
_NUMBER_LIKE = re.compile(r"[+-][0-9][0-9 .,]*")


def decode(data: bytes, encoding: str, path: Path) -> tuple[str, str]:
    """The text of a file and its encoding: the one given, or found out when it is 'auto'."""
    if encoding == "auto":
        if data.startswith(codecs.BOM_UTF8):
            encoding = "utf-8-sig"
        elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            encoding = "utf-16"
        else:
            try:
                return data.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                encoding = "cp1252"
    try:
        return data.decode(encoding).removeprefix("\ufeff"), encoding
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: not valid {encoding} text; save the file in Excel as "
            "'CSV UTF-8', or set `encoding` in the task definition to the one it has"
        ) from exc


def sniff_delimiter(text: str, header_row: int) -> str:
    """The delimiter that splits the header row into most columns and the rows below alike."""
    sample = text[:_SNIFF_CHARACTERS]
    if len(text) > len(sample) and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    best, best_score = _DELIMITERS[0], (False, 0.0, 0)
    for delimiter in _DELIMITERS:
        try:
            records = list(
                islice(
                    csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter), _SNIFF_RECORDS
                )
            )
        except csv.Error:
            continue
        records = records[header_row - 1 :]
        if not records:
            continue
        width = len(records[0])
        below = [record for record in records[1:] if record]
        alike = sum(len(record) == width for record in below) / len(below) if below else 1.0
        score = (width > 1, alike, width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


class CsvSource:
    """The records of a CSV file, typed by the task definition's columns.

    The file is read when `headers()` or `items()` is first called; a file that Excel has open
    is refused (its unsaved changes would be missed). `warnings` tells the administrator what
    is odd but not fatal (a column name used twice).
    """

    def __init__(self, spec: SourceSpec, path: Path) -> None:
        self.spec = spec
        self.path = path
        self.warnings: list[str] = []
        self.encoding: str = spec.encoding  # once read: the encoding found
        self.delimiter: str = spec.delimiter  # once read: the delimiter found
        self._reader: RowReader | None = None
        self._text = ""

    def headers(self) -> Mapping[str, str]:
        """Field name -> the column header as written in the file, in file order."""
        return dict(self._load().headers)

    def items(self) -> Iterator[SourceRow]:
        """The non-empty records below the header, in file order; a bad cell is a row problem."""
        reader = self._load()
        records = self._records()
        for _ in range(self.spec.header_row):  # the header and what is above it
            next(records, None)
        return reader.rows(records)

    def _records(self) -> Iterator[tuple[int, list[str]]]:
        """(record number, fields) for every record; a broken file is a DataError."""
        reader = csv.reader(io.StringIO(self._text, newline=""), delimiter=self.delimiter)
        number = 0
        try:
            for number, record in enumerate(reader, start=1):
                yield number, record
        except csv.Error as exc:
            raise DataError(
                f'{self.path}, line {reader.line_num} (row {number + 1}): {exc}; is a quote (") '
                "not closed?"
            ) from exc

    def _load(self) -> RowReader:
        if self._reader is not None:
            return self._reader
        require_file(self.path, _CSV_SUFFIXES)
        require_closed_in_excel(self.path)
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise ConnectorError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        self._check_content(data)
        self._text, self.encoding = decode(data, self.spec.encoding, self.path)
        if self.delimiter == "auto":
            self.delimiter = sniff_delimiter(self._text, self.spec.header_row)
        place = Place(self.path)
        if not self._text.strip(' \t\r\n;,"'):
            raise DataError(f"{place}: the file is empty")
        header_row = self.spec.header_row
        head = list(islice(self._records(), header_row))
        if len(head) < header_row:
            raise DataError(
                f"{place}: the header row is set to row {header_row}, but the file ends at row "
                f"{len(head)}; correct `header_row` in the task definition"
            )
        self._reader = RowReader(self.spec, head[-1][1], place=place, header_row=header_row)
        self.warnings.extend(self._reader.warnings)
        return self._reader

    def _check_content(self, data: bytes) -> None:
        """A DataError when the file is not text at all (a workbook or a PDF named .csv)."""
        if not data.strip():
            raise DataError(f"{self.path}: the file is empty")
        head = data[:4096]
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return
        if head.startswith(b"PK"):
            if workbook_problem(self.path, head) is None:
                raise DataError(
                    f"{self.path} is an Excel workbook (.xlsx) named .csv; use `kind: xlsx` in "
                    "the task definition and name the file .xlsx"
                )
            raise DataError(f"{self.path} is a zip archive, not a CSV file")
        if head.startswith(bytes.fromhex("D0CF11E0A1B11AE1")):
            raise DataError(
                f"{self.path} is an old-format Office file (an Excel 97-2003 .xls?), not a CSV "
                "file; open it in Excel and save it as 'CSV UTF-8' or as .xlsx"
            )
        if b"\x00" in head:
            what, advice = describe_text_or_binary(head)
            raise DataError(
                f"{self.path} is {what}, not a CSV file" + (f"; {advice}" if advice else "")
            )


class CsvSink:
    """Results as a CSV file for Dutch Excel: UTF-8 with BOM, ';', dd-mm-jjjj, decimal comma."""

    def __init__(self, spec: SinkSpec, path: Path) -> None:
        self.spec = spec
        self.path = path

    def write(self, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Path:
        """Write the header and the rows (missing values empty) and return the file written."""
        columns = list(columns)
        with atomic_write(self.path) as handle:
            text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
            try:
                writer = csv.writer(text, delimiter=";", lineterminator="\r\n")
                writer.writerow([_field(name) for name in columns])
                for number, row in enumerate(rows, start=1):
                    writer.writerow(
                        [
                            _field(cell_value(row.get(name), column=name, row=number))
                            for name in columns
                        ]
                    )
                text.flush()
            finally:
                text.detach()  # leave closing (after fsync) to atomic_write
        return self.path


def _field(value: Any) -> str:
    """One plain cell value as CSV text the way Dutch Excel reads it back."""
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if _runs_as_formula(value) else value
    if isinstance(value, dt.datetime):
        return value.strftime("%d-%m-%Y %H:%M:%S")
    if isinstance(value, dt.date):
        return value.strftime("%d-%m-%Y")
    if isinstance(value, float):
        return _decimal_comma(format(Decimal(repr(value)), "f"))
    if isinstance(value, Decimal):
        return _decimal_comma(format(value, "f"))
    return str(value)


def _decimal_comma(text: str) -> str:
    return text.replace(".", ",")


def _runs_as_formula(text: str) -> bool:
    """True when Excel, opening the file, would take `text` for a formula ('=HYPERLINK(...)').

    Numbers with a sign ('-12,50', '+31 6 1234 5678') and a lone '-' stay as they are.
    """
    first = text[:1]
    if first in ("=", "@", "\t", "\r"):
        return True
    return first in ("+", "-") and len(text) > 1 and not _NUMBER_LIKE.fullmatch(text)

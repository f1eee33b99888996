"""Excel workbooks: reading a sheet with python-calamine (fast), writing results with openpyxl.

Reading takes the cached value of a formula (what Excel last showed; a file written by a program
that never calculated it has none and reads as empty). A merged range has its value in the
top-left cell only; the other cells of the range read as empty. A cell with an Excel error
(#N/A, #DIV/0!) reads as empty too.

Writing goes into a temporary file that replaces the results file only when complete. The
header is bold, frozen and has an auto-filter; dates are real Excel dates shown as dd-mm-jjjj;
amounts stay numbers; text never becomes a formula.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from decimal import Decimal
from itertools import chain, islice
from pathlib import Path
from typing import Any, BinaryIO
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import python_calamine
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.styles.fonts import DEFAULT_FONT
from openpyxl.utils import column_index_from_string, get_column_letter
from openpyxl.utils.datetime import to_excel

from connectors.files import (
    atomic_write,
    did_you_mean,
    read_head,
    require_closed_in_excel,
    require_file,
    workbook_problem,
)
from connectors.rows import Place, RowReader, gc_paused
from connectors.values import cell_value, plain_text
from tasks.definition import SinkSpec, SourceSpec
from tasks.errors import DataError
from tasks.plugins import SourceRow

_WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")
_DATE_FORMAT = "DD-MM-YYYY"
_DATETIME_FORMAT = "DD-MM-YYYY HH:MM:SS"
_FORBIDDEN_IN_SHEET_NAMES = set("[]:*?/\\")
_WIDTH_SAMPLE_ROWS = 200
_EXCEL_MAX_ROWS = 1_048_576
_MAX_EXACT_INTEGER = 10**15  # Excel keeps 15 significant digits; longer numbers are written as text


class XlsxSource:
    """The rows of one sheet of an .xlsx workbook, typed by the task definition's columns.

    The file is read when `headers()` or `items()` is first called; a workbook that Excel has
    open is refused (its unsaved changes would be missed). `warnings` tells the administrator
    what is odd but not fatal: a column name used twice.
    """

    def __init__(self, spec: SourceSpec, path: Path) -> None:
        self.spec = spec
        self.path = path
        self.warnings: list[str] = []
        self._reader: RowReader | None = None
        self._rows: list[list[Any]] = []

    def headers(self) -> Mapping[str, str]:
        """Field name -> the column header as written in the sheet, in sheet order."""
        return dict(self._load().headers)

    def items(self) -> Iterator[SourceRow]:
        """The non-empty rows below the header, in sheet order; a bad cell is a row problem."""
        reader = self._load()
        first = self.spec.header_row  # 0-based index of the first data row
        numbered = zip(range(first + 1, len(self._rows) + 1), self._rows[first:], strict=True)
        return reader.rows(numbered)

    def _load(self) -> RowReader:
        if self._reader is not None:
            return self._reader
        require_file(self.path, _WORKBOOK_SUFFIXES)
        require_closed_in_excel(self.path)
        problem = workbook_problem(self.path, read_head(self.path))
        if problem is not None:
            raise DataError(f"{self.path} {problem}")
        try:
            workbook = python_calamine.CalamineWorkbook.from_path(str(self.path))
        except python_calamine.PasswordError as exc:
            raise DataError(
                f"{self.path} is protected with a password; save it without one"
            ) from exc
        except (python_calamine.CalamineError, OSError, ValueError) as exc:
            raise DataError(
                f"{self.path} cannot be read as a workbook ({exc}); open it in Excel and save it "
                "again as .xlsx"
            ) from exc
        with workbook:
            sheet_name = self._sheet_name(workbook)
            place = Place(self.path, sheet_name)
            try:
                sheet = workbook.get_sheet_by_name(sheet_name)
                with gc_paused():
                    rows = sheet.to_python(skip_empty_area=False)
                merged = sheet.merged_cell_ranges or []
            except python_calamine.CalamineError as exc:
                raise DataError(f"{place}: cannot be read ({exc})") from exc
        header_row = self.spec.header_row
        if not rows or not any(any(cell != "" for cell in row) for row in rows):
            raise DataError(f"{place}: the sheet is empty")
        if len(rows) < header_row:
            raise DataError(
                f"{place}: the header row is set to row {header_row}, but the sheet ends at row "
                f"{len(rows)}; correct `header_row` in the task definition"
            )
        self._reader = RowReader(
            self.spec,
            rows[header_row - 1],
            place=place,
            header_row=header_row,
            explain_empty=_EmptyCells(self.path, sheet_name, merged),
        )
        self.warnings.extend(self._reader.warnings)
        self._rows = rows
        return self._reader

    def _sheet_name(self, workbook: python_calamine.CalamineWorkbook) -> str:
        """The sheet the spec names (ignoring case, as Excel does), or the first visible one."""
        names = workbook.sheet_names
        wanted = self.spec.sheet
        if wanted is None:
            visible = [
                meta.name
                for meta in workbook.sheets_metadata
                if meta.visible == python_calamine.SheetVisibleEnum.Visible
                and meta.typ == python_calamine.SheetTypeEnum.WorkSheet
            ]
            if visible or names:
                return (visible or names)[0]
            raise DataError(f"{self.path} has no sheets")
        for name in names:
            if name.strip().casefold() == wanted.strip().casefold():
                return name
        raise DataError(
            f"{self.path} has no sheet {wanted!r}{did_you_mean(wanted, names)}; its sheets are: "
            + ", ".join(repr(name) for name in names)
        )


class _EmptyCells:
    """Why a cell shows no value to klerk although the clerk may see one in Excel: it is part of
    a merged range (only the top-left cell holds the value), or it holds a formula that Excel
    never calculated or that gives an error (#N/A, #DIV/0!). Read only when a row needs it."""

    def __init__(self, path: Path, sheet: str, merged: list[Any]) -> None:
        self._path = path
        self._sheet = sheet
        self._merged: list[tuple[int, int, int, int]] = [
            (top + 1, left, bottom + 1, right) for (top, left), (bottom, right) in merged
        ]
        self._formulas: dict[tuple[int, int], str] | None = None

    def __call__(self, row: int, column: int) -> str | None:
        cell = f"{get_column_letter(column + 1)}{row}"
        for top, left, bottom, right in self._merged:
            if top <= row <= bottom and left <= column <= right and (row, column) != (top, left):
                origin = f"{get_column_letter(left + 1)}{top}"
                return (
                    f"cel {cell} is samengevoegd met {origin} (maak het samenvoegen ongedaan en "
                    "vul elke rij zelf in)"
                )
        if self._formulas is None:
            self._formulas = _formulas_without_value(self._path, self._sheet)
        error = self._formulas.get((row, column))
        if error is None:
            return None
        if error:
            return f"de formule in cel {cell} geeft de fout {error}"
        return f"de formule in cel {cell} is niet berekend (open en bewaar het bestand in Excel)"


_CELL_REFERENCE = re.compile(r"([A-Z]{1,3})([0-9]+)")


def _formulas_without_value(path: Path, sheet: str) -> dict[tuple[int, int], str]:
    """(row, column index) -> error text ('#N/A') of each formula cell of `sheet` that has no
    value, or '' where Excel stored no result at all. Best effort: an odd file gives {}."""
    found: dict[tuple[int, int], str] = {}
    problems = (KeyError, OSError, zipfile.BadZipFile, ElementTree.ParseError, ValueError)
    with suppress(*problems), zipfile.ZipFile(path) as archive:
        part = _sheet_part(archive, sheet)
        if part is None:
            return found
        with archive.open(part) as stream:
            for _, element in ElementTree.iterparse(stream):
                if _local(element.tag) != "c":
                    continue
                children = {_local(child.tag): child.text or "" for child in element}
                reference = _CELL_REFERENCE.fullmatch(element.get("r", ""))
                is_error = element.get("t") == "e"
                if reference and (is_error or ("f" in children and not children.get("v"))):
                    row, column = int(reference[2]), column_index_from_string(reference[1])
                    found[(row, column - 1)] = children.get("v", "") if is_error else ""
                element.clear()
    return found


def _sheet_part(archive: zipfile.ZipFile, sheet: str) -> str | None:
    """The name of the part in the package that holds the sheet named `sheet`."""
    workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    relation = next(
        (
            value
            for element in workbook.iter()
            if _local(element.tag) == "sheet" and element.get("name") == sheet
            for name, value in element.attrib.items()
            if _local(name) == "id"
        ),
        None,
    )
    relations = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    for element in relations.iter():
        if _local(element.tag) == "Relationship" and element.get("Id") == relation:
            target = element.get("Target", "")
            return target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    return None


def _local(tag: str) -> str:
    """An XML name without its namespace: '{...main}c' -> 'c'."""
    return tag.rpartition("}")[2]


class XlsxSink:
    """Results as an .xlsx workbook: one sheet, a bold frozen header with an auto-filter.

    openpyxl writes the workbook itself (styles, header, column widths, frozen pane, filter);
    the data rows are streamed as sheet XML by this module, in the very form openpyxl gives
    such cells, because openpyxl's per-cell writing takes ~10 µs a cell: 100,000 rows of 13
    columns would take 14 s here, against a target of 10.
    """

    def __init__(self, spec: SinkSpec, path: Path) -> None:
        self.spec = spec
        self.path = path
        self.sheet = spec.sheet
        bad = sorted(_FORBIDDEN_IN_SHEET_NAMES & set(self.sheet))
        if not self.sheet.strip() or len(self.sheet) > 31 or bad:
            raise DataError(
                f"sheet name {self.sheet!r} for {path} cannot be used in Excel: at most 31 "
                "characters, not empty, none of " + " ".join(sorted(_FORBIDDEN_IN_SHEET_NAMES))
            )

    def write(self, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Path:
        """Write the header and the rows (missing values empty) and return the file written."""
        columns = list(columns)
        remaining = iter(rows)
        sample = list(islice(remaining, _WIDTH_SAMPLE_ROWS))
        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet(self.sheet)
        try:
            with (
                atomic_write(self.path) as handle,
                tempfile.TemporaryFile(dir=self.path.parent) as sheet_data,
            ):
                count = _write_sheet_data(
                    sheet_data, columns, chain(sample, remaining), _Styles(sheet)
                )
                for number, width in enumerate(_column_widths(columns, sample), start=1):
                    sheet.column_dimensions[get_column_letter(number)].width = width
                sheet.freeze_panes = "A2"
                bold = Font(
                    name=DEFAULT_FONT.name,
                    size=DEFAULT_FONT.sz,
                    family=DEFAULT_FONT.family,
                    scheme=DEFAULT_FONT.scheme,
                    bold=True,
                )
                header = []
                for name in columns:
                    cell = WriteOnlyCell(sheet, value=_text_cell_value(name))
                    cell.font = bold
                    cell.data_type = "s"  # a column named '=x' or '#N/A' stays text
                    header.append(cell)
                sheet.append(header)
                if columns:
                    sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{count + 1}"
                package = io.BytesIO()
                workbook.save(package)
                _splice(package, sheet.path.lstrip("/"), sheet_data, handle)
        except BaseException:
            _discard_sheet_buffer(sheet)
            raise
        return self.path


class _Styles:
    """The style ids (indexes into styles.xml) of the number formats data cells use.

    Registering a format on a cell of the write-only workbook makes openpyxl write it into
    styles.xml when the workbook is saved; the id is what a cell's `s` attribute refers to.
    """

    def __init__(self, sheet: Any) -> None:
        self._sheet = sheet
        self._ids: dict[str, str] = {}
        self.date = self.of(_DATE_FORMAT)
        self.datetime = self.of(_DATETIME_FORMAT)

    def of(self, number_format: str) -> str:
        """The style id, as text, of a plain cell with `number_format`."""
        if number_format not in self._ids:
            cell = WriteOnlyCell(self._sheet)
            cell.number_format = number_format
            self._ids[number_format] = str(cell.style_id)
        return self._ids[number_format]

    def decimal(self, value: Decimal) -> str | None:
        """'#,##0.00' and alike for a Decimal with 1 to 10 places; None (General) otherwise."""
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and -10 <= exponent < 0:
            return self.of("#,##0." + "0" * -exponent)
        return None


def _write_sheet_data(
    out: BinaryIO, columns: Sequence[str], rows: Iterable[Mapping[str, Any]], styles: _Styles
) -> int:
    """Write the <row> elements of the data rows (from row 2) to `out`; return how many."""
    letters = [get_column_letter(number) for number in range(1, len(columns) + 1)]
    pending: list[str] = []
    count = 0
    for count, row in enumerate(rows, start=1):
        number = count + 1
        if number > _EXCEL_MAX_ROWS:
            raise DataError(
                f"{count:,} results do not fit in one Excel sheet (at most "
                f"{_EXCEL_MAX_ROWS - 1:,} rows under the header); use `kind: csv` for the sink"
            )
        cells = [f'<row r="{number}">']
        for letter, name in zip(letters, columns, strict=True):
            value = cell_value(row.get(name), column=name, row=count)
            if value is not None:
                cells.append(_cell_xml(f"{letter}{number}", value, styles))
        cells.append("</row>")
        pending.append("".join(cells))
        if len(pending) >= 1000:
            out.write("".join(pending).encode())
            pending.clear()
    out.write("".join(pending).encode())
    return count


def _cell_xml(reference: str, value: Any, styles: _Styles) -> str:
    """One <c> element, as openpyxl writes it for the same value and number format."""
    kind = type(value)
    if kind is str:
        text = _text_cell_value(value)
        if not text:
            return ""
        text = escape(text)
        space = ' xml:space="preserve"' if text != text.strip() else ""
        return f'<c r="{reference}" t="inlineStr"><is><t{space}>{text}</t></is></c>'
    if kind is int:
        if -_MAX_EXACT_INTEGER < value < _MAX_EXACT_INTEGER:
            return f'<c r="{reference}" t="n"><v>{value}</v></c>'
        return _cell_xml(reference, str(value), styles)
    if kind is dt.date or kind is dt.datetime:
        date_style = styles.date if kind is dt.date else styles.datetime
        return f'<c r="{reference}" s="{date_style}" t="n"><v>{to_excel(value):.16g}</v></c>'
    if kind is float:
        return f'<c r="{reference}" t="n"><v>{value!r}</v></c>'
    if kind is Decimal:
        decimal_style = styles.decimal(value)
        styled = f' s="{decimal_style}"' if decimal_style is not None else ""
        return f'<c r="{reference}"{styled} t="n"><v>{value:f}</v></c>'
    raise AssertionError(f"cell_value gave a {kind.__name__}")  # pragma: no cover


def _splice(package: io.BytesIO, sheet_part: str, sheet_data: BinaryIO, out: BinaryIO) -> None:
    """Copy the workbook openpyxl saved into `out`, with the data rows inside its sheet part."""
    sheet_data.seek(0)
    with (
        zipfile.ZipFile(package) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename != sheet_part:
                target.writestr(info, content)
                continue
            xml = content.decode()
            if "</sheetData>" in xml:
                head, tail = xml.split("</sheetData>", 1)
                tail = "</sheetData>" + tail
            else:  # no rows at all: <sheetData />
                head, tail = re.split(r"<sheetData\s*/>", xml, maxsplit=1)
                head, tail = head + "<sheetData>", "</sheetData>" + tail
            part = zipfile.ZipInfo(sheet_part, date_time=info.date_time)
            part.compress_type = zipfile.ZIP_DEFLATED
            with target.open(part, "w", force_zip64=True) as stream:
                stream.write(head.encode())
                shutil.copyfileobj(sheet_data, stream, 1024 * 1024)
                stream.write(tail.encode())


def _text_cell_value(text: str) -> str:
    """Text as a cell holds it: no characters XML forbids, at most 32,767 characters."""
    return plain_text(text)[:32767]


def _column_widths(columns: Sequence[str], sample: Sequence[Mapping[str, Any]]) -> list[float]:
    """Widths (in characters) that fit the header and the first rows, between 8 and 60."""
    widths = []
    for name in columns:
        longest = len(name) + 3  # room for the auto-filter button
        for row in sample:
            value = row.get(name)
            if isinstance(value, dt.datetime):
                length = 19
            elif isinstance(value, dt.date):
                length = 10
            elif value is None:
                length = 0
            else:
                length = max((len(line) for line in str(value).splitlines()), default=0)
            longest = max(longest, length)
        widths.append(float(min(max(longest + 2, 8), 60)))
    return widths


def _discard_sheet_buffer(sheet: Any) -> None:
    """Remove the temporary file openpyxl streams a write-only sheet into, after a failure.

    openpyxl would only remove it when the process exits; a long-running scheduler would
    collect them. This reaches into openpyxl's writer, so every step may fail harmlessly.
    """
    writer = getattr(sheet, "_writer", None)
    if writer is None:
        return
    with suppress(Exception):
        sheet.close()
    with suppress(Exception):
        writer.cleanup()

"""From a table's header and rows to work items: matching headers, typing cells, keys and subjects.

Shared by every file source, so that a column means the same in an xlsx as in a csv file. A
source hands over the header row's cells and its rows as (row number, cells); this module
decides which column is which field, types each cell with `tasks.fields.parse_value`, and turns
a bad cell into a `problem` on that row (in Dutch, for the clerk) instead of an exception.

Whole-file problems (a column the definition needs is missing) are a DataError in English, for
the administrator. No message carries a cell value that could be personal data.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import Any

from connectors.files import closest
from tasks.definition import ColumnSpec, SourceSpec
from tasks.errors import DataError
from tasks.fields import FieldType, FieldValueError, field_name, parse_value
from tasks.plugins import SourceRow

_CHUNK_ROWS = 4096
_REMEMBER_TRIAL = 2048  # values a column remembers before it must show that it repeats them


@dataclass(frozen=True)
class Place:
    """Where a table is, for messages: the file and, in a workbook, the sheet."""

    path: Path
    sheet: str | None = None

    def __str__(self) -> str:
        return f"{self.path}, sheet {self.sheet!r}" if self.sheet is not None else str(self.path)


class _Bad:
    """A cell that could not be typed: the clerk's message and what the cell held."""

    __slots__ = ("message", "raw")

    def __init__(self, message: str, raw: Any) -> None:
        self.message = message
        self.raw = raw.strip() if isinstance(raw, str) else raw


@dataclass(frozen=True, eq=False)
class _Column:
    """One column of the table as it is read: where, under which name, typed how."""

    index: int
    field: str
    header: str
    typed: Callable[[Any], Any]  # raw cell -> typed value, None, or a _Bad; never raises
    required: bool
    failures: list[_Bad]  # the _Bad values `typed` returned since the list was last cleared


_MISSING = object()


def header_text(cell: Any) -> str:
    """A header cell as text: '' for an empty cell, '2024' rather than '2024.0' for a number."""
    if cell is None:
        return ""
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell).strip()


def _typer(field_type: FieldType, header: str, failures: list[_Bad]) -> Callable[[Any], Any]:
    """A function typing one raw cell of a column exactly as `parse_value` does, only faster.

    Text in a text column and a date cell in a date column take a shortcut; other text and
    number cells that typed well are remembered per column, as a column repeats its values
    (zones, dates, amounts, ja/nee). A cell that cannot be typed gives a _Bad instead of an
    exception, and is also appended to `failures`, so that a clean column needs no search.
    """

    def parse(raw: Any) -> Any:
        try:
            return parse_value(field_type, raw, column=header)
        except FieldValueError as exc:
            bad = _Bad(str(exc), raw)
            failures.append(bad)
            return bad

    if field_type is FieldType.TEXT:

        def text(raw: Any) -> Any:
            if type(raw) is str:
                return raw.strip() or None
            return parse(raw)

        return text

    strings: dict[str, Any] = {}
    numbers: dict[float, Any] = {}
    is_date = field_type is FieldType.DATE
    looked_up = remembered = 0
    remember = True

    def typed(raw: Any) -> Any:
        nonlocal looked_up, remembered, remember
        kind = type(raw)
        # Only str and float are remembered: True == 1 == 1.0 would mix up other types.
        if kind is str:
            if not raw:
                return None
            known: dict[Any, Any] = strings
        elif kind is float:
            known = numbers
        elif raw is None:
            return None
        elif is_date and kind is dt.date:
            return raw
        else:
            return parse(raw)
        if not remember:
            return parse(raw)
        looked_up += 1
        value = known.get(raw, _MISSING)
        if value is _MISSING:
            value = parse(raw)
            if type(value) is not _Bad:
                known[raw] = value
                remembered += 1
                # A column of distinct values (BSNs, names) gains nothing from remembering.
                if remembered == _REMEMBER_TRIAL and looked_up < 2 * _REMEMBER_TRIAL:
                    remember = False
                    strings.clear()
                    numbers.clear()
        return value

    return typed


def _shown_header(header: str) -> str:
    """A header for a message, hidden when it looks like data (a number, a BSN) rather than a name.

    A wrong `header_row` makes a data row look like the header; its cells must not leak.
    """
    digits = sum(char.isdigit() for char in header)
    return "…" if digits >= 5 else repr(header)


# (row number, column index (0-based)) -> why a cell without a value has none, for the clerk
EmptyCellExplainer = Callable[[int, int], str | None]


class RowReader:
    """The columns of one table matched to a source spec, and the typing of its rows.

    Built from the header row; raises DataError when a required, key or subject column is
    missing. `headers` maps field name to the header as written, in file order; `warnings`
    holds what the administrator should know (a column name used twice). `explain_empty`, when
    the source can tell more than "empty" (a merged cell, a formula that gave an error), says
    why a required cell has no value.
    """

    def __init__(
        self,
        spec: SourceSpec,
        header_cells: Sequence[Any],
        *,
        place: Place,
        header_row: int,
        explain_empty: EmptyCellExplainer | None = None,
    ) -> None:
        self.warnings: list[str] = []
        self._explain_empty = explain_empty
        found = [(index, header_text(cell)) for index, cell in enumerate(header_cells)]
        self._found = [(index, text) for index, text in found if text]
        if not self._found:
            raise DataError(
                f"{place}: row {header_row} (the header row) is empty; set `header_row` in the "
                "task definition to the row that holds the column names"
            )

        # The definition's columns claim their header first (they may rename it), then the key
        # and subject, then every other column gets the field name of its header.
        names = list(spec.columns)
        names += [name for name in (spec.key, spec.subject) if name and name not in names]
        claimed: dict[int, tuple[str, ColumnSpec]] = {}
        located: dict[str, int] = {}
        missing: list[str] = []
        absent: list[str] = []
        for name in names:
            column_spec = spec.column(name)
            target = column_spec.header or name
            index = self._find(target)
            if index is None:
                if name == spec.key:
                    missing.append(f"key column {target!r}{self._suggest(target)}")
                elif name == spec.subject:
                    missing.append(f"subject (BSN) column {target!r}{self._suggest(target)}")
                elif column_spec.required:
                    missing.append(f"column {target!r}{self._suggest(target)}")
                else:
                    absent.append(field_name(name))
                continue
            located[name] = index
            if index not in claimed:
                claimed[index] = (field_name(name), column_spec)
            elif name in spec.columns:
                raise DataError(
                    f"{place}: the columns {claimed[index][0]!r} and {name!r} of the task "
                    f"definition both read the column {dict(self._found)[index]!r}"
                )
        if missing:
            listed = ", ".join(_shown_header(text) for _, text in self._found)
            raise DataError(
                f"{place}: missing {'; missing '.join(missing)}. The header row (row {header_row}) "
                f"has: {listed}. Correct the header in the file or the names in the task definition"
            )

        taken = {field for field, _ in claimed.values()}
        subject_index = located.get(spec.subject) if spec.subject else None
        key_index = located.get(spec.key) if spec.key else None
        self.headers: dict[str, str] = {}
        columns: list[_Column] = []
        for index, text in self._found:
            if index in claimed:
                field, column_spec = claimed[index]
            else:
                field, column_spec = (
                    self._free_field(text, taken, place),
                    ColumnSpec(required=False),
                )
            self.headers[field] = text
            field_type = FieldType.BSN if index == subject_index else column_spec.type
            failures: list[_Bad] = []
            typed = _typer(field_type, text, failures)
            columns.append(_Column(index, field, text, typed, column_spec.required, failures))
        self._columns = tuple(columns)
        self._absent = tuple(absent)
        self._key = next((c for c in columns if c.index == key_index), None)
        self._subject = next((c for c in columns if c.index == subject_index), None)
        # A key that is a BSN must not appear in a message.
        self._key_is_personal = key_index is not None and (
            key_index == subject_index or claimed[key_index][1].type is FieldType.BSN
        )

    def _free_field(self, header: str, taken: set[str], place: Place) -> str:
        """The field name for a header the definition does not name; numbered when taken."""
        base = field_name(header)
        field, number = base, 1
        while field in taken:
            number += 1
            field = f"{base}_{number}"
        if field != base and _shown_header(header) != "…":
            self.warnings.append(
                f"{place}: the column name {header!r} is used more than once (or clashes with a "
                f"renamed column); this one is read as {field!r}"
            )
        taken.add(field)
        return field

    def _find(self, target: str) -> int | None:
        """The index of the column headed `target`: exactly, else by field name (case, spaces)."""
        wanted = target.strip()
        for index, text in self._found:
            if text == wanted:
                return index
        normalised = field_name(wanted)
        for index, text in self._found:
            if field_name(text) == normalised:
                return index
        return None

    def _suggest(self, target: str) -> str:
        """' (did you mean 'Header'?)' for the header closest to `target`, if one is close."""
        by_field = {field_name(text): text for _, text in self._found if _shown_header(text) != "…"}
        match = closest(field_name(target), list(by_field))
        return f" (did you mean {by_field[match]!r}?)" if match is not None else ""

    def rows(self, numbered_cells: Iterable[tuple[int, Sequence[Any]]]) -> Iterator[SourceRow]:
        """Each non-empty row as a SourceRow: typed values, key, subject and any problem."""
        first_seen: dict[str, int] = {}
        numbered = iter(numbered_cells)
        while True:
            with gc_paused():
                chunk = list(islice(numbered, _CHUNK_ROWS))
                done = self._chunk(chunk, first_seen)
            if not chunk:
                return
            yield from done

    def _chunk(
        self, chunk: list[tuple[int, Sequence[Any]]], first_seen: dict[str, int]
    ) -> list[SourceRow]:
        """The rows of one chunk, typed a column at a time (much faster than cell by cell)."""
        if not chunk:
            return []
        columns = self._columns
        fields = [column.field for column in columns]
        width = max(column.index for column in columns) + 1
        cells_of_rows = [
            cells if len(cells) >= width else _padded(cells, width) for _, cells in chunk
        ]
        typed_columns = [
            list(map(column.typed, map(itemgetter(column.index), cells_of_rows)))
            for column in columns
        ]
        # Rows needing a closer look: a cell that failed, or an empty required cell.
        flagged: set[int] = set()
        for column, typed_column in zip(columns, typed_columns, strict=True):
            if column.failures:
                column.failures.clear()
                flagged.update(i for i, value in enumerate(typed_column) if type(value) is _Bad)
            if column.required and None in typed_column:
                flagged.update(i for i, value in enumerate(typed_column) if value is None)

        key_position = self._position(self._key)
        key_header = self._key.header if self._key is not None else ""
        key_shown = not self._key_is_personal
        subject_position = self._position(self._subject)
        absent = dict.fromkeys(self._absent)
        empty_row = (None,) * len(columns)
        done: list[SourceRow] = []
        for i, typed_row in enumerate(zip(*typed_columns, strict=True)):
            if typed_row == empty_row:
                continue
            number = chunk[i][0]
            problems: list[str] = []
            failed: tuple[int, ...] = ()
            if i in flagged:
                typed_row, failed = self._look_closer(number, typed_row, problems)
            values = dict(zip(fields, typed_row, strict=True))
            if absent:
                values.update(absent)

            if key_position is None:
                key = f"rij-{number}"
            elif (key_value := typed_row[key_position]) is None:
                key = f"rij-{number}"
                problems.insert(0, self._empty(number, self._key, f"kolom {key_header} (sleutel)"))
            else:
                key = key_value if type(key_value) is str else _key_text(key_value)
                earlier = first_seen.setdefault(key, number)
                if earlier != number:
                    shown = f" {key}" if key_shown else ""
                    problems.append(f"{key_header}{shown} komt vaker voor (ook op rij {earlier})")

            subject = None
            if subject_position is not None and subject_position not in failed:
                subject = typed_row[subject_position]

            done.append(
                SourceRow(key, number, values, subject, "; ".join(problems) if problems else None)
            )
        return done

    def _look_closer(
        self, number: int, typed_row: tuple[Any, ...], problems: list[str]
    ) -> tuple[tuple[Any, ...], tuple[int, ...]]:
        """Collect a flagged row's problems; failed cells keep what the clerk typed.

        Returns the row's values and the positions of the cells that failed.
        """
        kept = list(typed_row)
        failed = []
        for position, (column, value) in enumerate(zip(self._columns, typed_row, strict=True)):
            if type(value) is _Bad:
                problems.append(value.message)
                kept[position] = value.raw
                failed.append(position)
            elif value is None and column.required and column is not self._key:
                problems.append(self._empty(number, column, f"kolom {column.header}"))
        return tuple(kept), tuple(failed)

    def _empty(self, number: int, column: _Column | None, named: str) -> str:
        """The clerk's message for an empty required cell: why it is empty, when that is known."""
        if column is not None and self._explain_empty is not None:
            reason = self._explain_empty(number, column.index)
            if reason is not None:
                return f"{named}: {reason}"
        return f"{named} is leeg"

    def _position(self, column: _Column | None) -> int | None:
        return None if column is None else self._columns.index(column)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector while many objects are made that all stay alive.

    Reading 100,000 rows makes a million objects; the collector would scan them over and over
    (half a second here) and find nothing to free. Never held across a `yield`.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _padded(cells: Sequence[Any], width: int) -> list[Any]:
    """A short row (a csv record with fewer fields) filled up with empty cells."""
    return [*cells, *([None] * (width - len(cells)))]


def _key_text(value: Any) -> str:
    """A key as text: 123.0 from a number cell is '123', a date is dd-mm-jjjj."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.strftime("%d-%m-%Y")
    return str(value).strip()

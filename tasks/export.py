"""Exporting the trail for a period: every record of every run written in it, oldest first.

For an auditor who wants the records of a month or a year in one file, across runs: JSON Lines
holds the records byte for byte as klerk wrote them (their hashes still match the chain), CSV
flattens the Logboek Dataverwerkingen and BIO fields into columns for a spreadsheet. An export
reads the trails; it does not verify them (`klerk audit verify` does).
"""

from __future__ import annotations

import csv
import datetime as dt
import heapq
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from tasks.errors import KlerkError

READ_BYTES = 1 << 16
"""How much of one trail is read at a time: an export may merge the trails of many runs, and
keeps no file open between reads."""

CSV_COLUMNS: tuple[tuple[str, bool], ...] = (
    ("trace_id", False),
    ("operation_id", False),
    ("parent_operation_id", False),
    ("name", False),
    ("start_time", False),
    ("end_time", False),
    ("status_code", False),
    ("klerk.run_id", True),
    ("klerk.task", True),
    ("klerk.seq", False),
    ("klerk.wall_time", False),
    ("bio.actor", True),
    ("bio.action", True),
    ("bio.object", True),
    ("bio.result", True),
    ("bio.origin", True),
    ("dpl.core.processing_activity_id", True),
    ("dpl.core.legal_basis", True),
    ("dpl.core.data_subject_id", True),
    ("klerk.item_key", True),
)
"""The CSV columns, named as in the trail; True for a field under `attributes`."""

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class ExportFormat(StrEnum):
    """How an export is written."""

    JSONL = "jsonl"
    CSV = "csv"


@dataclass(frozen=True)
class ExportedRecord:
    """One trail record in an export: the line as written, and the record it holds."""

    wall_time: str
    run_id: str
    seq: int
    line: bytes
    record: dict[str, Any] = field(compare=False)


@dataclass
class ExportSummary:
    """What an export wrote, and what it had to leave out."""

    records: int = 0
    runs: set[str] = field(default_factory=set)
    unreadable: int = 0
    """Lines in the trails that hold no record (changed, or cut off by a crash): left out."""


def parse_day(text: str, option: str) -> dt.date:
    """A day given as yyyy-mm-dd; a KlerkError naming `option` when it is not one."""
    try:
        if not _DAY.fullmatch(text):
            raise ValueError
        return dt.date.fromisoformat(text)
    except ValueError:
        raise KlerkError(
            f"{option} {text!r} is not a day: give it as yyyy-mm-dd, e.g. 2025-01-31"
        ) from None


def parse_period(first: str, last: str) -> tuple[dt.date, dt.date]:
    """The period from --from to --to, both days included; a KlerkError when it is no period."""
    start, end = parse_day(first, "--from"), parse_day(last, "--to")
    if start > end:
        raise KlerkError(f"--from {start} is after --to {end}: give the earlier day first")
    return start, end


def records_between(
    runs_dir: Path, first: dt.date, last: dt.date, summary: ExportSummary | None = None
) -> Iterator[ExportedRecord]:
    """Every record of every trail under `runs_dir` whose klerk.wall_time (UTC) falls on a day
    from `first` to `last`, ordered by that time; a run's records that share a millisecond stay
    in the order written. Lines that hold no record are counted in `summary` and left out."""
    summary = summary if summary is not None else ExportSummary()
    trails = sorted(runs_dir.glob("*/audit.jsonl")) if runs_dir.is_dir() else []
    period = (first.isoformat(), last.isoformat())
    in_period = (_in_period(trail, period, summary) for trail in trails)
    yield from heapq.merge(*in_period, key=lambda r: (r.wall_time, r.run_id, r.seq))


def _in_period(
    trail: Path, period: tuple[str, str], summary: ExportSummary
) -> Iterator[ExportedRecord]:
    for line in _lines(trail, summary):
        try:
            record = json.loads(line)
            wall_time = record["klerk.wall_time"]
            seq = record["klerk.seq"]
            attributes = record.get("attributes")
            run_id = attributes.get("klerk.run_id") if isinstance(attributes, dict) else None
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            summary.unreadable += 1
            continue
        if not isinstance(wall_time, str) or not isinstance(seq, int):
            summary.unreadable += 1
            continue
        if period[0] <= wall_time[:10] <= period[1]:
            yield ExportedRecord(wall_time, str(run_id or trail.parent.name), seq, line, record)


def _lines(trail: Path, summary: ExportSummary) -> Iterator[bytes]:
    """The whole lines of a trail (without their newline), read a block at a time with the file
    closed in between; a cut-off last line counts as unreadable."""
    offset, size = 0, READ_BYTES
    while True:
        with trail.open("rb") as stream:
            stream.seek(offset)
            block = stream.read(size)
        end = block.rfind(b"\n") + 1
        if not end:
            if len(block) < size:  # the end of the file
                summary.unreadable += bool(block)
                return
            size *= 2  # a line longer than a block
            continue
        offset, size = offset + end, READ_BYTES
        yield from block[: end - 1].split(b"\n")


def write_export(
    records: Iterable[ExportedRecord], output: IO[bytes], form: ExportFormat, summary: ExportSummary
) -> None:
    """Write `records` to `output`: JSON Lines as written in the trails, or CSV with a header."""
    if form is ExportFormat.JSONL:
        for exported in records:
            output.write(exported.line + b"\n")
            _count(summary, exported)
        return
    text = io.TextIOWrapper(output, encoding="utf-8", newline="")
    try:
        writer = csv.writer(text)
        writer.writerow(name for name, _ in CSV_COLUMNS)
        for exported in records:
            writer.writerow(_row(exported.record))
            _count(summary, exported)
        text.flush()
    finally:
        text.detach()  # the caller closes `output`


def _count(summary: ExportSummary, exported: ExportedRecord) -> None:
    summary.records += 1
    summary.runs.add(exported.run_id)


def _row(record: dict[str, Any]) -> list[str]:
    attributes = record.get("attributes")
    if not isinstance(attributes, dict):
        attributes = {}
    return [_cell((attributes if nested else record).get(name)) for name, nested in CSV_COLUMNS]


def _cell(value: Any) -> str:
    """A value as CSV text; text that a spreadsheet would run as a formula gets a leading '."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text

"""`klerk audit export`: the trail records of a period, across runs, as written or as CSV."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tasks.errors import KlerkError
from tasks.export import (
    CSV_COLUMNS,
    READ_BYTES,
    ExportFormat,
    ExportSummary,
    parse_period,
    records_between,
    write_export,
)
from tasks.trail import Trail, canonical, pseudonym
from tests.conftest import _klerk

BSN = "999990019"
KEY = b"k" * 32


def _run(runs: Path, run_id: str, times: list[str], result: str = "done") -> Path:
    """A trail written by Trail for run `run_id`, one record per time in `times` (UTC), as if
    it had been written then: the wall times are set afterwards (an export does not verify)."""
    path = runs / run_id / "audit.jsonl"
    trail = Trail(
        path,
        run_id=run_id,
        trace_id="0" * 32,
        task="vergunningen-invoeren",
        definition_sha256="a" * 64,
        app="parkeren",
        processing_activity="https://register.example/parkeervergunningen",
        legal_basis="AVG art. 6 lid 1 sub e",
        actor="schedule:nacht",
        subject_key=KEY,
    )
    trail.record("run_started")
    for n in range(len(times) - 2):
        trail.record(
            "action",
            action="fill",
            obj="fill label 'BSN'",
            item_key=f"{run_id}-{n}",
            subject=BSN,
            result=result,
        )
    trail.record("run_ended")
    trail.close()
    lines = []
    for line, wall_time in zip(path.read_text(encoding="utf-8").splitlines(), times, strict=True):
        record = json.loads(line)
        record["klerk.wall_time"] = wall_time
        lines.append(canonical(record) + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _export(runs: Path, first: str, last: str, form: ExportFormat) -> tuple[bytes, ExportSummary]:
    summary = ExportSummary()
    output = io.BytesIO()
    write_export(records_between(runs, *parse_period(first, last), summary), output, form, summary)
    return output.getvalue(), summary


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """Two runs over three days, the second between records of the first."""
    runs = tmp_path / "runs"
    _run(
        runs,
        "20250101-230000-aaaaaa",
        [
            "2025-01-01T23:59:59.999Z",
            "2025-01-02T00:00:00.000Z",
            "2025-01-02T12:00:00.000Z",
            "2025-01-03T00:00:00.000Z",
        ],
    )
    _run(
        runs,
        "20250102-090000-bbbbbb",
        ["2025-01-02T09:00:00.000Z", "2025-01-02T12:00:00.000Z", "2025-01-02T23:59:59.999Z"],
    )
    (runs / "ledger.jsonl").write_text("{}\n", encoding="utf-8")  # a file beside the run folders
    return runs


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def test_jsonl_holds_the_records_of_the_period_as_written_in_time_order(runs: Path) -> None:
    first = _lines(runs / "20250101-230000-aaaaaa" / "audit.jsonl")
    second = _lines(runs / "20250102-090000-bbbbbb" / "audit.jsonl")

    exported, summary = _export(runs, "2025-01-02", "2025-01-02", ExportFormat.JSONL)

    # the same millisecond in two runs: ordered by run id
    assert exported.splitlines() == [first[1], second[0], first[2], second[1], second[2]]
    assert exported.endswith(b"\n")
    assert (summary.records, len(summary.runs), summary.unreadable) == (5, 2, 0)


def test_both_days_of_a_period_are_included(runs: Path) -> None:
    exported, _ = _export(runs, "2025-01-01", "2025-01-03", ExportFormat.JSONL)
    times = [json.loads(line)["klerk.wall_time"] for line in exported.splitlines()]
    assert len(times) == 7 and times == sorted(times)
    assert times[0].startswith("2025-01-01") and times[-1].startswith("2025-01-03")
    assert _export(runs, "2025-01-04", "2025-12-31", ExportFormat.JSONL)[0] == b""


def test_csv_has_a_column_per_field_and_no_bsn(runs: Path) -> None:
    exported, summary = _export(runs, "2025-01-02", "2025-01-02", ExportFormat.CSV)

    text = exported.decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert list(rows[0]) == [name for name, _ in CSV_COLUMNS]
    assert len(rows) == summary.records == 5
    action = rows[0]
    assert action["name"] == "action" and action["klerk.run_id"] == "20250101-230000-aaaaaa"
    assert action["klerk.seq"] == "2" and action["klerk.wall_time"] == "2025-01-02T00:00:00.000Z"
    assert action["bio.actor"] == "schedule:nacht" and action["bio.object"] == "fill label 'BSN'"
    assert action["dpl.core.data_subject_id"] == pseudonym(BSN, KEY)
    assert action["dpl.core.legal_basis"] == "AVG art. 6 lid 1 sub e"
    assert action["klerk.item_key"] == "20250101-230000-aaaaaa-0"
    assert rows[1]["parent_operation_id"] == "" and rows[1]["name"] == "run_started"
    assert BSN not in text


def test_csv_cells_never_run_as_formulas(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    day = "2025-03-01T10:00:00.000Z"
    _run(runs, "r1", [day, day, day], result='=HYPERLINK("http://x")')

    exported, _ = _export(runs, "2025-03-01", "2025-03-01", ExportFormat.CSV)

    rows = list(csv.DictReader(io.StringIO(exported.decode("utf-8"), newline="")))
    assert rows[1]["bio.result"] == '\'=HYPERLINK("http://x")'


def test_lines_without_a_record_are_left_out_and_counted(runs: Path) -> None:
    path = runs / "20250102-090000-bbbbbb" / "audit.jsonl"
    lines = _lines(path)
    path.write_bytes(lines[0] + b"\nnot json\n" + lines[1] + b"\n" + lines[2][:30])  # cut off

    exported, summary = _export(runs, "2025-01-02", "2025-01-02", ExportFormat.JSONL)

    assert lines[0] in exported.splitlines() and lines[1] in exported.splitlines()
    assert (summary.records, summary.unreadable) == (4, 2)


def test_a_record_longer_than_a_read_is_exported_whole(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    day = "2025-03-01T10:00:00.000Z"
    path = _run(runs, "r1", [day, day, day], result="x" * (3 * READ_BYTES))

    exported, _ = _export(runs, "2025-03-01", "2025-03-01", ExportFormat.JSONL)

    assert exported == path.read_bytes()


@pytest.mark.parametrize(
    ("first", "last", "message"),
    [
        ("2025-13-01", "2025-12-31", "--from '2025-13-01' is not a day: give it as yyyy-mm-dd"),
        ("2025-01-01", "20250131", "--to '20250131' is not a day"),
        ("2025-02-01", "2025-01-31", "--from 2025-02-01 is after --to 2025-01-31"),
    ],
)
def test_a_bad_period_is_refused(first: str, last: str, message: str) -> None:
    with pytest.raises(KlerkError, match=message):
        parse_period(first, last)


def test_the_cli_writes_the_export_atomically_or_to_standard_output(
    runs: Path, tmp_path: Path
) -> None:
    klerk = _klerk(tmp_path, "http://127.0.0.1:9")  # no app needed: the export reads runs/
    output = tmp_path / "export" / "januari.csv"
    period = ["--from", "2025-01-02", "--to", "2025-01-02"]

    written = klerk("audit", "export", *period, "--format", "csv", "--output", str(output))

    assert written.returncode == 0, written.stderr
    assert "5 records of 2 runs from 2025-01-02 to 2025-01-02" in written.stderr
    assert len(output.read_text(encoding="utf-8").splitlines()) == 6  # with the header
    assert [p.name for p in output.parent.iterdir()] == ["januari.csv"]  # no temporary left

    printed = klerk("audit", "export", *period)
    assert printed.returncode == 0, printed.stderr
    assert len(printed.stdout.splitlines()) == 5
    assert all(json.loads(line)["klerk.wall_time"] for line in printed.stdout.splitlines())

    refused = klerk("audit", "export", "--from", "2025-01-31", "--to", "2025-01-01")
    assert refused.returncode == 2
    assert "--from 2025-01-31 is after --to 2025-01-01" in refused.stderr
    assert "Traceback" not in refused.stderr

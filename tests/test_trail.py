"""The audit trail: a hash chain that `klerk audit verify` checks, pointing at what was changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.trail import Trail
from tasks.verify import Verdict, verify_trail


def _trail(path: Path, items: int = 3) -> Path:
    trail = Trail(
        path,
        run_id="r1",
        trace_id="0" * 32,
        task="t",
        definition_sha256="a" * 64,
        app="parkeren",
        processing_activity="https://register.example/1",
        legal_basis="AVG art. 6 lid 1 sub e",
        actor="test",
        subject_key=b"k" * 32,
    )
    trail.record("run_started", sync=True)
    for n in range(items):
        trail.record("item_started", item_key=f"K-{n}", subject="999990019")
        trail.record("item_ended", item_key=f"K-{n}", result="done", sync=True)
    trail.record("run_ended", sync=True)
    trail.close()
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_an_untouched_trail_is_intact(tmp_path: Path) -> None:
    report = verify_trail(_trail(tmp_path / "audit.jsonl"))
    assert (report.verdict, report.records, report.findings) == (Verdict.INTACT, 8, [])
    assert "999990019" not in (tmp_path / "audit.jsonl").read_text()


def test_a_changed_record_is_found_by_line_and_seq(tmp_path: Path) -> None:
    path = _trail(tmp_path / "audit.jsonl")
    lines = _lines(path)
    record = json.loads(lines[3])
    record["attributes"]["bio.result"] = "business_error"
    lines[3] = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
    path.write_text("".join(lines), encoding="utf-8")

    report = verify_trail(path)

    assert report.verdict is Verdict.TAMPERED
    assert [(f.line, f.seq) for f in report.findings] == [(5, 5)]
    assert "hash chain broken" in report.findings[0].problem


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("remove", [(4, 5, "records 4..4 are missing"), (4, 5, "hash chain broken")]),
        (
            "swap",
            [(3, 4, "records 3..3 are missing"), (3, 4, "hash chain"), (4, 3, "out of order")],
        ),
        ("reformat", [(2, 2, "record was rewritten")]),
    ],
)
def test_removed_moved_or_rewritten_records(
    tmp_path: Path, change: str, expected: list[tuple[int, int, str]]
) -> None:
    path = _trail(tmp_path / "audit.jsonl")
    lines = _lines(path)
    if change == "remove":
        del lines[3]
    elif change == "swap":
        lines[2], lines[3] = lines[3], lines[2]
    else:
        lines[1] = json.dumps(json.loads(lines[1]), sort_keys=True) + "\n"
    path.write_text("".join(lines), encoding="utf-8")

    report = verify_trail(path)

    assert report.verdict is Verdict.TAMPERED
    found = [(f.line, f.seq, f.problem) for f in report.findings]
    assert len(found) >= len(expected)
    for (line, seq, text), (f_line, f_seq, f_text) in zip(expected, found, strict=False):
        assert (line, seq) == (f_line, f_seq) and text in f_text


def test_a_truncated_trail_is_incomplete(tmp_path: Path) -> None:
    path = _trail(tmp_path / "audit.jsonl")
    lines = _lines(path)
    path.write_text("".join(lines[:-1]) + lines[-1][:40], encoding="utf-8")

    report = verify_trail(path)

    assert report.verdict is Verdict.INCOMPLETE
    assert any("cut off" in f.problem for f in report.findings)
    assert any("no run_ended" in f.problem for f in report.findings)


def test_a_resumed_trail_continues_the_chain(tmp_path: Path) -> None:
    path = _trail(tmp_path / "audit.jsonl", items=1)
    _trail(path, items=1)  # a resume appends to the same file
    report = verify_trail(path)
    assert (report.verdict, report.records) == (Verdict.INTACT, 8)


def test_a_missing_trail_cannot_be_read(tmp_path: Path) -> None:
    assert verify_trail(tmp_path / "nope.jsonl").verdict is Verdict.UNREADABLE

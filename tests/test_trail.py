"""The audit trail: a hash chain that `klerk audit verify` checks, pointing at what was changed."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tasks import verify
from tasks.signing import Signer, create_keys, load_public_key, load_signer
from tasks.trail import Trail
from tasks.verify import Report, Verdict, verify_trail


def _key_files(folder: Path) -> tuple[Path, Path]:
    private = folder / "keys" / "signing.key"
    if not private.exists():
        create_keys(private)
    return private, private.with_suffix(".pub")


def _public(path: Path) -> Ed25519PublicKey:
    return load_public_key(_key_files(path.parent)[1])


def _verify(path: Path) -> Report:
    return verify_trail(path, _public(path))


def _open(path: Path, signer: Signer | None = None, checkpoint_every: int = 500) -> Trail:
    return Trail(
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
        signer=signer,
        checkpoint_every=checkpoint_every,
    )


def _trail(path: Path, items: int = 3, checkpoint_every: int = 500) -> Path:
    signer = load_signer(_key_files(path.parent)[0])
    trail = _open(path, signer, checkpoint_every)
    trail.record("run_started", sync=True)
    for n in range(items):
        trail.record("item_started", item_key=f"K-{n}", subject="999990019")
        trail.record("item_ended", item_key=f"K-{n}", result="done", sync=True)
    trail.record("run_ended", sync=True)
    trail.checkpoint()
    trail.close()
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_an_untouched_trail_is_intact(tmp_path: Path) -> None:
    report = _verify(_trail(tmp_path / "audit.jsonl"))
    assert (report.verdict, report.records, report.findings) == (Verdict.INTACT, 9, [])
    assert "999990019" not in (tmp_path / "audit.jsonl").read_text()


def test_a_changed_record_is_found_by_line_and_seq(tmp_path: Path) -> None:
    path = _trail(tmp_path / "audit.jsonl")
    lines = _lines(path)
    record = json.loads(lines[3])
    record["attributes"]["bio.result"] = "business_error"
    lines[3] = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
    path.write_text("".join(lines), encoding="utf-8")

    report = _verify(path)

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

    report = _verify(path)

    assert report.verdict is Verdict.TAMPERED
    found = [(f.line, f.seq, f.problem) for f in report.findings]
    assert len(found) >= len(expected)
    for (line, seq, text), (f_line, f_seq, f_text) in zip(expected, found, strict=False):
        assert (line, seq) == (f_line, f_seq) and text in f_text


def test_a_truncated_trail_is_incomplete(tmp_path: Path) -> None:
    path = _trail(tmp_path / "audit.jsonl")
    lines = _lines(path)
    path.write_text("".join(lines[:-1]) + lines[-1][:40], encoding="utf-8")

    report = _verify(path)

    assert report.verdict is Verdict.INCOMPLETE
    assert any("cut off" in f.problem for f in report.findings)
    assert any("sealed up to seq 0" in f.problem for f in report.findings)


def test_a_resumed_trail_continues_the_chain(tmp_path: Path) -> None:
    path = _trail(tmp_path / "audit.jsonl", items=1)
    _trail(path, items=1)  # a resume appends to the same file
    report = _verify(path)
    assert (report.verdict, report.records) == (Verdict.INTACT, 10)


def test_a_missing_trail_cannot_be_read(tmp_path: Path) -> None:
    assert _verify(tmp_path / "nope.jsonl").verdict is Verdict.UNREADABLE


def test_periodic_checkpoints_seal_a_crashed_run_up_to_the_last_one(tmp_path: Path) -> None:
    path = _trail(tmp_path / "audit.jsonl", items=5, checkpoint_every=4)
    lines = _lines(path)
    checkpoints = [n for n, line in enumerate(lines) if json.loads(line)["name"] == "checkpoint"]
    assert len(checkpoints) >= 3  # two periodic ones and the final one
    second = checkpoints[1]
    path.write_text("".join(lines[: second + 3]), encoding="utf-8")  # died after 2 more records

    report = _verify(path)

    assert report.verdict is Verdict.INCOMPLETE
    sealed = json.loads(lines[second])["klerk.seq"]
    assert report.findings[-1].problem.endswith(f"it is sealed up to seq {sealed}")


def test_a_forged_checkpoint_or_another_key_is_found(tmp_path: Path) -> None:
    path = _trail(tmp_path / "audit.jsonl")
    other = tmp_path / "other"
    create_keys(other / "signing.key")

    report = verify_trail(path, load_public_key(other / "signing.pub"))

    assert report.verdict is Verdict.TAMPERED
    assert "checkpoint signature does not verify" in report.findings[0].problem


def test_hashes_are_never_masked_but_free_text_is(tmp_path: Path) -> None:
    trail = _open(tmp_path / "audit.jsonl")
    trail.record("x", extra={"note": "BSN 999990019"}, facts={"hash": "ab999990019cd"})
    trail.close()
    record = json.loads((tmp_path / "audit.jsonl").read_text())
    assert record["attributes"]["hash"] == "ab999990019cd"
    assert "999990019" not in record["attributes"]["note"]


@pytest.mark.parametrize(
    ("quirk", "line", "problem"),
    [
        ("duplicate key", 3, "key 'name' twice"),
        ("NaN", 3, "NaN is not a JSON number"),
        ("Infinity", 3, "-Infinity is not a JSON number"),
        ("number out of range", 3, "a number too large for JSON"),
        ("lone surrogate", 3, "lone surrogate \\ud800"),
        ("BOM", 1, "a byte order mark (BOM) before the record"),
        ("not UTF-8", 3, "not UTF-8 (byte 0xff at column"),
        ("escaped", 3, "record was rewritten (not as klerk wrote it)"),
    ],
)
def test_json_quirks_are_found_by_line_and_seq(
    tmp_path: Path, quirk: str, line: int, problem: str
) -> None:
    path = _trail(tmp_path / "audit.jsonl")
    lines = path.read_bytes().splitlines(keepends=True)
    raw = lines[line - 1]
    if quirk == "duplicate key":
        raw = raw.replace(b'{"attributes":', b'{"name":"x","attributes":', 1)
    elif quirk == "NaN":
        raw = re.sub(rb'"klerk.monotonic":[0-9.]+', b'"klerk.monotonic":NaN', raw)
    elif quirk == "Infinity":
        raw = re.sub(rb'"klerk.monotonic":[0-9.]+', b'"klerk.monotonic":-Infinity', raw)
    elif quirk == "number out of range":
        raw = re.sub(rb'"klerk.monotonic":[0-9.]+', b'"klerk.monotonic":1e999', raw)
    elif quirk == "lone surrogate":
        raw = raw.replace(b'"bio.result":"', b'"bio.result":"\\ud800', 1)
    elif quirk == "BOM":
        raw = b"\xef\xbb\xbf" + raw
    elif quirk == "not UTF-8":
        raw = raw.replace(b'"bio.result":"', b'"bio.result":"\xff', 1)
    else:  # the same record, with a character escaped that klerk writes as it is
        raw = raw.replace(b'"trace_id":"0', b'"trace_id":"\\u0030', 1)
    assert raw != lines[line - 1]
    lines[line - 1] = raw
    path.write_bytes(b"".join(lines))

    for workers in (1, 2):
        report = verify_trail(path, _public(path), workers=workers)

        assert report.verdict is Verdict.TAMPERED
        first = report.findings[0]
        assert (first.line, first.seq) == (line, line), first
        assert first.problem.startswith("record was rewritten (not as klerk wrote it)"), first
        assert problem in first.problem
        assert report.findings[1].line == line + 1  # the chain breaks at the next record


def test_a_record_klerk_wrote_is_never_taken_for_a_rewritten_one(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    signer = load_signer(_key_files(tmp_path)[0])
    trail = _open(path, signer)
    trail.record("run_started")
    awkward = {
        "text": 'quote " backslash \\ slash / tab \t newline \n \x00 \x1f \x7f é € 𝄞 \u2028 \ufeff',
        "numbers": [0.1, 1e-05, 1e16, -0.0, 12345678901234567890, 2.5e-300, -7],
        "nested": {"b": [True, False, None, {}], "a": []},
    }
    trail.record("action", facts={"klerk.awkward": awkward})
    trail.record("run_ended")
    trail.checkpoint()
    trail.close()

    for workers in (1, 2):
        report = verify_trail(path, _public(path), workers=workers)
        assert (report.verdict, report.findings) == (Verdict.INTACT, []), report.findings


@pytest.mark.parametrize("change", ["none", "remove", "flip", "swap", "cut", "resign"])
def test_checking_in_stretches_finds_what_checking_in_one_go_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    monkeypatch.setattr(verify, "BLOCK_BYTES", 4096)  # many blocks in a small trail
    path = _trail(tmp_path / "audit.jsonl", items=40, checkpoint_every=9)
    lines = path.read_bytes().splitlines(keepends=True)
    middle = len(lines) // 2
    if change == "remove":
        del lines[middle]
    elif change == "flip":
        lines[middle + 1] = lines[middle + 1].replace(b'"status_code":1', b'"status_code":2')
    elif change == "swap":
        lines[3], lines[-5] = lines[-5], lines[3]
    elif change == "cut":
        lines = [*lines[: middle + 3], lines[middle + 3][:50]]
    elif change == "resign":  # sealed by someone else's key from the middle on
        other = tmp_path / "other"
        trail = _open(path, load_signer(_key_files(other)[0]))
        trail.record("run_ended")
        trail.checkpoint()
        trail.close()
        lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines))

    one_go = verify_trail(path, _public(path), workers=1)
    for workers in (2, 3, 5):
        stretches = verify_trail(path, _public(path), workers=workers)
        assert (stretches.verdict, stretches.records) == (one_go.verdict, one_go.records)
        assert stretches.findings == one_go.findings
    assert (one_go.verdict is Verdict.INTACT) == (change == "none")


def test_a_big_trail_is_checked_by_several_processes_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _trail(tmp_path / "audit.jsonl", items=30)
    monkeypatch.setattr(verify, "PARALLEL_FROM_BYTES", 1)
    assert verify_trail(path, _public(path)).verdict is Verdict.INTACT
    lines = path.read_bytes().splitlines(keepends=True)
    del lines[40]
    path.write_bytes(b"".join(lines))
    report = verify_trail(path, _public(path))
    assert [(f.line, f.seq) for f in report.findings][:2] == [(41, 42), (41, 42)]


def test_records_longer_than_a_block_are_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _trail(tmp_path / "audit.jsonl", items=4, checkpoint_every=5)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[6] = lines[6].replace(b'"status_code":1', b'"status_code":2')
    path.write_bytes(b"".join(lines))
    whole = verify_trail(path, _public(path))

    monkeypatch.setattr(verify, "BLOCK_BYTES", 100)  # every record spans several blocks
    for workers in (1, 2):
        pieces = verify_trail(path, _public(path), workers=workers)
        assert (pieces.verdict, pieces.records, pieces.findings) == (
            whole.verdict,
            whole.records,
            whole.findings,
        )
    assert [(f.line, f.seq) for f in whole.findings] == [(8, 8)]


def test_a_periodic_checkpoint_right_after_run_ended_is_no_gap(tmp_path: Path) -> None:
    # 4 items with a checkpoint every 5 records: one falls on run_ended, the final one follows
    path = _trail(tmp_path / "audit.jsonl", items=4, checkpoint_every=5)
    names = [json.loads(line)["name"] for line in _lines(path)]
    assert names[-3:] == ["run_ended", "checkpoint", "checkpoint"]

    report = _verify(path)

    assert (report.verdict, report.findings) == (Verdict.INTACT, [])


def test_stretches_are_checked_in_new_processes_when_threads_run(tmp_path: Path) -> None:
    path = _trail(tmp_path / "audit.jsonl", items=20)
    lines = _lines(path)
    del lines[30]
    path.write_text("".join(lines), encoding="utf-8")
    one_go = verify_trail(path, _public(path), workers=1)
    stop = threading.Event()
    waiting = threading.Thread(target=stop.wait)  # forking now would be unsafe: spawn
    waiting.start()
    try:
        stretches = verify_trail(path, _public(path), workers=2)
    finally:
        stop.set()
        waiting.join()
    assert (stretches.verdict, stretches.findings) == (one_go.verdict, one_go.findings)
    assert [(f.line, f.seq) for f in one_go.findings][:1] == [(31, 32)]

"""The audit trail: a hash chain that `klerk audit verify` checks, pointing at what was changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

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

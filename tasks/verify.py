"""Checking a run's audit trail: every record readable and canonical, numbered without gaps,
chained by hash to the one before, and the run closed by a run_ended record.

The verdict says what an auditor needs to know first; the findings say where (file, line,
record seq) and what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tasks.signing import checkpoint_message, signature_is_valid
from tasks.trail import GENESIS_HASH, canonical, record_hash


class Verdict(IntEnum):
    """The outcome of a verification; the value is the exit code of `klerk audit verify`."""

    INTACT = 0
    TAMPERED = 1
    INCOMPLETE = 4
    UNREADABLE = 5


@dataclass(frozen=True)
class Finding:
    """One thing wrong with a trail, and where."""

    path: Path
    line: int
    seq: int | None
    problem: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" + (f" (seq {self.seq})" if self.seq is not None else "")
        return f"{where}: {self.problem}"


@dataclass
class Report:
    """The verdict on one trail and the findings behind it."""

    path: Path
    verdict: Verdict = Verdict.INTACT
    records: int = 0
    findings: list[Finding] = field(default_factory=list)

    def add(self, verdict: Verdict, line: int, seq: int | None, problem: str) -> None:
        """Record a finding; the worst verdict wins (tampered over incomplete)."""
        self.findings.append(Finding(self.path, line, seq, problem))
        if self.verdict is Verdict.INTACT or verdict is Verdict.TAMPERED:
            self.verdict = verdict


def verify_trail(path: Path, public_key: Ed25519PublicKey) -> Report:
    """Check one audit.jsonl file against the public key of the signing key pair."""
    report = Report(path)
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError as exc:
        report.add(Verdict.UNREADABLE, 0, None, f"cannot read: {exc.strerror or exc}")
        return report
    if lines and lines[-1] == b"":
        lines.pop()
    else:
        report.add(Verdict.INCOMPLETE, len(lines), None, "the last record is cut off")
        lines = lines[:-1]
    if not lines:
        report.add(Verdict.INCOMPLETE, 1, None, "the trail is empty")
        return report
    expected_seq, expected_hash, last_name, before_last = 1, GENESIS_HASH, "", ""
    sealed_seq = 0
    for number, raw in enumerate(lines, start=1):
        try:
            record = json.loads(raw.decode("utf-8"))
            seq = int(record["klerk.seq"])
            prev_hash = str(record["klerk.prev_hash"])
            name = str(record["name"])
        except (UnicodeDecodeError, ValueError, KeyError, TypeError):
            report.add(Verdict.TAMPERED, number, None, "not a trail record (unreadable JSON)")
            expected_seq, expected_hash = expected_seq + 1, record_hash(raw)
            continue
        report.records += 1
        if canonical(record).encode("utf-8") != raw:
            report.add(
                Verdict.TAMPERED, number, seq, "record was rewritten (not as klerk wrote it)"
            )
        if seq != expected_seq:
            what = (
                f"records {expected_seq}..{seq - 1} are missing"
                if seq > expected_seq
                else f"out of order: expected seq {expected_seq}"
            )
            report.add(Verdict.TAMPERED, number, seq, what)
        if prev_hash != expected_hash:
            report.add(
                Verdict.TAMPERED,
                number,
                seq,
                "hash chain broken: the record before this one was changed, removed or moved",
            )
        if name == "checkpoint" and _checkpoint_holds(
            record, seq, expected_hash, public_key, report, number
        ):
            sealed_seq = seq
        before_last, last_name = last_name, name
        expected_seq, expected_hash = seq + 1, record_hash(raw)
    if (before_last, last_name) != ("run_ended", "checkpoint"):
        report.add(
            Verdict.INCOMPLETE,
            len(lines),
            expected_seq - 1,
            "no signed checkpoint after run_ended at the end: the run was killed or the trail "
            f"was truncated; it is sealed up to seq {sealed_seq}",
        )
    return report


def _checkpoint_holds(
    record: dict[str, Any],
    seq: int,
    previous_hash: str,
    public_key: Ed25519PublicKey,
    report: Report,
    number: int,
) -> bool:
    attributes = record.get("attributes", {})
    sealed = str(attributes.get("klerk.checkpoint.sealed_hash", ""))
    signature = str(attributes.get("klerk.checkpoint.signature", ""))
    run_id = str(attributes.get("klerk.run_id", ""))
    if sealed != previous_hash:
        report.add(
            Verdict.TAMPERED, number, seq, "checkpoint seals another record than the one before it"
        )
        return False
    if not signature_is_valid(public_key, signature, checkpoint_message(run_id, seq, sealed)):
        report.add(
            Verdict.TAMPERED,
            number,
            seq,
            "checkpoint signature does not verify (changed, or signed with another key: "
            f"{attributes.get('klerk.checkpoint.key_id', '?')})",
        )
        return False
    return True

"""The ledger over all runs: runs/ledger.jsonl, one signed, hash-chained entry per event in a
run's life (opened, resumed, sealed, pruned).

A run's first record names the ledger entry before it and the last sealed checkpoint of the
run before it; the ledger entry that opens the run holds the hash of that first record. So a
run cannot be removed, replaced, added afterwards, cut short or forked off an older ledger
without `klerk audit verify --all` saying so. Entries are appended under an exclusive file
lock, so runs of different tasks on one host can start and end at the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tasks.errors import AuditError
from tasks.signing import Signer, signature_is_valid
from tasks.trail import GENESIS_HASH, canonical, record_hash
from tasks.verify import Report, Verdict, verify_trail

LEDGER_FILE = "ledger.jsonl"
OPENED, RESUMED, SEALED, PRUNED = "opened", "resumed", "sealed", "pruned"
PREVIOUS_ENTRY = "klerk.ledger.previous_entry"
PREVIOUS_RUN = "klerk.ledger.previous_run"
PREVIOUS_CHECKPOINT = "klerk.ledger.previous_checkpoint"


def ledger_message(entry: Mapping[str, Any]) -> bytes:
    """What a ledger entry's signature signs: the entry without its signature, canonical."""
    unsigned = {key: value for key, value in entry.items() if key != "signature"}
    return b"klerk-ledger:" + canonical(unsigned).encode("utf-8")


@dataclass(frozen=True)
class Head:
    """The end of the ledger as a new entry sees it."""

    seq: int = 0
    entry_hash: str = GENESIS_HASH
    previous_run: str = ""
    previous_checkpoint: str = GENESIS_HASH

    def facts(self) -> dict[str, str]:
        """What a run's first record says about the runs before it."""
        return {
            PREVIOUS_ENTRY: self.entry_hash,
            PREVIOUS_RUN: self.previous_run,
            PREVIOUS_CHECKPOINT: self.previous_checkpoint,
        }


class Ledger:
    """Appends entries to runs/ledger.jsonl; one process at a time holds it."""

    def __init__(self, runs_dir: Path, signer: Signer) -> None:
        self.path = runs_dir / LEDGER_FILE
        self._signer = signer
        self._held: tuple[int, Head] | None = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[Head]:
        """Hold the ledger: nobody else appends until the block ends. Yields its head."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        except OSError as exc:
            raise AuditError(f"cannot open the ledger {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            head = self._read_head(descriptor)
            self._held = (descriptor, head)
            yield head
        finally:
            self._held = None
            os.close(descriptor)

    def _read_head(self, descriptor: int) -> Head:
        with os.fdopen(os.dup(descriptor), "rb") as stream:
            content = stream.read()
        if content and not content.endswith(b"\n"):
            # an append cut off by a crash: it was never confirmed, so no run relies on it
            cut = content.rfind(b"\n") + 1
            os.ftruncate(descriptor, cut)
            content = content[:cut]
        head = Head()
        for line in content.splitlines():
            try:
                entry = json.loads(line)
                seq = int(entry["seq"])
            except (ValueError, KeyError, TypeError):
                raise AuditError(
                    f"the ledger {self.path} holds an unreadable entry after seq {head.seq}; "
                    "check it with `klerk audit verify --all`"
                ) from None
            head = Head(seq, record_hash(line), head.previous_run, head.previous_checkpoint)
            if entry.get("kind") == SEALED:
                head = Head(seq, head.entry_hash, str(entry["run_id"]), str(entry["record_hash"]))
        return head

    def append(self, kind: str, run_id: str, task: str, **fields: Any) -> None:
        """Add one signed entry; only inside `locked()`. Raises AuditError when it cannot."""
        if self._held is None:
            raise RuntimeError("Ledger.append outside Ledger.locked()")
        descriptor, head = self._held
        now = time.time()
        entry: dict[str, Any] = {
            "seq": head.seq + 1,
            "kind": kind,
            "run_id": run_id,
            "task": task,
            "wall_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "prev_hash": head.entry_hash,
            "key_id": self._signer.key_id,
            **fields,
        }
        entry["signature"] = self._signer.sign(ledger_message(entry))
        line = canonical(entry).encode("utf-8")
        size = os.fstat(descriptor).st_size
        try:
            os.write(descriptor, line + b"\n")
            os.fsync(descriptor)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(descriptor, size)
            raise AuditError(
                f"cannot write the ledger {self.path}: {exc.strerror}; the run stops"
            ) from None
        head = Head(head.seq + 1, record_hash(line), head.previous_run, head.previous_checkpoint)
        if kind == SEALED:
            head = Head(head.seq, head.entry_hash, run_id, str(fields["record_hash"]))
        self._held = (descriptor, head)


# --- verification ---------------------------------------------------------------------------


@dataclass
class Entry:
    """One ledger entry as read back, with where it stands."""

    line: int
    seq: int
    kind: str
    run_id: str
    prev_hash: str
    hash: str
    fields: dict[str, Any]


@dataclass
class _Trail:
    """What the ledger checks need from a run's trail: the hash of a record by its seq."""

    path: Path
    hashes: dict[int, str] = field(default_factory=dict)
    first: dict[str, Any] = field(default_factory=dict)
    last_seq: int = 0


def verify_runs(
    runs_dir: Path, public_key: Ed25519PublicKey, run_ids: Sequence[str] | None = None
) -> list[Report]:
    """Check the ledger and the trails of `run_ids` (default: every run folder) against it.

    The first report is the ledger's own; then one per run, holding the findings about its
    trail and about how it stands in the ledger.
    """
    ledger_path = runs_dir / LEDGER_FILE
    ledger_report, entries = _read_ledger(ledger_path, public_key)
    folders = {p.name: p for p in runs_dir.iterdir() if p.is_dir()} if runs_dir.is_dir() else {}
    checked = sorted(folders) if run_ids is None else list(run_ids)
    by_run: dict[str, list[Entry]] = {}
    for entry in entries:
        by_run.setdefault(entry.run_id, []).append(entry)
    reports = [ledger_report]
    trails: dict[str, _Trail] = {}
    for run_id in checked:
        path = folders[run_id] / "audit.jsonl"
        report = verify_trail(path, public_key)
        trails[run_id] = _read_trail(path)
        if report.verdict is not Verdict.UNREADABLE:
            _check_run(report, trails[run_id], by_run.get(run_id, []), entries, ledger_path)
        reports.append(report)
    if run_ids is None:
        _check_forks(ledger_report, trails)
        for run_id, run_entries in by_run.items():
            if run_id not in folders and run_entries[-1].kind != PRUNED:
                ledger_report.add(
                    Verdict.TAMPERED,
                    run_entries[0].line,
                    run_entries[0].seq,
                    f"run {run_id} is in the ledger but its folder is gone, and it was not "
                    "pruned: the run was removed",
                )
    if entries and not ledger_report.findings:
        ledger_report.records = len(entries)
    return reports


def _read_ledger(path: Path, public_key: Ed25519PublicKey) -> tuple[Report, list[Entry]]:
    report = Report(path)
    entries: list[Entry] = []
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return report, entries
    except OSError as exc:
        report.add(Verdict.UNREADABLE, 0, None, f"cannot read: {exc.strerror or exc}")
        return report, entries
    lines = content.split(b"\n")
    if lines[-1] != b"":
        report.add(Verdict.TAMPERED, len(lines), None, "the last entry is cut off")
    expected_seq, expected_hash = 1, GENESIS_HASH
    for number, raw in enumerate(lines[:-1], start=1):
        try:
            entry = json.loads(raw.decode("utf-8"))
            seq, kind, run_id = int(entry["seq"]), str(entry["kind"]), str(entry["run_id"])
            prev_hash, signature = str(entry["prev_hash"]), str(entry["signature"])
        except (UnicodeDecodeError, ValueError, KeyError, TypeError):
            report.add(Verdict.TAMPERED, number, None, "not a ledger entry (unreadable JSON)")
            expected_seq, expected_hash = expected_seq + 1, record_hash(raw)
            continue
        if canonical(entry).encode("utf-8") != raw:
            report.add(Verdict.TAMPERED, number, seq, "entry was rewritten (not as klerk wrote it)")
        if seq != expected_seq:
            report.add(
                Verdict.TAMPERED,
                number,
                seq,
                f"expected entry {expected_seq}: entries removed, added or reordered",
            )
        if prev_hash != expected_hash:
            report.add(
                Verdict.TAMPERED,
                number,
                seq,
                "ledger chain broken: the entry before this one was changed, removed or moved",
            )
        if not signature_is_valid(public_key, signature, ledger_message(entry)):
            report.add(
                Verdict.TAMPERED,
                number,
                seq,
                "signature does not verify (changed, or signed "
                f"with another key: {entry.get('key_id', '?')})",
            )
        entries.append(Entry(number, seq, kind, run_id, prev_hash, record_hash(raw), entry))
        expected_seq, expected_hash = seq + 1, record_hash(raw)
    report.records = len(entries)
    return report, entries


def _read_trail(path: Path) -> _Trail:
    trail = _Trail(path)
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError:
        return trail
    for number, raw in enumerate(lines[:-1], start=1):
        trail.hashes[number] = record_hash(raw)
        trail.last_seq = number
        if number == 1:
            with contextlib.suppress(ValueError, AttributeError):
                trail.first = json.loads(raw).get("attributes", {})
    return trail


def trail_end(path: Path) -> tuple[int, str]:
    """The seq and hash of the last record of a trail (what a pruned entry keeps of it)."""
    trail = _read_trail(path)
    return trail.last_seq, trail.hashes.get(trail.last_seq, GENESIS_HASH)


def _check_run(
    report: Report, trail: _Trail, run_entries: list[Entry], entries: list[Entry], ledger: Path
) -> None:
    first = trail.first
    if not run_entries:
        if PREVIOUS_ENTRY in first:
            report.add(
                Verdict.TAMPERED,
                1,
                1,
                "the run is not in the ledger: the ledger was rolled back, or the run was added "
                "afterwards",
            )
        return
    opened = run_entries[0]
    if opened.kind != OPENED:
        report.add(
            Verdict.TAMPERED,
            opened.line,
            opened.seq,
            f"the run's first ledger entry is '{opened.kind}', not 'opened'",
            path=ledger,
        )
    for entry in run_entries:
        seq = int(entry.fields.get("record_seq", 0))
        if entry.kind == PRUNED:
            continue
        if trail.hashes.get(seq) != entry.fields.get("record_hash"):
            problem = (
                f"the ledger {entry.kind} this run at record {seq}, but the trail ends at record "
                f"{trail.last_seq}: records were removed"
                if seq > trail.last_seq
                else f"record {seq} is not the one the ledger {entry.kind} this run with: the "
                "run was replaced or rewritten"
            )
            report.add(Verdict.TAMPERED, min(seq, trail.last_seq) or 1, seq, problem)
    if first.get(PREVIOUS_ENTRY) != opened.prev_hash:
        report.add(
            Verdict.TAMPERED,
            1,
            1,
            f"the run follows another ledger entry than the one before its opening entry "
            f"(ledger line {opened.line}): the ledger was forked or reordered",
        )
    expected_checkpoint = _last_checkpoint_before(entries, opened.seq)
    if first.get(PREVIOUS_CHECKPOINT) != expected_checkpoint:
        report.add(
            Verdict.TAMPERED,
            1,
            1,
            "the run names another previous checkpoint than the ledger's last seal before it",
        )
    last = run_entries[-1]
    if last.kind == SEALED and trail.last_seq > int(last.fields.get("record_seq", 0)):
        report.add(
            Verdict.TAMPERED,
            int(last.fields.get("record_seq", 0)) + 1,
            None,
            "records were added after the ledger sealed the run",
        )
    elif last.kind in (OPENED, RESUMED) and report.verdict is Verdict.INTACT:
        report.add(
            Verdict.INCOMPLETE,
            trail.last_seq,
            None,
            "the trail is sealed but the ledger has no seal for it: klerk stopped between the "
            "two, or the ledger was rolled back; `klerk resume` seals it again",
        )


def _last_checkpoint_before(entries: list[Entry], seq: int) -> str:
    checkpoint = GENESIS_HASH
    for entry in entries:
        if entry.seq >= seq:
            break
        if entry.kind == SEALED:
            checkpoint = str(entry.fields.get("record_hash", ""))
    return checkpoint


def _check_forks(report: Report, trails: Mapping[str, _Trail]) -> None:
    followers: dict[str, list[str]] = {}
    for run_id, trail in trails.items():
        previous = trail.first.get(PREVIOUS_ENTRY)
        if isinstance(previous, str):
            followers.setdefault(previous, []).append(run_id)
    for previous, runs in followers.items():
        if len(runs) > 1:
            report.add(
                Verdict.TAMPERED,
                0,
                None,
                f"fork: runs {', '.join(sorted(runs))} all continue from ledger entry "
                f"{previous[:16]}…; only one of them can",
            )

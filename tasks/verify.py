"""Checking a run's audit trail: every record readable and canonical, numbered without gaps,
chained by hash to the one before, and the run closed by a run_ended record. Blocks of sound
records are checked at once, and a large trail on all CPUs; where something is wrong, line by
line.

The verdict says what an auditor needs to know first; the findings say where (file, line,
record seq) and what is wrong.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from enum import IntEnum
from json import encoder as json_encoder
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.hazmat.primitives import serialization
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

    def add(
        self,
        verdict: Verdict,
        line: int,
        seq: int | None,
        problem: str,
        *,
        path: Path | None = None,
    ) -> None:
        """Record a finding (in this trail, or in `path`, e.g. the ledger); the worst verdict
        wins (see `severity`)."""
        self.findings.append(Finding(path or self.path, line, seq, problem))
        if severity(verdict) > severity(self.verdict):
            self.verdict = verdict


def severity(verdict: Verdict) -> int:
    """How bad a verdict is: proof of a change outranks a trail that cannot be read, which
    outranks one that merely stops early."""
    return {Verdict.INTACT: 0, Verdict.INCOMPLETE: 1, Verdict.UNREADABLE: 2, Verdict.TAMPERED: 3}[
        verdict
    ]


BLOCK_BYTES = 1 << 16
"""How much of a trail is read and checked at a time (some 60 records: small enough to stay in
the CPU's caches, which makes it a sixth faster than a block of 1 MiB)."""

PARALLEL_FROM_BYTES = 32 << 20
"""Smaller trails are checked by this process alone: starting workers would cost more than they
save (32 MiB is some 30,000 records); eight times as much where workers must be spawned."""


def verify_trail(path: Path, public_key: Ed25519PublicKey, *, workers: int | None = None) -> Report:
    """Check one audit.jsonl file against the public key of the signing key pair.

    A large trail is checked in `workers` stretches at once (default: one per CPU from
    PARALLEL_FROM_BYTES on), each by its own process. From the first stretch that is not sound,
    the trail is walked again here, line by line, for the exact findings.
    """
    report = Report(path)
    walk = _Walk()
    try:
        with path.open("rb") as trail:
            workers = workers_for(path) if workers is None else workers
            start = _check_stretches(trail, path, public_key, workers, walk) if workers > 1 else 0
            tail = _walk(trail, start, walk, report, public_key)
    except OSError as exc:
        report = Report(path)
        report.add(Verdict.UNREADABLE, 0, None, f"cannot read: {exc.strerror or exc}")
        return report
    _settle(walk)
    for number, seq, how in walk.rewritten:
        detail = f": {how}" if how else ""
        report.add(
            Verdict.TAMPERED, number, seq, f"record was rewritten (not as klerk wrote it){detail}"
        )
    report.findings.sort(key=lambda finding: finding.line)
    report.records = walk.records
    if tail:
        report.add(Verdict.INCOMPLETE, walk.lines + 1, None, "the last record is cut off")
        report.findings.insert(0, report.findings.pop())  # in file order: it was seen first
    if not walk.lines:
        report.add(Verdict.INCOMPLETE, 1, None, "the trail is empty")
    elif (walk.last_event, walk.last_name) != ("run_ended", "checkpoint"):
        report.add(
            Verdict.INCOMPLETE,
            walk.lines,
            walk.expected_seq - 1,
            "no signed checkpoint after run_ended at the end: the run was killed or the trail "
            f"was truncated; it is sealed up to seq {walk.sealed_seq}",
        )
    return report


def workers_for(path: Path) -> int:
    """How many processes verify_trail uses for a trail unless told: one per CPU for a large
    one (see PARALLEL_FROM_BYTES), else one."""
    try:
        size = path.stat().st_size
    except OSError:
        return 1
    if size < PARALLEL_FROM_BYTES * (1 if _can_fork() else 8):
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class _Walk:
    """How far a walk through a trail has come, and what the next record must say."""

    lines: int = 0
    records: int = 0
    expected_seq: int = 1
    expected_hash: str = GENESIS_HASH
    last_event: str | None = None
    """The name of the last record that is not a checkpoint (a periodic checkpoint may fall
    right after run_ended, before the final one)."""
    last_name: str = ""
    sealed_seq: int = 0
    unsealed: list[tuple[int, bytes]] = field(default_factory=list)
    """Lines (number, bytes) after the last valid checkpoint, not yet proven canonical."""
    rewritten: list[tuple[int, int, str]] = field(default_factory=list)
    """Lines found not as klerk writes them once their turn came: (line, seq, how)."""


def _walk(
    trail: BinaryIO, start: int, walk: _Walk, report: Report, public_key: Ed25519PublicKey
) -> bytes:
    """Check every line from byte `start` on; returns the last line if it is cut off."""
    for block in _blocks(trail, start, None):
        if not block.endswith(b"\n"):
            return block
        if not _sound_block(block, walk, public_key):
            for raw in block.split(b"\n")[:-1]:
                walk.lines += 1
                _check_line(raw, walk, report, public_key)
    return b""


def _blocks(trail: BinaryIO, start: int, end: int | None) -> Iterator[bytes]:
    """Whole lines from byte `start` up to `end` (default: the end of the file), about
    BLOCK_BYTES at a time; a last line without its newline comes alone, at the end."""
    trail.seek(start)
    position, pending = start, list[bytes]()  # the start of a line that goes on
    while True:
        size = BLOCK_BYTES if end is None else min(BLOCK_BYTES, end - position)
        data = trail.read(size) if size > 0 else b""
        if not data:
            break
        position += len(data)
        cut = data.rfind(b"\n") + 1
        if cut:
            yield b"".join([*pending, data[:cut]]) if pending else data[:cut]
            pending = []
        if cut < len(data):
            pending.append(data[cut:])
    if pending:
        yield b"".join(pending)


# --- the common case: a block of sound records, checked at once --------------------------------

_DECODER = json.JSONDecoder()
_MAKE_ENCODER = getattr(json_encoder, "c_make_encoder", None)
# what json.dumps runs for canonical(), with the same options, made once instead of per record
_ENCODER: Callable[[Any, int], Iterable[str]] | None = (
    _MAKE_ENCODER(None, str, json_encoder.encode_basestring, None, ":", ",", True, False, False)
    if _MAKE_ENCODER is not None
    else None
)


def _sound_block(block: bytes, walk: _Walk, public_key: Ed25519PublicKey) -> bool:
    """True, and the walk moved past the block, when every line of it is a record that
    continues the chain: nothing to report yet. Else False, the walk untouched, for
    `_check_line` to say what is wrong.

    The block is parsed as one JSON array (faster than line by line). Whether each line is
    written exactly as klerk writes it (sorted keys, no spaces, no duplicate keys, no NaN, no
    needless escapes) is proven only for the lines that no valid checkpoint seals (`_settle`):
    the chain binds every byte before a checkpoint to its signature, so a sealed line is the
    one klerk wrote.
    """
    try:
        lines = block.decode("utf-8").split("\n")
        lines.pop()
        records = _DECODER.decode("[" + ",".join(lines) + "]")
    except (ValueError, RecursionError):  # not UTF-8, or a line that is not JSON
        return False
    if not isinstance(records, list) or len(records) != len(lines):
        return False
    seq_expected, hash_expected = walk.expected_seq, walk.expected_hash
    last_event, last_name, sealed_seq = walk.last_event, walk.last_name, walk.sealed_seq
    sha256 = hashlib.sha256
    unsealed: list[tuple[int, bytes]] = []  # lines of this block after its last valid checkpoint
    sealed = False
    for number, (record, raw) in enumerate(
        zip(records, block.split(b"\n"), strict=False), start=walk.lines + 1
    ):
        if type(record) is not dict:
            return False
        seq, name = record.get("klerk.seq"), record.get("name")
        if type(seq) is not int or seq != seq_expected or type(name) is not str:
            return False
        if record.get("klerk.prev_hash") != hash_expected:
            return False
        if name == "checkpoint":
            if _checkpoint_problem(record, seq, hash_expected, public_key):
                return False
            sealed_seq, sealed, unsealed = seq, True, []
        else:
            last_event = name
        unsealed.append((number, raw))
        last_name = name
        seq_expected, hash_expected = seq + 1, sha256(raw).hexdigest()
    walk.lines += len(lines)
    walk.records += len(lines)
    walk.expected_seq, walk.expected_hash = seq_expected, hash_expected
    walk.last_event, walk.last_name, walk.sealed_seq = last_event, last_name, sealed_seq
    if sealed:
        walk.unsealed = unsealed
    else:
        walk.unsealed += unsealed
    if len(walk.unsealed) > UNSEALED_LIMIT:  # a trail without checkpoints: do not hoard it
        _settle(walk)
    return True


UNSEALED_LIMIT = 20_000
"""At most this many lines wait for a checkpoint before they are checked one by one."""


def _settle(walk: _Walk) -> None:
    """Prove the lines no valid checkpoint sealed canonical, one by one: every byte before a
    valid checkpoint is bound to its signature by the hash chain, so only these could have
    been written by somebody other than klerk without breaking the chain."""
    encode, join = _ENCODER, "".join
    for number, raw in walk.unsealed:
        record = json.loads(raw)
        try:
            line = join(encode(record, 0)) if encode else canonical(record)
            if line.encode("utf-8") == raw:
                continue
        except (ValueError, RecursionError, UnicodeEncodeError):
            pass
        read = _read(raw)
        how = read.rewritten if read is not None and read.rewritten is not None else ""
        walk.rewritten.append((number, int(record.get("klerk.seq", 0)), how))
    walk.unsealed = []


# --- line by line, saying what is wrong ---------------------------------------------------------


def _check_line(raw: bytes, walk: _Walk, report: Report, public_key: Ed25519PublicKey) -> None:
    """Check the line numbered walk.lines, report what is wrong with it, and step past it."""
    number = walk.lines
    line = _read(raw)
    if line is None:
        report.add(Verdict.TAMPERED, number, None, "not a trail record (unreadable JSON)")
        walk.expected_seq, walk.expected_hash = walk.expected_seq + 1, record_hash(raw)
        return
    seq = line.seq
    walk.records += 1
    if line.rewritten is not None:
        detail = f": {line.rewritten}" if line.rewritten else ""
        report.add(
            Verdict.TAMPERED, number, seq, f"record was rewritten (not as klerk wrote it){detail}"
        )
    if seq != walk.expected_seq:
        what = (
            f"records {walk.expected_seq}..{seq - 1} are missing"
            if seq > walk.expected_seq
            else f"out of order: expected seq {walk.expected_seq}"
        )
        report.add(Verdict.TAMPERED, number, seq, what)
    if line.prev_hash != walk.expected_hash:
        report.add(
            Verdict.TAMPERED,
            number,
            seq,
            "hash chain broken: the record before this one was changed, removed or moved",
        )
    if line.name == "checkpoint":
        problem = _checkpoint_problem(line.record, seq, walk.expected_hash, public_key)
        if problem:
            report.add(Verdict.TAMPERED, number, seq, problem)
        else:
            walk.sealed_seq, walk.unsealed = seq, []
    if line.name != "checkpoint":
        walk.last_event = line.name
    walk.last_name = line.name
    walk.expected_seq, walk.expected_hash = seq + 1, record_hash(raw)


@dataclass(frozen=True)
class _Line:
    """One line of a trail, read as a record."""

    record: dict[str, Any]
    seq: int
    prev_hash: str
    name: str
    rewritten: str | None
    """None when the line is the record as klerk writes it; else how it differs ('' when it is
    merely written differently: spaces, key order, escapes, number format)."""


def _read(raw: bytes) -> _Line | None:
    """The record on one line, or None when the line holds none."""
    quirks: list[str] = []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        quirks.append(f"not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})")
        text = raw.decode("utf-8", errors="replace")  # read on, for the seq
    if text.startswith("\ufeff"):
        quirks.append("a byte order mark (BOM) before the record")
        text = text[1:]
    duplicates: list[str] = []
    constants: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        found = dict(items)  # the last of duplicate keys wins, as in plain json.loads
        if len(found) < len(items):
            keys = [key for key, _ in items]
            duplicates.extend(key for key in found if keys.count(key) > 1)
        return found

    def constant(name: str) -> float:
        constants.append(name)
        return float(name)

    try:
        record = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
        seq = int(record["klerk.seq"])
        prev_hash = str(record["klerk.prev_hash"])
        name = str(record["name"])
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
        return None
    quirks += [f"key {key!r} twice" for key in duplicates]
    quirks += [f"{constant} is not a JSON number" for constant in constants[:1]]
    if quirks:
        return _Line(record, seq, prev_hash, name, "; ".join(quirks))
    try:
        same = canonical(record).encode("utf-8") == raw
    except UnicodeEncodeError as exc:
        code = ord(exc.object[exc.start])
        return _Line(record, seq, prev_hash, name, f"lone surrogate \\u{code:04x} (no character)")
    except ValueError:
        return _Line(record, seq, prev_hash, name, "a number too large for JSON")
    return _Line(record, seq, prev_hash, name, None if same else "")


def _checkpoint_problem(
    record: dict[str, Any], seq: int, previous_hash: str, public_key: Ed25519PublicKey
) -> str:
    """What is wrong with a checkpoint record ('' when it holds): it must seal the record before
    it, with a signature that verifies under the public key."""
    attributes = record.get("attributes")
    if not isinstance(attributes, dict):
        attributes = {}
    sealed = str(attributes.get("klerk.checkpoint.sealed_hash", ""))
    signature = str(attributes.get("klerk.checkpoint.signature", ""))
    run_id = str(attributes.get("klerk.run_id", ""))
    if sealed != previous_hash:
        return "checkpoint seals another record than the one before it"
    try:
        message = checkpoint_message(run_id, seq, sealed)
    except UnicodeEncodeError:  # a run id klerk never makes
        message = b""
    if not message or not signature_is_valid(public_key, signature, message):
        return (
            "checkpoint signature does not verify (changed, or signed with another key: "
            f"{attributes.get('klerk.checkpoint.key_id', '?')})"
        )
    return ""


# --- large trails: stretches checked at once, by worker processes -------------------------------


@dataclass(frozen=True)
class _Stretch:
    """What a worker found in its stretch of a trail: whether it is sound, and enough to join
    it to the stretch before."""

    start: int
    end: int
    """Where its last whole line ends."""
    sound: bool
    """Every line a record as klerk writes it, chained to the one before, from the first on."""
    first_seq: int = 0
    first_prev_hash: str = ""
    walk: _Walk = field(default_factory=_Walk)


def _check_stretches(
    trail: BinaryIO, path: Path, public_key: Ed25519PublicKey, workers: int, walk: _Walk
) -> int:
    """Check the trail in `workers` stretches at once (this process takes the first), join the
    sound ones to `walk` in order, and return where the walk must go on line by line: the start
    of the first stretch that is not sound or does not continue the one before, else the end."""
    size = os.fstat(trail.fileno()).st_size
    bounds = [0]
    for n in range(1, workers):
        trail.seek(max(size * n // workers - 1, 0))
        trail.readline()  # a stretch starts at the start of a line
        bounds.append(trail.tell())
    bounds = sorted({*bounds, size})
    stretches = list(itertools.pairwise(bounds))
    if len(stretches) < 2:
        return 0
    key = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        with ProcessPoolExecutor(len(stretches) - 1, mp_context=_start_method()) as pool:
            futures = [pool.submit(_check_stretch, path, *s, key) for s in stretches[1:]]
            found = [_check_stretch(path, *stretches[0], key)]
            found += [future.result() for future in futures]
    except BrokenProcessPool:  # a worker died (out of memory?): check it all here instead
        return 0
    for stretch in found:
        if not stretch.sound or (stretch.walk.lines and not _join(walk, stretch)):
            return stretch.start
    return found[-1].end


def _can_fork() -> bool:
    # fork starts a worker at once, but is not safe in a process running other threads (a
    # lock one of them holds stays locked in the child); spawn is, but starts a new interpreter
    # that imports the program again (a second or so)
    return threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods()


def _start_method() -> multiprocessing.context.BaseContext:
    return multiprocessing.get_context("fork" if _can_fork() else "spawn")


def _check_stretch(path: Path, start: int, end: int, key: bytes) -> _Stretch:
    """Check the lines in bytes `start`..`end` of a trail (in a worker process): the first
    record is taken as it is, the caller sees whether it continues the stretch before."""
    public_key = Ed25519PublicKey.from_public_bytes(key)
    with path.open("rb") as trail:
        trail.seek(start)
        first = _read(trail.readline(max(end - start, 0)))
        if first is None or first.rewritten is not None:
            return _Stretch(start, start, sound=False)
        walk = _Walk(expected_seq=first.seq, expected_hash=first.prev_hash)
        position = start
        for block in _blocks(trail, start, end):
            if not block.endswith(b"\n"):
                break  # a cut-off last line is for the caller to report
            if not _sound_block(block, walk, public_key):
                return _Stretch(start, position, sound=False)
            position += len(block)
    _settle(walk)
    return _Stretch(start, position, True, first.seq, first.prev_hash, walk)


def _join(walk: _Walk, stretch: _Stretch) -> bool:
    """Move `walk` past a sound stretch, if the stretch continues it; False when it does not."""
    if (stretch.first_seq, stretch.first_prev_hash) != (walk.expected_seq, walk.expected_hash):
        return False
    part = stretch.walk
    walk.rewritten += [(number + walk.lines, seq, how) for number, seq, how in part.rewritten]
    if part.sealed_seq:  # a checkpoint of the part seals the walk's lines too
        walk.unsealed = []
    walk.lines += part.lines
    walk.records += part.records
    walk.expected_seq, walk.expected_hash = part.expected_seq, part.expected_hash
    walk.last_event = walk.last_event if part.last_event is None else part.last_event
    walk.last_name = part.last_name
    walk.sealed_seq = part.sealed_seq or walk.sealed_seq
    return True

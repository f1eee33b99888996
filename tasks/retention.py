"""Removing the files of old runs once their retention period is over, without breaking the
ledger: what was pruned, and the hash of the trail's last record, stay in it for good.

A run is pruned when it ended (finished or aborted: an interrupted run can still be resumed)
longer ago than both the task's own `retention_days` and `--older-than`, whichever is longer,
so that no command line can cut a bewaartermijn short. A run whose trail does not verify is
kept: it is evidence.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tasks.errors import KlerkError
from tasks.ledger import PRUNED, Ledger, trail_end, verify_runs
from tasks.signing import Signer
from tasks.store import RunRecord, Store, aware
from tasks.verify import Verdict

_AGE = re.compile(r"^\s*([0-9]+)\s*([dwy])\s*$")
_DAYS = {"d": 1, "w": 7, "y": 365}


def parse_age(text: str) -> int:
    """'90d', '6w' or '7y' as a number of days."""
    found = _AGE.match(text.lower())
    if not found or int(found.group(1)) < 1:
        raise KlerkError(f"--older-than {text!r}: give a number with d, w or y, like 90d or 7y")
    return int(found.group(1)) * _DAYS[found.group(2)]


@dataclass(frozen=True)
class Decision:
    """What happened, or would happen, to one run whose retention period is over."""

    run_id: str
    task: str
    ended_at: dt.datetime
    keep_days: int
    pruned: bool
    reason: str
    suspect: bool = False  # kept because its trail does not verify


def prune_runs(
    store: Store,
    runs_dir: Path,
    signer: Signer,
    public_key: Ed25519PublicKey,
    *,
    older_than_days: int | None,
    retention_of: Callable[[RunRecord], int | None],
    now: dt.datetime,
    dry_run: bool = False,
) -> list[Decision]:
    """Prune every run that is due; returns a decision for each, pruned or kept with a reason."""
    decisions = []
    ledger = Ledger(runs_dir, signer)
    for record in store.ended_runs(before=now):
        periods = [days for days in (older_than_days, retention_of(record)) if days]
        if not periods or record.ended_at is None:
            continue
        keep_days = max(periods)
        if now - aware(record.ended_at) < dt.timedelta(days=keep_days):
            continue
        decision = _prune_one(
            store, ledger, runs_dir, public_key, record, keep_days, dry_run=dry_run
        )
        decisions.append(decision)
    return decisions


def _prune_one(
    store: Store,
    ledger: Ledger,
    runs_dir: Path,
    public_key: Ed25519PublicKey,
    record: RunRecord,
    keep_days: int,
    *,
    dry_run: bool,
) -> Decision:
    assert record.ended_at is not None
    folder, ended_at = runs_dir / record.id, aware(record.ended_at)

    def decided(pruned: bool, reason: str, *, suspect: bool = False) -> Decision:
        return Decision(record.id, record.task, ended_at, keep_days, pruned, reason, suspect)

    if not folder.is_dir():
        return decided(False, f"kept in the store: its folder {folder} is not there")
    report = verify_runs(runs_dir, public_key, [record.id])[-1]
    if report.verdict is not Verdict.INTACT:
        return decided(
            False,
            f"kept: its trail is {report.verdict.name.lower()} "
            f"(`klerk audit verify {record.id}`); it is evidence",
            suspect=True,
        )
    if dry_run:
        return decided(False, "would be pruned (dry run)")
    last_seq, last_hash = trail_end(folder / "audit.jsonl")
    with ledger.locked():
        ledger.append(
            PRUNED,
            record.id,
            record.task,
            record_seq=last_seq,
            record_hash=last_hash,
            state=record.state,
            ended_at=ended_at.isoformat(),
            reason=f"retention of {keep_days} days",
        )
    shutil.rmtree(folder)
    store.delete_run(record.id)
    return decided(True, "pruned")

"""`klerk runs prune`: old runs go once their retention period is over, the ledger keeps what
was pruned, a task's own retention is never cut short, and a tampered run is kept."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import update

from demo.sample import aanvragen
from tasks.loading import find_task
from tasks.store import RunRecord, Store
from tests.conftest import DemoApp, Klerk, write_intake

pytestmark = pytest.mark.browser


def _runs(klerk: Klerk, definition: Path, count: int) -> list[str]:
    for number in range(count):
        rows = aanvragen(1, seed=300 + number, prefix=f"R{number}-")
        intake = write_intake(klerk.home / f"in-{number}.xlsx", rows)
        result = klerk("run", str(definition), "--input", str(intake))
        assert result.returncode == 0, result.stdout + result.stderr
    return sorted(p.name for p in (klerk.home / "runs").iterdir() if p.is_dir())


def _age(klerk: Klerk, run_id: str, days: int) -> None:
    """Let `days` pass for one run: move its end back in the store."""
    store = Store(f"sqlite:///{klerk.home / 'var' / 'klerk.db'}")
    ended = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    with store.session() as session, session.begin():
        session.execute(update(RunRecord).where(RunRecord.id == run_id).values(ended_at=ended))
    store.close()


def _definition(klerk: Klerk, retention_days: int | None) -> Path:
    path = klerk.home / "invoeren.yaml"
    text = find_task("vergunningen-invoeren").read_text(encoding="utf-8")
    if retention_days is not None:
        text += f"\nretention_days: {retention_days}\n"
    path.write_text(text, encoding="utf-8")
    return path


def test_prune_removes_what_is_due_and_the_ledger_still_verifies(
    klerk: Klerk, demo_app: DemoApp
) -> None:
    definition = _definition(klerk, None)
    old, recent, new = _runs(klerk, definition, 3)
    _age(klerk, old, 100)
    _age(klerk, recent, 10)

    dry = klerk("runs", "prune", "--older-than", "30d", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert old in dry.stdout and "would be pruned" in dry.stdout
    assert recent not in dry.stdout
    assert (klerk.home / "runs" / old).is_dir()

    pruned = klerk("runs", "prune", "--older-than", "30d")

    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert not (klerk.home / "runs" / old).exists()
    assert (klerk.home / "runs" / recent).is_dir() and (klerk.home / "runs" / new).is_dir()
    shown = klerk("runs", "show", old)
    assert shown.returncode == 2 and "no run" in shown.stderr
    ledger = [
        json.loads(line) for line in (klerk.home / "runs" / "ledger.jsonl").read_text().splitlines()
    ]
    entry = ledger[-1]
    assert (entry["kind"], entry["run_id"], entry["reason"]) == (
        "pruned",
        old,
        "retention of 30 days",
    )
    verified = klerk("audit", "verify", "--all")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert klerk("runs", "prune", "--older-than", "30d").stdout.startswith("No run is past")


def test_a_tasks_own_retention_outlasts_the_command_line(klerk: Klerk, demo_app: DemoApp) -> None:
    definition = _definition(klerk, 365)
    (only,) = _runs(klerk, definition, 1)
    _age(klerk, only, 100)

    result = klerk("runs", "prune", "--older-than", "30d")

    assert result.returncode == 0, result.stdout + result.stderr
    assert (klerk.home / "runs" / only).is_dir()
    _age(klerk, only, 400)
    result = klerk("runs", "prune")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (klerk.home / "runs" / only).exists()
    last = (klerk.home / "runs" / "ledger.jsonl").read_text().splitlines()[-1]
    assert json.loads(last)["reason"] == "retention of 365 days"


def test_a_run_that_does_not_verify_is_kept_as_evidence(klerk: Klerk, demo_app: DemoApp) -> None:
    definition = _definition(klerk, None)
    (only,) = _runs(klerk, definition, 1)
    _age(klerk, only, 100)
    trail = klerk.home / "runs" / only / "audit.jsonl"
    lines = trail.read_bytes().splitlines(keepends=True)
    trail.write_bytes(b"".join(lines[:2] + lines[3:]))
    kept = klerk.home / "kept"
    shutil.copytree(klerk.home / "runs" / only, kept)

    result = klerk("runs", "prune", "--older-than", "30d")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "kept: its trail is tampered" in result.stdout
    assert (klerk.home / "runs" / only / "audit.jsonl").read_bytes() == (
        kept / "audit.jsonl"
    ).read_bytes()


def test_a_bad_age_is_refused(klerk: Klerk) -> None:
    result = klerk("runs", "prune", "--older-than", "soon")
    assert result.returncode == 2
    assert "give a number with d, w or y, like 90d or 7y" in result.stderr

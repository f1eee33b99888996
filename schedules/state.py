"""What the scheduler keeps in klerk's database: each schedule's state (paused, the definition
it was last synced with), the history of fires, and run-now requests from the CLI.

The tables are created by klerk's Alembic migrations (tasks/migrations); this module maps them.
APScheduler's own job store (`klerk_scheduler_jobs`) sits in the same database.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Integer,
    String,
    Text,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tasks.store import Store, aware, utcnow

JOBS_TABLE = "klerk_scheduler_jobs"
SERVICE_LOCK = "(klerk serve)"  # a name no task can have: task names are lower-case slugs


class Outcome(StrEnum):
    """What became of one fire. The first four are not final."""

    STARTING = "starting"
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    NOT_ALL_DONE = "not_all_done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"
    MISSED = "missed"
    NOT_STARTED = "not_started"

    @property
    def final(self) -> bool:
        """True once nothing more will happen to the fire."""
        return self not in (Outcome.STARTING, Outcome.QUEUED, Outcome.RUNNING)


class Base(DeclarativeBase):
    """Base of the scheduler's tables."""


class ScheduleState(Base):
    """One schedule as the scheduler knows it: paused or not, and the definition it synced."""

    __tablename__ = "klerk_schedule_state"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    task: Mapped[str] = mapped_column(String(200), default="")
    definition_path: Mapped[str] = mapped_column(Text, default="")
    definition_sha256: Mapped[str] = mapped_column(String(64), default="")
    trigger_sha256: Mapped[str] = mapped_column(String(64), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    paused_by: Mapped[str] = mapped_column(String(200), default="")
    paused_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    pause_reason: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Fire(Base):
    """One fire of a schedule: when it was due, when it went off, and what became of it."""

    __tablename__ = "klerk_schedule_fires"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule: Mapped[str] = mapped_column(String(200), index=True)
    task: Mapped[str] = mapped_column(String(200))
    planned_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    fired_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    started_by: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    run_id: Mapped[str | None] = mapped_column(String(40))
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int | None] = mapped_column(Integer)
    notified: Mapped[str] = mapped_column(Text, default="")


class RunNowRequest(Base):
    """`klerk schedule run-now NAME` asking a running `klerk serve` to fire a schedule."""

    __tablename__ = "klerk_schedule_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule: Mapped[str] = mapped_column(String(200))
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    taken_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    fire_id: Mapped[int | None] = mapped_column(Integer)


class ScheduleBook:
    """Reads and writes the scheduler's tables through klerk's store (its engine, its sessions)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # --- schedule state -----------------------------------------------------------------------

    def states(self) -> dict[str, ScheduleState]:
        """Every schedule's state by name."""
        with self.store.session() as session:
            return {row.name: row for row in session.scalars(select(ScheduleState))}

    def state(self, name: str) -> ScheduleState | None:
        """One schedule's state."""
        with self.store.session() as session:
            return session.get(ScheduleState, name)

    def synced(
        self,
        name: str,
        *,
        task: str,
        path: str,
        definition_sha256: str,
        trigger_sha256: str,
        enabled: bool,
    ) -> None:
        """Remember the definition the job store was brought in line with."""
        with self.store.session() as session, session.begin():
            row = session.get(ScheduleState, name, with_for_update=True)
            if row is None:
                row = ScheduleState(name=name, paused=False, paused_by="", pause_reason="")
                session.add(row)
            row.task = task
            row.definition_path = path
            row.definition_sha256 = definition_sha256
            row.trigger_sha256 = trigger_sha256
            row.enabled = enabled
            row.updated_at = utcnow()

    def set_paused(self, name: str, paused: bool, by: str, reason: str = "") -> bool:
        """Pause or resume a schedule; returns whether that changed anything."""
        with self.store.session() as session, session.begin():
            row = session.get(ScheduleState, name, with_for_update=True)
            if row is None:
                row = ScheduleState(name=name, paused=False, paused_by="", pause_reason="")
                row.updated_at = utcnow()
                session.add(row)
            changed = bool(row.paused) != paused
            row.paused = paused
            row.paused_by = by
            row.paused_at = utcnow()
            row.pause_reason = reason if paused else ""
            row.updated_at = utcnow()
            return changed

    def forget(self, name: str) -> None:
        """A schedule whose file is gone: its state goes (its fires stay in the history)."""
        with self.store.session() as session, session.begin():
            row = session.get(ScheduleState, name)
            if row is not None:
                session.delete(row)

    # --- fires --------------------------------------------------------------------------------

    def new_fire(
        self,
        schedule: str,
        task: str,
        planned: dt.datetime | None,
        started_by: str,
        outcome: Outcome = Outcome.STARTING,
        reason: str = "",
        fired_at: dt.datetime | None = None,
    ) -> Fire:
        """Record a fire as it goes off."""
        fire = Fire(
            schedule=schedule,
            task=task,
            # UTC: SQLite keeps no offset, and `aware` reads a stored time back as UTC
            planned_at=planned.astimezone(dt.UTC) if planned else None,
            fired_at=fired_at or utcnow(),
            started_by=started_by,
            outcome=outcome.value,
            reason=reason,
            counts={},
            host=socket.gethostname(),
            pid=None,
            notified="",
        )
        if outcome.final:
            fire.ended_at = fire.fired_at
        with self.store.session() as session, session.begin():
            session.add(fire)
        return fire

    def fire(self, fire_id: int) -> Fire | None:
        """One fire by id."""
        with self.store.session() as session:
            return session.get(Fire, fire_id)

    def update(self, fire_id: int, **values: Any) -> None:
        """Change a fire's columns (outcome, reason, run_id, pid, counts, notified)."""
        if isinstance(values.get("outcome"), Outcome):
            outcome: Outcome = values["outcome"]
            values["outcome"] = outcome.value
            if outcome.final:
                values.setdefault("ended_at", utcnow())
        with self.store.session() as session, session.begin():
            session.execute(update(Fire).where(Fire.id == fire_id).values(**values))

    def history(self, schedule: str, limit: int = 20) -> Sequence[Fire]:
        """The latest fires of a schedule, newest first."""
        with self.store.session() as session:
            query = (
                select(Fire)
                .where(Fire.schedule == schedule)
                .order_by(Fire.fired_at.desc(), Fire.id.desc())
                .limit(limit)
            )
            return session.scalars(query).all()

    def unfinished(self) -> Sequence[Fire]:
        """Fires not yet final (starting, queued, running), oldest first."""
        with self.store.session() as session:
            query = (
                select(Fire)
                .where(Fire.outcome.in_([o.value for o in Outcome if not o.final]))
                .order_by(Fire.id)
            )
            return session.scalars(query).all()

    def last_fire(self, schedule: str) -> Fire | None:
        """The newest fire of a schedule."""
        found = self.history(schedule, 1)
        return found[0] if found else None

    # --- run-now requests ---------------------------------------------------------------------

    def request_run(self, schedule: str, by: str) -> int:
        """Ask the running scheduler to fire `schedule` now; returns the request id."""
        request = RunNowRequest(schedule=schedule, requested_by=by, requested_at=utcnow())
        with self.store.session() as session, session.begin():
            session.add(request)
            session.flush()
            return request.id

    def take_requests(self) -> list[RunNowRequest]:
        """The requests not yet taken, marked taken (by this process)."""
        with self.store.session() as session, session.begin():
            rows = list(
                session.scalars(
                    select(RunNowRequest)
                    .where(RunNowRequest.taken_at.is_(None))
                    .order_by(RunNowRequest.id)
                    .with_for_update(skip_locked=True)
                )
            )
            for row in rows:
                row.taken_at = utcnow()
            return rows

    def answer_request(self, request_id: int, fire_id: int) -> None:
        """Link a taken request to the fire it became."""
        with self.store.session() as session, session.begin():
            session.execute(
                update(RunNowRequest).where(RunNowRequest.id == request_id).values(fire_id=fire_id)
            )

    def request(self, request_id: int) -> RunNowRequest | None:
        """One request by id."""
        with self.store.session() as session:
            return session.get(RunNowRequest, request_id)


def process_alive(host: str, pid: int | None) -> bool:
    """False only when the process is known to be gone (on this host)."""
    if pid is None or host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def local(moment: dt.datetime | None, zone: dt.tzinfo) -> str:
    """A stored time as the administrator reads it: 'ma 28-12-2026 07:00:00'."""
    if moment is None:
        return "-"
    from schedules.calendar import dutch_weekday

    shown = aware(moment).astimezone(zone)
    return f"{dutch_weekday(shown.date())} {shown:%d-%m-%Y %H:%M:%S}"

"""The store of runs and work items (SQLAlchemy 2): SQLite under var/ by default, or PostgreSQL.

Every state change of a work item is committed before the engine goes on, so a run killed at
any moment can be resumed and no item is entered twice.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from tasks.errors import AuditError, KlerkError
from tasks.states import ItemState, RunState, check_transition


def utcnow() -> dt.datetime:
    """The current time, UTC, timezone-aware."""
    return dt.datetime.now(dt.UTC)


def to_json(value: Any) -> Any:
    """A typed value (date, Decimal, ...) as JSON that `from_json` turns back into the same type."""
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    return value


def from_json(value: Any) -> Any:
    """The inverse of `to_json`."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, text),) = value.items()
            if tag == "$date":
                return dt.date.fromisoformat(text)
            if tag == "$datetime":
                return dt.datetime.fromisoformat(text)
            if tag == "$decimal":
                return Decimal(text)
        return {key: from_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_json(item) for item in value]
    return value


class Base(DeclarativeBase):
    """Base of the store's tables."""


class RunRecord(Base):
    """One run of a task."""

    __tablename__ = "klerk_runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    task: Mapped[str] = mapped_column(String(200), index=True)
    definition_path: Mapped[str] = mapped_column(Text)
    definition_sha256: Mapped[str] = mapped_column(String(64))
    input_path: Mapped[str | None] = mapped_column(Text)
    input_sha256: Mapped[str | None] = mapped_column(String(64))
    results_path: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20))
    started_by: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    message: Mapped[str] = mapped_column(Text, default="")
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class WorkItemRecord(Base):
    """One work item of a run: a source row, its state, attempts and outputs."""

    __tablename__ = "klerk_work_items"
    __table_args__ = (Index("ix_klerk_items_task_key_state", "task", "key", "state"),)

    run_id: Mapped[str] = mapped_column(ForeignKey("klerk_runs.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200))
    row: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    values: Mapped[dict[str, Any]] = mapped_column(JSON)
    subject: Mapped[str | None] = mapped_column(String(20))
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    message: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class TaskLock(Base):
    """Who runs a task right now; a lock whose heartbeat is old belongs to a dead process."""

    __tablename__ = "klerk_task_locks"

    task: Mapped[str] = mapped_column(String(200), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(40))
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    heartbeat: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class RunLockedError(KlerkError):
    """Another run of the same task is active."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Store:
    """Runs and work items in a SQL database. Safe to use from one thread of one process."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            # a server may drop idle connections (pre-ping); a SQLite file cannot
            self.engine: Engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
            if self.engine.dialect.name == "sqlite":
                event.listen(self.engine, "connect", _sqlite_pragmas)
            self._migrate()
        except SQLAlchemyError as exc:
            raise AuditError(
                f"cannot open the store {self._safe_url()}: {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0]}"
            ) from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _migrate(self) -> None:
        """Bring the database to the newest schema (Alembic)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def _safe_url(self) -> str:
        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except ArgumentError:
            return "(unreadable database URL)"

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()

    def session(self) -> Session:
        """A new ORM session."""
        return self._sessions()

    # --- runs -----------------------------------------------------------------------------

    def create_run(self, run: RunRecord) -> None:
        """Store a new run."""
        with self.session() as session, session.begin():
            session.add(run)

    def run(self, run_id: str) -> RunRecord | None:
        """The run with this id (or a unique prefix of it)."""
        with self.session() as session:
            found = session.get(RunRecord, run_id)
            if found is not None:
                return found
            matches = session.scalars(
                select(RunRecord).where(RunRecord.id.startswith(run_id)).limit(2)
            ).all()
            return matches[0] if len(matches) == 1 else None

    def runs(self, task: str | None = None, limit: int = 50) -> Sequence[RunRecord]:
        """The latest runs, newest first."""
        with self.session() as session:
            query = select(RunRecord).order_by(RunRecord.started_at.desc()).limit(limit)
            if task:
                query = query.where(RunRecord.task == task)
            return session.scalars(query).all()

    def finish_run(self, run_id: str, state: RunState, message: str = "") -> None:
        """Mark a run ended (finished, interrupted, aborted)."""
        with self.session() as session, session.begin():
            session.execute(
                update(RunRecord)
                .where(RunRecord.id == run_id)
                .values(state=state.value, ended_at=utcnow(), message=message)
            )

    def ended_runs(self, before: dt.datetime) -> Sequence[RunRecord]:
        """Runs that finished or were aborted before `before`, oldest first (for pruning)."""
        with self.session() as session:
            query = (
                select(RunRecord)
                .where(RunRecord.ended_at < before)
                .where(RunRecord.state.in_([RunState.FINISHED.value, RunState.ABORTED.value]))
                .order_by(RunRecord.ended_at)
            )
            return session.scalars(query).all()

    def delete_run(self, run_id: str) -> None:
        """Remove a run and its work items (their input values are personal data)."""
        with self.session() as session, session.begin():
            session.execute(delete(WorkItemRecord).where(WorkItemRecord.run_id == run_id))
            session.execute(delete(RunRecord).where(RunRecord.id == run_id))

    def reopen_run(self, run_id: str) -> None:
        """Mark a run running again (resume)."""
        with self.session() as session, session.begin():
            session.execute(
                update(RunRecord)
                .where(RunRecord.id == run_id)
                .values(state=RunState.RUNNING.value, ended_at=None, message="")
            )

    def set_headers(self, run_id: str, headers: Mapping[str, str]) -> None:
        """Remember the input's column headers (for the results file)."""
        with self.session() as session, session.begin():
            session.execute(
                update(RunRecord).where(RunRecord.id == run_id).values(headers=dict(headers))
            )

    # --- work items -------------------------------------------------------------------------

    def add_items(self, items: Sequence[WorkItemRecord]) -> None:
        """Store the work items of a new run in one transaction."""
        with self.session() as session, session.begin():
            session.add_all(items)

    def items(self, run_id: str, states: Sequence[ItemState] = ()) -> Sequence[WorkItemRecord]:
        """The items of a run in source order, optionally only those in `states`."""
        with self.session() as session:
            query = select(WorkItemRecord).where(WorkItemRecord.run_id == run_id)
            if states:
                query = query.where(WorkItemRecord.state.in_([s.value for s in states]))
            return session.scalars(query.order_by(WorkItemRecord.seq)).all()

    def counts(self, run_id: str) -> dict[str, int]:
        """Number of items per state."""
        with self.session() as session:
            rows = session.execute(
                select(WorkItemRecord.state, func.count())
                .where(WorkItemRecord.run_id == run_id)
                .group_by(WorkItemRecord.state)
            ).all()
        return {state: count for state, count in rows}

    def done_before(self, task: str, keys: Sequence[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        """For keys already done in an earlier run of `task`: key -> (run id, outputs)."""
        found: dict[str, tuple[str, dict[str, Any]]] = {}
        for key, run_id, outputs in self._earlier(task, keys, [ItemState.DONE]):
            found.setdefault(key, (run_id, outputs))
        return found

    def in_doubt(self, task: str, keys: Sequence[str], run_id: str) -> set[str]:
        """Keys that another run of `task` left running (killed) or failed on a system error:
        the app may hold them already, so they are looked up there before being entered."""
        states = [ItemState.RUNNING, ItemState.SYSTEM_ERROR]
        return {key for key, other, _ in self._earlier(task, keys, states) if other != run_id}

    def _earlier(
        self, task: str, keys: Sequence[str], states: Sequence[ItemState]
    ) -> Iterator[tuple[str, str, dict[str, Any]]]:
        with self.session() as session:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                rows = session.execute(
                    select(WorkItemRecord.key, WorkItemRecord.run_id, WorkItemRecord.outputs).where(
                        WorkItemRecord.task == task,
                        WorkItemRecord.key.in_(chunk),
                        WorkItemRecord.state.in_([state.value for state in states]),
                    )
                ).all()
                yield from ((key, run_id, outputs) for key, run_id, outputs in rows)

    def transition(
        self,
        item: WorkItemRecord,
        new: ItemState,
        *,
        message: str | None = None,
        outputs: Mapping[str, Any] | None = None,
        evidence: str | None = None,
        attempt: bool = False,
    ) -> None:
        """Move `item` to `new` and commit, checking the state machine; updates `item` too."""
        check_transition(ItemState(item.state), new)
        values: dict[str, Any] = {"state": new.value, "updated_at": utcnow()}
        if message is not None:
            values["message"] = message
        if outputs is not None:
            values["outputs"] = to_json(dict(outputs))
        if evidence is not None:
            values["evidence"] = evidence
        if attempt:
            values["attempts"] = item.attempts + 1
        try:
            # Core, not an ORM session: this runs twice per item, on the hot path of a run
            with self.engine.begin() as connection:
                connection.execute(
                    update(WorkItemRecord)
                    .where(WorkItemRecord.run_id == item.run_id, WorkItemRecord.seq == item.seq)
                    .values(**values)
                )
        except SQLAlchemyError as exc:
            raise AuditError(
                f"cannot record the state of item {item.key!r} in the store: "
                f"{exc.__class__.__name__}; the run stops"
            ) from None
        for name, value in values.items():
            setattr(item, name, value)

    # --- locks ----------------------------------------------------------------------------

    def acquire_lock(self, task: str, run_id: str, stale_seconds: float) -> None:
        """Take the lock of `task` for `run_id`, or raise RunLockedError naming the holder."""
        now = utcnow()
        me = {"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(), "heartbeat": now}
        with self.session() as session:
            try:
                with session.begin():
                    session.add(TaskLock(task=task, **me))
                return
            except IntegrityError:
                pass
            with session.begin():
                holder = session.get(TaskLock, task, with_for_update=True)
                if holder is None:
                    session.add(TaskLock(task=task, **me))
                    return
                age = (now - aware(holder.heartbeat)).total_seconds()
                dead = _process_is_gone(holder.host, holder.pid) or age > stale_seconds
                if holder.run_id != run_id and not dead:
                    raise RunLockedError(
                        f"task {task!r} is already running (run {holder.run_id}, "
                        f"pid {holder.pid} on {holder.host}, alive {age:.0f} s ago); "
                        f"wait for it to finish, or stop it first"
                    )
                for name, value in me.items():
                    setattr(holder, name, value)

    def heartbeat(self, task: str, run_id: str) -> None:
        """Show that the holder of the lock is alive."""
        try:
            with self.session() as session, session.begin():
                session.execute(
                    update(TaskLock)
                    .where(TaskLock.task == task, TaskLock.run_id == run_id)
                    .values(heartbeat=utcnow())
                )
        except OperationalError:
            pass  # a busy database delays the heartbeat; the lock goes stale only after minutes

    def release_lock(self, task: str, run_id: str) -> None:
        """Give the lock of `task` back (only if `run_id` holds it)."""
        with self.session() as session, session.begin():
            holder = session.get(TaskLock, task)
            if holder is not None and holder.run_id == run_id:
                session.delete(holder)

    def lock_holder(self, task: str) -> TaskLock | None:
        """Who holds the lock of `task`, if anyone."""
        with self.session() as session:
            return session.get(TaskLock, task)

    def live_lock_holder(self, task: str, stale_seconds: float) -> TaskLock | None:
        """Who holds the lock of `task` and is alive: a dead or stale holder counts as none."""
        holder = self.lock_holder(task)
        if holder is None:
            return None
        age = (utcnow() - aware(holder.heartbeat)).total_seconds()
        if _process_is_gone(holder.host, holder.pid) or age > stale_seconds:
            return None
        return holder


def aware(moment: dt.datetime) -> dt.datetime:
    """A stored time with its zone (SQLite gives them back without one; they are UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _process_is_gone(host: str, pid: int) -> bool:
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def iter_values(items: Sequence[WorkItemRecord]) -> Iterator[dict[str, Any]]:
    """The typed input values of items."""
    for item in items:
        yield from_json(item.values)


def dumps(value: Any) -> str:
    """Canonical JSON of a typed value."""
    return json.dumps(to_json(value), sort_keys=True, ensure_ascii=False)

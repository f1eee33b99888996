"""The store: migrations match the models, states follow the state machine, locks expire."""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData

from tasks.states import IllegalTransition, ItemState
from tasks.store import (
    Base,
    RunLockedError,
    RunRecord,
    Store,
    WorkItemRecord,
    from_json,
    to_json,
    utcnow,
)


def _store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'klerk.db'}")


def _run(store: Store, run_id: str = "r1") -> WorkItemRecord:
    store.create_run(
        RunRecord(
            id=run_id,
            task="t",
            definition_path="t.yaml",
            definition_sha256="0" * 64,
            input_path=None,
            input_sha256=None,
            results_path=None,
            state="running",
            started_by="test",
            host="h",
            started_at=utcnow(),
            message="",
            options={},
            headers={},
        )
    )
    item = WorkItemRecord(
        run_id=run_id,
        seq=1,
        task="t",
        key="K-1",
        row=2,
        state="pending",
        attempts=0,
        values=to_json({"d": dt.date(2027, 1, 5)}),
        subject=None,
        outputs={},
        message="",
        updated_at=utcnow(),
    )
    store.add_items([item])
    return item


def _all_models(store: Store) -> MetaData:
    """Every table klerk's migrations make: the core's, the scheduler's and APScheduler's jobs."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    from schedules.state import JOBS_TABLE
    from schedules.state import Base as ScheduleBase

    jobs = SQLAlchemyJobStore(engine=store.engine, tablename=JOBS_TABLE).jobs_t
    models = MetaData()
    for table in [*Base.metadata.tables.values(), *ScheduleBase.metadata.tables.values(), jobs]:
        table.to_metadata(models)
    return models


def test_migrations_match_the_models(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), _all_models(store))
    assert differences == []


def test_typed_values_survive_the_store() -> None:
    value = {"d": dt.date(2027, 1, 5), "n": Decimal("12.50"), "s": "x", "l": [1, {"a": None}]}
    assert from_json(to_json(value)) == value


def test_transitions_are_persisted_and_checked(tmp_path: Path) -> None:
    store = _store(tmp_path)
    item = _run(store)
    store.transition(item, ItemState.RUNNING, attempt=True)
    store.transition(item, ItemState.DONE, outputs={"zaaknummer": "Z-1"})
    again = Store(store.url).items("r1")[0]
    assert (again.state, again.attempts, again.outputs) == ("done", 1, {"zaaknummer": "Z-1"})
    with pytest.raises(IllegalTransition):
        store.transition(item, ItemState.RUNNING)
    assert store.done_before("t", ["K-1", "K-2"]) == {"K-1": ("r1", {"zaaknummer": "Z-1"})}


def test_a_live_lock_refuses_a_second_run_and_a_dead_one_is_taken_over(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.acquire_lock("t", "r1", stale_seconds=60)
    with pytest.raises(RunLockedError, match="task 't' is already running"):
        store.acquire_lock("t", "r2", stale_seconds=60)
    store.release_lock("t", "r1")
    store.acquire_lock("t", "r2", stale_seconds=60)
    # a holder whose process is gone does not block
    with store.session() as session, session.begin():
        holder = session.get(type(store.lock_holder("t")), "t")
        assert holder is not None
        holder.pid = _dead_pid()
    store.acquire_lock("t", "r3", stale_seconds=60)
    holder = store.lock_holder("t")
    assert holder is not None and holder.run_id == "r3"


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_postgres_store_works_the_same(postgres_url: str) -> None:
    store = Store(postgres_url)
    try:
        item = _run(store)
        store.transition(item, ItemState.RUNNING, attempt=True)
        store.transition(item, ItemState.BUSINESS_ERROR, message="geweigerd")
        assert store.counts("r1") == {"business_error": 1}
        with store.engine.connect() as connection:
            models = _all_models(store)
            assert compare_metadata(MigrationContext.configure(connection), models) == []
    finally:
        store.close()

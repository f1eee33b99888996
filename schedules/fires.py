"""Firing a schedule: deciding whether a fire may start (never two runs of one task at once),
starting its run as a separate `klerk` process, and recording and reporting what became of it.

`Dispatcher` is used by `klerk serve` (for the fires APScheduler hands it and for run-now
requests) and by `klerk schedule run-now` when no scheduler is running.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from schedules.definition import Event, InputMissing, Overlap, Schedule
from schedules.notify import Notice, send
from schedules.state import Fire, Outcome, ScheduleBook, local, process_alive
from tasks.definition import Task
from tasks.errors import DefinitionError, KlerkError
from tasks.loading import find_task, load_model
from tasks.privacy import redact
from tasks.report import REPORT_NAME
from tasks.settings import Settings
from tasks.states import RunState
from tasks.store import RunRecord, Store, aware, utcnow
from tasks.templates import TemplateRenderError, render

# the command line of one fire's run: (schedule name, fire id, planned time) -> argv
Launch = Callable[[str, int, dt.datetime | None], list[str]]

_EVENTS = {
    Outcome.FAILED: Event.FAILED,
    Outcome.NOT_ALL_DONE: Event.NOT_ALL_DONE,
    Outcome.MISSED: Event.MISSED,
    Outcome.SKIPPED: Event.SKIPPED,
    Outcome.INTERRUPTED: Event.INTERRUPTED,
    Outcome.FINISHED: Event.FINISHED,
}


def task_path(schedule: Schedule, schedule_file: Path) -> Path:
    """The task file a schedule runs: a name in tasks/definitions/, or a path next to the file."""
    if schedule.task.endswith((".yaml", ".yml")):
        path = Path(schedule.task)
        return path if path.is_absolute() else (schedule_file.parent / path).resolve()
    return find_task(schedule.task)


def task_of(schedule: Schedule, schedule_file: Path) -> Task:
    """The task definition a schedule runs (loaded and validated)."""
    return load_model(task_path(schedule, schedule_file), Task)


def render_path(template: str, schedule: Schedule, planned: dt.datetime | None, home: Path) -> Path:
    """A templated path of the schedule (`input`, `results`) for the fire planned at `planned`:
    `today` and `now` are the planned moment in the schedule's time zone."""
    moment = (planned or utcnow()).astimezone(schedule.zone())
    try:
        text = render(template, {"today": moment.date(), "now": moment})
    except TemplateRenderError as exc:
        problem = f"schedule {schedule.name}: cannot work out {template!r}: {exc}"
        raise DefinitionError([problem]) from None
    path = Path(text).expanduser()
    return path if path.is_absolute() else (home / path).resolve()


def resumable_run(
    store: Store, schedule: Schedule, task: str, input_path: Path | None, stale_seconds: float
) -> RunRecord | None:
    """This schedule's latest run, when it stopped half-way (interrupted, aborted, or left
    running by a process that is gone) on the same unchanged input: the next fire finishes it."""
    if not schedule.resume_interrupted:
        return None
    mine = [r for r in store.runs(task, 20) if r.started_by == f"schedule:{schedule.name}"]
    if not mine:
        return None
    latest = mine[0]
    if latest.state not in (RunState.INTERRUPTED.value, RunState.ABORTED.value):
        if latest.state != RunState.RUNNING.value:
            return None
        if store.live_lock_holder(task, stale_seconds) is not None:
            return None
    if (latest.input_path or None) != (str(input_path.resolve()) if input_path else None):
        return None
    if input_path is not None:
        from tasks.engine import sha256_file

        if sha256_file(input_path) != latest.input_sha256:
            return None
    return latest


def report_location(run_id: str, current: Settings) -> str:
    """Where a run's report is: a link under KLERK_REPORT_BASE_URL, else the file's path."""
    if current.report_base_url:
        return f"{current.report_base_url.rstrip('/')}/{run_id}/{REPORT_NAME}"
    return str(current.runs() / run_id / REPORT_NAME)


@dataclass
class _Active:
    schedule: str
    fire_id: int
    process: subprocess.Popen[bytes] | None = None
    signals_sent: int = 0


class Dispatcher:
    """Starts fires, one run per task at a time, and keeps their history."""

    def __init__(
        self,
        store: Store,
        current: Settings,
        launch: Launch,
        schedules: dict[str, tuple[Schedule, Path]],
    ) -> None:
        self.store = store
        self.book = ScheduleBook(store)
        self.current = current
        self.launch = launch
        self.schedules = schedules
        self.task_names: dict[str, str] = {}
        self.stopping = threading.Event()
        self._guard = threading.Lock()
        self._active: dict[str, _Active] = {}
        self._waiting: set[str] = set()
        self._threads: set[threading.Thread] = set()

    def task_name(self, name: str) -> str:
        """The name of the task a schedule runs (the lock is per task, not per schedule)."""
        if name not in self.task_names:
            schedule, path = self.schedules[name]
            self.task_names[name] = task_of(schedule, path).name
        return self.task_names[name]

    # --- firing -------------------------------------------------------------------------------

    def fire_in_thread(
        self, name: str, planned: dt.datetime | None, started_by: str, request_id: int | None
    ) -> threading.Thread:
        """`fire` in a thread of its own (for run-now requests in serve)."""
        thread = threading.Thread(
            target=self.fire, args=(name, planned, started_by, request_id), name=f"fire-{name}"
        )
        self.track(thread)
        thread.start()
        return thread

    def track(self, thread: threading.Thread) -> None:
        """Remember a thread that fires, so that stopping waits for it."""
        with self._guard:
            self._threads = {t for t in self._threads if t.is_alive()}
            self._threads.add(thread)

    def fire(
        self,
        name: str,
        planned: dt.datetime | None,
        started_by: str = "schedule",
        request_id: int | None = None,
    ) -> Fire | None:
        """One fire of schedule `name`: start its run now, or skip, queue or record why not."""
        fired_at = utcnow()
        if name not in self.schedules:
            logger.error("fire of unknown schedule {}: its file is gone; nothing started", name)
            return None
        schedule, _ = self.schedules[name]
        try:
            task = self.task_name(name)
        except KlerkError as exc:
            fire = self.book.new_fire(name, schedule.task, planned, started_by, fired_at=fired_at)
            self.end(fire, schedule, Outcome.FAILED, f"the task cannot be loaded: {exc}")
            return self.book.fire(fire.id)
        fire = self.book.new_fire(name, task, planned, started_by, fired_at=fired_at)
        self.book.update(fire.id, pid=os.getpid())
        if request_id is not None:
            self.book.answer_request(request_id, fire.id)
        late = f" ({(fired_at - planned).total_seconds():+.3f} s)" if planned else ""
        when = f"planned {local(planned, schedule.zone())}{late}" if planned else started_by
        logger.info("schedule {} fires: {}", name, when)
        busy = self._claim(task, name, fire.id)
        if busy is not None:
            if schedule.overlap is Overlap.SKIP:
                self.end(fire, schedule, Outcome.SKIPPED, busy)
                return self.book.fire(fire.id)
            if not self._wait_turn(fire, schedule, task, busy):
                return self.book.fire(fire.id)
        try:
            self._run(fire, schedule, task, planned)
        finally:
            with self._guard:
                self._active.pop(task, None)
        return self.book.fire(fire.id)

    def _claim(self, task: str, name: str, fire_id: int) -> str | None:
        """Take the task for this fire, or say why it is busy."""
        with self._guard:
            if self.stopping.is_set():
                return "klerk serve is stopping"
            mine = self._active.get(task)
            if mine is not None:
                return (
                    f"the run of task {task} from schedule {mine.schedule} "
                    f"(fire {mine.fire_id}) is still running"
                )
            holder = self.store.live_lock_holder(task, self.current.lock_stale_seconds)
            if holder is not None:
                run = self.store.run(holder.run_id)
                who = (
                    "by hand"
                    if run is None or not run.started_by.startswith("schedule:")
                    else (f"by {run.started_by}")
                )
                return (
                    f"task {task} is already running: run {holder.run_id}, started {who} "
                    f"(pid {holder.pid} on {holder.host})"
                )
            self._active[task] = _Active(name, fire_id)
            return None

    def _wait_turn(self, fire: Fire, schedule: Schedule, task: str, busy: str) -> bool:
        """Queue: wait until the task is free (at most one waiting fire per schedule)."""
        with self._guard:
            if schedule.name in self._waiting:
                already = True
            else:
                already = False
                self._waiting.add(schedule.name)
        if already:
            self.end(
                fire, schedule, Outcome.SKIPPED, f"a fire of this schedule already waits; {busy}"
            )
            return False
        self.book.update(fire.id, outcome=Outcome.QUEUED, reason=f"waiting: {busy}")
        logger.info("schedule {}: queued, {}", schedule.name, busy)
        try:
            while True:
                if self.stopping.wait(0.5):
                    self.end(fire, schedule, Outcome.NOT_STARTED, "klerk serve stopped first")
                    return False
                if self._claim(task, schedule.name, fire.id) is None:
                    self.book.update(fire.id, reason=f"waited {self._since(fire)}: {busy}")
                    return True
        finally:
            with self._guard:
                self._waiting.discard(schedule.name)

    @staticmethod
    def _since(fire: Fire) -> str:
        seconds = (utcnow() - aware(fire.fired_at)).total_seconds()
        return f"{seconds:.0f} s"

    def _run(self, fire: Fire, schedule: Schedule, task: str, planned: dt.datetime | None) -> None:
        """Start the run process, wait for it, and conclude the fire."""
        with tempfile.TemporaryFile() as errors:
            with self._guard:
                if self.stopping.is_set():
                    self.end(fire, schedule, Outcome.NOT_STARTED, "klerk serve stopped first")
                    return
                process = subprocess.Popen(
                    self.launch(schedule.name, fire.id, planned),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                    # its own session: a Ctrl-C in serve's terminal reaches serve only, which
                    # passes one SIGTERM on (a second would abandon the items in progress)
                    start_new_session=True,
                )
                self._active[task].process = process
            self.book.update(fire.id, outcome=Outcome.RUNNING, pid=process.pid)
            code = process.wait()
            errors.seek(0)
            tail = errors.read()[-4000:].decode("utf-8", "replace")
        self.conclude(fire.id, schedule, code, tail)

    # --- concluding -----------------------------------------------------------------------------

    def conclude(self, fire_id: int, schedule: Schedule, code: int | None, tail: str = "") -> None:
        """Work out what became of a fire whose run process has ended, record it, notify."""
        fire = self.book.fire(fire_id)
        if fire is None:
            return
        if Outcome(fire.outcome).final:
            self._report(fire, schedule)
            return
        counts: dict[str, int] = {}
        run = self.store.run(fire.run_id) if fire.run_id else None
        if run is not None:
            counts = self.store.counts(run.id)
            not_done = sum(n for state, n in counts.items() if state not in ("done", "skipped"))
            if run.state == RunState.FINISHED.value:
                outcome = Outcome.FINISHED if not not_done else Outcome.NOT_ALL_DONE
                reason = f"{not_done} item(s) not done" if not_done else ""
            elif run.state == RunState.INTERRUPTED.value:
                outcome, reason = Outcome.INTERRUPTED, f"resumable: klerk resume {run.id}"
            elif run.state == RunState.ABORTED.value:
                outcome, reason = Outcome.FAILED, f"run aborted: {run.message}"
            else:
                # stopped while it was starting up: a stop, not a failure
                outcome = Outcome.INTERRUPTED if self.stopping.is_set() else Outcome.FAILED
                reason = (
                    f"the run process ended without closing run {run.id} (exit code {code}); "
                    f"continue with klerk resume {run.id}"
                )
        elif self.stopping.is_set() and code is not None and code < 0:
            outcome, reason = Outcome.NOT_STARTED, "klerk serve stopped before the run started"
        else:
            outcome = Outcome.FAILED
            reason = f"the run did not start (exit code {code}): {_last_error(tail)}"
        if fire.reason:  # how it started: after waiting, or finishing an earlier run
            reason = f"{fire.reason}; {reason}" if reason else fire.reason
        self.book.update(fire_id, outcome=outcome, reason=redact(reason), counts=counts)
        logger.log(
            "INFO" if outcome in (Outcome.FINISHED, Outcome.INTERRUPTED) else "WARNING",
            "schedule {}: {}{}{}",
            schedule.name,
            outcome.value.replace("_", " "),
            f", run {run.id}" if run else "",
            f" ({redact(reason)})" if reason else "",
        )
        concluded = self.book.fire(fire_id)
        if concluded is not None:
            self._report(concluded, schedule)

    def end(self, fire: Fire, schedule: Schedule, outcome: Outcome, reason: str) -> None:
        """A fire that ends without a run (skipped, missed, not started, failed to load)."""
        self.book.update(fire.id, outcome=outcome, reason=redact(reason))
        logger.log(
            "WARNING" if outcome in (Outcome.FAILED, Outcome.MISSED) else "INFO",
            "schedule {}: {}: {}",
            schedule.name,
            outcome.value.replace("_", " "),
            redact(reason),
        )
        ended = self.book.fire(fire.id)
        if ended is not None:
            self._report(ended, schedule)

    def missed(self, name: str, planned: dt.datetime, reason: str, *, notify: bool = True) -> None:
        """Record a fire that is not run because it is too late (or coalesced into a later one)."""
        if name not in self.schedules:
            return
        schedule, _ = self.schedules[name]
        try:
            task = self.task_name(name)
        except KlerkError:
            task = schedule.task
        fire = self.book.new_fire(
            name, task, planned, "schedule", outcome=Outcome.MISSED, reason=redact(reason)
        )
        logger.warning(
            "schedule {}: missed the fire of {}: {}", name, local(planned, schedule.zone()), reason
        )
        if notify:
            self._report(fire, schedule)

    def _report(self, fire: Fire, schedule: Schedule) -> None:
        """Notify the schedule's targets when its `notify.when` asks for this outcome."""
        event = _EVENTS.get(Outcome(fire.outcome))
        if event is None or event not in schedule.notify.when or fire.notified:
            return
        run = self.store.run(fire.run_id) if fire.run_id else None
        notice = Notice(
            schedule=schedule.name,
            task=fire.task,
            event=event,
            fire_id=fire.id,
            planned_at=aware(fire.planned_at) if fire.planned_at else None,
            fired_at=aware(fire.fired_at),
            zone=schedule.zone(),
            host=fire.host,
            reason=fire.reason,
            run_id=fire.run_id,
            run_state=run.state if run else None,
            counts=dict(fire.counts or {}),
            report=report_location(fire.run_id, self.current) if fire.run_id else None,
        )
        results = send(notice, schedule.notify, self.current)
        self.book.update(fire.id, notified="; ".join(results))

    # --- stopping -------------------------------------------------------------------------------

    def stop(self) -> None:
        """No new runs; every running run gets one SIGTERM (it finishes its current item, ends
        interrupted and resumable). Called again, a second SIGTERM abandons the items in
        progress (they are checked in the app on resume)."""
        self.stopping.set()
        with self._guard:
            active = list(self._active.values())
        for entry in active:
            if entry.process is not None and entry.process.poll() is None:
                entry.signals_sent += 1
                logger.info(
                    "passing SIGTERM #{} to the run of schedule {} (pid {})",
                    entry.signals_sent,
                    entry.schedule,
                    entry.process.pid,
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(entry.process.pid, signal.SIGTERM)

    def join(self, timeout: float) -> bool:
        """Wait (up to `timeout` s) for the fires in progress; True when none is left."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._guard:
                alive = [t for t in self._threads if t.is_alive()]
            if not alive:
                return True
            alive[0].join(min(0.2, max(0.0, deadline - time.monotonic())))
        return False

    def active_count(self) -> int:
        """How many runs this process has going."""
        with self._guard:
            return len(self._active)

    def reconcile(self, own_pid: int) -> None:
        """Conclude fires left unfinished by a process that is gone (a killed serve, a killed
        run process): a queued or starting one did not start; a running one is looked up."""
        with self._guard:
            mine = {entry.fire_id for entry in self._active.values()}
        for fire in self.book.unfinished():
            if fire.id in mine or (fire.pid == own_pid and fire.outcome != Outcome.RUNNING):
                continue
            if process_alive(fire.host, fire.pid):
                continue
            schedule = self.schedules.get(fire.schedule)
            if schedule is None:
                self.book.update(
                    fire.id, outcome=Outcome.FAILED, reason="left unfinished; schedule removed"
                )
                continue
            if fire.outcome == Outcome.RUNNING.value:
                logger.warning(
                    "schedule {}: fire {} was left running; looking it up", fire.schedule, fire.id
                )
                self.conclude(fire.id, schedule[0], None, "the process that ran it is gone")
            else:
                self.end(
                    fire,
                    schedule[0],
                    Outcome.NOT_STARTED,
                    "the scheduler that held this fire stopped before it started",
                )


def _last_error(tail: str) -> str:
    """The error a failed `klerk` process printed last (its 'klerk: ...' line)."""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("klerk:"):
            return line.removeprefix("klerk:").strip()
    return lines[-1] if lines else "no message"


def input_for_fire(
    schedule: Schedule, planned: dt.datetime | None, home: Path
) -> tuple[Path | None, str | None]:
    """The fire's input file and, when it is missing, what to say about it."""
    if schedule.input is None:
        return None, None
    path = render_path(schedule.input, schedule, planned, home)
    if path.exists():
        return path, None
    verb = "skipped" if schedule.if_input_missing is InputMissing.SKIP else "failed"
    return path, f"the input file {path} is not there ({verb} per if_input_missing)"

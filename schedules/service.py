"""`klerk serve`: APScheduler 3.x with its job store in klerk's database, kept in line with the
schedule files, firing runs through the `Dispatcher` until SIGTERM.

On start it takes the scheduler lock (one `klerk serve` per database), brings the job store in
line with the definition files (added, changed, removed, disabled), records the fires that were
missed while it was down, and logs every schedule's next fire times. While it runs it looks
every few seconds for pause, resume and run-now from the CLI, and for runs left behind by a
process that died. SIGTERM: no new fires, each running run finishes its current item and ends
interrupted (resumable), then serve exits 0. SIGHUP reads the schedule files again.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from loguru import logger

from schedules.definition import Overlap, Schedule, load_schedules
from schedules.fires import Dispatcher, Launch, task_of
from schedules.state import JOBS_TABLE, SERVICE_LOCK, Outcome, local
from schedules.triggers import ScheduleTrigger
from tasks.errors import DefinitionError, KlerkError
from tasks.settings import Settings
from tasks.store import RunLockedError, Store, utcnow

_service: Service | None = None


def fire_scheduled(name: str, *, planned: dt.datetime | None = None) -> None:
    """The job function APScheduler keeps in its store: fire schedule `name` in this serve.
    `FireExecutor` passes the planned time."""
    if _service is None or planned is None:
        raise KlerkError("a schedule fired outside klerk serve")
    _service.dispatcher.fire(name, planned)


class FireExecutor(BaseExecutor):  # type: ignore[misc]
    """Runs each fire in a thread of its own and hands the job function its planned time.

    Like APScheduler's own executors, a run time later than the job's misfire grace time is not
    run; here it is also recorded in the schedule's history as missed.
    """

    def __init__(self, service: Service) -> None:
        super().__init__()
        self._owner = service

    def _do_submit_job(self, job: Job, run_times: list[dt.datetime]) -> None:
        thread = threading.Thread(
            target=self._fire, args=(job, run_times), name=f"fire-{job.id}", daemon=False
        )
        self._owner.dispatcher.track(thread)
        thread.start()

    def _fire(self, job: Job, run_times: list[dt.datetime]) -> None:
        try:
            for run_time in run_times:
                late = (utcnow() - run_time).total_seconds()
                grace = job.misfire_grace_time
                if grace is not None and late > grace:
                    self._owner.dispatcher.missed(
                        job.id,
                        run_time,
                        f"{late:.0f} s late, beyond the misfire grace of {grace} s "
                        "(klerk serve was not running, or too busy)",
                    )
                    continue
                job.func(*job.args, planned=run_time, **job.kwargs)
        except Exception:
            logger.exception("schedule {}: the fire failed in klerk itself", job.id)
        finally:
            # the instance count goes back down; the events were dispatched by the dispatcher
            self._run_job_success(job.id, [])


class _ToLoguru(logging.Handler):
    """APScheduler logs with the standard library; its errors go to serve's log too."""

    def emit(self, record: logging.LogRecord) -> None:
        logger.opt(depth=6).log(record.levelname, "apscheduler: {}", record.getMessage())


class Service:
    """The long-running scheduler of `klerk serve`."""

    def __init__(self, store: Store, folder: Path, current: Settings, launch: Launch) -> None:
        self.store = store
        self.folder = folder
        self.current = current
        self.dispatcher = Dispatcher(store, current, launch, {})
        self.service_id = "serve-" + secrets.token_hex(4)
        self.zone = ZoneInfo("Europe/Amsterdam")
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=store.engine, tablename=JOBS_TABLE)},
            executors={"default": FireExecutor(self)},
            timezone=self.zone,
        )
        self.scheduler.add_listener(self._on_max_instances, EVENT_JOB_MAX_INSTANCES)
        self._paused: set[str] = set()
        self._reload = threading.Event()
        self._signals = 0

    # --- start ------------------------------------------------------------------------------

    def load(self) -> dict[str, tuple[Schedule, Path]]:
        """The schedule files, checked (and their tasks found); DefinitionError lists problems."""
        schedules = load_schedules(self.folder)
        problems: list[str] = []
        for name, (schedule, path) in schedules.items():
            try:
                self.dispatcher.task_names[name] = task_of(schedule, path).name
            except DefinitionError as exc:
                problems.extend(f"{path}: task {schedule.task!r}: {p}" for p in exc.problems)
        if problems:
            raise DefinitionError(problems)
        return schedules

    def _lock(self) -> None:
        try:
            self.store.acquire_lock(SERVICE_LOCK, self.service_id, self.current.lock_stale_seconds)
        except RunLockedError:
            holder = self.store.lock_holder(SERVICE_LOCK)
            where = f"pid {holder.pid} on {holder.host}" if holder else "another process"
            raise KlerkError(
                f"klerk serve is already running for this database ({where}); one scheduler "
                "per database, or every fire would start twice"
            ) from None

    def serve(self, on_ready: Callable[[], None] | None = None) -> int:
        """Run until SIGTERM or SIGINT; returns the exit code."""
        global _service
        schedules = self.load()
        self._lock()
        _service = self
        # its warnings about skipped instances repeat what the dispatcher logs; errors stay
        logging.getLogger("apscheduler").addHandler(_ToLoguru(level=logging.ERROR))
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        previous_hup = signal.signal(signal.SIGHUP, lambda *_: self._reload.set())
        try:
            self.scheduler.start(paused=True)
            self.dispatcher.schedules = schedules
            self.dispatcher.reconcile(os.getpid())
            self._sync(schedules, starting=True)
            self.scheduler.resume()
            logger.info(
                "klerk serve is running (pid {}, {} schedule(s) from {})",
                os.getpid(),
                len(schedules),
                self.folder,
            )
            if on_ready is not None:
                on_ready()
            self._loop()
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.signal(signal.SIGHUP, previous_hup)
            _service = None
        return 0

    def _sync(self, schedules: dict[str, tuple[Schedule, Path]], *, starting: bool) -> None:
        """Bring the job store in line with the schedule files; log what changed and when each
        schedule fires next."""
        now = utcnow()
        states = self.dispatcher.book.states()
        jobs: dict[str, Job] = {job.id: job for job in self.scheduler.get_jobs()}
        for name, (schedule, path) in sorted(schedules.items()):
            state = states.get(name)
            job = jobs.get(name)
            definition, trigger = schedule.fingerprint(), schedule.fingerprint(trigger_only=True)
            options = {
                "misfire_grace_time": schedule.misfire_grace_seconds,
                "coalesce": schedule.coalesce,
                # skip: one at a time; queue: one running and one waiting for it
                "max_instances": 1 if schedule.overlap is Overlap.SKIP else 2,
            }
            if not schedule.enabled:
                if job is not None:
                    self.scheduler.remove_job(name)
                logger.info("schedule {}: disabled (enabled: false); it does not fire", name)
            elif job is None:
                self.scheduler.add_job(
                    fire_scheduled,
                    trigger=ScheduleTrigger(schedule),
                    args=[name],
                    id=name,
                    name=name,
                    replace_existing=True,
                    **options,
                )
                logger.info("schedule {}: added", name)
            elif state is None or state.trigger_sha256 != trigger:
                self.scheduler.modify_job(name, **options)
                self.scheduler.reschedule_job(name, trigger=ScheduleTrigger(schedule))
                logger.info("schedule {}: changed; fire times computed anew", name)
            else:
                if state.definition_sha256 != definition:
                    self.scheduler.modify_job(name, **options)
                    logger.info("schedule {}: changed (its fire times stay)", name)
                if starting:
                    self._missed_while_down(job, schedule, now)
            self.dispatcher.book.synced(
                name,
                task=self.dispatcher.task_name(name),
                path=str(path),
                definition_sha256=definition,
                trigger_sha256=trigger,
                enabled=schedule.enabled,
            )
        for name in sorted(set(jobs) - set(schedules)):
            self.scheduler.remove_job(name)
            self.dispatcher.book.forget(name)
            logger.info("schedule {}: removed (its file is gone); its history stays", name)
        self._paused.clear()
        self._apply_pauses(schedules)
        for name, (schedule, _) in sorted(schedules.items()):
            job = self.scheduler.get_job(name)
            if job is None:
                continue
            if name in self._paused:
                logger.info("schedule {}: paused", name)
                continue
            times = _next_times(job, 5)
            shown = ", ".join(local(t, schedule.zone()) for t in times) or "never again"
            logger.info("schedule {} ({}): next {}", name, schedule.trigger.describe(), shown)

    def _missed_while_down(self, job: Job, schedule: Schedule, now: dt.datetime) -> None:
        """Log (and record) the fires that fell while serve was down; APScheduler runs the latest
        of them when it is within the grace time (or each, without coalescing)."""
        if job.next_run_time is None or job.next_run_time > now:
            return
        due: list[dt.datetime] = []
        moment: dt.datetime | None = job.next_run_time
        while moment is not None and moment <= now and len(due) < 1000:
            due.append(moment)
            moment = job.trigger.get_next_fire_time(moment, now)
        zone = schedule.zone()
        logger.warning(
            "schedule {}: {}{} fire(s) due while klerk serve was down, from {} to {}; {}",
            schedule.name,
            len(due),
            "+" if len(due) >= 1000 else "",
            local(due[0], zone),
            local(due[-1], zone),
            "the latest runs if it is within the misfire grace time, once (coalesce)"
            if schedule.coalesce
            else "each runs if it is within the misfire grace time",
        )
        if schedule.coalesce and len(due) > 1:
            self.dispatcher.missed(
                schedule.name,
                due[0],
                f"{len(due) - 1} fire(s) from {local(due[0], zone)} to {local(due[-2], zone)} "
                f"fell while klerk serve was down; coalesced into the fire of "
                f"{local(due[-1], zone)}",
                notify=False,
            )

    def _apply_pauses(self, schedules: dict[str, tuple[Schedule, Path]]) -> None:
        """Pause or resume jobs as the CLI left them in the database."""
        for name, state in self.dispatcher.book.states().items():
            if name not in schedules or self.scheduler.get_job(name) is None:
                continue
            if state.paused and name not in self._paused:
                self.scheduler.pause_job(name)
                self._paused.add(name)
                if state.paused_by:
                    logger.info(
                        "schedule {}: paused by {} {}", name, state.paused_by, state.pause_reason
                    )
            elif not state.paused and name in self._paused:
                self.scheduler.resume_job(name)
                self._paused.discard(name)
                job = self.scheduler.get_job(name)
                schedule = schedules[name][0]
                nxt = (
                    local(job.next_run_time, schedule.zone()) if job and job.next_run_time else "-"
                )
                logger.info("schedule {}: resumed by {}; next {}", name, state.paused_by, nxt)

    # --- running ----------------------------------------------------------------------------

    def _loop(self) -> None:
        ticks = 0
        while not self.dispatcher.stopping.wait(self.current.scheduler_poll_seconds):
            ticks += 1
            self.store.heartbeat(SERVICE_LOCK, self.service_id)
            schedules = self.dispatcher.schedules
            self._apply_pauses(schedules)
            for request in self.dispatcher.book.take_requests():
                if request.schedule not in schedules:
                    logger.error("run-now of unknown schedule {} ignored", request.schedule)
                    continue
                logger.info(
                    "schedule {}: run now, asked by {}", request.schedule, request.requested_by
                )
                self.dispatcher.fire_in_thread(
                    request.schedule, None, f"run-now by {request.requested_by}", request.id
                )
            if self._reload.is_set():
                self._reload.clear()
                self._reread()
            if ticks % 15 == 0:
                self.dispatcher.reconcile(os.getpid())

    def _reread(self) -> None:
        """SIGHUP: read the schedule files again; on a problem keep the schedules as they are."""
        logger.info("SIGHUP: reading the schedule files again")
        try:
            schedules = self.load()
        except DefinitionError as exc:
            for problem in exc.problems:
                logger.error(problem)
            logger.error("schedule files not taken over; the running schedules stay as they were")
            return
        self.dispatcher.schedules = schedules
        self._sync(schedules, starting=False)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals == 1:
            logger.info(
                "{}: stopping; running runs finish their current item and end interrupted", name
            )
        else:
            logger.warning("{} again: the runs abandon their items in progress", name)
        self.dispatcher.stop()

    def _on_max_instances(self, event: JobSubmissionEvent) -> None:
        schedule = self.dispatcher.schedules.get(event.job_id)
        if schedule is None:
            return
        why = (
            "the previous fire of this schedule is still running"
            if schedule[0].overlap is Overlap.SKIP
            else "a fire of this schedule already waits for the running one"
        )
        for run_time in event.scheduled_run_times:
            fire = self.dispatcher.book.new_fire(
                event.job_id,
                self.dispatcher.task_name(event.job_id),
                run_time,
                "schedule",
            )
            self.dispatcher.end(fire, schedule[0], Outcome.SKIPPED, why)

    def _shutdown(self) -> None:
        if not self.dispatcher.stopping.is_set():
            self.dispatcher.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        while not self.dispatcher.join(timeout=1.0):
            if self.dispatcher.active_count():
                logger.info("waiting for {} run(s) to stop", self.dispatcher.active_count())
        self.store.release_lock(SERVICE_LOCK, self.service_id)
        logger.info("klerk serve stopped")


def _next_times(job: Job, count: int) -> list[dt.datetime]:
    """The next `count` fire times of a job in the store (from its next run time on)."""
    times: list[dt.datetime] = []
    moment: dt.datetime | None = job.next_run_time
    while moment is not None and len(times) < count:
        times.append(moment)
        moment = job.trigger.get_next_fire_time(moment, moment)
    return times

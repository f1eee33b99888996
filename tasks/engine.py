"""How a run goes: read the source, persist work items, let N bot sessions work through them,
record every action and outcome, retry system errors, and write the results from the store.

The engine never sees a Playwright object: it talks to bots through `tasks.plugins`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from tasks import __version__
from tasks.definition import (
    AlreadyDone,
    AppDefinition,
    BusinessErrorIfStep,
    ClickStep,
    ExtractStep,
    Locator,
    StepModel,
    Task,
    kind_of,
    step_label,
)
from tasks.errors import (
    AppUnavailableError,
    AuditError,
    BotError,
    BusinessError,
    DataError,
    KlerkError,
    RunAborted,
    SessionExpiredError,
)
from tasks.ledger import OPENED, RESUMED, SEALED, Ledger
from tasks.plugins import (
    Bot,
    BotOptions,
    BotSession,
    ItemContext,
    SourceRow,
    StepOutcome,
    TraceMode,
    make_bot,
    make_sink,
    make_source,
)
from tasks.privacy import add_secrets, redact
from tasks.report import write_report_safely
from tasks.secrets import Credentials, load_credentials
from tasks.signing import load_signer
from tasks.states import ItemState, RunState
from tasks.store import RunRecord, Store, WorkItemRecord, from_json, to_json, utcnow
from tasks.templates import TemplateRenderError, evaluate, is_template, render, render_tree
from tasks.trail import STATUS_ERROR, STATUS_OK, Trail, new_operation_id, new_trace_id

ProgressCallback = Callable[[WorkItemRecord], None]

STATUS_COLUMN, MESSAGE_COLUMN = "status", "melding"
ITEMS_PER_SESSION = 100
"""A bot session is closed and opened anew (a fresh browser context, logged in) after this many
items: Playwright keeps every request and response of a context, in the driver and in Python,
until the context closes (microsoft/playwright#6319), so a long run would grow without end."""


@dataclass(frozen=True)
class RunOptions:
    """What the person starting a run chose."""

    input: Path | None = None
    results: Path | None = None
    concurrency: int | None = None
    limit: int | None = None
    headed: bool = False
    slow_mo_ms: int = 0
    base_url: str | None = None
    started_by: str = "user"
    subject_key: bytes = b""
    signing_key: Path | None = None
    trace: TraceMode = TraceMode.OFF


@dataclass
class RunSummary:
    """The outcome of a run, for the summary table and the exit code."""

    run_id: str
    state: RunState
    counts: dict[str, int]
    started: float
    ended: float
    results_path: Path | None
    run_dir: Path
    message: str = ""

    @property
    def duration(self) -> float:
        """Seconds from start to end."""
        return self.ended - self.started

    @property
    def handled(self) -> int:
        """Items that reached a final state in this run."""
        return sum(n for state, n in self.counts.items() if ItemState(state).final)

    @property
    def exit_code(self) -> int:
        """0 all done; 1 finished with items not done; 3 aborted or interrupted."""
        if self.state is not RunState.FINISHED:
            return 3
        not_done = sum(n for state, n in self.counts.items() if state not in ("done", "skipped"))
        return 0 if not_done == 0 else 1


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def new_run_id() -> str:
    """A sortable, unique run id: 20261126-141502-3fa9c1."""
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def template_context(input_path: Path | None, run_id: str = "") -> dict[str, Any]:
    """Variables every template may use besides `item`."""
    return {
        "input": str(input_path) if input_path else "",
        "today": dt.date.today(),
        "now": dt.datetime.now(),
        "run": {"id": run_id},
    }


def resolve_path(template: str, input_path: Path | None) -> Path:
    """A path from the definition, rendered with the run's variables."""
    try:
        return Path(render(template, template_context(input_path)))
    except TemplateRenderError as exc:
        raise DataError(f"cannot work out the path {template!r}: {exc}") from None


def render_locator(locator: Locator, context: Mapping[str, Any]) -> Locator:
    """A copy of `locator` with its templates rendered for one item."""
    return Locator.model_validate(render_tree(locator.model_dump(exclude_none=True), context))


def render_step(step: StepModel, context: Mapping[str, Any]) -> StepModel:
    """A copy of `step` with every template rendered for one item (the step itself if none)."""
    data = _step_data(step)
    if data is None:
        return step
    return type(step).model_validate(render_tree(data, context))


_step_data_cache: dict[int, tuple[StepModel, dict[str, Any] | None]] = {}


def _step_data(step: StepModel) -> dict[str, Any] | None:
    """The step as plain data when it holds templates, else None (nothing to render).

    Cached by identity (the cache keeps the step alive, so its id is not reused): a run renders
    the same few steps for every item.
    """
    cached = _step_data_cache.get(id(step))
    if cached is not None and cached[0] is step:
        return cached[1]
    data = step.model_dump(exclude_none=True)
    result = data if _holds_template(data) else None
    if len(_step_data_cache) > 4096:
        _step_data_cache.clear()
    _step_data_cache[id(step)] = (step, result)
    return result


def _holds_template(value: Any) -> bool:
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, dict):
        return any(_holds_template(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_template(item) for item in value)
    return False


def read_source(
    task: Task, options: RunOptions
) -> tuple[list[SourceRow], dict[str, str], Path | None]:
    """All rows of the task's source (limited by --limit), its headers and the input path."""
    spec = task.source
    if spec.kind == "none":
        row = SourceRow(key=task.name, row=1, values={})
        return [row], {}, None
    assert spec.path is not None
    input_path = options.input
    path = resolve_path(spec.path, input_path) if input_path or "{{" not in spec.path else None
    if path is None:
        raise DataError(f"task {task.name!r} reads {spec.path!r}: give the input file with --input")
    source = make_source(spec, path)
    rows = list(source.items())
    if options.limit is not None:
        rows = rows[: options.limit]
    for warning in getattr(source, "warnings", []):
        logger.warning(warning)
    return rows, dict(source.headers()), path


def item_variables(input_path: Path | None, context: ItemContext) -> dict[str, Any]:
    """The template variables of one item's steps: the run's, plus `item` and `outputs`."""
    variables = template_context(input_path, context.run_id)
    variables["item"] = {**context.values, "key": context.key, **context.outputs}
    variables["outputs"] = context.outputs
    return variables


def bot_options(
    app: AppDefinition,
    task: Task,
    options: RunOptions,
    credentials: Credentials | None,
    evidence_dir: Path,
) -> BotOptions:
    """How the bot of a run (or a try) launches its browser and where it keeps evidence."""
    return BotOptions(
        evidence_dir=evidence_dir,
        headed=options.headed,
        slow_mo_ms=options.slow_mo_ms,
        base_url=options.base_url,
        secrets=(credentials.password.get_secret_value(),) if credentials else (),
        mask_labels=tuple(app.mask) + tuple(task.mask),
        trace=options.trace,
        files_dir=options.input.parent if options.input else None,
    )


@dataclass(frozen=True)
class StepDone:
    """One step as it went, for the trail of a run or the lines of `klerk try`."""

    number: int
    step: StepModel
    started: float
    outcome: StepOutcome | None = None
    error: Exception | None = None

    @property
    def label(self) -> str:
        """The step as the trail names it."""
        return step_label(self.step)

    @property
    def seconds(self) -> float:
        """How long the step took, up to now."""
        return time.time() - self.started


async def perform_steps(
    steps: Sequence[StepModel],
    session: BotSession,
    context: ItemContext,
    variables: dict[str, Any],
    on_step: Callable[[StepDone], None],
    *,
    before_step: Callable[[], None] | None = None,
) -> None:
    """Render and do `steps` for one item, telling `on_step` how each went (a failed one too,
    before its error is raised again); extracted outputs go into the context and `item`."""
    for number, step in enumerate(steps, start=1):
        if before_step is not None:
            before_step()
        start = time.time()
        try:
            if step.when is not None and not evaluate(step.when, variables):
                skipped = StepOutcome(detail=f"skipped: `when: {step.when}` is false")
                on_step(StepDone(number, step, start, outcome=skipped))
                continue
            rendered = render_step(step, variables)
            outcome = await session.perform(rendered, context)
        except (BusinessError, AppUnavailableError, BotError, TemplateRenderError) as exc:
            on_step(StepDone(number, step, start, error=exc))
            raise
        if outcome.outputs:
            context.outputs.update(outcome.outputs)
            variables["item"].update(outcome.outputs)
        on_step(StepDone(number, step, start, outcome=outcome))


async def context_steps(
    steps: Sequence[StepModel],
    session: BotSession,
    run_id: str,
    input_path: Path | None,
    on_step: Callable[[StepDone], None],
) -> None:
    """Do the setup or teardown steps of a task in a browser context: for no item (`item` holds
    only an empty key; what they extract is not kept)."""
    context = ItemContext(key="", values={}, run_id=run_id)
    await perform_steps(steps, session, context, item_variables(input_path, context), on_step)


class Run:
    """One run of a task: new (`start`) or resumed (`resume`)."""

    def __init__(
        self,
        task: Task,
        task_path: Path,
        app: AppDefinition,
        store: Store,
        runs_dir: Path,
        options: RunOptions,
        *,
        lock_stale_seconds: float = 60.0,
        progress: ProgressCallback | None = None,
        credentials_loader: Callable[[str], Credentials] = load_credentials,
    ) -> None:
        self.task = task
        self.task_path = task_path
        self.app = app
        self.store = store
        self.runs_dir = runs_dir
        self.options = options
        self.lock_stale_seconds = lock_stale_seconds
        self.progress = progress
        self.credentials_loader = credentials_loader
        self.stop_requested = asyncio.Event()
        self._extract_found: ExtractStep | None = None
        self.record: RunRecord | None = None
        self.trail: Trail | None = None
        self.ledger: Ledger | None = None
        self._consecutive_system_errors = 0
        self._abort_reason = ""
        self._run_operation = ""
        self._in_doubt: set[str] = set()

    # --- preparing ----------------------------------------------------------------------------

    def read_source(self) -> tuple[list[SourceRow], dict[str, str], Path | None]:
        """All rows of the source (limited by --limit), its headers and the input path."""
        return read_source(self.task, self.options)

    def results_path(self, input_path: Path | None) -> Path | None:
        """Where the results go: --results, else the sink's (templated) path."""
        if self.options.results is not None:
            return self.options.results
        if self.task.sink is None:
            return None
        return resolve_path(self.task.sink.path, input_path)

    def create(self) -> RunRecord:
        """Read the input and store a new run with its work items; nothing is done in the app."""
        if self.task.credentials:  # missing credentials stop a run before anything is stored
            self.credentials_loader(self.task.credentials)
        rows, headers, input_path = self.read_source()
        run_id = new_run_id()
        results = self.results_path(input_path)
        record = RunRecord(
            id=run_id,
            task=self.task.name,
            definition_path=str(self.task_path.resolve()),
            definition_sha256=sha256_file(self.task_path),
            input_path=str(input_path.resolve()) if input_path else None,
            input_sha256=sha256_file(input_path) if input_path else None,
            results_path=str(results.resolve()) if results else None,
            state=RunState.RUNNING.value,
            started_by=self.options.started_by,
            host=socket.gethostname(),
            started_at=utcnow(),
            message="",
            options={
                "concurrency": self.concurrency,
                "limit": self.options.limit,
                "trace_id": new_trace_id(),
                "base_url": self.options.base_url,
            },
            headers=headers,
        )
        self.store.acquire_lock(self.task.name, run_id, self.lock_stale_seconds)
        keys = [row.key for row in rows]
        done_before = self.store.done_before(self.task.name, keys)
        self._in_doubt = self.store.in_doubt(self.task.name, keys, run_id)
        items = []
        for seq, row in enumerate(rows, start=1):
            items.append(
                WorkItemRecord(
                    run_id=run_id,
                    seq=seq,
                    task=self.task.name,
                    key=row.key,
                    row=row.row,
                    state=ItemState.PENDING.value,
                    attempts=0,
                    values=to_json(dict(row.values)),
                    subject=row.subject,
                    outputs={},
                    message="",
                    updated_at=utcnow(),
                )
            )
        self.store.create_run(record)
        self.store.add_items(items)
        self.record = record
        self._open_trail()
        with self._ledger_entry(OPENED) as ledger_facts:
            self._run_operation = self._trail().record(
                "run_started",
                action="start",
                obj=f"task {self.task.name}",
                extra={
                    "klerk.started_by": self.options.started_by,
                    "klerk.version": __version__,
                    "klerk.definition_path": record.definition_path,
                    "klerk.input_file": input_path.name if input_path else "",
                    "klerk.items": len(items),
                },
                facts={"klerk.input_sha256": record.input_sha256 or "", **ledger_facts},
                sync=True,
            )
        problems = {row.row: row.problem for row in rows if row.problem}
        for item in items:
            if item.row in problems:
                self._finish_item(item, ItemState.BUSINESS_ERROR, problems[item.row] or "")
            elif item.key in done_before:
                earlier_run, outputs = done_before[item.key]
                self._finish_item(
                    item,
                    ItemState.SKIPPED,
                    f"al verwerkt in run {earlier_run}",
                    outputs=from_json(outputs),
                )
        return record

    def reopen(self, record: RunRecord) -> None:
        """Take up a stored run again: system errors get another chance, running items are
        checked in the app (already_done) before they are entered again."""
        if record.state == RunState.RUNNING.value:
            holder = self.store.lock_holder(record.task)
            if holder is not None and holder.run_id == record.id:
                logger.info("run {} was left running; taking it over", record.id)
        if sha256_file(self.task_path) != record.definition_sha256:
            logger.warning(
                "the task definition {} changed since run {} started", self.task_path, record.id
            )
        self.store.acquire_lock(self.task.name, record.id, self.lock_stale_seconds)
        self.store.reopen_run(record.id)
        keys = [item.key for item in self.store.items(record.id)]
        self._in_doubt = self.store.in_doubt(self.task.name, keys, record.id)
        self.record = record
        for item in self.store.items(record.id, [ItemState.SYSTEM_ERROR]):
            self.store.transition(item, ItemState.PENDING, message="")
        self._open_trail()
        with self._ledger_entry(RESUMED) as ledger_facts:
            self._run_operation = self._trail().record(
                "run_resumed",
                action="resume",
                obj=f"task {self.task.name}",
                extra={"klerk.started_by": self.options.started_by, "klerk.version": __version__},
                facts=ledger_facts,
                sync=True,
            )

    @property
    def concurrency(self) -> int:
        """How many browser contexts work at once."""
        return self.options.concurrency or self.task.concurrency

    def _open_trail(self) -> None:
        assert self.record is not None
        signer = load_signer(self.options.signing_key) if self.options.signing_key else None
        self.ledger = Ledger(self.runs_dir, signer) if signer else None
        self.trail = Trail(
            self.run_dir / "audit.jsonl",
            run_id=self.record.id,
            trace_id=str(self.record.options.get("trace_id") or new_trace_id()),
            task=self.task.name,
            definition_sha256=self.record.definition_sha256,
            app=self.app.name,
            processing_activity=self.task.processing_activity,
            legal_basis=self.task.legal_basis,
            actor=self.options.started_by,
            subject_key=self.options.subject_key,
            signer=signer,
        )

    def _trail(self) -> Trail:
        assert self.trail is not None
        return self.trail

    @contextlib.contextmanager
    def _ledger_entry(self, kind: str) -> Iterator[dict[str, str]]:
        """Hold the ledger while the block writes the trail record that opens or resumes the
        run (it gets the ledger's head as facts), then enter that record in the ledger."""
        if self.ledger is None:
            yield {}
            return
        trail = self._trail()
        with self.ledger.locked() as head:
            yield head.facts()
            self.ledger.append(
                kind, trail.run_id, trail.task, record_seq=trail.seq, record_hash=trail.last_hash
            )

    def _seal_in_ledger(self, state: RunState) -> None:
        trail = self._trail()
        if self.ledger is None:
            return
        with self.ledger.locked():
            self.ledger.append(
                SEALED,
                trail.run_id,
                trail.task,
                record_seq=trail.seq,
                record_hash=trail.last_hash,
                state=state.value,
            )

    @property
    def run_dir(self) -> Path:
        """runs/<run-id>/."""
        assert self.record is not None
        return self.runs_dir / self.record.id

    # --- running ---------------------------------------------------------------------------

    async def execute(self) -> RunSummary:
        """Work through the pending items of the stored run and write the results."""
        assert self.record is not None
        started = time.time()
        run_id = self.record.id
        state = RunState.FINISHED
        message = ""
        try:
            credentials = (
                self.credentials_loader(self.task.credentials) if self.task.credentials else None
            )
            if credentials is not None:
                add_secrets([credentials.password.get_secret_value()])
            bot = make_bot(self.app, self._bot_options(credentials))
            try:
                await self._work(bot, credentials)
            finally:
                await bot.close()
            if self._abort_reason:
                state, message = RunState.ABORTED, self._abort_reason
            elif self.stop_requested.is_set():
                state, message = RunState.INTERRUPTED, "stopped on request"
        except asyncio.CancelledError:
            state, message = RunState.INTERRUPTED, "abandoned on a second stop request"
            raise
        except AuditError:
            state, message = RunState.ABORTED, "the trail or the store could not be written"
            raise
        except RunAborted as exc:
            state, message = RunState.ABORTED, str(exc)
        except KlerkError as exc:
            state, message = RunState.ABORTED, str(exc)
            raise
        finally:
            counts = await self._close(state, message)
        results = self.write_results()
        self._write_run_file(state, counts, results, message)
        write_report_safely(self.store, run_id, self.task, self.run_dir, self.options.signing_key)
        return RunSummary(
            run_id=run_id,
            state=state,
            counts=counts,
            started=started,
            ended=time.time(),
            results_path=results,
            run_dir=self.run_dir,
            message=message,
        )

    async def _close(self, state: RunState, message: str) -> dict[str, int]:
        """End the run in the trail and the store; returns the items per state."""
        assert self.record is not None
        counts = self.store.counts(self.record.id)
        try:
            if self.trail is not None:
                self.trail.record(
                    "run_ended",
                    parent=self._run_operation,
                    status=STATUS_OK if state is RunState.FINISHED else STATUS_ERROR,
                    action="end",
                    obj=f"task {self.task.name}",
                    result=state.value + (f": {message}" if message else ""),
                    extra={"klerk.counts": counts},
                    sync=True,
                )
                self.trail.checkpoint()
                self._seal_in_ledger(state)
        finally:
            if self.trail is not None:
                self.trail.close()
            self.store.finish_run(self.record.id, state, redact(message))
            self.store.release_lock(self.task.name, self.record.id)
        return counts

    def _bot_options(self, credentials: Credentials | None) -> BotOptions:
        evidence_dir = self.run_dir / "evidence"
        return bot_options(self.app, self.task, self.options, credentials, evidence_dir)

    async def _work(self, bot: Bot, credentials: Credentials | None) -> None:
        assert self.record is not None
        pending = list(self.store.items(self.record.id, [ItemState.PENDING, ItemState.RUNNING]))
        if not pending:
            return
        queue: asyncio.Queue[WorkItemRecord] = asyncio.Queue()
        for item in pending:
            queue.put_nowait(item)
        first = await self._first_login(bot, credentials)
        workers = [
            asyncio.create_task(
                self._worker(bot, credentials, queue, first if n == 0 else None), name=f"w{n}"
            )
            for n in range(min(self.concurrency, len(pending)))
        ]
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            results = await asyncio.gather(*workers, return_exceptions=True)
        finally:
            heartbeat.cancel()
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result

    async def _first_login(self, bot: Bot, credentials: Credentials | None) -> BotSession:
        """Log in once, retrying like an item: if the app is not there, nothing is marked failed."""
        assert self.record is not None
        retry = self.task.retry
        for attempt in range(1, retry.attempts + 1):
            try:
                return await self._open(bot, credentials)
            except (BotError, TemplateRenderError) as exc:
                raise RunAborted(
                    f"the setup steps of {self.task.name} failed ({redact(str(exc))}); no item "
                    f"was touched. Fix them, then `klerk resume {self.record.id}`"
                ) from None
            except AppUnavailableError as exc:
                refused = getattr(exc, "final", False)
                if attempt == retry.attempts or refused:
                    raise RunAborted(
                        f"{self.app.name} is not available ({exc}); no item was touched. "
                        f"Start it again with `klerk resume {self.record.id}` when the app is back"
                    ) from None
                logger.warning("login attempt {}/{}: {}", attempt, retry.attempts, exc)
                await self._sleep(retry.delay(attempt))
        raise AssertionError("unreachable")

    async def _heartbeat(self) -> None:
        assert self.record is not None
        while True:
            await asyncio.sleep(max(1.0, self.lock_stale_seconds / 4))
            self.store.heartbeat(self.task.name, self.record.id)

    async def _worker(
        self,
        bot: Bot,
        credentials: Credentials | None,
        queue: asyncio.Queue[WorkItemRecord],
        session: BotSession | None,
    ) -> None:
        handled = 0
        try:
            while not self.stop_requested.is_set() and not self._abort_reason:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                session = await self._process(bot, credentials, item, session)
                handled += 1
                if session is not None and handled % ITEMS_PER_SESSION == 0:
                    await self._close_session(session)
                    session = None
        finally:
            if session is not None:
                await self._close_session(session)

    async def _process(
        self,
        bot: Bot,
        credentials: Credentials | None,
        item: WorkItemRecord,
        session: BotSession | None,
    ) -> BotSession | None:
        """Handle one item until it is final (or the run stops); returns the session to reuse."""
        trail = self._trail()
        retry = self.task.retry
        was_running = item.state == ItemState.RUNNING.value
        # tried before (killed while running, or a system error given another chance on
        # resume; here or in another run of the same input): the app may hold it already,
        # so look before entering it again
        tried_before = was_running or item.attempts > 0 or item.key in self._in_doubt
        item_op = new_operation_id()
        values = from_json(item.values)
        context = ItemContext(key=item.key, values=values, outputs={}, run_id=item.run_id)
        item_started = time.time()
        trail.record(
            "item_started",
            operation_id=item_op,
            parent=self._run_operation,
            action="start",
            obj=f"item {item.key}",
            item_key=item.key,
            subject=item.subject,
            extra={"klerk.item_seq": item.seq, "klerk.resumed": was_running},
        )
        last_error = ""
        attempt = 0
        relogins = 0  # sessions the app ended while they waited: a new login, not a new attempt
        while attempt < retry.attempts:
            attempt += 1
            if self.stop_requested.is_set() and attempt > 1:
                break
            self.store.transition(item, ItemState.RUNNING, attempt=True)
            reused = session is not None
            try:
                if session is None:
                    session = await self._open(bot, credentials)
                await session.begin_item()
                if tried_before and self.task.already_done is not None:
                    found = await self._already_done(session, context, item_op, item)
                    if found is not None:
                        await session.end_item()
                        self._finish_item(
                            item,
                            ItemState.DONE,
                            "al ingevoerd (gevonden bij controle)",
                            outputs=found,
                            operation=item_op,
                            started=item_started,
                        )
                        return session
                await self._steps(session, context, item_op, item)
                await session.end_item()
            except RunAborted:
                # the circuit breaker tripped in another worker: this item waits for the resume
                self.store.transition(item, ItemState.PENDING, message="")
                raise
            except BusinessError as exc:
                evidence = await self._evidence(session, item)
                self._finish_item(
                    item,
                    ItemState.BUSINESS_ERROR,
                    str(exc),
                    outputs=context.outputs,
                    evidence=evidence,
                    operation=item_op,
                    started=item_started,
                )
                return session
            except (AppUnavailableError, BotError, TemplateRenderError) as exc:
                last_error = redact(str(exc))
                # a session kept through a back-off (or from the previous item) that the app
                # ended meanwhile says nothing about this item: log in again, same attempt
                relogin = (
                    isinstance(exc, SessionExpiredError) and reused and relogins < retry.attempts
                )
                relogins += relogin
                is_last = not relogin and (
                    attempt == retry.attempts or isinstance(exc, TemplateRenderError)
                )
                trail.record(
                    "retry" if not is_last else "error",
                    parent=item_op,
                    status=STATUS_ERROR,
                    action="error",
                    obj=f"item {item.key}",
                    result=f"{exc.__class__.__name__}: {last_error}",
                    item_key=item.key,
                    extra={"klerk.attempt": attempt},
                )
                logger.warning(
                    "item {} attempt {}/{}: {}", item.key, attempt, retry.attempts, last_error
                )
                if is_last:
                    evidence = await self._evidence(session, item, bot)
                    if session is not None:
                        await self._close_session(session)
                    self._finish_item(
                        item,
                        ItemState.SYSTEM_ERROR,
                        last_error,
                        outputs=context.outputs,
                        evidence=evidence,
                        operation=item_op,
                        started=item_started,
                    )
                    return None
                keep = isinstance(exc, AppUnavailableError) and exc.session_ok
                if session is not None and not keep:
                    await self._close_session(session)
                    session = None
                tried_before = True  # the failed attempt may have stored the item all the same
                if relogin:
                    attempt -= 1
                else:
                    await self._sleep(retry.delay(attempt))
                continue
            self._finish_item(
                item,
                ItemState.DONE,
                "",
                outputs=context.outputs,
                operation=item_op,
                started=item_started,
            )
            return session
        # stopped between attempts: the item goes back to pending, resumable
        self.store.transition(item, ItemState.PENDING, message=last_error)
        return session

    async def _open(self, bot: Bot, credentials: Credentials | None) -> BotSession:
        """A fresh browser context, logged in, with the task's setup steps done in it."""
        session = await bot.open(credentials)
        if self.task.setup:
            try:
                await self._context_steps("setup", self.task.setup, session)
            except BaseException:
                await session.close()
                raise
        return session

    async def _close_session(self, session: BotSession) -> None:
        """Do the task's teardown steps (best effort: a failure is a warning), then close."""
        try:
            if self.task.teardown:
                await self._context_steps("teardown", self.task.teardown, session)
        except AuditError:
            raise
        except Exception as exc:
            logger.warning("teardown of {} failed: {}", self.task.name, redact(str(exc)))
        finally:
            await session.close()

    async def _context_steps(
        self, phase: str, steps: Sequence[StepModel], session: BotSession
    ) -> None:
        """Setup or teardown steps, each in the trail as an action of the run (no item)."""
        assert self.record is not None
        trail = self._trail()

        def record(done: StepDone) -> None:
            if done.error is not None:
                status, result = STATUS_ERROR, f"failed: {done.error}"
            else:
                assert done.outcome is not None
                status, result = STATUS_OK, done.outcome.detail or "ok"
            trail.record(
                "action",
                parent=self._run_operation,
                start=done.started,
                status=status,
                action=kind_of(done.step),
                obj=done.label,
                result=result,
                extra={"klerk.phase": phase},
            )

        input_path = Path(self.record.input_path) if self.record.input_path else None
        await context_steps(steps, session, self.record.id, input_path, record)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_requested.wait(), timeout=seconds)

    async def _already_done(
        self, session: BotSession, context: ItemContext, parent: str, item: WorkItemRecord
    ) -> dict[str, Any] | None:
        check = self.task.already_done
        assert check is not None
        variables = self._context(context)
        start = time.time()
        if check.action is not None:
            how = f"action {check.action}"
            found = await session.call(check.action, render_tree(check.args, variables), context)
        else:
            assert check.found is not None
            how = f"look-up, found if {check.found.describe()}"
            found = await self._look_up(session, check, context, variables)
        self._trail().record(
            "already_done_check",
            parent=parent,
            start=start,
            action="read",
            obj=how,
            result="found" if found else "not found",
            item_key=item.key,
            subject=item.subject,
        )
        if not found:
            return None
        return dict(found) if isinstance(found, Mapping) else {}

    async def _look_up(
        self,
        session: BotSession,
        check: AlreadyDone,
        context: ItemContext,
        variables: dict[str, Any],
    ) -> dict[str, Any] | None:
        """The already_done check in YAML: its steps, then whether `found` is on the page; the
        outputs of its `extract` when it is. Outputs stay out of the item until it is found."""
        lookup = ItemContext(key=context.key, values=context.values, run_id=context.run_id)
        await perform_steps(check.steps, session, lookup, variables, lambda _done: None)
        assert check.found is not None
        found = render_locator(check.found, variables)
        next_page = render_locator(check.next, variables) if check.next else None
        for _page in range(check.max_pages):
            if await session.present(found):
                break
            if next_page is None or not await session.present(next_page):
                return None
            await session.perform(ClickStep(click=next_page), lookup)
        else:
            return None
        if not check.extract:
            return {}
        if self._extract_found is None:
            self._extract_found = ExtractStep(extract=check.extract)  # one object: cached render
        outcome = await session.perform(render_step(self._extract_found, variables), lookup)
        return dict(outcome.outputs)

    def _context(self, context: ItemContext) -> dict[str, Any]:
        return item_variables(
            Path(self.record.input_path) if self.record and self.record.input_path else None,
            context,
        )

    async def _steps(
        self, session: BotSession, context: ItemContext, parent: str, item: WorkItemRecord
    ) -> None:
        trail = self._trail()

        def not_aborted() -> None:
            if self._abort_reason:
                raise RunAborted(self._abort_reason)

        def record(done: StepDone) -> None:
            if done.error is not None:
                verdict = "refused" if isinstance(done.error, BusinessError) else "failed"
                status, result = STATUS_ERROR, f"{verdict}: {done.error}"
            elif isinstance(done.step, BusinessErrorIfStep):
                return
            else:
                assert done.outcome is not None
                status, result = STATUS_OK, done.outcome.detail or "ok"
            trail.record(
                "action",
                parent=parent,
                start=done.started,
                status=status,
                action=kind_of(done.step),
                obj=done.label,
                result=result,
                item_key=item.key,
                subject=item.subject,
            )

        await perform_steps(
            self.task.steps,
            session,
            context,
            self._context(context),
            record,
            before_step=not_aborted,
        )

    async def _evidence(
        self, session: BotSession | None, item: WorkItemRecord, bot: Bot | None = None
    ) -> tuple[str, ...]:
        """The files kept of a failed item: its screenshot first, then its trace (if tracing).
        Without a session (the app could not be opened) the bot shows where opening stopped."""
        keeper = session or bot
        if keeper is None:
            return ()
        try:
            kept = await keeper.evidence(f"{item.seq:05d}-{_safe(redact(item.key))}")
        except Exception as exc:
            logger.warning("no evidence for item {}: {}", item.key, exc)
            return ()
        return tuple(str(path) for path in kept)

    def _finish_item(
        self,
        item: WorkItemRecord,
        state: ItemState,
        message: str,
        *,
        outputs: Mapping[str, Any] | None = None,
        evidence: Sequence[str] = (),
        operation: str | None = None,
        started: float | None = None,
    ) -> None:
        message = redact(message)
        cause = message
        if state is ItemState.SYSTEM_ERROR and evidence:
            message = f"{message}; screenshot: {evidence[0]}"
        trail = self._trail()
        trail.record(
            "item_ended",
            operation_id=operation,
            parent=self._run_operation,
            start=started,
            status=STATUS_OK if state in (ItemState.DONE, ItemState.SKIPPED) else STATUS_ERROR,
            action="end",
            obj=f"item {item.key}",
            result=state.value + (f": {message}" if message else ""),
            item_key=item.key,
            subject=item.subject,
            extra={"klerk.item_seq": item.seq, "klerk.evidence": ", ".join(evidence)},
            sync=True,
        )
        # the store keeps the first file (the screenshot the report shows); the trail names all
        self.store.transition(
            item, state, message=message, outputs=outputs or {}, evidence=next(iter(evidence), None)
        )
        if state is ItemState.SYSTEM_ERROR:
            self._consecutive_system_errors += 1
            if self._consecutive_system_errors >= self.task.retry.max_consecutive_system_errors:
                self._abort_reason = (
                    f"{self._consecutive_system_errors} items in a row failed with a system "
                    f"error (the last: {cause}); the run stops so that a failing "
                    f"{self.app.name} is not hammered"
                )
        elif state is not ItemState.SKIPPED:
            self._consecutive_system_errors = 0
        if self.progress is not None:
            self.progress(item)

    def _write_run_file(
        self, state: RunState, counts: Mapping[str, int], results: Path | None, message: str
    ) -> None:
        """runs/<id>/run.json: what ran, on what, with what outcome, and where the results are."""
        assert self.record is not None
        record = self.record
        summary = {
            "run_id": record.id,
            "task": record.task,
            "definition": record.definition_path,
            "definition_sha256": record.definition_sha256,
            "input": record.input_path,
            "input_sha256": record.input_sha256,
            "results": str(results) if results else None,
            "state": state.value,
            "message": redact(message),
            "counts": dict(counts),
            "started_by": record.started_by,
            "host": record.host,
            "started_at": record.started_at.isoformat(),
            "ended_at": utcnow().isoformat(),
            "klerk_version": __version__,
        }
        target = self.run_dir / "run.json"
        temporary = target.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(temporary, target)

    # --- results ---------------------------------------------------------------------------

    def write_results(self) -> Path | None:
        """Write the results file from the store (complete, whatever happened before)."""
        assert self.record is not None
        if self.task.sink is None or not self.record.results_path:
            return None
        items = self.store.items(self.record.id)
        columns, rows = results_table(self.task, self.record.headers, items)
        sink = make_sink(self.task.sink, Path(self.record.results_path))
        return sink.write(columns, rows)


def results_table(
    task: Task, headers: Mapping[str, str], items: Sequence[WorkItemRecord]
) -> tuple[list[str], list[dict[str, Any]]]:
    """The results as one table: input columns, outputs, status, message (or an extracted table)."""
    assert task.sink is not None
    if task.sink.table:
        rows = [
            row
            for item in items
            for row in from_json(item.outputs).get(task.sink.table, [])
            if isinstance(row, dict)
        ]
        columns = list(dict.fromkeys(key for row in rows for key in row))
        if task.sink.columns:
            columns = list(task.sink.columns)
        return columns, rows
    output_names: list[str] = []
    for step in task.steps:
        if isinstance(step, ExtractStep):
            output_names.extend(step.extract)
    records = []
    for item in items:
        outputs = from_json(item.outputs)
        for name in outputs:
            if name not in output_names and not isinstance(outputs[name], list):
                output_names.append(name)
        row: dict[str, Any] = {}
        for name, value in from_json(item.values).items():
            row[headers.get(name, name)] = value
        for name in output_names:
            row[name] = outputs.get(name)
        row[STATUS_COLUMN] = item.state
        row[MESSAGE_COLUMN] = item.message
        records.append(row)
    if task.sink.columns:
        columns = [headers.get(name, name) for name in task.sink.columns]
    else:
        columns = [*headers.values(), *output_names, STATUS_COLUMN, MESSAGE_COLUMN]
    return list(dict.fromkeys(columns)), records


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)[:40]

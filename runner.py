"""klerk's command line: parses arguments, wires the rooms together, prints; no business rules."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import shutil
import signal
import sys
import time
import webbrowser
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from loguru import logger
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

import bots
import connectors
from bots.apps import app_names, definition_path
from tasks import __version__
from tasks.definition import AppDefinition, Task, in_frame
from tasks.engine import Run, RunOptions, RunSummary, StepDone
from tasks.errors import BusinessError, DefinitionError, KlerkError
from tasks.export import ExportFormat
from tasks.loading import find_task, load_model, load_task, use_sequences
from tasks.plugins import TraceMode
from tasks.privacy import add_secrets, redact
from tasks.report import REPORT_NAME, write_report
from tasks.settings import Settings, settings, signing_key_path, subject_key
from tasks.states import ItemState, RunState
from tasks.store import RunRecord, Store, WorkItemRecord
from tasks.trial import Trial, TrialOutcome

app = typer.Typer(
    help="klerk: robotic process automation for the back office of a Dutch municipality.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
runs_app = typer.Typer(help="Look at earlier runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
audit_app = typer.Typer(help="Check the audit trails of runs.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
schedule_app = typer.Typer(
    help="Schedules: unattended runs of tasks (`klerk serve` fires them).", no_args_is_help=True
)
app.add_typer(schedule_app, name="schedule")
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)
_debug = False

EXIT_OK, EXIT_NOT_ALL_DONE, EXIT_BAD_INPUT, EXIT_ABORTED = 0, 1, 2, 3


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    global _debug
    _debug = debug


def _wire() -> Settings:
    bots.register_all()
    connectors.register_all()
    return settings()


def _load(task_arg: str) -> tuple[Task, Path, AppDefinition]:
    path = find_task(task_arg)
    task = load_task(path, apps=app_names())
    app_def = load_model(definition_path(task.app), AppDefinition)
    return use_sequences(task, path, app_def), path, app_def


@contextmanager
def _operator_log(run_dir: Path, *, verbose: bool = False) -> Iterator[None]:
    """The run's operator log (klerk.log): redacted, no local variables, errors not swallowed."""
    run_dir.mkdir(parents=True, exist_ok=True)
    logger.remove()

    def patch(record: Any) -> None:
        record["message"] = redact(record["message"])

    logger.configure(patcher=patch)
    handlers = [
        logger.add(
            run_dir / "klerk.log",
            level="DEBUG",
            diagnose=False,
            backtrace=False,
            catch=False,
            rotation=int(settings().log_rotation),  # bytes; KLERK_LOG_ROTATION ("20 MB")
            retention=5,
            enqueue=False,
        ),
        logger.add(
            sys.stderr,
            level="DEBUG" if verbose else "ERROR",
            diagnose=False,
            backtrace=False,
            catch=False,
            format="<level>{level}</level>: {message}",
        ),
    ]
    try:
        yield
    finally:
        for handler in handlers:
            logger.remove(handler)


def _progress_bar(total: int) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[states]}"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
        refresh_per_second=2,
    )


def _execute(run: Run, record: RunRecord, store: Store) -> RunSummary:
    """Run the stored items with a progress bar, stopping cleanly on Ctrl-C or SIGTERM."""
    items = store.items(record.id)
    total = len(items)
    tally: dict[str, int] = {}
    for item in items:
        if ItemState(item.state).final:
            tally[item.state] = tally.get(item.state, 0) + 1
    with _operator_log(Path(run.runs_dir) / record.id), _progress_bar(total) as progress:
        bar = progress.add_task(record.task, total=total, states="", completed=sum(tally.values()))

        def advanced(item: WorkItemRecord) -> None:
            tally[item.state] = tally.get(item.state, 0) + 1
            states = " ".join(f"{state}:{n}" for state, n in sorted(tally.items()))
            progress.update(bar, advance=1, states=states)

        run.progress = advanced
        logger.info("run {} of task {} started ({} items)", record.id, record.task, total)
        try:
            return asyncio.run(_with_signals(run))
        except asyncio.CancelledError:
            run.write_results()
            err.print(
                f"Abandoned: the items in progress are checked in the app on "
                f"`klerk resume {record.id}`"
            )
            raise typer.Exit(EXIT_ABORTED) from None


async def _with_signals(run: Run) -> RunSummary:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    signals_seen = 0

    def stop() -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            err.print(
                "[yellow]Stopping after the current item(s); press Ctrl-C again to abandon them.[/]"
            )
            run.stop_requested.set()
        elif main is not None:
            main.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        return await run.execute()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _new_run(
    task_def: Task,
    path: Path,
    app_def: AppDefinition,
    store: Store,
    runs_dir: Path,
    options: RunOptions,
    current: Settings,
) -> Run:
    return Run(
        task_def,
        path,
        app_def,
        store,
        runs_dir,
        options,
        lock_stale_seconds=current.lock_stale_seconds,
    )


def _summary(summary: RunSummary) -> int:
    table = Table(title=f"run {summary.run_id}", show_header=False)
    table.add_column("")
    table.add_column("", justify="right")
    counts = summary.counts
    for state in ItemState:
        if counts.get(state.value):
            table.add_row(state.value.replace("_", " "), str(counts[state.value]))
    minutes = max(summary.duration, 1e-6) / 60
    table.add_row("duration", f"{summary.duration:.1f} s")
    table.add_row("items per minute", f"{summary.handled / minutes:.1f}")
    table.add_row("results", str(summary.results_path or "-"))
    table.add_row("run folder", str(summary.run_dir))
    console.print(table)
    if summary.state is RunState.INTERRUPTED:
        console.print(f"Interrupted. Continue with: klerk resume {summary.run_id}")
    elif summary.state is RunState.ABORTED:
        err.print(f"[red]Run aborted:[/] {summary.message}")
        err.print(f"Continue later with: klerk resume {summary.run_id}")
    return summary.exit_code


def _run_options(
    input_file: Path | None,
    results: Path | None,
    concurrency: int | None,
    limit: int | None,
    headed: bool,
    slow_mo: int,
    app_url: str | None,
    current: Settings,
    trace: TraceMode = TraceMode.OFF,
) -> RunOptions:
    return RunOptions(
        input=input_file,
        results=results,
        concurrency=concurrency,
        limit=limit,
        headed=headed,
        slow_mo_ms=slow_mo,
        base_url=app_url or current.app_url,
        started_by=os.environ.get("KLERK_STARTED_BY") or f"user:{getpass.getuser()}",
        subject_key=subject_key(current),
        signing_key=signing_key_path(current),
        trace=trace,
    )


TraceOption = Annotated[
    TraceMode,
    typer.Option(help="Keep a Playwright trace of each failed item, personal data scrubbed."),
]


@app.command()
def run(
    task: Annotated[str, typer.Argument(help="Task name (tasks/definitions/) or YAML file.")],
    input_file: Annotated[Path | None, typer.Option("--input", "-i", help="Input file.")] = None,
    results: Annotated[Path | None, typer.Option(help="Where to write the results.")] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, max=32)] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N items.")] = None,
    headed: Annotated[bool, typer.Option(help="Show the browser.")] = False,
    slow_mo: Annotated[int, typer.Option(help="Slow every browser action by MS.")] = 0,
    app_url: Annotated[str | None, typer.Option(help="Base URL of the app (override).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Read and check everything; touch no app.")] = False,
    trace: TraceOption = TraceMode.OFF,
) -> None:
    """Run a task: read the input, do every item in the app, write the results."""
    current = _wire()
    task_def, path, app_def = _load(task)
    store = Store(current.database())
    options = _run_options(
        input_file, results, concurrency, limit, headed, slow_mo, app_url, current, trace
    )
    the_run = _new_run(task_def, path, app_def, store, current.runs(), options, current)
    if dry_run:
        rows, headers, input_path = the_run.read_source()
        bad = [row for row in rows if row.problem]
        console.print(f"task {task_def.name}: {len(rows)} items from {input_path or 'no input'}")
        console.print(f"columns: {', '.join(headers.values()) or '-'}")
        console.print(f"app: {app_def.name} at {options.base_url or app_def.base_url}")
        for row in bad:
            console.print(f"  row {row.row} ({redact(row.key)}): {redact(row.problem or '')}")
        console.print(f"{len(rows) - len(bad)} items would be entered; {len(bad)} have problems")
        console.print(f"results would go to {the_run.results_path(input_path) or '-'}")
        raise typer.Exit(EXIT_OK)
    record = the_run.create()
    raise typer.Exit(_summary(_execute(the_run, record, store)))


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="The run id (or a unique start of it).")],
    concurrency: Annotated[int | None, typer.Option(min=1, max=32)] = None,
    headed: Annotated[bool, typer.Option(help="Show the browser.")] = False,
    app_url: Annotated[str | None, typer.Option(help="Base URL of the app (override).")] = None,
    trace: TraceOption = TraceMode.OFF,
) -> None:
    """Continue an interrupted or aborted run: items found running are checked in the app first."""
    current = _wire()
    store = Store(current.database())
    record = store.run(run_id)
    if record is None:
        raise KlerkError(f"no run {run_id!r}; see `klerk runs list`")
    task_def, path, app_def = _load(record.definition_path)
    base_url = app_url or record.options.get("base_url")
    options = _run_options(None, None, concurrency, None, headed, 0, base_url, current, trace)
    the_run = _new_run(task_def, path, app_def, store, current.runs(), options, current)
    the_run.reopen(record)
    raise typer.Exit(_summary(_execute(the_run, record, store)))


def _print_step(done: StepDone) -> None:
    if done.error is None:
        verdict = "[green]ok[/]"
        detail = done.outcome.detail if done.outcome else ""
    else:
        refused = isinstance(done.error, BusinessError)
        verdict = "[yellow]refused[/]" if refused else "[red]failed[/]"
        detail = done.error.__class__.__name__
    console.print(
        f"{done.number:>3}  {escape(done.label)}  {verdict}  {done.seconds:.2f} s"
        + (f"  [dim]{escape(redact(detail))}[/]" if detail else "")
    )


def _wait_for_enter(outcome: TrialOutcome) -> None:
    what = "stopped before the step" if outcome.state is ItemState.DONE else "failed"
    err.print(f"The item {what}; the browser stays open. Press Enter to close it.")
    with contextlib.suppress(EOFError):
        input()


@app.command("try")
def try_one(
    task: Annotated[str, typer.Argument(help="Task name (tasks/definitions/) or YAML file.")],
    input_file: Annotated[Path | None, typer.Option("--input", "-i", help="Input file.")] = None,
    row: Annotated[
        int | None, typer.Option(min=1, help="The item on this row of the input file.")
    ] = None,
    key: Annotated[str | None, typer.Option(help="The item with this key.")] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Stop before this step: its title, 1-based number or label."),
    ] = None,
    headed: Annotated[bool, typer.Option(help="Show the browser (kept open on failure).")] = False,
    slow_mo: Annotated[int, typer.Option(help="Slow every browser action by MS.")] = 0,
    app_url: Annotated[str | None, typer.Option(help="Base URL of the app (override).")] = None,
) -> None:
    """Try one item (the first, --row or --key) in the app, step by step; no run is stored."""
    if row is not None and key is not None:
        raise KlerkError("give --row or --key, not both")
    current = _wire()
    task_def, _path, app_def = _load(task)
    logger.remove()  # a try keeps no operator log; the steps printed say what happened

    def patch(record: Any) -> None:
        record["message"] = redact(record["message"])

    logger.configure(patcher=patch)
    logger.add(sys.stderr, level="WARNING", format="{level}: {message}", diagnose=False)
    options = RunOptions(
        input=input_file,
        headed=headed,
        slow_mo_ms=slow_mo,
        base_url=app_url or current.app_url,
        started_by=os.environ.get("KLERK_STARTED_BY") or f"user:{getpass.getuser()}",
    )
    trial = Trial(task_def, app_def, current.runs(), options)
    item, input_path = trial.item(row=row, key=key)
    console.print(
        f"try {task_def.name}: item {escape(redact(item.key))} (row {item.row}) "
        f"in {app_def.name} at {options.base_url or app_def.base_url}"
    )
    shown: list[TrialOutcome] = []

    def keep_open(outcome: TrialOutcome) -> None:
        _show_trial(outcome)  # the diagnostics while the page they speak of is on the screen
        shown.append(outcome)
        _wait_for_enter(outcome)

    outcome = asyncio.run(
        trial.execute(
            item,
            input_path,
            until=until,
            on_step=_print_step,
            keep_open=keep_open if headed else None,
        )
    )
    if not shown:
        _show_trial(outcome)
    raise typer.Exit(outcome.exit_code)


def _show_trial(outcome: TrialOutcome) -> None:
    if outcome.state is ItemState.DONE:
        if outcome.stopped_before:
            stopped = escape(outcome.stopped_before)
            console.print(f"[green]went through;[/] stopped before {stopped}")
        else:
            console.print("[green]done[/]")
        for name, value in outcome.outputs.items():
            if not isinstance(value, list):
                console.print(f"  {escape(name)}: {escape(redact(str(value)))}")
    else:
        kind = "business error" if outcome.state is ItemState.BUSINESS_ERROR else "system error"
        err.print(f"[red]{kind}:[/] {escape(outcome.message)}")
        for path in outcome.evidence:
            err.print(f"evidence: {escape(path)}")


_RECORD_HELP = (
    "Record what you do in the browser as the steps of a new task definition (YAML).\n\n"
    "Chromium opens, shown: on a Linux server without a screen (no DISPLAY) on a virtual "
    "display that klerk starts with Xvfb, or else it says to install xvfb or use --headless. "
    "With --app it first logs in with the app's own login steps (not recorded), and paths "
    "are written under the app's base URL.\n\n"
    "Every page you open by its address, field you type in, option you choose (also in "
    "drop-downs built from divs), box you tick, button or link you click, file you upload or "
    "download becomes a step naming the element as you see it: its label, the caption in the "
    "table cell next to it, a button's or link's text, the table row it is in, the frame it "
    "is in; CSS only when nothing else names it. Typing into a field is one step with the "
    "final value; clicks that only focus a field or open a date picker are left out.\n\n"
    "A typed or chosen value equal to a cell of the --input sample row (or given with --map "
    "VALUE=COLUMN) becomes a placeholder such as {{ item.bsn }}; the password becomes "
    "{{ credentials.password }} and is never written or shown; other values that look like "
    "personal data (BSN, IBAN, e-mail) stay as typed, with a warning.\n\n"
    "Close the page, or press Ctrl-C here, to stop: the definition is written then, whole or "
    "not at all, never over an existing file without --force.\n\n"
    "This is klerk's own recorder (a script in every frame reporting to Playwright), not "
    "Playwright's codegen: codegen writes code, and cannot name a field by the caption next "
    "to it."
)


@app.command(help=_RECORD_HELP)
def record(
    url: Annotated[
        str, typer.Argument(help="The page to start at; with --app also a path such as /.")
    ],
    app_name: Annotated[
        str | None,
        typer.Option("--app", help="The app (bots/apps/): logs in first, paths under its URL."),
    ] = None,
    input_file: Annotated[
        Path | None,
        typer.Option(
            "--input", "-i", help="Sample .xlsx/.csv: values equal to its row become columns."
        ),
    ] = None,
    row: Annotated[
        int | None, typer.Option(min=2, help="The sample row (its number in the file).")
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="VALUE=COLUMN: this typed value is that column (repeatable)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="The definition to write; default NAME.yaml here.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="The task's name; default APP-opname.")] = None,
    force: Annotated[bool, typer.Option(help="Replace --out when it exists.")] = False,
    headless: Annotated[
        bool, typer.Option(help="No window (for automation, with --cdp-port).")
    ] = False,
    cdp_port: Annotated[
        int | None,
        typer.Option(
            help="Let another program drive the recording browser over CDP on this port, "
            "for tests and demos."
        ),
    ] = None,
    app_url: Annotated[str | None, typer.Option(help="Base URL of the app (override).")] = None,
) -> None:
    """Record what you do in the browser as the steps of a new task definition (YAML)."""
    from bots.recorder import Recorder, RecorderOptions
    from tasks.recording import (
        Placeholders,
        Recorded,
        RecordedStep,
        Recording,
        app_for,
        credentials_name,
        mappings,
        read_sample,
        recorded_name,
        save_definition,
        start_url,
        write_definition,
    )
    from tasks.secrets import load_credentials

    current = _wire()
    app_def = load_model(definition_path(app_name), AppDefinition) if app_name else None
    base_url = (app_url or current.app_url or app_def.base_url) if app_def else None
    if base_url is None and url.startswith("/"):
        raise KlerkError(f"{url} is a path: give a whole URL, or --app for the app it is in")
    start = start_url(url, base_url)
    task_app = app_name or app_for(start, _base_urls())
    task_name = recorded_name(name, task_app)
    target = (out or Path(f"{task_name}.yaml")).resolve()
    if target.exists() and not force:
        raise KlerkError(f"{target} exists; give another --out, or --force to replace it")
    sample = read_sample(input_file.resolve(), row) if input_file is not None else None
    pairs = mappings(mapping or [])
    reference = credentials_name(task_app) if app_def is not None and app_def.login else None
    credentials = load_credentials(reference) if reference else None
    if credentials is not None:
        add_secrets([credentials.password.get_secret_value()])
    placeholders = Placeholders(
        sample,
        pairs,
        (credentials.username, credentials.password.get_secret_value()) if credentials else None,
    )

    def said(text: str) -> None:
        console.print(text, markup=False, soft_wrap=True)
        sys.stdout.flush()

    def recorded_step(step: RecordedStep) -> None:
        said(f"  + {step.label()}")

    recording = Recording(base_url, on_step=recorded_step)
    options = RecorderOptions(
        url=start,
        app=app_def,
        base_url=base_url,
        credentials=credentials,
        headless=headless,
        cdp_port=cdp_port,
    )
    asyncio.run(_until_stopped(Recorder(options, recording, said).run))
    schema = Path(__file__).parent / "schemas" / "task.schema.json"
    written = write_definition(
        recording,
        placeholders,
        Recorded(
            name=task_name,
            app=task_app,
            url=start,
            credentials=reference,
            schema=os.path.relpath(schema, target.parent) if schema.exists() else None,
        ),
    )
    save_definition(written.text, target, force=force)
    said(f"wrote {target}: {written.steps} steps")
    for line in written.placeholders:
        said(f"  placeholder: {line}")
    for note in recording.notes:
        err.print(f"note: {note}", markup=False, soft_wrap=True)
    for warning in written.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    try:
        load_task(target, apps=app_names())
    except DefinitionError as exc:
        for problem in exc.problems:
            err.print(f"[yellow]to do:[/] {escape(problem)}", soft_wrap=True)
    raise typer.Exit(EXIT_OK)


def _base_urls() -> dict[str, str]:
    """The base URL of every app that has a readable definition."""
    found = {}
    for known in app_names():
        with contextlib.suppress(DefinitionError):
            found[known] = load_model(definition_path(known), AppDefinition).base_url
    return found


async def _until_stopped(record: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run a recording until the page closes, or Ctrl-C (or SIGTERM) stops it cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await record(stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


@runs_app.command("list")
def runs_list(
    task: Annotated[str | None, typer.Option(help="Only runs of this task.")] = None,
    limit: Annotated[int, typer.Option(help="How many runs.")] = 20,
) -> None:
    """The latest runs, newest first."""
    current = _wire()
    store = Store(current.database())
    table = Table("run", "task", "state", "started", "by", "items")
    for record in store.runs(task, limit):
        counts = store.counts(record.id)
        summary = " ".join(f"{state}:{n}" for state, n in sorted(counts.items()))
        started = record.started_at.astimezone().strftime("%d-%m-%Y %H:%M")
        table.add_row(record.id, record.task, record.state, started, record.started_by, summary)
    console.print(table)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="The run id (or a unique start of it).")],
    open_report: Annotated[
        bool, typer.Option("--open", help="Open the run report (report.html) in a browser.")
    ] = False,
) -> None:
    """One run: what ran, when, and every item with its state and message."""
    current = _wire()
    store = Store(current.database())
    record = store.run(run_id)
    if record is None:
        raise KlerkError(f"no run {run_id!r}; see `klerk runs list`")
    console.print(f"run      {record.id}\ntask     {record.task} ({record.definition_path})")
    console.print(f"state    {record.state}  {record.message}")
    console.print(
        f"started  {record.started_at.astimezone():%d-%m-%Y %H:%M:%S} by "
        f"{record.started_by} on {record.host}"
    )
    console.print(f"input    {record.input_path or '-'}\nresults  {record.results_path or '-'}")
    table = Table("#", "key", "state", "attempts", "outputs", "message")
    for item in store.items(record.id):
        outputs = {k: v for k, v in item.outputs.items() if not isinstance(v, list)}
        table.add_row(
            str(item.seq),
            redact(item.key),
            item.state,
            str(item.attempts),
            redact(json.dumps(outputs, ensure_ascii=False)) if outputs else "",
            redact(item.message),
        )
    console.print(table)
    folder = current.runs() / record.id
    console.print(f"folder   {folder}")
    report = folder / REPORT_NAME
    if open_report and not report.exists():
        task_def, _, _ = _load(record.definition_path)
        private_key = current.signing_key or current.home / "var" / "keys" / "signing.key"
        report = write_report(store, record.id, task_def, folder, private_key.with_suffix(".pub"))
    if report.exists():
        console.print(f"report   {report}", markup=False, soft_wrap=True)
    if open_report and not webbrowser.open(report.as_uri()):
        console.print("No browser to open it here: open the report file above in a browser.")


@runs_app.command("prune")
def runs_prune(
    older_than: Annotated[
        str | None,
        typer.Option(
            help="Prune runs that ended longer ago than this (90d, 6w, 7y); a task's own "
            "retention_days is never cut short."
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Only say what would be pruned.")] = False,
) -> None:
    """Remove the files and stored items of runs whose retention period is over. The ledger
    keeps what was pruned, so `klerk audit verify --all` still checks every later run."""
    import datetime as dt

    from tasks.retention import parse_age, prune_runs
    from tasks.signing import load_public_key, load_signer

    current = _wire()
    days = parse_age(older_than) if older_than else None
    store = Store(current.database())
    private = signing_key_path(current)

    def retention_of(record: RunRecord) -> int | None:
        try:
            return load_model(Path(record.definition_path), Task).retention_days
        except KlerkError:
            logger.warning("run {}: cannot read its task definition for its retention", record.id)
            return None

    decisions = prune_runs(
        store,
        current.runs(),
        load_signer(private),
        load_public_key(private.with_suffix(".pub")),
        older_than_days=days,
        retention_of=retention_of,
        now=dt.datetime.now(dt.UTC),
        dry_run=dry_run,
    )
    table = Table("run", "task", "ended", "kept (days)", "outcome")
    for decision in decisions:
        ended = f"{decision.ended_at.astimezone():%d-%m-%Y}"
        days_kept = str(decision.keep_days)
        table.add_row(decision.run_id, decision.task, ended, days_kept, decision.reason)
    console.print(table if decisions else "No run is past its retention period.")
    if any(d.suspect for d in decisions):
        raise typer.Exit(EXIT_NOT_ALL_DONE)


@audit_app.command("verify")
def audit_verify(
    run_id: Annotated[str | None, typer.Argument(help="Run id (or a unique start of it).")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Every run in the runs folder.")] = False,
    public_key: Annotated[
        Path | None, typer.Option(help="Public key file; default var/keys/signing.pub.")
    ] = None,
) -> None:
    """Check that a run's trail is complete and unchanged, and stands in the ledger of all
    runs as it was written. Exit 0 intact, 1 tampered, 4 incomplete, 5 cannot read."""
    from tasks.ledger import verify_runs
    from tasks.signing import load_public_key
    from tasks.verify import Verdict, severity

    current = settings()
    key_file = public_key or (current.home / "var" / "keys" / "signing.pub")
    if not key_file.exists():
        err.print(f"no public key at {key_file}: give --public-key", markup=False)
        raise typer.Exit(int(Verdict.UNREADABLE))
    key = load_public_key(key_file)
    if all_runs == (run_id is not None):
        raise KlerkError("give a run id or --all")
    runs_dir = current.runs()
    selected = None
    if run_id is not None:
        selected = sorted(p.name for p in runs_dir.glob(f"{run_id}*") if p.is_dir())
        if len(selected) != 1:
            found = "no run" if not selected else f"{len(selected)} runs"
            raise KlerkError(f"{found} matching {run_id} in {runs_dir}")
    worst = Verdict.INTACT
    for report in verify_runs(runs_dir, key, selected):
        label = report.verdict.name.lower()
        name = report.path.parent.name if report.path.name == "audit.jsonl" else report.path.name
        console.print(f"{name}: {label} ({report.records} records)", markup=False)
        for finding in report.findings:
            err.print(f"  {finding}", markup=False, soft_wrap=True)
        if severity(report.verdict) > severity(worst):
            worst = report.verdict
    raise typer.Exit(int(worst))


@audit_app.command("init")
def audit_init() -> None:
    """Create the subject key and the signing key pair (if missing) and say where to keep them."""
    current = settings()
    keys = (current.home / "var" / "keys").resolve()
    had_subject = current.subject_key is not None or (keys / "subject.key").exists()
    subject_key(current)
    had_signing = current.signing_key is not None or (keys / "signing.key").exists()
    private = signing_key_path(current)
    public = private.with_suffix(".pub")
    console.print(
        f"subject key   {'kept' if had_subject else 'created'}: "
        f"{'KLERK_SUBJECT_KEY' if current.subject_key else keys / 'subject.key'}"
    )
    console.print(f"signing key   {'kept' if had_signing else 'created'}: {private}")
    console.print(f"public key    {public}")
    console.print(
        "Keep the subject key and the signing key with the municipality's security officer "
        "(a vault, or KLERK_SUBJECT_KEY / KLERK_SIGNING_KEY on the server only); give auditors "
        "the public key: `klerk audit verify --public-key signing.pub`."
    )


@audit_app.command("subject")
def audit_subject(
    bsn: Annotated[str, typer.Argument(help="The person's BSN (never stored or printed).")],
) -> None:
    """Every run, item and action that concerned one person, with basis and activity."""
    from tasks.fields import is_valid_bsn
    from tasks.subjects import records_about

    current = settings()
    bsn = bsn.strip().replace(".", "").replace(" ", "")
    if not is_valid_bsn(bsn):
        raise KlerkError("that is not a valid BSN (nine digits passing the elfproef)")
    table = Table(
        "run", "task", "item", "time (UTC)", "what", "result", "processing activity", "legal basis"
    )
    found = 0
    for record in records_about(current.runs(), bsn, subject_key(current)):
        found += 1
        table.add_row(
            record.run_id,
            record.task,
            record.item_key,
            record.wall_time,
            f"{record.name} {record.obj}",
            record.result,
            record.processing_activity,
            record.legal_basis,
        )
    if not found:
        console.print(f"no record concerns this person in {current.runs()}")
        return
    console.print(table)
    console.print(f"{found} records concern this person")


@audit_app.command("export")
def audit_export(
    first: Annotated[str, typer.Option("--from", help="First day, yyyy-mm-dd (UTC).")],
    last: Annotated[str, typer.Option("--to", help="Last day, yyyy-mm-dd (UTC), included.")],
    form: Annotated[
        ExportFormat,
        typer.Option("--format", help="jsonl: the records as written; csv: one column a field."),
    ] = ExportFormat.JSONL,
    output: Annotated[
        Path | None, typer.Option("--output", help="File to write; default: standard output.")
    ] = None,
) -> None:
    """Every trail record of every run written in a period, oldest first (not a verification:
    `klerk audit verify --all` is)."""
    from tasks.export import ExportSummary, parse_period, records_between, write_export

    start, end = parse_period(first, last)
    summary = ExportSummary()
    records = records_between(settings().runs(), start, end, summary)
    if output is None:
        try:
            write_export(records, sys.stdout.buffer, form, summary)
            sys.stdout.flush()
        except BrokenPipeError:  # the reader stopped early (`| head`): not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return
    else:
        from connectors.files import atomic_write

        with atomic_write(output) as stream:
            write_export(records, stream, form, summary)
    err.print(
        f"{summary.records} records of {len(summary.runs)} runs from {start} to {end}"
        + (f" written to {output}" if output else ""),
        markup=False,
    )
    if summary.unreadable:
        err.print(
            f"{summary.unreadable} lines held no readable record and were left out: "
            "check the trails with `klerk audit verify --all`",
            markup=False,
        )


@app.command()
def validate(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Task or app files; default: all known.")
    ] = None,
) -> None:
    """Check task and app definitions: every problem with file:line:column and a suggestion."""
    _wire()
    from bots.apps import app_folders

    bundled = sorted(Path(__file__).parent.joinpath("tasks", "definitions").glob("*.yaml"))
    apps = [path for folder in app_folders() for path in sorted(folder.glob("*.yaml"))]
    failed = 0
    for path in files or [*bundled, *apps]:
        try:
            if _is_app_file(path):
                _check_app(path)
            else:
                task = load_task(path, apps=app_names())
                app_def = load_model(definition_path(task.app), AppDefinition)
                _check_actions(use_sequences(task, path, app_def))
        except DefinitionError as exc:
            failed += 1
            for problem in exc.problems:
                err.print(problem, markup=False)
            continue
        console.print(f"{path}: ok")
    if failed:
        raise typer.Exit(EXIT_BAD_INPUT)


def _is_app_file(path: Path) -> bool:
    """An app definition: a file in an apps folder, or one with a `base_url` and no `steps`."""
    import yaml

    from bots.apps import app_folders

    if path.resolve().parent in {folder.resolve() for folder in app_folders()}:
        return True
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, yaml.YAMLError):
        return False  # the task loader says what is wrong with it
    return isinstance(data, dict) and "base_url" in data and "steps" not in data


def _check_app(path: Path) -> None:
    from bots.apps import find_action

    app_def = load_model(path, AppDefinition)
    for steps in [app_def.login, *app_def.sequences.values()]:
        for step in in_frame(steps):
            action = getattr(step, "action", None)
            if action is not None:
                find_action(path.stem, action.name)


def _check_actions(task: Task) -> None:
    from bots.apps import find_action

    check = task.already_done
    if check is not None and check.action is not None:
        find_action(task.app, check.action)
    looked_up = check.steps if check is not None else []
    for step in [*task.setup, *task.steps, *task.teardown, *looked_up]:
        action = getattr(step, "action", None)
        if action is not None:
            find_action(task.app, action.name)


@app.command()
def schema(
    app_definitions: Annotated[bool, typer.Option("--apps", help="Schema of app files.")] = False,
    schedule_definitions: Annotated[
        bool, typer.Option("--schedules", help="Schema of schedule files.")
    ] = False,
) -> None:
    """Print the JSON Schema of task files (for editor completion)."""
    from schedules.definition import Schedule

    model: type[Task | AppDefinition | Schedule] = Task
    if app_definitions:
        model = AppDefinition
    elif schedule_definitions:
        model = Schedule
    typer.echo(json.dumps(model.model_json_schema(), indent=2, ensure_ascii=False))


# --- the scheduler: klerk serve and klerk schedule ... -------------------------------------------

SchedulesOption = Annotated[
    Path | None,
    typer.Option(
        "--schedules",
        help="Folder of schedule files (default: KLERK_SCHEDULES_DIR, else schedules/definitions).",
    ),
]
EXIT_SKIPPED_FIRE = 1


def _schedules_folder(current: Settings, folder: Path | None) -> Path:
    from schedules.definition import definitions_dir

    return definitions_dir(folder or current.schedules_dir)


def _launcher(folder: Path) -> Any:
    """The command line of one fire's run process: this klerk, `schedule fire`."""
    runner_file = str(Path(__file__).resolve())

    def launch(name: str, fire_id: int, planned: Any) -> list[str]:
        argv = [sys.executable, runner_file, "schedule", "fire", name, "--fire-id", str(fire_id)]
        argv += ["--schedules", str(folder)]
        if planned is not None:
            argv += ["--planned", planned.isoformat()]
        return argv

    return launch


@contextmanager
def _serve_log(current: Settings, verbose: bool) -> Iterator[None]:
    """serve's log: stderr (journald under systemd) and var/log/serve.log, redacted."""
    logger.remove()

    def patch(record: Any) -> None:
        record["message"] = redact(record["message"])

    logger.configure(patcher=patch)
    folder = (current.home / "var" / "log").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    shape = "{time:YYYY-MM-DD HH:mm:ss.SSS} {level: <7} {message}"
    handlers = [
        logger.add(
            sys.stderr,
            level="DEBUG" if verbose else "INFO",
            format=shape,
            diagnose=False,
            backtrace=False,
            catch=False,
        ),
        logger.add(
            folder / "serve.log",
            level="DEBUG",
            format=shape,
            diagnose=False,
            backtrace=False,
            catch=False,
            rotation="10 MB",
            retention=10,
        ),
    ]
    try:
        yield
    finally:
        for handler in handlers:
            logger.remove(handler)


@app.command()
def serve(
    schedules: SchedulesOption = None,
    verbose: Annotated[bool, typer.Option(help="Log debug lines too.")] = False,
) -> None:
    """Run the scheduler: fire the schedules' runs unattended until SIGTERM (systemd: README)."""
    from schedules.service import Service

    current = settings()  # no bots or connectors here: each fire's run is its own process
    folder = _schedules_folder(current, schedules)
    store = Store(current.database())
    with _serve_log(current, verbose):
        service = Service(store, folder, current, _launcher(folder))
        raise typer.Exit(service.serve())


def _zone_of(folder: Path, name: str) -> Any:
    from zoneinfo import ZoneInfo

    from schedules.definition import read_schedules

    found, _ = read_schedules(folder)
    return found[name][0].zone() if name in found else ZoneInfo("Europe/Amsterdam")


def _start_of(day_text: str | None, zone: Any) -> Any:
    import datetime as dt

    from tasks.store import utcnow

    if day_text is None:
        return utcnow()
    text = day_text.strip()
    for shape in ("%d-%m-%Y %H:%M", "%d-%m-%Y", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text, shape).replace(tzinfo=zone)
        except ValueError:
            continue
    raise KlerkError(f"--from {day_text!r}: give a day as dd-mm-jjjj (optionally with HH:MM)")


@schedule_app.command("list")
def schedule_list(
    schedules: SchedulesOption = None,
    count: Annotated[int, typer.Option(min=1, max=100, help="Fire times per schedule.")] = 5,
    start: Annotated[
        str | None,
        typer.Option("--from", help="Compute from this day (dd-mm-jjjj [HH:MM]) instead of now."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Every schedule with its next fire times (local time), skipping holidays and closing days."""
    from schedules.calendar import dutch_weekday
    from schedules.definition import read_schedules
    from schedules.state import SERVICE_LOCK, ScheduleBook, local
    from schedules.triggers import closed_days, fire_times

    current = _wire()
    folder = _schedules_folder(current, schedules)
    found, problems = read_schedules(folder)
    store = Store(current.database())
    book = ScheduleBook(store)
    states = book.states()
    listed = []
    table = Table("schedule", "task", "state", "when", "next fire times", "last fire")
    for name, (schedule, _path) in sorted(found.items()):
        zone = schedule.zone()
        times = fire_times(schedule, _start_of(start, zone), count)
        state = states.get(name)
        status = "active"
        if not schedule.enabled:
            status = "disabled"
        elif state is not None and state.paused:
            status = f"paused by {state.paused_by}" + (
                f": {state.pause_reason}" if state.pause_reason else ""
            )
        skipped = closed_days(schedule, times[0].date(), times[-1].date()) if times else []
        last = book.last_fire(name)
        listed.append(
            {
                "name": name,
                "task": schedule.task,
                "state": status,
                "trigger": schedule.trigger.describe(),
                "timezone": schedule.timezone,
                "next": [moment.isoformat() for moment in times],
                "skipped_days": [{"date": d.isoformat(), "reason": r} for d, r in skipped],
                "last_fire": None
                if last is None
                else {"fired_at": last.fired_at.isoformat(), "outcome": last.outcome},
            }
        )
        shown = [f"{dutch_weekday(m.date())} {m:%d-%m-%Y %H:%M}" for m in times] or ["never"]
        shown += [f"[dim]skips {dutch_weekday(d)} {d:%d-%m}: {r}[/]" for d, r in skipped]
        when = schedule.trigger.describe()
        if schedule.office_hours:
            when += f"; {schedule.office_hours.start:%H:%M}-{schedule.office_hours.end:%H:%M}"
        last_text = "-" if last is None else f"{local(last.fired_at, zone)}\n{last.outcome}"
        table.add_row(name, schedule.task, status, when, "\n".join(shown), last_text)
    if as_json:
        typer.echo(json.dumps(listed, indent=2, ensure_ascii=False))
    else:
        console.print(table if listed else f"No schedules in {folder}.")
        holder = store.live_lock_holder(SERVICE_LOCK, current.lock_stale_seconds)
        console.print(
            f"klerk serve: running (pid {holder.pid} on {holder.host})"
            if holder
            else "klerk serve: not running"
        )
    for problem in problems:
        err.print(problem, markup=False)
    if problems:
        raise typer.Exit(EXIT_BAD_INPUT)


@schedule_app.command("validate")
def schedule_validate(
    files: Annotated[list[Path] | None, typer.Argument(help="Schedule files; default all.")] = None,
    schedules: SchedulesOption = None,
) -> None:
    """Check schedule files: every problem with file:line:column, and the tasks they run."""
    from schedules.definition import Schedule, schedule_files
    from schedules.fires import render_path, task_path
    from schedules.notify import recipients, webhooks

    current = _wire()
    folder = _schedules_folder(current, schedules)
    paths = files or schedule_files(folder)
    failed = 0
    names: dict[str, Path] = {}
    for path in paths:
        try:
            schedule = load_model(path, Schedule)
            if schedule.name in names:
                raise DefinitionError(
                    [
                        f"{path}:1:1: schedule name {schedule.name!r} is also used by "
                        f"{names[schedule.name]}"
                    ]
                )
            names[schedule.name] = path
            task_file = task_path(schedule, path)
            try:
                _load(str(task_file))
            except DefinitionError as exc:
                raise DefinitionError(
                    [f"{path}: task {schedule.task!r}: {problem}" for problem in exc.problems]
                ) from None
            for template in (schedule.input, schedule.results):
                if template:
                    render_path(template, schedule, None, current.home)
        except DefinitionError as exc:
            failed += 1
            for problem in exc.problems:
                err.print(problem, markup=False)
            continue
        console.print(f"{path}: ok", markup=False)
        if schedule.notify.when and not (
            recipients(schedule.notify, current) or webhooks(schedule.notify, current)
        ):
            err.print(
                f"{path}: warning: nobody hears about {', '.join(schedule.notify.when)}: give "
                "notify.email or notify.webhook, or set KLERK_SMTP_RECIPIENTS / KLERK_WEBHOOK_URL",
                markup=False,
            )
        if recipients(schedule.notify, current) and not (current.smtp_host and current.smtp_sender):
            err.print(
                f"{path}: warning: e-mail needs KLERK_SMTP_HOST and KLERK_SMTP_SENDER", markup=False
            )
    if failed:
        raise typer.Exit(EXIT_BAD_INPUT)


def _pause(name: str, schedules: Path | None, paused: bool, reason: str) -> None:
    from schedules.definition import find_schedule
    from schedules.state import SERVICE_LOCK, ScheduleBook

    current = _wire()
    folder = _schedules_folder(current, schedules)
    find_schedule(folder, name)
    store = Store(current.database())
    who = os.environ.get("KLERK_STARTED_BY") or f"user:{getpass.getuser()}"
    changed = ScheduleBook(store).set_paused(name, paused, who, reason)
    word = "paused" if paused else "resumed"
    console.print(f"schedule {name}: {word}" if changed else f"schedule {name} was already {word}")
    holder = store.live_lock_holder(SERVICE_LOCK, current.lock_stale_seconds)
    if holder is not None:
        console.print(
            f"the running klerk serve (pid {holder.pid}) takes this over within "
            f"{current.scheduler_poll_seconds:g} s"
        )
    else:
        console.print("klerk serve is not running; it takes this over when it starts")


@schedule_app.command("pause")
def schedule_pause(
    name: Annotated[str, typer.Argument(help="The schedule's name.")],
    reason: Annotated[str, typer.Option(help="Why (shown in `klerk schedule list`).")] = "",
    schedules: SchedulesOption = None,
) -> None:
    """Stop a schedule from firing until `klerk schedule resume` (kept across restarts)."""
    _pause(name, schedules, True, reason)


@schedule_app.command("resume")
def schedule_resume(
    name: Annotated[str, typer.Argument(help="The schedule's name.")],
    schedules: SchedulesOption = None,
) -> None:
    """Let a paused schedule fire again (from its next fire time on; no catching up)."""
    _pause(name, schedules, False, "")


def _outcome_code(outcome: str) -> int:
    if outcome == "finished":
        return EXIT_OK
    if outcome in ("not_all_done", "skipped", "not_started", "missed"):
        return EXIT_NOT_ALL_DONE
    return EXIT_ABORTED


def _print_fire(fire: Any, zone: Any) -> None:
    from schedules.state import local

    line = f"fire {fire.id}: {fire.outcome.replace('_', ' ')}"
    if fire.run_id:
        line += f", run {fire.run_id}"
    console.print(line, markup=False)
    if fire.reason:
        console.print(f"  {fire.reason}", markup=False, soft_wrap=True)
    if fire.counts:
        console.print("  " + " ".join(f"{s}:{n}" for s, n in sorted(fire.counts.items())))
    if fire.ended_at:
        console.print(f"  ended {local(fire.ended_at, zone)}")


@schedule_app.command("run-now")
def schedule_run_now(
    name: Annotated[str, typer.Argument(help="The schedule's name.")],
    wait: Annotated[bool, typer.Option(help="Wait for the run to end (with serve).")] = False,
    schedules: SchedulesOption = None,
) -> None:
    """Fire a schedule now, outside its times and calendar (the overlap rule still holds).

    With `klerk serve` running, serve fires it; otherwise it runs here, in the foreground."""
    from schedules.definition import find_schedule
    from schedules.fires import Dispatcher
    from schedules.state import SERVICE_LOCK, Outcome, ScheduleBook

    current = _wire()
    folder = _schedules_folder(current, schedules)
    schedule, path = find_schedule(folder, name)
    zone = schedule.zone()
    store = Store(current.database())
    book = ScheduleBook(store)
    who = os.environ.get("KLERK_STARTED_BY") or f"user:{getpass.getuser()}"
    holder = store.live_lock_holder(SERVICE_LOCK, current.lock_stale_seconds)
    if holder is not None:
        request_id = book.request_run(name, who)
        console.print(f"asked klerk serve (pid {holder.pid} on {holder.host}) to fire {name} now")
        deadline = time.monotonic() + 4 * current.scheduler_poll_seconds + 20
        fire = None
        while time.monotonic() < deadline:
            request = book.request(request_id)
            if request is not None and request.fire_id is not None:
                fire = book.fire(request.fire_id)
                if fire is not None and (not wait or Outcome(fire.outcome).final):
                    break
                if wait:
                    deadline = time.monotonic() + 24 * 3600
            time.sleep(0.5)
        if fire is None:
            raise KlerkError(
                f"klerk serve did not take the request within {deadline:.0f} s; see its log"
            )
        _print_fire(fire, zone)
        raise typer.Exit(_outcome_code(fire.outcome) if wait else EXIT_OK)
    console.print("klerk serve is not running: firing it here, in the foreground")
    with _serve_log(current, verbose=False):
        dispatcher = Dispatcher(store, current, _launcher(folder), {name: (schedule, path)})
        previous = {
            sig: signal.signal(sig, lambda *_: dispatcher.stop())
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            fire = dispatcher.fire(name, None, f"run-now by {who}")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if fire is None:
        raise KlerkError(f"schedule {name} did not fire")
    _print_fire(fire, zone)
    raise typer.Exit(_outcome_code(fire.outcome))


@schedule_app.command("history")
def schedule_history(
    name: Annotated[str, typer.Argument(help="The schedule's name.")],
    limit: Annotated[int, typer.Option(min=1, help="How many fires.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    schedules: SchedulesOption = None,
) -> None:
    """Past fires of a schedule, newest first: planned, started or skipped and why, outcome."""
    from schedules.definition import find_schedule
    from schedules.state import ScheduleBook, local
    from tasks.store import aware

    current = _wire()
    folder = _schedules_folder(current, schedules)
    book = ScheduleBook(Store(current.database()))
    fires = book.history(name, limit)
    if not fires:
        find_schedule(folder, name)  # an unknown name gets its did-you-mean
    zone = _zone_of(folder, name)
    if as_json:
        rows = [
            {
                "id": f.id,
                "planned_at": aware(f.planned_at).isoformat() if f.planned_at else None,
                "fired_at": aware(f.fired_at).isoformat(),
                "ended_at": aware(f.ended_at).isoformat() if f.ended_at else None,
                "started_by": f.started_by,
                "outcome": f.outcome,
                "reason": f.reason,
                "run_id": f.run_id,
                "counts": f.counts,
                "notified": f.notified,
            }
            for f in fires
        ]
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table("#", "planned", "fired", "by", "outcome", "run", "items", "why", "notified")
    for fire in fires:
        delay = ""
        if fire.planned_at is not None:
            seconds = (aware(fire.fired_at) - aware(fire.planned_at)).total_seconds()
            delay = f" ({seconds:+.1f} s)"
        table.add_row(
            str(fire.id),
            local(fire.planned_at, zone) if fire.planned_at else "run now",
            local(fire.fired_at, zone) + delay,
            fire.started_by,
            fire.outcome.replace("_", " "),
            fire.run_id or "",
            " ".join(f"{s}:{n}" for s, n in sorted((fire.counts or {}).items())),
            fire.reason,
            fire.notified,
        )
    console.print(table if fires else f"schedule {name} has not fired yet")


@schedule_app.command("fire", hidden=True)
def schedule_fire(
    name: Annotated[str, typer.Argument(help="The schedule's name.")],
    fire_id: Annotated[int, typer.Option(help="The fire in the history.")],
    planned: Annotated[str | None, typer.Option(help="Planned time (ISO).")] = None,
    schedules: SchedulesOption = None,
) -> None:
    """One fire's run (started by klerk serve or run-now, not by hand)."""
    import dataclasses
    import datetime as dt

    from schedules.definition import InputMissing, find_schedule
    from schedules.fires import input_for_fire, render_path, resumable_run, task_path
    from schedules.state import Outcome, ScheduleBook
    from tasks.store import RunLockedError

    # a SIGTERM from serve before the run is under way (Python still starting) must not kill
    # this process half-way: it is noted, and the run then stops before its first item
    stop_early: list[Run] = []
    stop_seen = [False]

    def early_stop(_signum: int, _frame: Any) -> None:
        stop_seen[0] = True
        for pending in stop_early:
            pending.stop_requested.set()

    signal.signal(signal.SIGTERM, early_stop)
    current = _wire()
    folder = _schedules_folder(current, schedules)
    store = Store(current.database())
    book = ScheduleBook(store)
    planned_at = dt.datetime.fromisoformat(planned) if planned else None
    try:
        schedule, schedule_file = find_schedule(folder, name)
        task_def, path, app_def = _load(str(task_path(schedule, schedule_file)))
        input_path, missing = input_for_fire(schedule, planned_at, current.home)
        if missing is not None:
            skip = schedule.if_input_missing is InputMissing.SKIP
            book.update(
                fire_id, outcome=Outcome.SKIPPED if skip else Outcome.FAILED, reason=missing
            )
            raise typer.Exit(EXIT_SKIPPED_FIRE if skip else EXIT_BAD_INPUT)
        results = (
            render_path(schedule.results, schedule, planned_at, current.home)
            if schedule.results
            else None
        )
        options = dataclasses.replace(
            _run_options(input_path, results, schedule.concurrency, None, False, 0, None, current),
            started_by=f"schedule:{name}",
        )
        the_run = _new_run(task_def, path, app_def, store, current.runs(), options, current)
        stop_early.append(the_run)
        if stop_seen[0]:
            book.update(fire_id, outcome=Outcome.NOT_STARTED, reason="klerk serve stopped first")
            raise typer.Exit(EXIT_ABORTED)
        earlier = resumable_run(
            store, schedule, task_def.name, input_path, current.lock_stale_seconds
        )
        try:
            if earlier is not None:
                the_run.reopen(earlier)
                record = earlier
            else:
                record = the_run.create()
        except RunLockedError as exc:
            book.update(fire_id, outcome=Outcome.SKIPPED, reason=str(exc))
            raise typer.Exit(EXIT_SKIPPED_FIRE) from None
        book.update(fire_id, run_id=record.id)
        if earlier is not None:
            book.update(fire_id, reason=f"finishes run {record.id}, left {earlier.state}")
        if stop_seen[0]:
            the_run.stop_requested.set()
    except KlerkError as exc:
        book.update(fire_id, outcome=Outcome.FAILED, reason=redact(str(exc)))
        raise
    raise typer.Exit(_summary(_execute(the_run, record, store)))


@app.command("demo-app")
def demo_app(
    port: Annotated[
        int | None, typer.Option(help="Port on 127.0.0.1 (parkeren 8650, afval 8651).")
    ] = None,
    latency_ms: Annotated[int, typer.Option(help="Delay of every page.")] = 0,
    error_rate: Annotated[float, typer.Option(help="Share of pages answered with HTTP 500.")] = 0.0,
    busy_rate: Annotated[float, typer.Option(help="Share of 'systeem is bezet' pages.")] = 0.0,
    session_lifetime: Annotated[
        float | None,
        typer.Option(help="Idle seconds until a session expires (parkeren 900, afval 1800)."),
    ] = None,
    random_ids: Annotated[bool, typer.Option(help="Field ids and names change per load.")] = False,
    seed: Annotated[int | None, typer.Option(help="Seed for the faults.")] = None,
    db: Annotated[str | None, typer.Option(help="SQLite file for the permits.")] = None,
    app_name: Annotated[
        str,
        typer.Option("--app", help="Which demo app: parkeren, or afval (only --session-lifetime)."),
    ] = "parkeren",
) -> None:
    """Serve a demo application on its own: Parkeervergunningen, or Afvalcontainers."""
    from demo.afval import SESSION_LIFETIME
    from demo.faults import Faults
    from demo.server import serve, serve_afval

    if app_name == "afval":
        port = port or 8651
        console.print(f"Afvalcontainers on http://127.0.0.1:{port} (Ctrl-C stops)")
        serve_afval(port=port, session_lifetime=session_lifetime or SESSION_LIFETIME)
        return
    if app_name != "parkeren":
        raise typer.BadParameter(f"unknown demo app {app_name!r}; choose parkeren or afval")
    port = port or 8650
    faults = Faults(
        latency_ms=latency_ms,
        error_rate=error_rate,
        busy_rate=busy_rate,
        session_lifetime=session_lifetime or 900.0,
        random_ids=random_ids,
        seed=seed,
    )
    console.print(f"Parkeervergunningen on http://127.0.0.1:{port} (Ctrl-C stops)")
    serve(port=port, faults=faults, db_path=db)


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port for the demo app.")] = 0,
) -> None:
    """Start the demo app, enter the sample applications, export the overview, stop the app."""
    from demo.app import DEMO_PASSWORD, DEMO_USERNAME
    from demo.server import DemoServer

    current = _wire()
    sample = Path(__file__).parent / "demo" / "data" / "aanvragen.xlsx"
    work = (current.home / "var" / "demo").resolve()
    work.mkdir(parents=True, exist_ok=True)
    today = work / "aanvragen.xlsx"
    shutil.copyfile(sample, today)
    os.environ.setdefault("KLERK_CRED_PARKEREN_USERNAME", DEMO_USERNAME)
    os.environ.setdefault("KLERK_CRED_PARKEREN_PASSWORD", DEMO_PASSWORD)
    # The demo app starts empty every time, so the demo gets a fresh store of its own too:
    # otherwise a second `make demo` would skip every row as done in the first.
    for stale in work.glob("klerk.db*"):
        stale.unlink()
    store = Store(f"sqlite:///{work / 'klerk.db'}")
    runs_dir = work / "runs"
    codes = []
    with DemoServer(port=port) as server:
        console.print(f"demo app: {server.url}")
        for task_name, input_file, results in (
            ("vergunningen-invoeren", today, work / "aanvragen-resultaten.xlsx"),
            ("vergunningen-exporteren", None, work / "vergunningen-overzicht.xlsx"),
        ):
            task_def, path, app_def = _load(task_name)
            options = _run_options(input_file, results, None, None, False, 0, server.url, current)
            the_run = _new_run(task_def, path, app_def, store, runs_dir, options, current)
            record = the_run.create()
            codes.append(_summary(_execute(the_run, record, store)))
    console.print(
        f"\nResults are in {work}: aanvragen-resultaten.xlsx (one row per application, "
        "with status and zaaknummer) and vergunningen-overzicht.xlsx (every permit)."
    )
    console.print("The rows with status business_error are the sample's deliberate bad rows.")
    # the sample's bad rows are deliberate: only an aborted run makes the demo fail
    raise typer.Exit(max((code for code in codes if code != EXIT_NOT_ALL_DONE), default=EXIT_OK))


@app.command()
def sample(
    output: Annotated[Path, typer.Argument(help="The .xlsx file to write.")],
    rows: Annotated[int, typer.Option(min=1, help="How many applications.")] = 50,
    seed: Annotated[int, typer.Option(help="Seed, for the same rows every time.")] = 2026,
    bad_rows: Annotated[bool, typer.Option(help="Include the three deliberate bad rows.")] = True,
    app_name: Annotated[
        str, typer.Option("--app", help="For which demo app: parkeren, or afval.")
    ] = "parkeren",
) -> None:
    """Write a synthetic intake spreadsheet (test BSNs, nobody's real data) to try klerk on;
    for afval also the attachments its rows name, next to it."""
    from demo.afval_sample import HEADERS as AFVAL_HEADERS
    from demo.afval_sample import containeraanvragen, write_attachments
    from demo.sample import HEADERS, aanvragen
    from tasks.definition import SinkSpec
    from tasks.plugins import make_sink

    _wire()
    spec = SinkSpec(kind="xlsx", path=str(output), sheet="Aanvragen")
    if app_name == "afval":
        requests = containeraanvragen(rows, seed=seed)
        written = make_sink(spec, output).write(AFVAL_HEADERS, requests)
        files = write_attachments(requests, written.parent)
        console.print(f"{rows} requests written to {written}, {len(files)} attachments beside it")
    elif app_name == "parkeren":
        applications = aanvragen(rows, seed=seed, bad_rows=bad_rows)
        written = make_sink(spec, output).write(HEADERS, applications)
        console.print(f"{rows} applications written to {written}")
    else:
        raise typer.BadParameter(f"unknown demo app {app_name!r}; choose parkeren or afval")


@app.command()
def browser(
    install: Annotated[bool, typer.Option(help="Install a Chromium when none is found.")] = False,
) -> None:
    """Say which Chromium klerk uses (and install one with --install)."""
    from bots.browser import find_browser

    console.print(find_browser(install=install).origin)


@app.command()
def version() -> None:
    """Print klerk's version."""
    console.print(__version__)


def main() -> None:
    """Entry point of the `klerk` console script."""
    started = time.monotonic()
    try:
        code = app(prog_name="klerk", standalone_mode=False)
        raise SystemExit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except KlerkError as exc:
        if _debug:
            raise
        err.print("[red]klerk:[/]", end=" ")
        err.print(redact(str(exc)), markup=False, soft_wrap=True)
        raise SystemExit(exc.exit_code) from None
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        raise SystemExit(EXIT_ABORTED) from None
    except typer.exceptions.TyperException as exc:  # usage errors: a wrong option or argument
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        raise SystemExit(EXIT_BAD_INPUT) from None
    except Exception as exc:
        if _debug:
            raise
        err.print(
            f"[red]klerk: unexpected error:[/] {redact(f'{exc.__class__.__name__}: {exc}')}"
            "\nRun again with --debug for the traceback."
        )
        raise SystemExit(EXIT_ABORTED) from None
    finally:
        del started


if __name__ == "__main__":
    main()

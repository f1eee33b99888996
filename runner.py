"""klerk's command line: parses arguments, wires the rooms together, prints; no business rules."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import shutil
import signal
import sys
import time
import webbrowser
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from loguru import logger
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

import bots
import connectors
from bots.apps import definition_path
from tasks import __version__
from tasks.definition import AppDefinition, Task
from tasks.engine import Run, RunOptions, RunSummary
from tasks.errors import DefinitionError, KlerkError
from tasks.loading import find_task, load_model
from tasks.privacy import redact
from tasks.settings import Settings, settings, signing_key_path, subject_key
from tasks.states import ItemState, RunState
from tasks.store import RunRecord, Store, WorkItemRecord

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
    task = load_model(path, Task)
    app_def = load_model(definition_path(task.app), AppDefinition)
    return task, path, app_def


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
            rotation="20 MB",
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
    )


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
) -> None:
    """Run a task: read the input, do every item in the app, write the results."""
    current = _wire()
    task_def, path, app_def = _load(task)
    store = Store(current.database())
    options = _run_options(
        input_file, results, concurrency, limit, headed, slow_mo, app_url, current
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
) -> None:
    """Continue an interrupted or aborted run: items found running are checked in the app first."""
    current = _wire()
    store = Store(current.database())
    record = store.run(run_id)
    if record is None:
        raise KlerkError(f"no run {run_id!r}; see `klerk runs list`")
    task_def, path, app_def = _load(record.definition_path)
    base_url = app_url or record.options.get("base_url")
    options = _run_options(None, None, concurrency, None, headed, 0, base_url, current)
    the_run = _new_run(task_def, path, app_def, store, current.runs(), options, current)
    the_run.reopen(record)
    raise typer.Exit(_summary(_execute(the_run, record, store)))


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
    open_report: Annotated[bool, typer.Option("--open", help="Open the run folder.")] = False,
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
    if open_report:
        webbrowser.open(folder.as_uri())


@audit_app.command("verify")
def audit_verify(
    run_id: Annotated[str | None, typer.Argument(help="Run id (or a unique start of it).")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Every run in the runs folder.")] = False,
    public_key: Annotated[
        Path | None, typer.Option(help="Public key file; default var/keys/signing.pub.")
    ] = None,
) -> None:
    """Check that a run's trail is complete and unchanged. Exit 0 intact, 1 tampered,
    4 incomplete, 5 cannot read."""
    from tasks.signing import load_public_key
    from tasks.verify import Verdict, verify_trail

    current = settings()
    key_file = public_key or (current.home / "var" / "keys" / "signing.pub")
    if not key_file.exists():
        err.print(f"no public key at {key_file}: give --public-key", markup=False)
        raise typer.Exit(int(Verdict.UNREADABLE))
    key = load_public_key(key_file)
    if all_runs == (run_id is not None):
        raise KlerkError("give a run id or --all")
    pattern = "*" if all_runs else f"{run_id}*"
    folders = sorted(p for p in current.runs().glob(pattern) if p.is_dir())
    if not folders or (run_id is not None and len(folders) > 1):
        found = "no run" if not folders else f"{len(folders)} runs"
        raise KlerkError(f"{found} matching {run_id or '*'} in {current.runs()}")
    worst = Verdict.INTACT
    for folder in folders:
        report = verify_trail(folder / "audit.jsonl", key)
        label = report.verdict.name.lower()
        console.print(f"{folder.name}: {label} ({report.records} records)")
        for finding in report.findings:
            err.print(f"  {finding}", markup=False)
        worst = max(worst, report.verdict, key=_severity)
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


def _severity(verdict: Any) -> int:
    order = {"INTACT": 0, "INCOMPLETE": 1, "UNREADABLE": 2, "TAMPERED": 3}
    return order[verdict.name]


@app.command()
def validate(
    files: Annotated[list[Path] | None, typer.Argument(help="Task files; default: all.")] = None,
) -> None:
    """Check task definitions: every problem with file:line:column and a suggestion."""
    _wire()
    paths = files or sorted(Path(__file__).parent.joinpath("tasks", "definitions").glob("*.yaml"))
    failed = 0
    for path in paths:
        try:
            task = load_model(path, Task)
            load_model(definition_path(task.app), AppDefinition)
            _check_actions(task)
        except DefinitionError as exc:
            failed += 1
            for problem in exc.problems:
                err.print(problem, markup=False)
            continue
        console.print(f"{path}: ok")
    if failed:
        raise typer.Exit(EXIT_BAD_INPUT)


def _check_actions(task: Task) -> None:
    from bots.apps import find_action

    if task.already_done is not None:
        find_action(task.app, task.already_done.action)
    for step in task.steps:
        action = getattr(step, "action", None)
        if action is not None:
            find_action(task.app, action.name)
    from tasks.plugins import sink_kinds, source_kinds

    if task.source.kind != "none" and task.source.kind not in source_kinds():
        raise DefinitionError(
            [f"unknown source kind {task.source.kind!r}; known: {', '.join(source_kinds())}, none"]
        )
    if task.sink is not None and task.sink.kind not in sink_kinds():
        raise DefinitionError(
            [f"unknown sink kind {task.sink.kind!r}; known: {', '.join(sink_kinds())}"]
        )


@app.command()
def schema(
    app_definitions: Annotated[bool, typer.Option("--apps", help="Schema of app files.")] = False,
) -> None:
    """Print the JSON Schema of task files (for editor completion)."""
    model = AppDefinition if app_definitions else Task
    typer.echo(json.dumps(model.model_json_schema(), indent=2, ensure_ascii=False))


@app.command("demo-app")
def demo_app(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8650,
    latency_ms: Annotated[int, typer.Option(help="Delay of every page.")] = 0,
    error_rate: Annotated[float, typer.Option(help="Share of pages answered with HTTP 500.")] = 0.0,
    busy_rate: Annotated[float, typer.Option(help="Share of 'systeem is bezet' pages.")] = 0.0,
    session_lifetime: Annotated[
        float, typer.Option(help="Idle seconds until a session expires.")
    ] = 900.0,
    random_ids: Annotated[bool, typer.Option(help="Field ids and names change per load.")] = False,
    seed: Annotated[int | None, typer.Option(help="Seed for the faults.")] = None,
    db: Annotated[str | None, typer.Option(help="SQLite file for the permits.")] = None,
) -> None:
    """Serve the demo application Parkeervergunningen on its own."""
    from demo.faults import Faults
    from demo.server import serve

    faults = Faults(
        latency_ms=latency_ms,
        error_rate=error_rate,
        busy_rate=busy_rate,
        session_lifetime=session_lifetime,
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
) -> None:
    """Write a synthetic intake spreadsheet (test BSNs, nobody's real data) to try klerk on."""
    from demo.sample import HEADERS, aanvragen
    from tasks.definition import SinkSpec
    from tasks.plugins import make_sink

    _wire()
    spec = SinkSpec(kind="xlsx", path=str(output), sheet="Aanvragen")
    written = make_sink(spec, output).write(HEADERS, aanvragen(rows, seed=seed, bad_rows=bad_rows))
    console.print(f"{rows} applications written to {written}")


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

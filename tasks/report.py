"""The run report: one self-contained HTML page per run (runs/<run-id>/report.html) for auditors.

It says who ran what, when, with which definition and on what legal basis, what became of every
item, and whether the audit trail is intact. Every text on it passes through `redact`, except the
hashes and ids that redact would mangle (they are marked `Fact`); the template is rendered in
Jinja2's sandbox with autoescaping, so nothing from a spreadsheet or an app becomes markup.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import StrictUndefined, Template
from jinja2.sandbox import ImmutableSandboxedEnvironment
from loguru import logger

from tasks import __version__
from tasks.definition import Task
from tasks.errors import AuditError
from tasks.ledger import verify_runs
from tasks.privacy import redact
from tasks.signing import key_id, load_public_key
from tasks.states import ItemState
from tasks.store import RunRecord, Store, WorkItemRecord, aware, from_json
from tasks.verify import Verdict

REPORT_NAME = "report.html"
DISPLAY_ZONE = ZoneInfo("Europe/Amsterdam")

# the order an auditor reads the counts in, and what each state means in plain words
STATE_ORDER = (
    ItemState.DONE,
    ItemState.BUSINESS_ERROR,
    ItemState.SYSTEM_ERROR,
    ItemState.SKIPPED,
    ItemState.PENDING,
    ItemState.RUNNING,
)
STATE_MEANING = {
    ItemState.DONE: "Entered in the application.",
    ItemState.BUSINESS_ERROR: (
        "Refused by the application, or the input row was invalid. Not retried: a person has "
        "to correct the row."
    ),
    ItemState.SYSTEM_ERROR: (
        "The application failed (error page, time-out) on every attempt. "
        "Resuming the run (klerk resume) tries these items again."
    ),
    ItemState.SKIPPED: "Already done in an earlier run; not entered again.",
    ItemState.PENDING: "Not started: the run stopped before it got to this item.",
    ItemState.RUNNING: (
        "In progress when the run stopped; checked in the application before it is entered again."
    ),
}
ALWAYS_COUNTED = (ItemState.DONE, ItemState.BUSINESS_ERROR, ItemState.SYSTEM_ERROR)
# items shown as a card with their screenshot; the table below lists every item anyway
ATTENTION_CARDS = 60


class Fact(str):
    """A value shown exactly as it is (a hash, a run id): `redact` could mistake hex for a BSN."""

    __slots__ = ()


@dataclass(frozen=True)
class TrailCheck:
    """The verification of the run's audit trail, in words for the report."""

    status: str  # intact, tampered, incomplete, unreadable, not signed
    headline: str
    detail: str
    records: int = 0
    findings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ItemLine:
    """One work item as the report shows it."""

    seq: int
    row: int
    key: str
    state: str
    label: str
    attempts: int
    message: str
    outputs: tuple[tuple[str, str], ...]
    evidence: str | None
    trace: str | None
    attention: bool


@dataclass(frozen=True)
class Count:
    """The number of items in one state."""

    state: str
    label: str
    number: int


@dataclass(frozen=True)
class Detail:
    """One line of the 'about this run' list."""

    label: str
    value: str


def state_label(state: str) -> str:
    """A state as people read it: business_error -> business error."""
    return state.replace("_", " ")


def local_time(moment: dt.datetime | None) -> str:
    """A moment as dd-mm-jjjj hh:mm:ss in Dutch time ('-' when unknown)."""
    if moment is None:
        return "-"
    return aware(moment).astimezone(DISPLAY_ZONE).strftime("%d-%m-%Y %H:%M:%S")


def duration_text(seconds: float) -> str:
    """Seconds as '42.3 s', '3 min 05 s' or '2 h 07 min'."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def check_trail(trail_path: Path, public_key_path: Path | None) -> TrailCheck:
    """Verify the trail with the public key beside the signing key; 'not signed' without one."""
    if public_key_path is None or not public_key_path.exists():
        return TrailCheck(
            "not signed",
            "Not signed",
            "No public signing key was found, so the audit trail cannot be verified.",
        )
    try:
        public = load_public_key(public_key_path)
    except AuditError as exc:
        return TrailCheck("unreadable", "Cannot be checked", str(exc))
    ledger, result = verify_runs(trail_path.parent.parent, public, [trail_path.parent.name])
    for finding in ledger.findings:
        result.add(ledger.verdict, finding.line, finding.seq, finding.problem, path=finding.path)
    findings = tuple(
        f"line {f.line}" + (f", record {f.seq}" if f.seq is not None else "") + f": {f.problem}"
        for f in result.findings[:20]
    )
    if len(result.findings) > 20:
        findings += (f"... and {len(result.findings) - 20} more findings",)
    fingerprint = key_id(public)
    if result.verdict is Verdict.INTACT:
        return TrailCheck(
            "intact",
            "Intact",
            f"All {result.records} records of the audit trail are present, unchanged and in "
            f"order, the run is sealed with a valid signature (key {fingerprint}), and the "
            "ledger of all runs agrees.",
            result.records,
        )
    if result.verdict is Verdict.TAMPERED:
        return TrailCheck(
            "tampered",
            "Tampered",
            "The audit trail was changed after it was written. What is wrong, and where:",
            result.records,
            findings,
        )
    if result.verdict is Verdict.INCOMPLETE:
        return TrailCheck(
            "incomplete",
            "Incomplete",
            "The audit trail has no final signed checkpoint: the run was killed, or the trail "
            "was cut off. What was found:",
            result.records,
            findings,
        )
    return TrailCheck(
        "unreadable", "Cannot be read", "The audit trail could not be read.", 0, findings
    )


def working_seconds(trail_path: Path) -> tuple[float | None, int]:
    """Time the run spent working (start or resume to end, summed) and how often it was resumed.

    Read from the trail, so that a run resumed the next day is not timed across the night.
    Only the few run records are parsed: a long trail is searched as bytes.
    """
    total, opened, resumed = 0.0, None, 0
    try:
        with trail_path.open("rb") as trail:
            for line in trail:
                if b'"name":"run_' not in line:
                    continue
                try:
                    record = json.loads(line)
                    name, start, end = record["name"], record["start_time"], record["end_time"]
                except (ValueError, KeyError, TypeError):
                    continue
                if name in ("run_started", "run_resumed"):
                    opened = start
                    resumed += name == "run_resumed"
                elif name == "run_ended" and opened is not None:
                    total += (end - opened) / 1000
                    opened = None
    except OSError:
        return None, 0
    return (total if total > 0 else None), resumed


def _outputs(outputs: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    shown = []
    for name, value in from_json(outputs).items():
        if isinstance(value, list):
            text = f"{len(value)} rows"
        elif isinstance(value, dt.date):
            text = value.strftime("%d-%m-%Y")
        elif value is None:
            text = "-"
        else:
            text = str(value)
        shown.append((name, text))
    return tuple(shown)


def _evidence_link(run_dir: Path, evidence: str | None) -> str | None:
    """The screenshot as a link relative to the report (which sits in the run folder)."""
    if not evidence:
        return None
    path = Path(evidence)
    for candidate in (path, run_dir / "evidence" / path.name):
        try:
            relative = candidate.resolve().relative_to(run_dir.resolve())
        except ValueError:
            continue
        if candidate.exists():
            return relative.as_posix()
    return None


def _trace_link(screenshot: str | None) -> str | None:
    """The item's Playwright trace (`--trace on-failure`), kept beside its screenshot."""
    if screenshot is None or not screenshot.endswith(".png"):
        return None
    return screenshot.removesuffix(".png") + ".trace.zip"


def item_lines(run_dir: Path, items: Sequence[WorkItemRecord]) -> list[ItemLine]:
    """The items of a run as the report shows them, in source order."""
    lines = []
    for item in items:
        state = ItemState(item.state)
        evidence = _evidence_link(run_dir, item.evidence)
        trace = _trace_link(evidence)
        lines.append(
            ItemLine(
                seq=item.seq,
                row=item.row,
                key=item.key,
                state=state.value,
                label=state_label(state.value),
                attempts=item.attempts,
                message=item.message,
                outputs=_outputs(item.outputs or {}),
                evidence=evidence,
                trace=trace if trace and (run_dir / trace).exists() else None,
                attention=state not in (ItemState.DONE, ItemState.SKIPPED),
            )
        )
    return lines


def _redact_shown(value: Any) -> Any:
    """Jinja2's finalize: every text printed on the page is redacted, facts excepted."""
    if isinstance(value, str) and not isinstance(value, Fact):
        return redact(value)
    return value


@lru_cache(maxsize=1)
def _template() -> Template:
    env = ImmutableSandboxedEnvironment(
        autoescape=True,
        undefined=StrictUndefined,
        finalize=_redact_shown,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    source = resources.files("tasks").joinpath("report.html.j2").read_text(encoding="utf-8")
    return env.from_string(source)


def render_report(
    run_dir: Path,
    task: Task,
    record: RunRecord,
    items: Sequence[WorkItemRecord],
    trail: TrailCheck,
) -> str:
    """The report page of one run."""
    counted: dict[str, int] = {}
    for item in items:
        counted[item.state] = counted.get(item.state, 0) + 1
    counts = [
        Count(state.value, state_label(state.value), counted.get(state.value, 0))
        for state in STATE_ORDER
        if state in ALWAYS_COUNTED or counted.get(state.value)
    ]
    handled = sum(n for state, n in counted.items() if ItemState(state).final)
    seconds, resumed = working_seconds(run_dir / "audit.jsonl")
    if seconds is None and record.ended_at is not None:
        seconds = (aware(record.ended_at) - aware(record.started_at)).total_seconds()
    duration = duration_text(seconds) if seconds is not None else "-"
    if resumed:
        duration += f" (working time over {resumed + 1} sessions; resumed {resumed}×)"
    throughput = f"{handled / (seconds / 60):.1f}" if seconds else "-"
    input_name = Path(record.input_path).name if record.input_path else "-"
    results_name = Path(record.results_path).name if record.results_path else "-"
    about = [
        Detail("Run", Fact(record.id)),
        Detail("Started by", record.started_by),
        Detail("Host", record.host),
        Detail("Started", local_time(record.started_at)),
        Detail("Ended", local_time(record.ended_at)),
        Detail("Working time", duration),
        Detail("Task definition", record.definition_path),
        Detail("Definition SHA-256", Fact(record.definition_sha256)),
        Detail("Input file", input_name),
        Detail("Input SHA-256", Fact(record.input_sha256 or "-")),
        Detail("Results file", results_name),
        Detail("klerk version", _klerk_version(run_dir)),
    ]
    lines = item_lines(run_dir, items)
    return _template().render(
        task=task,
        record=record,
        run_id=Fact(record.id),
        state=record.state,
        started=local_time(record.started_at),
        message=record.message or "",
        about=about,
        counts=counts,
        total=len(items),
        duration=duration_text(seconds) if seconds is not None else "-",
        throughput=throughput,
        trail=trail,
        items=lines,
        attention=[line for line in lines if line.attention],
        cards=ATTENTION_CARDS,
        legend=[
            (state.value, state_label(state.value), STATE_MEANING[state]) for state in STATE_ORDER
        ],
        generated=local_time(dt.datetime.now(dt.UTC)),
        version=__version__,
    )


def write_report(
    store: Store, run_id: str, task: Task, run_dir: Path, public_key: Path | None
) -> Path:
    """Write runs/<run-id>/report.html from the store and the trail (atomically); its path."""
    record = store.run(run_id)
    if record is None:
        raise AuditError(f"no run {run_id!r} in the store")
    items = store.items(record.id)
    trail = check_trail(run_dir / "audit.jsonl", public_key)
    page = render_report(run_dir, task, record, items, trail)
    target = run_dir / REPORT_NAME
    temporary = target.with_name(f".{REPORT_NAME}.tmp")
    run_dir.mkdir(parents=True, exist_ok=True)
    temporary.write_text(page, encoding="utf-8")
    os.replace(temporary, target)
    return target


def write_report_safely(
    store: Store, run_id: str, task: Task, run_dir: Path, signing_key: Path | None
) -> Path | None:
    """Write the report at the end of a run; a report that fails is logged, never fatal."""
    public_key = signing_key.with_suffix(".pub") if signing_key else None
    try:
        return write_report(store, run_id, task, run_dir, public_key)
    # the run itself is recorded already (trail, store, run.json): whatever goes wrong with
    # its summary page must not change the run's outcome
    except Exception as exc:
        logger.warning("the run report of {} could not be written: {}", run_id, exc)
        return None


def _klerk_version(run_dir: Path) -> str:
    """The version that ran (from run.json), else this one."""
    try:
        summary = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        return str(summary["klerk_version"])
    except (OSError, ValueError, KeyError, TypeError):
        return __version__

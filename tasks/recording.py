"""`klerk record`: from what a person did in the browser to the steps of a task definition.

The browser side (`bots/recorder.py`) reports events (a field typed into, an option chosen, a
box ticked, a click, a page opened by hand, a file downloaded), each with its element already
named the way a step names it. Here they become steps as a person would write them: typing
into one field is one `fill` with the final value; a click that opened a drop-down and the
click on its option are one `select`; a click that only opened a date picker is dropped, and
the date it wrote becomes the `fill`. At the end every typed or chosen value equal to a cell
of the sample row (or named with `--map`) becomes a placeholder such as `{{ item.bsn }}`,
the password `{{ credentials.password }}`, and the definition is written in one go.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from pydantic import TypeAdapter, ValidationError

from tasks.definition import SourceSpec, Step, Task, step_label
from tasks.errors import DataError, DefinitionError, KlerkError
from tasks.fields import FieldType, FieldValueError, field_name, is_valid_bsn, parse_value
from tasks.loading import DEFINITIONS_DIR, did_you_mean
from tasks.plugins import make_source
from tasks.privacy import redact
from tasks.templates import template_problems

PASSWORD = "{{ credentials.password }}"
USERNAME = "{{ credentials.username }}"
TODO = "TODO"
_ZONE = ZoneInfo("Europe/Amsterdam")
_STEP = TypeAdapter(Step)
# the order of a step's keys in the YAML: how the element is named, where, then the value
_KEY_ORDER = (
    "label",
    "next_to",
    "role",
    "name",
    "text",
    "placeholder",
    "css",
    "exact",
    "nth",
    "in_row_with",
    "frame",
    "click",
    "value",
    "checked",
    "file",
    "key",
    "into",
)
_TASK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")  # as a Task's name
_LOCATOR_TEXTS = ("label", "next_to", "name", "text", "placeholder")


@dataclass(eq=False)
class RecordedStep:
    """One step as recorded: its kind and arguments (the YAML keys), and what merging needs.

    `element` says which element a step acts on (its frame and locator), so that typing into
    the same field twice is one step; `source` is the id of the browser event that made it.
    """

    kind: str
    args: Any
    element: tuple[Any, ...] | None = None
    source: str = ""
    opens_list: bool = False
    radio_group: str | None = None

    def yaml_value(self) -> dict[str, Any]:
        """The step as the definition holds it: {kind: arguments}."""
        return {self.kind: self.args}

    def label(self) -> str:
        """How progress lines and warnings name the step ("fill label 'BSN'"), redacted."""
        try:
            return redact(step_label(_STEP.validate_python(self.yaml_value())))
        except ValidationError:
            return self.kind


@dataclass(frozen=True)
class PageEvent:
    """One event from the page: its kind, the element's locator (with its frame), the id of
    the event, and the rest of what the page said."""

    kind: str
    locator: dict[str, Any]
    source: str
    data: Mapping[str, Any]

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> PageEvent:
        """The event as the page's script reported it."""
        given = data.get("locator") or {}
        locator = {str(k): v for k, v in dict(given).items() if v is not None}
        if data.get("frame"):
            locator["frame"] = str(data["frame"])
        return cls(str(data.get("kind", "")), locator, str(data.get("id", "")), data)

    @property
    def element(self) -> tuple[Any, ...]:
        """Which element: equal for two events on the same element of the same page."""
        return tuple(sorted(self.locator.items()))

    def text(self, key: str) -> str:
        """A value the page reported, as text ('' when absent)."""
        value = self.data.get(key)
        return "" if value is None else str(value)

    def step(self, kind: str, **values: Any) -> RecordedStep:
        """A step of `kind` on this event's element, with `values` after its locator."""
        return RecordedStep(kind, {**self.locator, **values}, self.element, self.source)


class Recording:
    """The steps of a recording so far, merged from the browser's events as they come.

    Focus on a text field is kept as a marker (kind "focus", never written): a date picker's
    clicks after it are dropped when the picker writes the field.
    """

    def __init__(
        self,
        base_url: str | None = None,
        on_step: Callable[[RecordedStep], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None
        self.on_step = on_step
        self.notes: list[str] = []
        """What the user should know about the recording (a download without a click, ...)."""
        self._steps: list[RecordedStep] = []

    @property
    def steps(self) -> list[RecordedStep]:
        """The recorded steps, in order."""
        return [step for step in self._steps if step.kind != "focus"]

    # --- events from the page ------------------------------------------------------------------

    def event(self, data: Mapping[str, Any]) -> None:
        """Take one event from the page (see bots/recorder.js for what each kind holds)."""
        event = PageEvent.of(data)
        if event.kind == "focus":
            self._steps.append(event.step("focus"))
        elif event.kind == "fill":
            self._fill(event, PASSWORD if data.get("secret") else event.text("value"))
        elif event.kind == "select":
            self._set(event.step("select", value=event.text("value")))
        elif event.kind == "check":
            unticked = {} if data.get("checked", True) else {"checked": False}
            step = event.step("check", **unticked)
            step.radio_group = (event.text("group") or None) if data.get("radio") else None
            self._set(step)
        elif event.kind == "upload":
            files = [str(name) for name in data.get("files") or []]
            if files:
                self._set(event.step("upload", file=files[0]))
        elif event.kind == "click":
            self._click(event)
        elif event.kind == "press":
            if not data.get("secret"):
                self._fill(event, event.text("value"))
            self._append(event.step("press", key=event.text("key") or "Enter"))
        elif event.kind == "picked":
            self._picked(event)

    def navigated(self, url: str) -> None:
        """The user opened `url` in the top page (typed it, or went back to it): a `goto`; one
        right before it is dropped, as only where the user ended up counts."""
        target = url
        if self.base_url and (url == self.base_url or url.startswith(self.base_url + "/")):
            target = url[len(self.base_url) :] or "/"
        previous = self._last()
        if previous is not None and previous.kind == "goto":
            self._steps.remove(previous)
        self._append(RecordedStep("goto", target))

    def downloaded(self, suggested_filename: str) -> None:
        """A download started: the click before it becomes a `download` step."""
        previous = self._last()
        if previous is None or previous.kind != "click":
            self.notes.append(
                f"a download ({suggested_filename}) did not follow a click; it is not recorded"
            )
            return
        into = field_name(Path(suggested_filename).stem) if suggested_filename else "download"
        previous.kind = "download"
        previous.args = {"click": previous.args, "into": into}
        self._announce(previous)

    # --- merging -------------------------------------------------------------------------------

    def _last(self) -> RecordedStep | None:
        """The last step, focus markers left out."""
        return next((step for step in reversed(self._steps) if step.kind != "focus"), None)

    def _append(self, step: RecordedStep) -> None:
        self._steps.append(step)
        self._announce(step)

    def _announce(self, step: RecordedStep) -> None:
        if self.on_step is not None:
            self.on_step(step)

    def _fill(self, event: PageEvent, value: str) -> None:
        previous = self._last()
        if previous is not None and previous.kind == "fill" and previous.element == event.element:
            previous.args["value"] = value
            return
        self._append(event.step("fill", value=value))

    def _set(self, step: RecordedStep) -> None:
        """A select, check or upload: one step per element, the last choice wins."""
        previous = self._last()
        same_group = (
            step.radio_group is not None
            and previous is not None
            and previous.radio_group == step.radio_group
            and previous.args.get("frame") == step.args.get("frame")
        )
        if (
            previous is not None
            and previous.kind == step.kind
            and (previous.element == step.element or same_group)
        ):
            self._steps[self._steps.index(previous)] = step
            if same_group and previous.element != step.element:
                self._announce(step)
            return
        self._append(step)

    def _click(self, event: PageEvent) -> None:
        previous = self._last()
        if event.data.get("option") and previous is not None and previous.opens_list:
            # the click that opened the list and the click on its option: one choice
            previous.kind = "select"
            previous.args = {**previous.args, "value": event.text("value")}
            previous.opens_list = False
            self._announce(previous)
            return
        step = event.step("click")
        step.opens_list = bool(event.data.get("widget"))
        self._append(step)

    def _picked(self, event: PageEvent) -> None:
        """A picker wrote into a field: the clicks since the field got the focus were the way
        of typing (opening the calendar, paging its months, the day); the value is the step."""
        value = event.text("value")
        clicked = next((s for s in self._steps if s.source == event.text("click")), None)
        if clicked is None:
            self._fill(event, value)
            return
        end = self._steps.index(clicked)
        start = end
        while start > 0 and self._steps[start - 1].kind == "click":
            start -= 1
        marker = self._steps[start - 1] if start > 0 else None
        if marker is None or marker.kind != "focus" or marker.element != event.element:
            start = end  # no sign of where the picking began: only the click that picked
        del self._steps[start : end + 1]
        for step in reversed(self._steps[:start]):
            if step.kind == "focus":
                continue
            if step.kind == "fill" and step.element == event.element:
                step.args["value"] = value
                return
            break
        filled = event.step("fill", value=value)
        self._steps.insert(start, filled)
        self._announce(filled)


# --- the sample row and the placeholders ------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One row of the sample input file: its kind, the columns in file order and their texts."""

    path: Path
    kind: str
    row: int
    values: dict[str, str]
    """Column (field name, as templates use it) -> the cell as text ('' when empty)."""

    def column_type(self, column: str) -> FieldType:
        """The type the written definition gives a column, judged from this row: a BSN (nine
        digits passing the elfproef), a date (dd-mm-jjjj or ISO), else text."""
        value = self.values.get(column, "")
        if is_valid_bsn(value):
            return FieldType.BSN
        try:
            parse_value(FieldType.DATE, value, column=column)
        except FieldValueError:
            return FieldType.TEXT
        return FieldType.DATE if value else FieldType.TEXT


_SOURCE_KINDS = {".xlsx": "xlsx", ".csv": "csv"}


def read_sample(path: Path, row: int | None = None) -> Sample:
    """Row `row` (its number in the file; default the first with data) of an xlsx or csv file,
    read by the registered connector of its kind."""
    kind = _SOURCE_KINDS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: give an .xlsx or .csv file as --input")
    # Built without validation: a definition's source must name its key column, but one sample
    # row needs no item identity, and the columns are not known before the file is read.
    spec = SourceSpec.model_construct(kind=kind, path=str(path))
    source = make_source(spec, path)
    rows = list(source.items())
    if not rows:
        raise DataError(f"{path} holds no rows below its header; record from a file with one")
    chosen = rows[0] if row is None else next((r for r in rows if r.row == row), None)
    if chosen is None:
        numbers = [r.row for r in rows]
        raise DataError(
            f"{path}: row {row} is empty; rows {min(numbers)} to {max(numbers)} hold data"
        )
    values = {name: "" if value is None else str(value) for name, value in chosen.values.items()}
    return Sample(path, kind, chosen.row, values)


def item_template(column: str, filter_name: str | None = None) -> str:
    """`{{ item.column }}` (with `| filter`), subscripted when the column is no identifier."""
    reference = f"item.{column}" if column.isidentifier() else f"item[{json.dumps(column)}]"
    return "{{ " + reference + (f" | {filter_name}" if filter_name else "") + " }}"


class Placeholders:
    """Which typed values stand for what: the password and user name of the app's credentials,
    the values given with --map, and the cells of the sample row (as typed, as a date in
    dd-mm-jjjj, or in other capitals)."""

    def __init__(
        self,
        sample: Sample | None = None,
        mapped: Mapping[str, str] | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.sample = sample
        self.used: dict[str, None] = {}
        """The columns that became placeholders, in order of first use."""
        self._exact: dict[str, tuple[str, str | None]] = {}
        self._texts: list[tuple[str, str]] = []
        self._secrets: dict[str, str] = {}
        if credentials is not None:
            username, password = credentials
            self._secrets = {password: PASSWORD}
            if username:
                self._secrets.setdefault(username, USERNAME)
        columns = list(sample.values) if sample is not None else []
        for value, column in (mapped or {}).items():
            self._exact.setdefault(value.strip(), (self.column(column), None))
        if sample is None:
            return
        for column in columns:
            value = sample.values[column].strip()
            if not value:
                continue
            if sample.column_type(column) is FieldType.DATE:
                day = parse_value(FieldType.DATE, value, column=column)
                self._exact.setdefault(
                    f"{day.day:02d}-{day.month:02d}-{day.year:04d}", (column, "dmy")
                )
                self._exact.setdefault(day.isoformat(), (column, None))
            else:
                self._exact.setdefault(value, (column, None))
                self._texts.append((column, value))

    def column(self, name: str) -> str:
        """The column `name` (a field name or a header) names; DataError when the sample has
        no such column."""
        column = field_name(name)
        if self.sample is None or column in self.sample.values:
            return column
        known = list(self.sample.values)
        raise DataError(
            f"--map {name!r}: no such column in {self.sample.path}"
            f"{did_you_mean(column, known)} (its columns: {', '.join(known)})"
        )

    def template(self, typed: str) -> str | None:
        """The placeholder for a typed or chosen value, or None when it stays as typed."""
        if typed in self._secrets:
            return self._secrets[typed]
        value = typed.strip()
        if not value:
            return None
        found = self._exact.get(value)
        if found is None:
            found = next(
                (
                    (column, filter_name)
                    for column, text in self._texts
                    for filter_name, shown in (
                        ("upper", text.upper()),
                        ("lower", text.lower()),
                        ("capitalize", text.capitalize()),
                        ("title", text.title()),
                    )
                    if shown == value and shown != text
                ),
                None,
            )
        if found is None:
            return None
        column, filter_name = found
        self.used[column] = None
        return item_template(column, filter_name)

    def columns_used(self) -> list[str]:
        """The columns the steps use, in file order (the --map ones without a sample last)."""
        if self.sample is None:
            return list(self.used)
        return [column for column in self.sample.values if column in self.used]


# --- writing the definition -----------------------------------------------------------------------


@dataclass
class RecordedDefinition:
    """The definition a recording became, and what the user should hear about it."""

    text: str
    steps: int
    warnings: list[str] = field(default_factory=list)
    placeholders: list[str] = field(default_factory=list)
    """'step 3 (fill label BSN): {{ item.bsn }}' for every value that became a placeholder."""


@dataclass(frozen=True)
class Recorded:
    """Where a recording was made: the task's name, its app, the URL it started at, when."""

    name: str
    app: str
    url: str
    credentials: str | None = None
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(_ZONE))
    schema: str | None = None
    """The path of schemas/task.schema.json as seen from the written file, for editors."""


def write_definition(
    recording: Recording,
    placeholders: Placeholders,
    recorded: Recorded,
) -> RecordedDefinition:
    """The task definition of a recording as YAML text: its steps with placeholders, a source
    with the sample's columns (or none), a results sink, and a header saying how it was made."""
    result = RecordedDefinition(text="", steps=0)
    steps = []
    for number, step in enumerate(recording.steps, 1):
        _with_placeholders(step, placeholders, number, result)
        steps.append(step)
        for text in _literals(step.args):
            if redact(text) != text:
                result.warnings.append(
                    f"step {number} ({step.label()}) keeps a literal value that looks like "
                    "personal data (a BSN, IBAN or e-mail address): give the sample row with "
                    "--input, or --map VALUE=COLUMN, so that it becomes a placeholder"
                )
                break
    result.steps = len(steps)
    data = _task_data(steps, placeholders, recorded)
    lines = [
        f"# Recorded with `klerk record` on {recorded.at:%d-%m-%Y at %H:%M} (Europe/Amsterdam)",
        f"# from {redact(recorded.url)}" + (f" in app {recorded.app}." if recorded.app else "."),
        "# Before use: read the steps, fill in processing_activity and legal_basis, then",
        "#   klerk validate FILE   and   klerk try FILE --input FILE --headed",
    ]
    if recorded.schema:
        lines.insert(0, f"# yaml-language-server: $schema={recorded.schema}")
    lines += _block(data)
    result.text = "\n".join(lines) + "\n"
    _check(result.text)
    return result


def _with_placeholders(
    step: RecordedStep, placeholders: Placeholders, number: int, result: RecordedDefinition
) -> None:
    """Put the placeholders in a step's values: what was typed or chosen, the file uploaded,
    the row a link was clicked in, the radio button chosen (its label is the value)."""
    args = step.args
    if not isinstance(args, dict):
        return
    keys = []
    if step.kind in ("fill", "select"):
        keys.append((args, "value"))
    if step.kind == "upload":
        keys.append((args, "file"))
    if step.kind == "check" and step.radio_group is not None:
        keys.extend((args, key) for key in _LOCATOR_TEXTS if key in args)
    for locator in (args, args.get("click")):
        if isinstance(locator, dict) and "in_row_with" in locator:
            keys.append((locator, "in_row_with"))
    for holder, key in keys:
        value = holder.get(key)
        if not isinstance(value, str) or value.startswith("{{"):
            continue
        template = placeholders.template(value)
        if template is not None:
            holder[key] = template
            if template not in (PASSWORD, USERNAME):
                result.placeholders.append(f"step {number} ({step.label()}): {template}")


def _literals(value: Any) -> Iterator[str]:
    """Every string in a step's arguments that is not a placeholder."""
    if isinstance(value, str):
        if "{{" not in value:
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _literals(item)


def _templates(value: Any) -> Iterator[str]:
    """Every placeholder in a step's arguments."""
    if isinstance(value, str):
        if "{{" in value:
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _templates(item)


def credentials_name(app: str) -> str:
    """The credentials a task of `app` uses: what the app's shipped tasks name, else the app's
    name in capitals (KLERK_CRED_<NAME>_USERNAME / _PASSWORD)."""
    for path in sorted(DEFINITIONS_DIR.glob("*.yaml")):
        with contextlib.suppress(OSError, yaml.YAMLError):
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and data.get("app") == app and data.get("credentials"):
                return str(data["credentials"])
    return re.sub(r"[^A-Z0-9]+", "_", app.upper()).strip("_") or "APP"


def app_for(url: str, base_urls: Mapping[str, str]) -> str:
    """The app a recording from `url` is for: the one whose base URL it lies under, else a
    name made from its host (an app definition of that name is still to be written)."""
    found = [
        name
        for name, base in base_urls.items()
        if url.rstrip("/") == base.rstrip("/") or url.startswith(base.rstrip("/") + "/")
    ]
    if len(found) == 1:
        return found[0]
    host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    first = host.split(".")[0].lower()
    return first if first.isalpha() and first != "localhost" else "app"


def recorded_name(given: str | None, app: str) -> str:
    """The task's name: the one given (checked as a definition checks it), else APP-opname."""
    name = given if given is not None else f"{field_name(app).replace('_', '-')}-opname"
    if not _TASK_NAME.match(name):
        raise DefinitionError(
            [
                f"--name {name!r}: a task name is lower-case letters, digits and '-', e.g. "
                f"{field_name(name).replace('_', '-')!r}"
            ]
        )
    return name


def mappings(given: Sequence[str]) -> dict[str, str]:
    """--map VALUE=COLUMN options as {value: column}; the last '=' separates them."""
    pairs = {}
    for option in given:
        value, sep, column = option.rpartition("=")
        if not sep or not value or not column.strip():
            raise DataError(f"--map {option!r}: write VALUE=COLUMN, e.g. --map 'A - Centrum=zone'")
        pairs[value] = column.strip()
    return pairs


def start_url(url: str, base_url: str | None) -> str:
    """The page to start at: a path is taken under the app's base URL."""
    if url.startswith("/") and base_url:
        return base_url.rstrip("/") + url
    if "://" not in url and not url.startswith("/"):
        return "http://" + url
    return url


def _task_data(
    steps: Sequence[RecordedStep], placeholders: Placeholders, recorded: Recorded
) -> dict[str, Any]:
    sample = placeholders.sample
    data: dict[str, Any] = {
        "name": recorded.name,
        "description": f"Recorded from {redact(recorded.url)}",
        "app": recorded.app,
    }
    uses_credentials = any(
        "credentials." in text for step in steps for text in _templates(step.args)
    )
    if recorded.credentials or uses_credentials:
        data["credentials"] = recorded.credentials or credentials_name(recorded.app)
    data["processing_activity"] = f"{TODO}: the entry in the register of processing activities"
    data["legal_basis"] = f"{TODO}: the legal basis (AVG art. 6) and the regulation"
    used = placeholders.columns_used()
    if sample is not None:
        columns = list(sample.values)
        key = next(
            (c for c in columns if sample.column_type(c) is not FieldType.BSN and sample.values[c]),
            columns[0],
        )
        bsns = [c for c in columns if sample.column_type(c) is FieldType.BSN]
        typed = {
            column: sample.column_type(column).value
            for column in columns
            if column in used or column == key or column in bsns[:1]
        }
        data["source"] = {"kind": sample.kind, "path": "{{ input }}", "key": key}
        if bsns:
            data["source"]["subject"] = bsns[0]
        data["source"]["columns"] = typed
    elif used:
        data["source"] = {
            "kind": "xlsx",
            "path": "{{ input }}",
            "key": used[0],
            "columns": dict.fromkeys(used, FieldType.TEXT.value),
        }
    else:
        data["source"] = {"kind": "none"}
    data["steps"] = [_ordered(step.yaml_value()) for step in steps]
    if data["source"]["kind"] != "none":
        data["sink"] = {"kind": "xlsx", "path": "{{ input | results_path }}"}
    return data


def _ordered(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    rank = {key: index for index, key in enumerate(_KEY_ORDER)}
    keys = sorted(value, key=lambda key: rank.get(key, len(rank)))
    return {key: _ordered(value[key]) for key in keys}


def _check(text: str) -> None:
    """The written text must load as a valid task: a failure here is klerk's own bug."""
    data = yaml.safe_load(text)
    problems = [problem for _loc, problem in template_problems(data)]
    try:
        Task.model_validate(data)
    except ValidationError as exc:
        problems += [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    if problems:
        raise KlerkError(
            "the recorded definition does not validate (a bug in klerk record): "
            + "; ".join(redact(problem) for problem in problems)
        )


# --- YAML by hand: steps on one line each, as the shipped definitions write them ---------------

_NEEDS_QUOTES = re.compile(r"[,\[\]{}#&*!|>'\"%@`]|: |:$|^[-?:\s]|\s$")


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    if text and not _NEEDS_QUOTES.search(text):
        try:
            if yaml.safe_load(text) == text:
                return text
        except yaml.YAMLError:
            pass
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted one


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_flow(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(item) for item in value) + "]"
    return _scalar(value)


def _block(data: Mapping[str, Any], indent: str = "") -> list[str]:
    lines = []
    for key, value in data.items():
        if key == "steps":
            lines.append(f"{indent}steps:")
            for step in value:
                lines += [f"{indent}  - {kind}: {_flow(args)}" for kind, args in step.items()]
        elif isinstance(value, dict) and value:
            lines.append(f"{indent}{key}:")
            lines += _block(value, indent + "  ")
        else:
            lines.append(f"{indent}{key}: {_flow(value)}")
    return lines


def save_definition(text: str, target: Path, *, force: bool = False) -> None:
    """Write `text` to `target` whole or not at all (a temporary file, then a rename); an
    existing file is replaced only with `force`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if force:
            os.replace(temporary, target)
        else:
            try:
                os.link(temporary, target)  # fails when the target exists: nothing is overwritten
            except FileExistsError:
                raise DefinitionError(
                    [f"{target} exists; give another --out, or --force to replace it"]
                ) from None
    finally:
        temporary.unlink(missing_ok=True)

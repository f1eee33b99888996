"""The task, app and step definitions: pydantic models of the YAML files, and their JSON Schema.

Every model forbids unknown keys, so a typo is an error with a suggestion, never ignored.
Strings in steps are Jinja2 templates, rendered per work item by `tasks.templates`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from jinja2 import TemplateSyntaxError
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from tasks.fields import FieldType
from tasks.templates import compiled_expression, is_template


class Model(BaseModel):
    """Base of every definition model: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- locating elements -------------------------------------------------------------------------

_LOCATOR_KEYS = ("label", "next_to", "role", "text", "placeholder", "css", "xpath")


class Locator(Model):
    """An element named the way a person sees it; CSS or XPath only as a fallback.

    Exactly one of label, next_to, role, text, placeholder, css, xpath. `name` goes with
    `role`. `near` and `in_row_with` narrow the search to a part of the page; `nth` picks
    one of several matches.
    """

    label: str | None = Field(None, description="The text of the field's label.")
    next_to: str | None = Field(
        None,
        description="The caption in the table cell just left of the field (legacy forms without "
        "labels): the field in the next cell. Works when the field's name or id changes.",
    )
    role: str | None = Field(None, description="ARIA role: button, link, textbox, checkbox, ...")
    name: str | None = Field(None, description="Accessible name, with `role`.")
    text: str | None = Field(None, description="Visible text of the element.")
    placeholder: str | None = Field(None, description="Placeholder text of an input.")
    css: str | None = Field(None, description="CSS selector (fallback).")
    xpath: str | None = Field(None, description="XPath expression (fallback).")
    exact: bool = Field(False, description="Match the text exactly instead of as a substring.")
    nth: int | None = Field(None, description="Take the n-th match (0-based) when several match.")
    near: str | None = Field(
        None,
        description="Only inside the smallest region (form, fieldset, table, dialog, section, "
        "div) that holds both this text and the element.",
    )
    in_row_with: str | None = Field(
        None, description="Only inside the table row that holds this text (e.g. a zaaknummer)."
    )
    frame: str | None = Field(
        None, description="The frame that holds the element: its name, or a part of its URL."
    )

    @model_validator(mode="after")
    def _one_way_to_locate(self) -> Locator:
        given = [key for key in _LOCATOR_KEYS if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of "
                + ", ".join(_LOCATOR_KEYS)
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.name is not None and self.role is None:
            raise ValueError("`name` only goes with `role`")
        return self

    def describe(self) -> str:
        """How the definition names the element, e.g. "label 'BSN'" or "role button 'Aanvragen'",
        with the region it is looked for in ("... in the row with 'Z-2026-000001'")."""
        return self._element() + "".join(
            f" {words} {value!r}"
            for words, value in (
                ("near", self.near),
                ("in the row with", self.in_row_with),
                ("nth", self.nth),
            )
            if value is not None
        )

    def _element(self) -> str:
        if self.role is not None:
            return f"role {self.role}" + (f" {self.name!r}" if self.name else "")
        for key in _LOCATOR_KEYS:
            value = getattr(self, key)
            if value is not None:
                return f"{key} {value!r}"
        return "element"  # unreachable: the validator demands one key


class FillArgs(Locator):
    """Type a value into a text field."""

    value: str


class SelectArgs(Locator):
    """Choose an option of a drop-down by its visible text (or by value)."""

    value: str
    by: Literal["label", "value"] = "label"


class CheckArgs(Locator):
    """Tick (or untick) a checkbox, or choose a radio button."""

    checked: bool | str = True


class UploadArgs(Locator):
    """Put a file in a file field; a relative path is taken from the input file's folder."""

    file: str


class PressArgs(Locator):
    """Press a key (Enter, Tab, ...) in an element."""

    key: str


class WaitForArgs(Model):
    """Wait until an element is visible, a text appears, or the URL matches."""

    element: Locator | None = None
    text: str | None = None
    url: str | None = None
    timeout_ms: int | None = None

    @model_validator(mode="after")
    def _something_to_wait_for(self) -> WaitForArgs:
        if sum(x is not None for x in (self.element, self.text, self.url)) != 1:
            raise ValueError("give exactly one of element, text, url")
        return self


class ExpectArgs(WaitForArgs):
    """Check that the page shows a text, an element, or has a URL; a system error when not."""

    message: str | None = Field(None, description="What to report when the check fails.")


class BusinessErrorIfArgs(Model):
    """When the page shows this, the app refused the item: a business error, not retried."""

    text: str | None = None
    element: Locator | None = None
    message: str | None = Field(
        None, description="The message for the row; default: the text the page shows."
    )

    @model_validator(mode="after")
    def _one_condition(self) -> BusinessErrorIfArgs:
        if (self.text is None) == (self.element is None):
            raise ValueError("give exactly one of text, element")
        return self


class ExtractField(Locator):
    """Read one value from the page into the item's outputs."""

    attribute: str | None = Field(None, description="Read this attribute instead of the text.")


class ExtractTableArgs(Model):
    """Read the rows of a table into a list of records, following a 'next page' link."""

    into: str = Field(description="Output name for the list of rows.")
    table: Locator
    next: Locator | None = Field(None, description="The link or button to the next page.")
    max_pages: int = Field(1000, ge=1)


class DownloadArgs(Model):
    """Click something that downloads a file; keep the file and put its path in the outputs."""

    click: Locator
    into: str = Field("download", description="Output name for the saved file's path.")
    timeout_ms: int | None = None


class ActionArgs(Model):
    """Call a Python action of the app's bot, for what YAML cannot say well."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class StepModel(Model):
    """Common keys of every step."""

    title: str | None = Field(None, description="A name for the step in reports and `--until`.")
    timeout_ms: int | None = Field(None, ge=1, description="Override the app's default timeout.")
    when: str | None = Field(
        None,
        description="Do the step only when this is true for the item: an expression without "
        "{{ }}, e.g. `item.bijlage` (not empty) or `item.soort == 'bedrijf'`.",
    )

    @field_validator("when")
    @classmethod
    def _an_expression(cls, when: str | None) -> str | None:
        if when is None:
            return None
        if is_template(when):
            raise ValueError(
                f"an expression, written without {{{{ }}}}: `when: {when.strip('{} ')}`"
            )
        try:
            compiled_expression(when)
        except TemplateSyntaxError as exc:
            raise ValueError(f"not an expression: {exc.message}") from None
        return when


class GotoStep(StepModel):
    """Open a page of the app (a path relative to its base URL, or a full URL)."""

    goto: str


class FillStep(StepModel):
    """Type a value into a field."""

    fill: FillArgs


class SelectStep(StepModel):
    """Choose an option of a drop-down."""

    select: SelectArgs


class CheckStep(StepModel):
    """Tick a checkbox or choose a radio button."""

    check: CheckArgs


class ClickStep(StepModel):
    """Click a button, link or other element."""

    click: Locator


class PressStep(StepModel):
    """Press a key in an element."""

    press: PressArgs


class UploadStep(StepModel):
    """Choose a file for a file field."""

    upload: UploadArgs


class WaitForStep(StepModel):
    """Wait for an element, a text or a URL."""

    wait_for: WaitForArgs


class ExpectStep(StepModel):
    """Check the page; a system error when the check fails."""

    expect: ExpectArgs


class BusinessErrorIfStep(StepModel):
    """Report a refusal by the app as a business error."""

    business_error_if: BusinessErrorIfArgs


class ExtractStep(StepModel):
    """Read values from the page into the item's outputs."""

    extract: dict[str, ExtractField]


class ExtractTableStep(StepModel):
    """Read a (paginated) table into the item's outputs."""

    extract_table: ExtractTableArgs


class DownloadStep(StepModel):
    """Download a file."""

    download: DownloadArgs


class ActionStep(StepModel):
    """Call a Python action of the bot."""

    action: ActionArgs

    @field_validator("action", mode="before")
    @classmethod
    def _name_alone(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class UseStep(StepModel):
    """Do a named step sequence of the app definition (`sequences:`), put in place at load time."""

    use: str = Field(description="The name of a sequence in the app definition.")


class InFrameArgs(Model):
    """A group of steps whose elements are all in one frame (unless a locator names its own)."""

    frame: str = Field(description="The frame's name, or a part of its URL.")
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_level(self) -> InFrameArgs:
        if any(isinstance(step, InFrameStep) for step in self.steps):
            raise ValueError("an in_frame group cannot hold another; give those locators `frame:`")
        return self


class InFrameStep(StepModel):
    """Do a group of steps in one frame; put in place at load time, each locator given the frame."""

    in_frame: InFrameArgs


STEP_KINDS: dict[str, type[StepModel]] = {
    "goto": GotoStep,
    "fill": FillStep,
    "select": SelectStep,
    "check": CheckStep,
    "click": ClickStep,
    "press": PressStep,
    "upload": UploadStep,
    "wait_for": WaitForStep,
    "expect": ExpectStep,
    "business_error_if": BusinessErrorIfStep,
    "extract": ExtractStep,
    "extract_table": ExtractTableStep,
    "download": DownloadStep,
    "action": ActionStep,
    "use": UseStep,
    "in_frame": InFrameStep,
}


def step_kind(value: Any) -> str | None:
    """The kind of a step: the one key of the mapping that names a step kind."""
    if isinstance(value, StepModel):
        return next(kind for kind, model in STEP_KINDS.items() if isinstance(value, model))
    if isinstance(value, dict):
        kinds = [str(key) for key in value if key in STEP_KINDS]
        if len(kinds) == 1:
            return kinds[0]
    return None


Step = Annotated[
    Annotated[GotoStep, Tag("goto")]
    | Annotated[FillStep, Tag("fill")]
    | Annotated[SelectStep, Tag("select")]
    | Annotated[CheckStep, Tag("check")]
    | Annotated[ClickStep, Tag("click")]
    | Annotated[PressStep, Tag("press")]
    | Annotated[UploadStep, Tag("upload")]
    | Annotated[WaitForStep, Tag("wait_for")]
    | Annotated[ExpectStep, Tag("expect")]
    | Annotated[BusinessErrorIfStep, Tag("business_error_if")]
    | Annotated[ExtractStep, Tag("extract")]
    | Annotated[ExtractTableStep, Tag("extract_table")]
    | Annotated[DownloadStep, Tag("download")]
    | Annotated[ActionStep, Tag("action")]
    | Annotated[UseStep, Tag("use")]
    | Annotated[InFrameStep, Tag("in_frame")],
    Discriminator(
        step_kind,
        custom_error_type="unknown_step",
        custom_error_message="not a known step",
    ),
]


InFrameArgs.model_rebuild()


def in_frame(steps: Sequence[StepModel], frame: str | None = None) -> list[StepModel]:
    """`steps` with every in_frame group put in place: each locator in a group gets the group's
    frame unless it names its own (a text to wait for or expect becomes an element with that
    text, so it is looked for in the frame too). With `frame`, all of `steps` are such a group;
    a group met inside (from a sequence) keeps its own frame."""
    framed: list[StepModel] = []
    for step in steps:
        if isinstance(step, InFrameStep):
            inner = in_frame(step.in_frame.steps, step.in_frame.frame)
            framed.extend(only_when(inner, step.when))
        else:
            framed.append(step if frame is None else _framed(step, frame))
    return framed


def only_when(steps: Sequence[StepModel], when: str | None) -> list[StepModel]:
    """The steps of a group (in_frame, a used sequence) with the group's `when` added to each."""
    if when is None:
        return list(steps)
    return [
        step.model_copy(update={"when": f"({when}) and ({step.when})" if step.when else when})
        for step in steps
    ]


def _framed(value: Any, frame: str) -> Any:
    if isinstance(value, Locator):
        return value if value.frame else value.model_copy(update={"frame": frame})
    if isinstance(value, WaitForArgs | BusinessErrorIfArgs) and value.text is not None:
        element = Locator(text=value.text, frame=frame)
        return value.model_copy(update={"text": None, "element": element})
    if isinstance(value, BaseModel):
        updates = {name: _framed(getattr(value, name), frame) for name in type(value).model_fields}
        return value.model_copy(update=updates)
    if isinstance(value, dict):
        return {key: _framed(item, frame) for key, item in value.items()}
    return value


def kind_of(step: StepModel) -> str:
    """The kind of a step model instance ('fill', 'click', ...)."""
    kind = step_kind(step)
    assert kind is not None
    return kind


def step_label(step: StepModel) -> str:
    """A short description of a step for progress lines and the trail: its title or kind+target."""
    if step.title:
        return step.title
    kind = kind_of(step)
    args = getattr(step, kind)
    if isinstance(args, Locator):
        return f"{kind} {args.describe()}"
    if isinstance(args, str):
        return f"{kind} {args}"
    if isinstance(args, ActionArgs):
        return f"{kind} {args.name}"
    return kind


# --- sources and sinks ---------------------------------------------------------------------------


class ColumnSpec(Model):
    """How to read one column: its type, the header it has in the file, whether it may be empty."""

    type: FieldType = FieldType.TEXT
    header: str | None = Field(None, description="Header text in the file; default: the name.")
    required: bool = True


class SourceSpec(Model):
    """Where the work items come from."""

    kind: str = Field(description="xlsx, csv, or none (one work item without input).")
    path: str | None = Field(None, description="File path; a template ('{{ input }}').")
    sheet: str | None = Field(None, description="Sheet name (xlsx); default: the first sheet.")
    header_row: int = Field(1, ge=1, description="Row number of the header row.")
    key: str | None = Field(None, description="Column whose value identifies an item.")
    subject: str | None = Field(None, description="Column holding the person's BSN.")
    columns: dict[str, ColumnSpec] = Field(
        default_factory=dict,
        description="Typed columns by name (`bsn: bsn` or `bsn: {type: bsn, header: BSN}`); "
        "other columns are text.",
    )
    encoding: Literal["auto", "utf-8", "utf-8-sig", "cp1252"] = "auto"
    delimiter: Literal["auto", ";", ",", "\t"] = "auto"

    @field_validator("columns", mode="before")
    @classmethod
    def _type_alone(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    def column(self, name: str) -> ColumnSpec:
        """The spec of column `name` (optional text when the definition does not type it)."""
        return self.columns.get(name) or ColumnSpec(required=False)

    @model_validator(mode="after")
    def _key_for_files(self) -> SourceSpec:
        if self.kind != "none":
            if self.path is None:
                raise ValueError(f"a {self.kind} source needs `path`")
            if self.key is None:
                raise ValueError(f"a {self.kind} source needs `key` (the column naming each item)")
        return self


class SinkSpec(Model):
    """Where the results go."""

    kind: str = Field(description="xlsx or csv.")
    path: str = Field(description="File path; a template ('{{ input | results_path }}').")
    sheet: str = "Resultaten"
    columns: list[str] | None = Field(
        None, description="Columns to write, in order; default: input, outputs, status, melding."
    )
    table: str | None = Field(
        None, description="Write this extracted table (extract_table `into`) instead of items."
    )


class RetryPolicy(Model):
    """How system errors are retried: attempts in all, and the wait between them."""

    attempts: int = Field(3, ge=1, le=20)
    backoff_seconds: float = Field(2.0, ge=0)
    backoff_factor: float = Field(2.0, ge=1)
    max_backoff_seconds: float = Field(30.0, ge=0, description="Never wait longer than this.")
    max_consecutive_system_errors: int = Field(
        10, ge=1, description="Stop the run after this many items in a row failed (app dead)."
    )

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        wait = self.backoff_seconds * self.backoff_factor ** (attempt - 1)
        return float(min(wait, self.max_backoff_seconds))


class AlreadyDone(Model):
    """How to tell whether an item is in the app already, checked before an item is entered
    again after a failure or a crash: steps that look it up and the element that shows it was
    found (YAML), or a Python action of the app that returns the outputs or nothing."""

    steps: list[Step] = Field(
        default_factory=list, description="Look the item up (a search form, a list)."
    )
    found: Locator | None = Field(None, description="Present when the item is in the app.")
    next: Locator | None = Field(
        None, description="The link to the next page of a list, to look further on."
    )
    max_pages: int = Field(100, ge=1, description="Stop looking after this many pages.")
    extract: dict[str, ExtractField] = Field(
        default_factory=dict, description="Outputs to keep when it is found (e.g. zaaknummer)."
    )
    action: str | None = Field(None, description="Or: a Python action of the app.")
    args: dict[str, Any] = Field(default_factory=dict, description="The action's arguments.")

    @model_validator(mode="after")
    def _one_way_to_check(self) -> AlreadyDone:
        if (self.action is None) == (self.found is None):
            raise ValueError("give `found` (with `steps` to look the item up) or `action`")
        if self.action is not None and (self.steps or self.extract or self.next):
            raise ValueError("`steps`, `next` and `extract` go with `found`, not with `action`")
        if self.found is not None and self.args:
            raise ValueError("`args` go with `action`")
        return self


class Task(Model):
    """A task definition: what to move from where to where, through which app, on what basis."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = ""
    app: str = Field(description="An app definition in bots/apps/.")
    credentials: str | None = Field(
        None,
        pattern=r"^[A-Z][A-Z0-9_]*$",
        description="KLERK_CRED_<NAME>_USERNAME / _PASSWORD or the OS keyring.",
    )
    processing_activity: str = Field(description="Entry in the register of processing activities.")
    legal_basis: str = Field(min_length=3)
    source: SourceSpec
    steps: list[Step] = Field(min_length=1)
    setup: list[Step] = Field(
        default_factory=list,
        description="Steps done once in every browser context, right after logging in (a fresh "
        "context after a system error and every 100 items logs in and sets up again).",
    )
    teardown: list[Step] = Field(
        default_factory=list,
        description="Steps done once in every browser context before it closes; best effort: a "
        "failure is a warning and changes no item.",
    )
    already_done: AlreadyDone | None = None
    sink: SinkSpec | None = None
    retry: RetryPolicy = RetryPolicy()
    concurrency: int = Field(1, ge=1, le=32)
    mask: list[str] = Field(
        default_factory=list, description="Labels of fields to mask in screenshots."
    )
    retention_days: int | None = Field(
        None,
        ge=1,
        description="Keep the files of a run at least this many days (the bewaartermijn of the "
        "Archiefwet selectielijst); `klerk runs prune` removes them afterwards.",
    )


# --- applications ----------------------------------------------------------------------------


class PageSignal(Model):
    """How to recognise a kind of page: a text on it, a part of its URL, an HTTP status."""

    texts: list[str] = Field(default_factory=list)
    url_contains: list[str] = Field(default_factory=list)
    status: list[int] = Field(default_factory=list)


class AppDefinition(Model):
    """A legacy application as klerk knows it: where it is, how to log in, how it misbehaves."""

    name: str
    description: str = ""
    base_url: str
    login: list[Step] = Field(default_factory=list)
    logged_in: PageSignal = PageSignal()
    session_expired: PageSignal = PageSignal()
    busy: PageSignal = PageSignal()
    failing: PageSignal = PageSignal(status=[500, 502, 503, 504])
    timeout_ms: int = Field(10_000, ge=100)
    navigation_timeout_ms: int = Field(30_000, ge=100)
    mask: list[str] = Field(default_factory=list, description="Labels of personal fields.")
    sequences: dict[str, list[Step]] = Field(
        default_factory=dict,
        description="Named step sequences that task steps reuse with `use: NAME`.",
    )

    @model_validator(mode="after")
    def _no_use_inside(self) -> AppDefinition:
        for where, steps in [("login", self.login), *self.sequences.items()]:
            if any(isinstance(step, UseStep) for step in in_frame(steps)):
                raise ValueError(f"`use` is for task steps; {where!r} cannot use a sequence")
        return self

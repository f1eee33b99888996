"""What the core knows of the outside: small protocols for sources, sinks and bots, and a registry.

Connectors and bots register themselves by name; the runner imports them so that they do.
The core never imports a connector or a bot, nor Playwright or openpyxl.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tasks.errors import KlerkError

if TYPE_CHECKING:
    from tasks.definition import AppDefinition, Locator, SinkSpec, SourceSpec, StepModel
    from tasks.secrets import Credentials


@dataclass(frozen=True)
class SourceRow:
    """One row of input: its key, where it came from, its typed values and the person it concerns.

    `problem` is set when the row cannot be processed as it is (a bad cell); the engine then
    reports it as a business error without touching any application.
    """

    key: str
    row: int
    values: Mapping[str, Any]
    subject: str | None = None
    problem: str | None = None


class Source(Protocol):
    """A place work items come from (a spreadsheet, a csv file)."""

    def headers(self) -> Mapping[str, str]:
        """Field name -> the column header as the user wrote it, in file order."""
        ...

    def items(self) -> Iterator[SourceRow]:
        """The rows, in file order. Raises DataError when the file as a whole is unusable."""
        ...


class Sink(Protocol):
    """A place results go to. Writing is atomic: a temporary file, then a rename."""

    def write(self, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Path:
        """Write one table (the header, then the rows in order) and return the file written."""
        ...


SourceFactory = Callable[["SourceSpec", Path], Source]
SinkFactory = Callable[["SinkSpec", Path], Sink]


@dataclass
class StepOutcome:
    """What one step did: its outputs (extract), an optional detail for the trail."""

    outputs: dict[str, Any] = field(default_factory=dict)
    detail: str = ""


class BotSession(Protocol):
    """A logged-in browser context for one application. Playwright stays behind this."""

    async def perform(self, step: StepModel, item: ItemContext) -> StepOutcome:
        """Do one (already rendered) step; raise BusinessError, AppUnavailableError or BotError."""
        ...

    async def call(self, action: str, args: Mapping[str, Any], item: ItemContext) -> Any:
        """Run a named Python action of the bot (used for steps and for the already_done check)."""
        ...

    async def present(self, locator: Locator) -> bool:
        """Whether the (rendered) element is on the page now, without waiting for it."""
        ...

    async def begin_item(self) -> None:
        """An item (or another attempt at one) starts here: record it when tracing is on."""
        ...

    async def end_item(self) -> None:
        """The item ended well: drop what was recorded for it."""
        ...

    async def evidence(self, name: str) -> list[Path]:
        """The item failed: keep a masked screenshot and, when tracing, the item's scrubbed trace,
        under the run's evidence folder; returns the files kept, the screenshot first."""
        ...

    async def close(self) -> None:
        """Close the context; never raises."""
        ...


class Bot(Protocol):
    """One legacy application: opens logged-in sessions."""

    name: str

    async def open(self, credentials: Credentials | None) -> BotSession:
        """A fresh browser context, logged in. Raises AppUnavailableError when the app is down."""
        ...

    async def evidence(self, name: str) -> list[Path]:
        """The last `open` of this worker failed: keep a masked screenshot of where it stopped
        (as `BotSession.evidence` does); returns the files kept, or none."""
        ...

    async def close(self) -> None:
        """Close the browser."""
        ...


class TraceMode(StrEnum):
    """Whether bots record a Playwright trace of each item: never, or kept for failed items."""

    OFF = "off"
    ON_FAILURE = "on-failure"


@dataclass(frozen=True)
class BotOptions:
    """How bots of a run launch their browser and where they keep evidence."""

    evidence_dir: Path
    headed: bool = False
    slow_mo_ms: int = 0
    base_url: str | None = None
    secrets: tuple[str, ...] = ()
    mask_labels: tuple[str, ...] = ()
    trace: TraceMode = TraceMode.OFF
    files_dir: Path | None = None
    """Where a relative file name of an `upload` step is looked for: the input file's folder."""


BotFactory = Callable[["AppDefinition", BotOptions], Bot]


@dataclass
class ItemContext:
    """The work item as a step sees it: key, values, outputs so far, and the run's template vars."""

    key: str
    values: Mapping[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""


class UnknownPluginError(KlerkError):
    """A definition names a source, sink or bot kind that nobody registered."""


_sources: dict[str, SourceFactory] = {}
_sinks: dict[str, SinkFactory] = {}
_bots: dict[str, BotFactory] = {}
_actions: dict[str, dict[str, Callable[..., Any]]] = {}


def register_source(kind: str, factory: SourceFactory) -> None:
    """Make a source kind (e.g. 'xlsx') available to task definitions."""
    _sources[kind] = factory


def register_sink(kind: str, factory: SinkFactory) -> None:
    """Make a sink kind available to task definitions."""
    _sinks[kind] = factory


def register_bot(kind: str, factory: BotFactory) -> None:
    """Make a bot implementation available (the generic one is registered as 'generic')."""
    _bots[kind] = factory


def source_kinds() -> list[str]:
    """The registered source kinds, sorted."""
    return sorted(_sources)


def sink_kinds() -> list[str]:
    """The registered sink kinds, sorted."""
    return sorted(_sinks)


def make_source(spec: SourceSpec, path: Path) -> Source:
    """A source for `spec`, reading `path`."""
    try:
        factory = _sources[spec.kind]
    except KeyError:
        raise UnknownPluginError(
            f"unknown source kind {spec.kind!r}; known: {', '.join(source_kinds())}"
        ) from None
    return factory(spec, path)


def make_sink(spec: SinkSpec, path: Path) -> Sink:
    """A sink for `spec`, writing `path`."""
    try:
        factory = _sinks[spec.kind]
    except KeyError:
        raise UnknownPluginError(
            f"unknown sink kind {spec.kind!r}; known: {', '.join(sink_kinds())}"
        ) from None
    return factory(spec, path)


def make_bot(app: AppDefinition, options: BotOptions) -> Bot:
    """The bot for `app`: its own implementation if one registered under its name, else generic."""
    factory = _bots.get(app.name) or _bots.get("generic")
    if factory is None:
        raise UnknownPluginError(f"no bot registered for app {app.name!r}")
    return factory(app, options)

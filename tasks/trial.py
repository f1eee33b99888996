"""`klerk try`: one item of a task through the real bot, step by step, with nothing stored.

A try writes no run, no work items, no trail and no results file, and does not check
`already_done`: it is for looking at what the steps do. Only when a step fails does the bot
keep its (masked) screenshot, under `runs/try-<id>/evidence/`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.definition import AppDefinition, StepModel, Task, step_label
from tasks.engine import (
    RunOptions,
    StepDone,
    bot_options,
    context_steps,
    item_variables,
    new_run_id,
    perform_steps,
    read_source,
)
from tasks.errors import (
    AppUnavailableError,
    BotError,
    BusinessError,
    DataError,
)
from tasks.loading import did_you_mean
from tasks.plugins import Bot, BotSession, ItemContext, SourceRow, make_bot
from tasks.privacy import add_secrets, redact
from tasks.secrets import Credentials, load_credentials
from tasks.states import ItemState
from tasks.templates import TemplateRenderError

EXIT_CODES = {ItemState.DONE: 0, ItemState.BUSINESS_ERROR: 1, ItemState.SYSTEM_ERROR: 3}


@dataclass
class TrialOutcome:
    """How the tried item went: done (up to `--until`), refused, or failed."""

    key: str
    row: int
    state: ItemState
    message: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    stopped_before: str | None = None
    evidence: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        """0 went through, 1 business error (the row or the app refused it), 3 system error."""
        return EXIT_CODES[self.state]


def pick_row(rows: Sequence[SourceRow], *, row: int | None, key: str | None) -> SourceRow:
    """The item named by its row number in the file or by its key; the first one by default."""
    if not rows:
        raise DataError("the input holds no items to try")
    if row is not None:
        for candidate in rows:
            if candidate.row == row:
                return candidate
        numbers = [candidate.row for candidate in rows]
        raise DataError(
            f"row {row} holds no item; items are on rows {min(numbers)} to {max(numbers)}"
        )
    if key is not None:
        for candidate in rows:
            if candidate.key == key:
                return candidate
        keys = [candidate.key for candidate in rows]
        raise DataError(f"no item has key {key!r}{did_you_mean(key, keys)}")
    return rows[0]


def steps_until(steps: Sequence[StepModel], until: str | None) -> tuple[list[StepModel], str]:
    """The steps before the one `until` names (by its title, its 1-based number or its label,
    in that order), and that step's label; all steps and "" without `until`."""
    if until is None:
        return list(steps), ""
    labels = [step_label(step) for step in steps]
    index = next((n for n, step in enumerate(steps) if step.title == until), None)
    if index is None and until.isdigit() and 1 <= int(until) <= len(steps):
        index = int(until) - 1
    if index is None and until in labels:
        index = labels.index(until)
    if index is None:
        known = "; ".join(f"{n}: {label}" for n, label in enumerate(labels, start=1))
        raise DataError(
            f"--until {until!r} names no step{did_you_mean(until, labels)}; "
            f"give a step's title, number or label: {known}"
        )
    return list(steps[:index]), labels[index]


class Trial:
    """One item of a task, tried in the app without storing a run."""

    def __init__(
        self,
        task: Task,
        app: AppDefinition,
        runs_dir: Path,
        options: RunOptions,
        *,
        credentials_loader: Callable[[str], Credentials] = load_credentials,
    ) -> None:
        self.task = task
        self.app = app
        self.options = options
        self.credentials_loader = credentials_loader
        self.id = "try-" + new_run_id()
        self.folder = runs_dir / self.id

    def item(self, *, row: int | None, key: str | None) -> tuple[SourceRow, Path | None]:
        """The item to try (see `pick_row`) and the input file it comes from."""
        rows, _headers, input_path = read_source(self.task, self.options)
        return pick_row(rows, row=row, key=key), input_path

    async def execute(
        self,
        item: SourceRow,
        input_path: Path | None,
        *,
        until: str | None = None,
        on_step: Callable[[StepDone], None],
        keep_open: Callable[[TrialOutcome], None] | None = None,
    ) -> TrialOutcome:
        """Log in, do the setup steps and the item's steps (those before `until`), then the
        teardown steps, and say how it went.

        `keep_open` is called (in a thread) before the browser closes, when the item failed or
        stopped at `until`: a headed try waits there until the user has looked.
        """
        steps, stopped_before = steps_until(self.task.steps, until)
        outcome = TrialOutcome(key=item.key, row=item.row, state=ItemState.DONE)
        if item.problem:
            outcome.state, outcome.message = ItemState.BUSINESS_ERROR, redact(item.problem)
            return outcome
        credentials = (
            self.credentials_loader(self.task.credentials) if self.task.credentials else None
        )
        if credentials is not None:
            add_secrets([credentials.password.get_secret_value()])
        options = bot_options(
            self.app, self.task, self.options, credentials, self.folder / "evidence"
        )
        bot = make_bot(self.app, options)
        session: BotSession | None = None
        context = ItemContext(key=item.key, values=item.values, run_id=self.id)
        try:
            session = await bot.open(credentials)
            await context_steps(self.task.setup, session, self.id, input_path, on_step)
            await perform_steps(
                steps, session, context, item_variables(input_path, context), on_step
            )
            outcome.stopped_before = stopped_before or None
        except BusinessError as exc:
            outcome.state, outcome.message = ItemState.BUSINESS_ERROR, redact(str(exc))
        except (AppUnavailableError, BotError, TemplateRenderError) as exc:
            outcome.state, outcome.message = ItemState.SYSTEM_ERROR, redact(str(exc))
        try:
            outcome.outputs = dict(context.outputs)
            if outcome.state is not ItemState.DONE:
                outcome.evidence = await self._evidence(session, bot, item)
            if keep_open is not None and (outcome.state is not ItemState.DONE or stopped_before):
                await asyncio.to_thread(keep_open, outcome)
        finally:
            if session is not None:
                # best effort, as in a run: on_step shows a failing teardown step
                with contextlib.suppress(
                    AppUnavailableError, BotError, BusinessError, TemplateRenderError
                ):
                    await context_steps(self.task.teardown, session, self.id, input_path, on_step)
                await session.close()
            await bot.close()
        return outcome

    async def _evidence(
        self, session: BotSession | None, bot: Bot, item: SourceRow
    ) -> tuple[str, ...]:
        keeper = session or bot
        with contextlib.suppress(Exception):  # evidence is a help here, never the outcome
            return tuple(str(path) for path in await keeper.evidence(f"row-{item.row}"))
        return ()

"""The states of a work item and of a run, and the transitions allowed between them: one place."""

from __future__ import annotations

from enum import StrEnum


class ItemState(StrEnum):
    """Where a work item is. `running` is written before the bot acts, a final state after."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    BUSINESS_ERROR = "business_error"
    SYSTEM_ERROR = "system_error"
    SKIPPED = "skipped"

    @property
    def final(self) -> bool:
        """True for the states an item ends in."""
        return self not in (ItemState.PENDING, ItemState.RUNNING)


ITEM_TRANSITIONS: dict[ItemState, frozenset[ItemState]] = {
    ItemState.PENDING: frozenset({ItemState.RUNNING, ItemState.BUSINESS_ERROR, ItemState.SKIPPED}),
    # a running item goes back to pending when the run is interrupted before the bot acted
    ItemState.RUNNING: frozenset(
        {
            ItemState.RUNNING,
            ItemState.PENDING,
            ItemState.DONE,
            ItemState.BUSINESS_ERROR,
            ItemState.SYSTEM_ERROR,
        }
    ),
    ItemState.DONE: frozenset(),
    ItemState.BUSINESS_ERROR: frozenset(),
    ItemState.SKIPPED: frozenset(),
    # `klerk resume` gives items that failed on a system error another chance
    ItemState.SYSTEM_ERROR: frozenset({ItemState.PENDING}),
}


class RunState(StrEnum):
    """Where a run is."""

    RUNNING = "running"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"
    ABORTED = "aborted"


class IllegalTransition(Exception):
    """A programming error: a transition the state machine does not allow."""


def check_transition(old: ItemState, new: ItemState) -> None:
    """Raise IllegalTransition unless `old` -> `new` is allowed."""
    if new not in ITEM_TRANSITIONS[old]:
        raise IllegalTransition(f"work item cannot go from {old} to {new}")

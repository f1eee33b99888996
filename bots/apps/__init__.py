"""The applications klerk knows: one YAML app definition each, plus a Python module where YAML
is not enough (actions registered with `@action`)."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.errors import DefinitionError
from tasks.settings import settings

if TYPE_CHECKING:
    from bots.session import GenericSession

APPS_DIR = Path(__file__).parent
Action = Callable[["GenericSession", dict[str, Any]], Awaitable[Any]]
_actions: dict[tuple[str, str], Action] = {}


def action(app: str, name: str) -> Callable[[Action], Action]:
    """Register a Python action `name` for `app`, callable from YAML as `action: name`."""

    def register(function: Action) -> Action:
        _actions[(app, name)] = function
        return function

    return register


def find_action(app: str, name: str) -> Action:
    """The action `name` of `app`; a DefinitionError with suggestions when there is none."""
    try:
        return _actions[(app, name)]
    except KeyError:
        known = sorted(n for a, n in _actions if a == app)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DefinitionError(
            [f"app {app!r} has no action {name!r}{hint} (known: {', '.join(known) or 'none'})"]
        ) from None


def actions_of(app: str) -> list[str]:
    """The names of the Python actions of `app`."""
    return sorted(n for a, n in _actions if a == app)


def load_actions() -> None:
    """Import every app module in this folder so that its actions register."""
    for module in sorted(APPS_DIR.glob("*.py")):
        if module.stem != "__init__":
            importlib.import_module(f"bots.apps.{module.stem}")


def app_folders() -> list[Path]:
    """Where app definitions are looked for: the municipality's own folder (KLERK_APPS_DIR,
    default <home>/apps) first, so that its definitions win, then klerk's bundled ones."""
    return [settings().apps(), APPS_DIR]


def app_names() -> list[str]:
    """The names of the applications klerk knows: one app definition (YAML) each."""
    return sorted({p.stem for folder in app_folders() for p in folder.glob("*.yaml")})


def definition_path(name: str) -> Path:
    """The YAML file of app `name`; a DefinitionError with suggestions when there is none."""
    for folder in app_folders():
        path = folder / f"{name}.yaml"
        if path.exists():
            return path
    known = app_names()
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    looked = " or ".join(str(folder) for folder in app_folders())
    raise DefinitionError(
        [f"unknown app {name!r}{hint}: no {name}.yaml in {looked} (known: {', '.join(known)})"]
    )

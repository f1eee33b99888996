"""Switchable faults of the demo application: latency, HTTP 500s, busy pages, expiry, ids.

The demo app misbehaves on purpose, the way real legacy applications do, so that the
bots and the runner can be tested against slowness and failure. Every page request
(except the login page, the JSON API and the stylesheet) first passes a `FaultInjector`,
which sleeps for the configured latency and then draws one number from a seeded random
generator to decide whether this request fails.
"""

from __future__ import annotations

import dataclasses
import enum
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Faults:
    """How badly the demo application behaves; all zero means a well-behaved app."""

    latency_ms: int = 0
    """Milliseconds every page request waits before it is answered."""
    error_rate: float = 0.0
    """Share of page requests answered with HTTP 500 ("Interne serverfout")."""
    busy_rate: float = 0.0
    """Share of page requests answered with the "systeem is bezet" page (HTTP 200)."""
    session_lifetime: float = 900.0
    """Idle seconds before a session expires."""
    random_ids: bool = False
    """Give the form's inputs a new id and name on every load."""
    notice_on_form: bool = False
    """The permit form greets every load with an alert() about maintenance."""
    confirm_on_submit: bool = False
    """The permit form asks confirm() before it is sent; a dismissed confirm sends nothing."""
    renamed_labels: bool = False
    """The permit form labels the BSN "Burgerservicenummer", as after an upgrade of the app."""
    broken_export: bool = False
    """The CSV export answers with a page instead of a file: the download never starts."""
    seed: int | None = None
    """Seed of the random generator that decides the faults, for repeatable runs."""

    def __post_init__(self) -> None:
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must be 0 or more, not {self.latency_ms}")
        for name in ("error_rate", "busy_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {rate}")
        if self.session_lifetime <= 0:
            raise ValueError(f"session_lifetime must be positive, not {self.session_lifetime}")

    def to_json(self) -> dict[str, Any]:
        """The faults as a JSON-ready dict (the shape of `GET /api/faults`)."""
        return dataclasses.asdict(self)

    def updated(self, changes: Mapping[str, Any]) -> Faults:
        """A copy with the given fields changed; unknown fields or wrong types raise ValueError."""
        known = {field.name for field in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
        values = self.to_json()
        for name, value in changes.items():
            values[name] = _coerce(name, value)
        return Faults(**values)


NO_FAULTS = Faults()
"""A well-behaved application: the default everywhere a `Faults` is optional."""


_SWITCHES = frozenset(
    {"random_ids", "notice_on_form", "confirm_on_submit", "renamed_labels", "broken_export"}
)


def _coerce(name: str, value: Any) -> Any:
    """Check one field value read from JSON and convert it to the field's type."""
    if name in _SWITCHES:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
        return value
    if name == "seed":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError("seed must be an integer or null")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    if name == "latency_ms":
        if value != int(value):
            raise ValueError("latency_ms must be a whole number")
        return int(value)
    return float(value)


class Verdict(enum.Enum):
    """What the fault injector decided for one page request."""

    SERVE = "serve"
    ERROR = "error"
    BUSY = "busy"


class FaultInjector:
    """The current faults and the seeded generator that applies them; safe across threads."""

    def __init__(self, faults: Faults) -> None:
        self._lock = threading.Lock()
        self._faults = faults
        self._random = random.Random(faults.seed)

    @property
    def faults(self) -> Faults:
        """The faults in force now."""
        with self._lock:
            return self._faults

    def replace(self, faults: Faults) -> None:
        """Put other faults in force; a seed in them restarts the generator from that seed."""
        with self._lock:
            self._faults = faults
            if faults.seed is not None:
                self._random = random.Random(faults.seed)

    def update(self, changes: Mapping[str, Any]) -> Faults:
        """Change some fields (as posted to `/api/faults`) and return the faults now in force."""
        with self._lock:
            faults = self._faults.updated(changes)
            self._faults = faults
            if "seed" in changes:
                self._random = random.Random(faults.seed)
            return faults

    def decide(self) -> Verdict:
        """Draw once and decide whether this request is served, fails, or finds the app busy.

        One draw per request keeps a seeded run repeatable, and makes `error_rate` and
        `busy_rate` the shares of all page requests rather than conditional chances.
        """
        with self._lock:
            faults = self._faults
            if faults.error_rate == 0.0 and faults.busy_rate == 0.0:
                return Verdict.SERVE
            draw = self._random.random()
        if draw < faults.error_rate:
            return Verdict.ERROR
        if draw < faults.error_rate + faults.busy_rate:
            return Verdict.BUSY
        return Verdict.SERVE

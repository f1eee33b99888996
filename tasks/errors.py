"""The exceptions users can act on: one root, a few kinds, each saying when it is raised."""

from __future__ import annotations


class KlerkError(Exception):
    """Root of every error klerk raises on purpose; the CLI prints it without a traceback."""

    exit_code = 2


class DefinitionError(KlerkError):
    """A task, app or schedule definition is wrong: the message names file:line:column and a fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class DataError(KlerkError):
    """An input file cannot be used (missing file, sheet or column; not really a spreadsheet)."""


class ConnectorError(KlerkError):
    """A source or sink failed for a reason outside the data itself (file locked, disk full)."""


class BusinessError(KlerkError):
    """The application refused the item (an active permit exists, invalid BSN); never retried."""


class AppUnavailableError(KlerkError):
    """The application is down, busy, failing or the session expired; retried, with a fresh
    login unless `session_ok` (a busy page or an HTTP 500 leaves the session as it was)."""

    exit_code = 3

    def __init__(self, message: str, *, session_ok: bool = False) -> None:
        super().__init__(message)
        self.session_ok = session_ok


class SessionExpiredError(AppUnavailableError):
    """The app ended the session (idle timeout, logged out elsewhere); a new login is needed."""


class BotError(KlerkError):
    """The bot could not do a step (element not found, timeout); treated as a system error."""


class AuditError(KlerkError):
    """The trail or the store could not be written; the run stops before the next action."""

    exit_code = 3


class RunAborted(KlerkError):
    """The run stopped before all items were handled (app down, too many system errors, signal)."""

    exit_code = 3

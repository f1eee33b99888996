"""Sessions, idle expiry and CSRF tokens of the demo application, kept in memory.

A session ends after `session_lifetime` idle seconds. The login form's CSRF token is
signed with the id of a pre-session cookie, so it needs no server state; the permit
form's token is stored in the session together with the input names that form used,
which is how the server maps randomised ids and names back to its fields.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

SESSION_COOKIE = "PVSESSIONID"
"""The cookie that holds the session id of a logged-in user."""

PRE_SESSION_COOKIE = "PVPRESESSION"
"""The cookie that ties the login form's CSRF token to one browser before login."""

_MAX_OPEN_FORMS = 50


@dataclass
class Session:
    """One logged-in user's session."""

    session_id: str
    username: str
    last_seen: float
    forms: OrderedDict[str, dict[str, str]] = field(default_factory=OrderedDict)
    """Open permit forms: CSRF token → field → the input name that form used."""


class SessionStore:
    """The live sessions; safe to use from any thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self.expired = 0
        """How many sessions have expired so far."""

    def start(self, username: str, lifetime: float) -> Session:
        """Start a new session for a user who just logged in (and forget stale ones)."""
        now = self._clock()
        session = Session(session_id=secrets.token_urlsafe(24), username=username, last_seen=now)
        with self._lock:
            stale = [s.session_id for s in self._sessions.values() if now - s.last_seen > lifetime]
            for session_id in stale:
                del self._sessions[session_id]
            self.expired += len(stale)
            self._sessions[session.session_id] = session
        return session

    def find(self, session_id: str, lifetime: float) -> Session | None:
        """The live session with this id, touched now; None when unknown or idle too long."""
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now - session.last_seen > lifetime:
                del self._sessions[session_id]
                self.expired += 1
                return None
            session.last_seen = now
            return session

    def reset_count(self) -> None:
        """Start counting expired sessions from zero again."""
        with self._lock:
            self.expired = 0

    def end(self, session_id: str) -> None:
        """End a session (log out); unknown ids are ignored."""
        with self._lock:
            self._sessions.pop(session_id, None)

    def open_form(self, session: Session, names: Mapping[str, str]) -> str:
        """Remember a rendered permit form and return its CSRF token."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            session.forms[token] = dict(names)
            while len(session.forms) > _MAX_OPEN_FORMS:
                session.forms.popitem(last=False)
        return token

    def form_names(self, session: Session, token: str) -> dict[str, str] | None:
        """The input names of the form this token was issued with; None for a foreign token."""
        with self._lock:
            names = session.forms.get(token)
            return None if names is None else dict(names)

    def close_form(self, session: Session, token: str) -> None:
        """Forget a form once it has been stored, so that posting it again is refused."""
        with self._lock:
            session.forms.pop(token, None)


class LoginTokens:
    """CSRF tokens for the login form: a fresh nonce per render, signed with the pre-session id."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    @staticmethod
    def new_pre_session() -> str:
        """A new pre-session id for the pre-session cookie."""
        return secrets.token_urlsafe(18)

    def issue(self, pre_session: str) -> str:
        """A new token for one rendering of the login form."""
        nonce = secrets.token_urlsafe(12)
        return f"{nonce}.{self._sign(pre_session, nonce)}"

    def check(self, pre_session: str, token: str) -> bool:
        """Whether the token was issued to this pre-session."""
        nonce, _, signature = token.partition(".")
        expected = self._sign(pre_session, nonce).encode()
        return bool(nonce) and hmac.compare_digest(signature.encode(), expected)

    def _sign(self, pre_session: str, nonce: str) -> str:
        message = f"{pre_session}:{nonce}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

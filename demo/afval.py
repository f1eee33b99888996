"""The second demo application, "Afvalcontainers": requests for a waste container per address.

It behaves differently from Parkeervergunningen on purpose, so that klerk is tried against
more than one kind of legacy screen: captions in neighbouring table cells instead of labels,
input names that change on every load, a frameset with the menu on top, a calendar popup,
a div-based dropdown, a file upload, a modal that asks before submitting, and a list with
its own paging. A session ends after `session_lifetime` idle seconds; a page asked for after
that leads to the login page saying so. Requests live in memory; `GET /api/aanvragen`,
`POST /api/reset` and `POST /api/faults` (`{"session_lifetime": 2}`, or
`{"http_500": {"/aanvraag": 1}}` for a crash on the next request of a page) serve the tests
without a session.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import math
import re
import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from demo import afval_pages as pages
from demo.sessions import LoginTokens, Session, SessionStore

AFVAL_USERNAME = "stadsbeheer"
"""The user name of the Afvalcontainers demo account."""

AFVAL_PASSWORD = "Afval-Demo-2026!"
"""The password of that account (a public demo credential, not a secret)."""

PAGE_SIZE = 10
"""Requests per page of the list."""

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
"""The largest attachment the form accepts."""

SESSION_LIFETIME = 1800.0
"""Idle seconds before a session ends, unless set otherwise (`POST /api/faults`)."""

SESSION_COOKIE = "AFVSESSIE"
PRE_SESSION_COOKIE = "AFVVOORSESSIE"
_POSTCODE = re.compile(r"^[1-9][0-9]{3} ?[A-Za-z]{2}$")

PageHandler = Callable[[Request, Session], Awaitable[Response]]


@dataclass(frozen=True)
class Containeraanvraag:
    """One stored request for a waste container."""

    zaaknummer: str
    aanvraagnummer: str
    adres: str
    postcode: str
    container: str
    leverdatum: str
    """dd-mm-jjjj, as typed or picked."""
    bijlage_naam: str
    """The attachment's file name; empty without an attachment."""
    bijlage_grootte: int
    """The attachment's size in bytes."""

    def to_json(self) -> dict[str, object]:
        """The request as the JSON API shows it."""
        return asdict(self)


def seed_requests() -> list[Containeraanvraag]:
    """The requests the app starts with: enough for the list to need three pages."""
    streets = ("Dorpsstraat", "Kerkweg", "Molenlaan", "Stationsplein", "Beukenhof")
    return [
        Containeraanvraag(
            zaaknummer=f"AFV-2026-{n:05d}",
            aanvraagnummer=f"CA-2025-{n:04d}",
            adres=f"{streets[n % len(streets)]} {n + 2}",
            postcode=f"{2400 + n} KD",
            container=pages.CONTAINERS[n % len(pages.CONTAINERS)],
            leverdatum=(dt.date(2026, 3, 2) + dt.timedelta(days=n)).strftime("%d-%m-%Y"),
            bijlage_naam="",
            bijlage_grootte=0,
        )
        for n in range(1, 24)
    ]


class Afvalcontainers:
    """The application's state (requests, sessions) and its pages."""

    def __init__(
        self, *, users: dict[str, str] | None = None, session_lifetime: float = SESSION_LIFETIME
    ) -> None:
        self._lock = threading.Lock()
        self.session_lifetime = _lifetime(session_lifetime)
        self.http_500: dict[str, int] = {}
        """Page path → how many of its next requests crash with HTTP 500."""
        self._requests = seed_requests()
        self._next_number = len(self._requests) + 1
        self.sessions = SessionStore()
        self._users = dict(users) if users is not None else {AFVAL_USERNAME: AFVAL_PASSWORD}
        self._login_tokens = LoginTokens()
        self.asgi = Starlette(routes=self._routes())

    def close(self) -> None:
        """Nothing to close: the requests live in memory."""

    def _routes(self) -> list[Route]:
        """Every route of the application."""
        return [
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["GET"]),
            Route("/", self._page(self.frameset), methods=["GET"]),
            Route("/menu", self._page(self.menu), methods=["GET"]),
            Route("/start", self._page(self.start), methods=["GET"]),
            Route("/aanvraag", self._page(self.request_form), methods=["GET"]),
            Route("/aanvraag", self._page(self.submit), methods=["POST"]),
            Route("/aanvragen", self._page(self.request_list), methods=["GET"]),
            Route("/api/health", self.api_health, methods=["GET"]),
            Route("/api/aanvragen", self.api_aanvragen, methods=["GET"]),
            Route("/api/reset", self.api_reset, methods=["POST"]),
            Route("/api/faults", self.api_faults, methods=["GET"]),
            Route("/api/faults", self.api_set_faults, methods=["POST"]),
        ]

    def _page(self, handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a page in the session check: without a live session, back to the login (which
        says the session expired when the browser still had one)."""

        async def endpoint(request: Request) -> Response:
            if self._crashes(request.url.path):
                # what Starlette answers when a handler raises, without a traceback in the log
                return PlainTextResponse("Internal Server Error", status_code=500)
            session_id = request.cookies.get(SESSION_COOKIE)
            found = self.sessions.find(session_id, self.session_lifetime) if session_id else None
            if found is None:
                response = RedirectResponse(
                    "/login?verlopen=1" if session_id else "/login", status_code=303
                )
                response.delete_cookie(SESSION_COOKIE, path="/")
                return response
            return await handler(request, found)

        return endpoint

    def _crashes(self, path: str) -> bool:
        """Whether this request of `path` is one that the `http_500` fault makes crash."""
        with self._lock:
            left = self.http_500.get(path, 0)
            if left:
                self.http_500[path] = left - 1
            return left > 0

    # -- login and logout ------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        """GET /login: the login form with a CSRF token tied to a pre-session cookie."""
        return self._login_page(request, expired=request.query_params.get("verlopen") == "1")

    def _login_page(
        self, request: Request, *, username: str = "", failed: bool = False, expired: bool = False
    ) -> Response:
        pre_session = request.cookies.get(PRE_SESSION_COOKIE) or ""
        is_new = not pre_session
        if is_new:
            pre_session = self._login_tokens.new_pre_session()
        token = self._login_tokens.issue(pre_session)
        html = pages.login(token, username=username, failed=failed, expired=expired)
        response = HTMLResponse(html)
        if is_new:
            response.set_cookie(PRE_SESSION_COOKIE, pre_session, httponly=True, samesite="lax")
        return response

    async def login(self, request: Request) -> Response:
        """POST /login: check the CSRF token and the credentials, then start a session."""
        async with request.form() as form:
            token = _text(form, "csrf_token")
            username = _text(form, "gebruiker").strip()
            password = _text(form, "wachtwoord")
        pre_session = request.cookies.get(PRE_SESSION_COOKIE, "")
        if not pre_session or not self._login_tokens.check(pre_session, token):
            html = pages.message("Ongeldig formulier", pages.MSG_CSRF, again="/login")
            return HTMLResponse(html, status_code=400)
        expected = self._users.get(username)
        if expected is None or not hmac.compare_digest(password.encode(), expected.encode()):
            return self._login_page(request, username=username, failed=True)
        session = self.sessions.start(username, self.session_lifetime)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, session.session_id, httponly=True, samesite="lax")
        return response

    async def logout(self, request: Request) -> Response:
        """GET /logout: end the session."""
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            self.sessions.end(session_id)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- pages -----------------------------------------------------------------------------

    async def frameset(self, request: Request, session: Session) -> Response:
        """GET /: the menu bar frame and the work frame."""
        return HTMLResponse(pages.frameset())

    async def menu(self, request: Request, session: Session) -> Response:
        """GET /menu: the menu bar."""
        return HTMLResponse(pages.menu(session.username))

    async def start(self, request: Request, session: Session) -> Response:
        """GET /start: the first page in the work frame."""
        return HTMLResponse(pages.start(session.username))

    async def request_form(self, request: Request, session: Session) -> Response:
        """GET /aanvraag: an empty request form with fresh input names."""
        return self._render_form(session, values={})

    def _render_form(
        self, session: Session, *, values: dict[str, str], error: str | None = None
    ) -> Response:
        names = {field: f"{field}_{secrets.token_hex(3)}" for field in pages.FORM_FIELDS}
        token = self.sessions.open_form(session, names)
        view = pages.FormView(names=names, csrf_token=token, values=values, error=error)
        return HTMLResponse(pages.request_form(view))

    async def submit(self, request: Request, session: Session) -> Response:
        """POST /aanvraag: check the request, store it, and show its zaaknummer."""
        async with request.form() as form:
            token = _text(form, "csrf_token")
            names = self.sessions.form_names(session, token)
            if names is None:
                html = pages.message("Ongeldig formulier", pages.MSG_CSRF, again="/aanvraag")
                return HTMLResponse(html, status_code=400)
            values = {f: _text(form, names[f]).strip() for f in pages.FORM_FIELDS if f != "bijlage"}
            upload = form.get(names["bijlage"])
            attachment_name, attachment_size = "", 0
            if isinstance(upload, UploadFile) and upload.filename:
                attachment_name = upload.filename
                attachment_size = len(await upload.read())
        error = check_request(values)
        if error is None and attachment_size > MAX_UPLOAD_BYTES:
            error = "De bijlage is groter dan 5 MB"
        with self._lock:
            if error is None and any(
                r.aanvraagnummer == values["aanvraagnummer"] for r in self._requests
            ):
                error = f"Aanvraag {values['aanvraagnummer']} is al geregistreerd"
            if error is not None:
                stored = None
            else:
                stored = Containeraanvraag(
                    zaaknummer=f"AFV-2026-{self._next_number:05d}",
                    aanvraagnummer=values["aanvraagnummer"],
                    adres=values["adres"],
                    postcode=_format_postcode(values["postcode"]),
                    container=values["container"],
                    leverdatum=values["leverdatum"],
                    bijlage_naam=attachment_name,
                    bijlage_grootte=attachment_size,
                )
                self._requests.append(stored)
                self._next_number += 1
        if stored is None:
            return self._render_form(session, values=values, error=error)
        self.sessions.close_form(session, token)
        return HTMLResponse(pages.stored(stored.zaaknummer))

    async def request_list(self, request: Request, session: Session) -> Response:
        """GET /aanvragen?blad=N: one page of ten requests; `blad=laatste` is the last page."""
        with self._lock:
            requests = list(self._requests)
        page_count = max(1, math.ceil(len(requests) / PAGE_SIZE))
        asked = request.query_params.get("blad", "1")
        try:
            number = page_count if asked == "laatste" else int(asked)
        except ValueError:
            number = 1
        number = min(max(number, 1), page_count)
        rows = [
            (r.zaaknummer, r.aanvraagnummer, r.adres, r.postcode, r.container, r.leverdatum)
            for r in requests[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
        ]
        return HTMLResponse(pages.request_list(rows, page_number=number, page_count=page_count))

    # -- the JSON API for tests ------------------------------------------------------------

    async def api_health(self, request: Request) -> Response:
        """GET /api/health: the app is up, how many requests it holds, how many sessions ended."""
        with self._lock:
            count = len(self._requests)
        return JSONResponse({"ok": True, "count": count, "sessions_expired": self.sessions.expired})

    async def api_aanvragen(self, request: Request) -> Response:
        """GET /api/aanvragen: every stored request, seed requests included."""
        with self._lock:
            return JSONResponse([r.to_json() for r in self._requests])

    async def api_reset(self, request: Request) -> Response:
        """POST /api/reset: back to the seed requests."""
        with self._lock:
            self._requests = seed_requests()
            self._next_number = len(self._requests) + 1
        return JSONResponse({"ok": True})

    async def api_faults(self, request: Request) -> Response:
        """GET /api/faults: what can be switched, as it is now."""
        return JSONResponse(self._faults())

    def _faults(self) -> dict[str, object]:
        with self._lock:
            return {"session_lifetime": self.session_lifetime, "http_500": dict(self.http_500)}

    async def api_set_faults(self, request: Request) -> Response:
        """POST /api/faults: `{"session_lifetime": seconds}`, and `{"http_500": {path: n}}`: the
        next n requests of each page path crash with HTTP 500 (`{}` for none). The input names
        change on every load regardless; anything else is refused."""
        try:
            changes = json.loads(await request.body() or b"{}")
            if not isinstance(changes, dict) or set(changes) - {"session_lifetime", "http_500"}:
                raise ValueError("Afvalcontainers can only switch session_lifetime and http_500")
            if "session_lifetime" in changes:
                self.session_lifetime = _lifetime(changes["session_lifetime"])
            if "http_500" in changes:
                crashes = _crashes(changes["http_500"])
                with self._lock:
                    self.http_500 = crashes
        except ValueError as problem:
            return JSONResponse({"ok": False, "error": str(problem)}, status_code=400)
        return JSONResponse(self._faults())


def check_request(values: dict[str, str]) -> str | None:
    """The first thing wrong with a request's fields, as the app words it; None when fine."""
    if not values.get("aanvraagnummer"):
        return "Aanvraagnummer is verplicht"
    if not values.get("adres"):
        return "Straat en huisnummer is verplicht"
    if not _POSTCODE.match(values.get("postcode", "")):
        return "Postcode is ongeldig (1234 AB)"
    if values.get("container") not in pages.CONTAINERS:
        return "Kies een soort container"
    try:
        dt.datetime.strptime(values.get("leverdatum", ""), "%d-%m-%Y")
    except ValueError:
        return "Gewenste leverdatum is ongeldig (dd-mm-jjjj)"
    return None


def create_afval_app(*, users: dict[str, str] | None = None) -> Starlette:
    """The Afvalcontainers app as an ASGI app, with its seed requests."""
    return Afvalcontainers(users=users).asgi


def _lifetime(value: object) -> float:
    """A session lifetime in seconds: a positive number, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"session_lifetime must be a positive number of seconds, not {value!r}")
    return float(value)


def _crashes(value: object) -> dict[str, int]:
    """The `http_500` fault: page paths to a number of requests, else ValueError."""
    if not isinstance(value, dict) or not all(
        isinstance(path, str) and path.startswith("/") and type(times) is int and times >= 0
        for path, times in value.items()
    ):
        raise ValueError(f"http_500 must map page paths to a number of requests, not {value!r}")
    return dict(value)


def _format_postcode(postcode: str) -> str:
    """A postcode as "1234 AB", however it was typed."""
    compact = postcode.upper().replace(" ", "")
    return f"{compact[:4]} {compact[4:]}"


def _text(form: FormData, name: str) -> str:
    """A form field's value as text; missing fields and uploads count as empty."""
    value = form.get(name)
    if value is None or isinstance(value, UploadFile):
        return ""
    return value

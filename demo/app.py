"""The demo application "Parkeervergunningen" of the Gemeente Klerkdam, as a Starlette app.

A deliberately legacy municipal web application for the bots, tests and benchmarks to
work against: a login with a CSRF token and an expiring session, a frameset with a menu,
a permit form with Dutch validation rules, a confirmation with a zaaknummer, a paginated
overview with a CSV export, and switchable faults (see `demo.faults`). The JSON endpoints
under `/api/` need no session; they let tests count and reset the permits and change the
faults while the app runs.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import hmac
import io
import json
import math
import random
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources

from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from demo import pages
from demo.faults import NO_FAULTS, FaultInjector, Faults, Verdict
from demo.rules import check_aanvraag, refusal_active_permit
from demo.sessions import (
    PRE_SESSION_COOKIE,
    SESSION_COOKIE,
    LoginTokens,
    Session,
    SessionStore,
)
from demo.store import KentekenHeeftVergunning, VergunningStore, Zoekvraag

DEMO_USERNAME = "medewerker"
"""The user name of the demo account."""

DEMO_PASSWORD = "Parkeren-Demo-2026!"
"""The password of the demo account (a public demo credential, not a secret)."""

PAGE_SIZE = 20
"""Permits per page of the overview."""

_ID_ALPHABET = string.ascii_lowercase + string.digits

PageHandler = Callable[[Request, Session], Awaitable[Response]]
"""A page that needs a live session."""


@dataclass
class Stats:
    """Request counters, shown by `GET /api/stats` and zeroed by `POST /api/reset`."""

    pages_served: int = 0
    """Page requests (everything but /api and /static), including those a fault answered."""
    errors_injected: int = 0
    busy_injected: int = 0
    sessions_expired: int = 0
    logins: int = 0
    logins_failed: int = 0
    csrf_rejected: int = 0
    permits_created: int = 0
    refusals: int = 0
    """Applications refused because the plate already has an active permit."""
    validation_errors: int = 0


class Parkeervergunningen:
    """The application's state (permits, sessions, faults, counters) and its pages."""

    def __init__(
        self,
        faults: Faults = NO_FAULTS,
        *,
        db_path: str | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        self.store = VergunningStore(db_path)
        self.faults = FaultInjector(faults)
        self.sessions = SessionStore()
        self.stats = Stats()
        self._users = dict(users) if users is not None else {DEMO_USERNAME: DEMO_PASSWORD}
        self._login_tokens = LoginTokens()
        # Its own generator, so that rendering forms does not shift the fault sequence.
        self._ids = random.Random(None if faults.seed is None else f"ids-{faults.seed}")
        self._stylesheet = (resources.files("demo") / "klerkdam.css").read_text("utf-8")
        self.asgi = Starlette(
            routes=self._routes(),
            exception_handlers={404: self._not_found, 500: self._crashed},
        )

    def close(self) -> None:
        """Close the database; the app cannot serve afterwards."""
        self.store.close()

    def _routes(self) -> list[Route]:
        """Every route of the application."""
        return [
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["GET", "POST"]),
            Route("/", self._page(self.start), methods=["GET"]),
            Route("/menu", self._page(self.menu), methods=["GET"]),
            Route("/welkom", self._page(self.welkom), methods=["GET"]),
            Route("/vergunningen/nieuw", self._page(self.permit_form), methods=["GET"]),
            Route("/vergunningen/nieuw", self._page(self.apply), methods=["POST"]),
            Route("/vergunningen", self._page(self.overview), methods=["GET"]),
            Route("/vergunningen/export.csv", self._page(self.export), methods=["GET"]),
            Route(
                "/vergunningen/{zaaknummer}/bevestiging",
                self._page(self.confirmation),
                methods=["GET"],
            ),
            Route("/static/klerkdam.css", self.stylesheet, methods=["GET"]),
            Route("/api/health", self.api_health, methods=["GET"]),
            Route("/api/vergunningen", self.api_vergunningen, methods=["GET"]),
            Route("/api/reset", self.api_reset, methods=["POST"]),
            Route("/api/stats", self.api_stats, methods=["GET"]),
            Route("/api/faults", self.api_faults, methods=["GET"]),
            Route("/api/faults", self.api_set_faults, methods=["POST"]),
        ]

    # -- the gate every page passes: latency, faults, session ------------------------------

    def _page(self, handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a page in the faults and the session check."""

        async def endpoint(request: Request) -> Response:
            self.stats.pages_served += 1
            faults = self.faults.faults
            if faults.latency_ms:
                await asyncio.sleep(faults.latency_ms / 1000)
            verdict = self.faults.decide()
            session_id = request.cookies.get(SESSION_COOKIE)
            session = (
                self.sessions.find(session_id, faults.session_lifetime) if session_id else None
            )
            if verdict is Verdict.ERROR:
                self.stats.errors_injected += 1
                return HTMLResponse(pages.server_error(), status_code=500)
            if verdict is Verdict.BUSY:
                self.stats.busy_injected += 1
                return HTMLResponse(pages.busy())
            if session is None:
                # A cookie without a live session means the session expired (or was ended).
                target = "/login?verlopen=1" if session_id else "/login"
                response = RedirectResponse(target, status_code=303)
                if session_id:
                    response.delete_cookie(SESSION_COOKIE, path="/")
                return response
            return await handler(request, session)

        return endpoint

    def _sync_expired(self) -> None:
        """Copy the session store's expiry count into the counters."""
        self.stats.sessions_expired = self.sessions.expired

    # -- login and logout ------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        """GET /login: the login form, with a CSRF token tied to the pre-session cookie."""
        self.stats.pages_served += 1
        expired = request.query_params.get("verlopen") == "1"
        return self._login_page(request, expired=expired)

    def _login_page(
        self,
        request: Request,
        *,
        username: str = "",
        failed: bool = False,
        expired: bool = False,
    ) -> Response:
        """Render the login form and make sure the browser has a pre-session cookie."""
        pre_session = request.cookies.get(PRE_SESSION_COOKIE)
        is_new = not pre_session
        if not pre_session:
            pre_session = self._login_tokens.new_pre_session()
        token = self._login_tokens.issue(pre_session)
        response = HTMLResponse(
            pages.login(token, username=username, failed=failed, expired=expired)
        )
        if is_new:
            response.set_cookie(PRE_SESSION_COOKIE, pre_session, httponly=True, samesite="lax")
        return response

    async def login(self, request: Request) -> Response:
        """POST /login: check the CSRF token and the credentials, then start a session."""
        self.stats.pages_served += 1
        async with request.form() as form:
            token = _text(form, "csrf_token")
            username = _text(form, "gebruikersnaam").strip()
            password = _text(form, "wachtwoord")
        pre_session = request.cookies.get(PRE_SESSION_COOKIE, "")
        if not pre_session or not self._login_tokens.check(pre_session, token):
            self.stats.csrf_rejected += 1
            return _csrf_refused(again="/login")
        expected = self._users.get(username)
        if expected is None or not hmac.compare_digest(password.encode(), expected.encode()):
            self.stats.logins_failed += 1
            return self._login_page(request, username=username, failed=True)
        old_session = request.cookies.get(SESSION_COOKIE)
        if old_session:
            self.sessions.end(old_session)
        session = self.sessions.start(username, self.faults.faults.session_lifetime)
        self._sync_expired()
        self.stats.logins += 1
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, session.session_id, httponly=True, samesite="lax")
        return response

    async def logout(self, request: Request) -> Response:
        """GET /logout: end the session and go back to the login page."""
        self.stats.pages_served += 1
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            self.sessions.end(session_id)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- pages -----------------------------------------------------------------------------

    async def start(self, request: Request, session: Session) -> Response:
        """GET /: the frameset with the menu and the work frame."""
        return HTMLResponse(pages.frameset())

    async def menu(self, request: Request, session: Session) -> Response:
        """GET /menu: the menu frame."""
        return HTMLResponse(pages.menu(session.username))

    async def welkom(self, request: Request, session: Session) -> Response:
        """GET /welkom: the welcome page in the work frame."""
        return HTMLResponse(pages.welkom(session.username))

    async def permit_form(self, request: Request, session: Session) -> Response:
        """GET /vergunningen/nieuw: an empty permit form."""
        return self._render_form(session, values={})

    def _render_form(
        self, session: Session, *, values: dict[str, str], error: str | None = None
    ) -> Response:
        """Render the permit form with fresh input names and a fresh CSRF token."""
        names = {field: self._input_name(field) for field in pages.FORM_FIELDS}
        token = self.sessions.open_form(session, names)
        faults = self.faults.faults
        view = pages.FormView(
            names=names,
            csrf_token=token,
            values=values,
            error=error,
            bsn_label=pages.LABEL_BSN_RENAMED if faults.renamed_labels else "BSN",
            notice=pages.MSG_NOTICE if faults.notice_on_form else "",
            confirm=pages.MSG_CONFIRM if faults.confirm_on_submit else "",
        )
        return HTMLResponse(pages.permit_form(view, user=session.username))

    def _input_name(self, field: str) -> str:
        """The id and name of a field's input on this load: random when ids are randomised."""
        if not self.faults.faults.random_ids:
            return field
        return f"{field}_{''.join(self._ids.choices(_ID_ALPHABET, k=5))}"

    async def apply(self, request: Request, session: Session) -> Response:
        """POST /vergunningen/nieuw: validate, refuse or store, then show the confirmation."""
        async with request.form() as form:
            token = _text(form, "csrf_token")
            names = self.sessions.form_names(session, token)
            if names is None:
                self.stats.csrf_rejected += 1
                return _csrf_refused(again="/vergunningen/nieuw")
            values = {field: _text(form, names[field]) for field in pages.FORM_FIELDS}
        checked = check_aanvraag(values)
        if isinstance(checked, str):
            self.stats.validation_errors += 1
            return self._render_form(session, values=values, error=checked)
        try:
            vergunning = self.store.register(checked)
        except KentekenHeeftVergunning as refused:
            self.stats.refusals += 1
            return self._render_form(
                session, values=values, error=refusal_active_permit(refused.kenteken)
            )
        self.sessions.close_form(session, token)
        self.stats.permits_created += 1
        return RedirectResponse(
            f"/vergunningen/{vergunning.zaaknummer}/bevestiging", status_code=303
        )

    async def confirmation(self, request: Request, session: Session) -> Response:
        """GET /vergunningen/<zaaknummer>/bevestiging: the stored permit and its zaaknummer."""
        vergunning = self.store.get(request.path_params["zaaknummer"])
        if vergunning is None:
            html = pages.message("Vergunning niet gevonden", "Deze zaak bestaat niet.")
            return HTMLResponse(html, status_code=404)
        return HTMLResponse(pages.confirmation(vergunning, user=session.username))

    async def overview(self, request: Request, session: Session) -> Response:
        """GET /vergunningen: one page of the permits that match the filter."""
        filters = {name: request.query_params.get(name, "") for name in pages.FILTER_FIELDS}
        vraag = Zoekvraag(**filters)
        total = self.store.count_matching(vraag)
        page_count = max(1, math.ceil(total / PAGE_SIZE))
        try:
            page_number = int(request.query_params.get("pagina", "1"))
        except ValueError:
            page_number = 1
        page_number = min(max(page_number, 1), page_count)
        rows = self.store.search(vraag, offset=(page_number - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        view = pages.OverviewView(
            filters=filters,
            ids={name: self._input_name(name) for name in pages.FILTER_FIELDS},
            rows=rows,
            total=total,
            page_number=page_number,
            page_count=page_count,
        )
        return HTMLResponse(pages.overview(view, user=session.username))

    async def export(self, request: Request, session: Session) -> Response:
        """GET /vergunningen/export.csv: every permit that matches the filter, as CSV."""
        if self.faults.faults.broken_export:
            html = pages.message("Export", pages.MSG_EXPORT_QUEUED, user=session.username)
            return HTMLResponse(html)
        filters = {name: request.query_params.get(name, "") for name in pages.FILTER_FIELDS}
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=";")
        writer.writerow(pages.OVERVIEW_COLUMNS)
        for vergunning in self.store.search(Zoekvraag(**filters)):
            writer.writerow(pages.overview_row(vergunning))
        return Response(
            buffer.getvalue().encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="vergunningen.csv"'},
        )

    async def stylesheet(self, request: Request) -> Response:
        """GET /static/klerkdam.css: the legacy look."""
        return Response(
            self._stylesheet,
            media_type="text/css",
            headers={"Cache-Control": "max-age=3600"},
        )

    # -- errors ----------------------------------------------------------------------------

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        """Any unknown address."""
        html = pages.message("Pagina niet gevonden", "Deze pagina bestaat niet.")
        return HTMLResponse(html, status_code=404)

    async def _crashed(self, request: Request, exc: Exception) -> Response:
        """A real (not injected) error: the same page as an injected one."""
        return HTMLResponse(pages.server_error(), status_code=500)

    # -- the JSON API for tests ------------------------------------------------------------

    async def api_health(self, request: Request) -> Response:
        """GET /api/health: the app is up, and how many permits it holds."""
        return JSONResponse({"ok": True, "count": self.store.count()})

    async def api_vergunningen(self, request: Request) -> Response:
        """GET /api/vergunningen: every stored permit, BSN included."""
        return JSONResponse([vergunning.to_json() for vergunning in self.store.all()])

    async def api_reset(self, request: Request) -> Response:
        """POST /api/reset: back to the seed permits, with the counters at zero."""
        self.store.reset()
        self.sessions.reset_count()
        self.stats = Stats()
        return JSONResponse({"ok": True})

    async def api_stats(self, request: Request) -> Response:
        """GET /api/stats: the request counters."""
        self._sync_expired()
        return JSONResponse(dataclasses.asdict(self.stats))

    async def api_faults(self, request: Request) -> Response:
        """GET /api/faults: the faults in force."""
        return JSONResponse(self.faults.faults.to_json())

    async def api_set_faults(self, request: Request) -> Response:
        """POST /api/faults: change some faults; fields left out keep their value."""
        try:
            changes = json.loads(await request.body() or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object with fault fields")
            faults = self.faults.update(changes)
        except (ValueError, TypeError) as problem:
            return JSONResponse({"ok": False, "error": str(problem)}, status_code=400)
        return JSONResponse(faults.to_json())


def create_app(
    faults: Faults = NO_FAULTS,
    *,
    db_path: str | None = None,
    users: dict[str, str] | None = None,
) -> Starlette:
    """The demo application as an ASGI app, with the seed permits in a fresh or given database.

    Without `db_path` the permits live in memory for as long as the app does. `users` maps
    user names to passwords; the default is the demo account.
    """
    return Parkeervergunningen(faults, db_path=db_path, users=users).asgi


def _text(form: FormData, name: str) -> str:
    """A form field's value as text; missing fields and file uploads count as empty."""
    value = form.get(name)
    if value is None or isinstance(value, UploadFile):
        return ""
    return value


def _csrf_refused(*, again: str) -> Response:
    """The HTTP 400 page for a form whose CSRF token is missing, foreign or used."""
    html = pages.message(
        pages.MSG_CSRF,
        pages.MSG_CSRF,
        detail=f'<a href="{again}">Open het formulier opnieuw</a>',
    )
    return HTMLResponse(html, status_code=400)

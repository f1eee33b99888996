"""`klerk record` in the browser: Chromium shown to a person, what they do turned into steps.

A script in every frame (`recorder.js`, added with `context.add_init_script`) reports each
action through `context.expose_binding`, with the element already named the way a step names
it; a top-level page the user opened (an address typed: its request has no Referer) becomes
a `goto`, and a download turns the click before it into a `download` step. `tasks.recording`
merges it all into steps.

Playwright's own recorder (codegen) is not used: it writes code rather than klerk steps, and
cannot name a field by the caption in the table cell next to it, which is how legacy forms
without labels must be named. What fits is reused: Playwright's browser and contexts, its
init scripts, bindings and download events, and klerk's own login for the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.async_api import (
    Browser,
    BrowserContext,
    Dialog,
    Download,
    Frame,
    Page,
    Request,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError

from bots.browser import CHROMIUM_ARGS, choose_browser, not_found
from bots.display import Display, display_for_headed
from bots.locating import next_to_xpath
from bots.session import GenericBot, GenericSession
from tasks.definition import AppDefinition
from tasks.plugins import BotOptions
from tasks.privacy import redact
from tasks.recording import Recording
from tasks.secrets import Credentials

SCRIPT = Path(__file__).with_name("recorder.js")
BINDING = "__klerk_record"
_CAPTION = "klerkcaption"  # stands for the caption in the next_to XPath the page fills in
_CLOSE_TIMEOUT = 10.0


@dataclass(frozen=True)
class RecorderOptions:
    """What to record: the start page, the app (logged in first), and how to show the browser."""

    url: str
    app: AppDefinition | None = None
    base_url: str | None = None
    credentials: Credentials | None = None
    headless: bool = False
    cdp_port: int | None = None


def page_script() -> str:
    """The init script: recorder.js with its settings, among them the very XPath that
    `next_to` locators use (bots/locating.py), so that the page judges captions as a run will."""
    settings = {
        "binding": BINDING,
        "placeholder": _CAPTION,
        "nextToExact": next_to_xpath(_CAPTION, exact=True),
        "nextToLoose": next_to_xpath(_CAPTION, exact=False),
    }
    script = SCRIPT.read_text(encoding="utf-8")
    return f"(() => {{\nconst KLERK = {json.dumps(settings)};\n{script}\n}})();\n"


class Recorder:
    """One recording: launches Chromium, logs in, opens the start page, and feeds `recording`
    until the page is closed or `stop` is set (Ctrl-C)."""

    def __init__(
        self, options: RecorderOptions, recording: Recording, say: Callable[[str], None]
    ) -> None:
        self.options = options
        self.recording = recording
        self.say = say
        self.page: Page | None = None
        self._stop = asyncio.Event()
        self._opened_by_hand: bool | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Record until the user closes the page or the browser, or `stop` is set."""
        display = Display(None) if self.options.headless else display_for_headed()
        with contextlib.closing(display):
            if display.virtual:
                self.say(
                    f"no screen (DISPLAY is not set): the browser is shown on the virtual "
                    f"display {display.name} (Xvfb)"
                )
            async with async_playwright() as playwright:
                chromium = playwright.chromium
                choice = choose_browser(chromium.executable_path)
                if choice is None:
                    raise not_found()
                shown_on = display.environment()
                env: dict[str, str | float | bool] | None = {**shown_on} if shown_on else None
                args = list(CHROMIUM_ARGS)
                if self.options.cdp_port is not None:
                    args.append(f"--remote-debugging-port={self.options.cdp_port}")
                browser = await chromium.launch(
                    executable_path=choice.executable,
                    headless=self.options.headless,
                    args=args,
                    env=env,
                    handle_sigint=False,  # Ctrl-C stops the recording, which then closes it
                )
                try:
                    await self._record(browser, stop)
                finally:
                    await self._close(browser)

    async def _record(self, browser: Browser, stop: asyncio.Event) -> None:
        browser.on("disconnected", lambda _: self._stop.set())
        context = await browser.new_context(
            base_url=self.options.base_url,
            accept_downloads=True,
            locale="nl-NL",
            timezone_id="Europe/Amsterdam",
            no_viewport=not self.options.headless,
        )
        await context.expose_binding(BINDING, self._on_event)
        await context.add_init_script(page_script())
        if self.options.app is not None and self.options.app.login:
            await self._log_in(context, self.options.app)
        context.on("page", self._on_new_page)
        page = await context.new_page()
        page.on("request", self._on_request)
        page.on("framenavigated", self._on_navigated)
        page.on("download", self._on_download)
        page.on("dialog", self._on_dialog)
        page.on("close", lambda _: self._stop.set())
        self.page = page
        await page.goto(self.options.url, wait_until="domcontentloaded")
        how = (
            f"drive it over CDP at http://127.0.0.1:{self.options.cdp_port}"
            if self.options.cdp_port is not None
            else "use the browser"
        )
        self.say(f"recording: {redact(page.url)} ({how}; close the page or press Ctrl-C to stop)")
        stopped = asyncio.ensure_future(stop.wait())
        closed = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({stopped, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            closed.cancel()

    async def _log_in(self, context: BrowserContext, app: AppDefinition) -> None:
        """Log in with the app's own login steps, in a page of its own, before recording."""
        self.say(f"logging in to {app.name} (not recorded)")
        with tempfile.TemporaryDirectory(prefix="klerk-record-") as scratch:
            options = BotOptions(evidence_dir=Path(scratch), base_url=self.options.base_url)
            login_page = await context.new_page()
            try:
                session = GenericSession(GenericBot(app, options), context, login_page)
                await session.login(self.options.credentials)
            finally:
                await login_page.close()

    async def _close(self, browser: Browser) -> None:
        with contextlib.suppress(PlaywrightError, asyncio.TimeoutError):
            await asyncio.wait_for(browser.close(), _CLOSE_TIMEOUT)

    # --- what happens in the browser -------------------------------------------------------------

    def _on_event(self, source: dict[str, Any], event: Any) -> None:
        if self.page is None or source.get("page") is not self.page or not isinstance(event, dict):
            return  # the login, or another window
        self.recording.event(event)

    def _on_request(self, request: Request) -> None:
        page = self.page
        if (
            page is not None
            and request.is_navigation_request()
            and request.frame is page.main_frame
            and request.redirected_from is None
        ):
            # A page the user opens (an address typed, a bookmark, back) is asked for without
            # a Referer; a link, a form or a script in the page sends the page's address.
            self._opened_by_hand = "referer" not in request.headers

    def _on_navigated(self, frame: Frame) -> None:
        page = self.page
        if page is None or frame is not page.main_frame:
            return
        by_hand, self._opened_by_hand = self._opened_by_hand, None
        if by_hand and frame.url.startswith("http"):
            self.recording.navigated(frame.url)

    def _on_download(self, download: Download) -> None:
        self._opened_by_hand = None  # the request became a download, not a page
        self.recording.downloaded(download.suggested_filename)

    def _on_dialog(self, dialog: Dialog) -> None:
        # Left for the person to answer (without a listener Playwright would dismiss it).
        note = (
            f"the app showed a {dialog.type} dialog; klerk's steps dismiss dialogs, so a step "
            "that needs one accepted cannot be done by YAML alone"
        )
        if note not in self.recording.notes:
            self.recording.notes.append(note)

    def _on_new_page(self, page: Page) -> None:
        if self.page is not None and page is not self.page:
            self.say("a second window opened: klerk records only the first one")

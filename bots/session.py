"""The generic bot: an app definition (YAML) driven through Playwright, one step at a time.

Each step kind has one executor here. After steps that can change the page, the page is
checked against the app's signals (session expired, busy, failing), so that trouble in the
app becomes a retryable `AppUnavailableError` and a refusal a `BusinessError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from loguru import logger
from playwright.async_api import (
    Browser,
    BrowserContext,
    Frame,
    FrameLocator,
    Page,
    Playwright,
    Request,
    Response,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator as PwLocator
from playwright.async_api import TimeoutError as PlaywrightTimeout

from bots.apps import find_action
from bots.browser import CHROMIUM_ARGS, choose_browser, not_found
from bots.candidates import closest, did_you_mean
from bots.locating import evidence_masks, find_frame, locate
from tasks.definition import (
    ActionStep,
    AppDefinition,
    BusinessErrorIfStep,
    CheckStep,
    ClickStep,
    DownloadStep,
    ExpectStep,
    ExtractStep,
    ExtractTableStep,
    FillStep,
    GotoStep,
    Locator,
    PageSignal,
    PressStep,
    SelectArgs,
    SelectStep,
    StepModel,
    UploadStep,
    WaitForArgs,
    WaitForStep,
    in_frame,
    kind_of,
    step_label,
)
from tasks.errors import (
    AppUnavailableError,
    BotError,
    BusinessError,
    KlerkError,
    SessionExpiredError,
)
from tasks.plugins import BotOptions, ItemContext, StepOutcome, TraceMode
from tasks.privacy import redact, redact_archive
from tasks.secrets import Credentials
from tasks.templates import render_tree

# The window's document and those of its frames, read in one call (a frame of another origin
# cannot be read from here: its URL and HTTP status still count). The phrases are looked for in
# the browser, so only the ones found cross to Python; and in textContent, not innerText, which
# would force a layout of the page on every check.
_PAGE_STATE_JS = """phrases => {
  const documents = [];
  const read = view => {
    let doc;
    try { doc = view.document; doc.title; } catch (error) { return; }
    const text = doc.body ? doc.body.textContent : '';
    documents.push([view.location.href, doc.title, phrases.filter(p => text.includes(p))]);
    for (let i = 0; i < view.frames.length; i++) read(view.frames[i]);
  };
  read(window);
  return documents;
}"""

_TABLE_JS = """table => {
  const rows = Array.from(table.querySelectorAll('tr'));
  const head = rows.find(r => r.querySelector('th'));
  const names = head ? Array.from(head.querySelectorAll('th')).map(c => c.innerText.trim()) : [];
  return rows.filter(r => r !== head && r.querySelector('td')).map(r => {
    const cells = Array.from(r.querySelectorAll('td')).map(c => c.innerText.trim());
    const record = {};
    cells.forEach((value, i) => { record[names[i] || ('kolom' + (i + 1))] = value; });
    return record;
  });
}"""


@dataclass(frozen=True)
class Shown:
    """One document on the screen, the window's or a frame's, as the app's signals see it."""

    url: str
    title: str
    found: frozenset[str]
    """Which of the app's signal phrases it shows."""
    status: int | None
    """The HTTP status of the navigation that loaded it, when klerk saw that navigation."""


class LoginRefusedError(AppUnavailableError):
    """The app did not accept the credentials: retrying will not help."""

    final = True


class GenericBot:
    """One browser for this process; every `open` gives a fresh, logged-in context."""

    def __init__(self, app: AppDefinition, options: BotOptions) -> None:
        self.app = app
        self.name = app.name
        self.options = options
        self.base_url = options.base_url or app.base_url
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._launching = asyncio.Lock()
        # With tracing, Playwright writes the traces as they are recorded (unscrubbed) here: a
        # private folder that each item's files leave when its trace stops, removed on close.
        self.traces_dir: Path | None = None
        # per worker (asyncio task): the context whose login failed, kept open until that
        # worker opens again, so that the item's evidence shows where the app stopped answering
        self._failed_opens: dict[object, GenericSession] = {}

    async def browser(self) -> Browser:
        """The browser, launched on first use."""
        async with self._launching:
            if self._browser is None:
                self._playwright = await async_playwright().start()
                chromium = self._playwright.chromium
                choice = choose_browser(chromium.executable_path)
                if choice is None:
                    await self._playwright.stop()
                    self._playwright = None
                    raise not_found()
                logger.debug("browser: {}", choice.origin)
                if self.options.trace is TraceMode.ON_FAILURE:
                    self.traces_dir = Path(tempfile.mkdtemp(prefix="klerk-traces-"))
                self._browser = await chromium.launch(
                    executable_path=choice.executable,
                    headless=not self.options.headed,
                    slow_mo=self.options.slow_mo_ms or None,
                    args=list(CHROMIUM_ARGS),
                    traces_dir=self.traces_dir,
                )
            return self._browser

    async def open(self, credentials: Credentials | None) -> GenericSession:
        """A new context, logged in; AppUnavailableError when the app cannot be reached."""
        worker = asyncio.current_task()
        stale = self._failed_opens.pop(worker, None)
        if stale is not None:
            await stale.close()
        browser = await self.browser()
        context = await browser.new_context(
            base_url=self.base_url,
            accept_downloads=True,
            locale="nl-NL",
            timezone_id="Europe/Amsterdam",
        )
        session = GenericSession(self, context, await context.new_page())
        try:
            await session.login(credentials)
        except AppUnavailableError:
            self._failed_opens[worker] = session
            raise
        except BaseException:
            await session.close()
            raise
        return session

    async def evidence(self, name: str) -> list[Path]:
        """A masked screenshot of the page where this worker's last `open` failed, if it did."""
        failed = self._failed_opens.get(asyncio.current_task())
        return await failed.evidence(name) if failed is not None else []

    async def close(self) -> None:
        """Close the browser and Playwright."""
        for stale in self._failed_opens.values():
            await stale.close()
        self._failed_opens.clear()
        if self._browser is not None:
            await self._browser.close()
            self._browser = None
        if self._playwright is not None:
            await self._playwright.stop()
            self._playwright = None
        if self.traces_dir is not None:
            shutil.rmtree(self.traces_dir, ignore_errors=True)
            self.traces_dir = None


class GenericSession:
    """A logged-in browser context for one app: performs steps and calls the app's actions."""

    def __init__(self, bot: GenericBot, context: BrowserContext, page: Page) -> None:
        self.bot = bot
        self.app = bot.app
        self.context = context
        self.page = page
        self.last_status: int | None = None
        self.last_url = ""
        self.dialogs: list[tuple[str, str]] = []
        """(kind, redacted text) of every dialog the app opened; each was dismissed."""
        self.logging_in = False
        self.tracing = False
        self._trace_name = ""
        self._pending: set[asyncio.Future[None]] = set()
        signals = (self.app.logged_in, self.app.session_expired, self.app.busy, self.app.failing)
        self._phrases = sorted({text for signal in signals for text in signal.texts})
        self._frame_status: dict[Frame, int] = {}
        """HTTP status of each frame's last navigation (the window's is `last_status`)."""
        self._navigations: list[Frame] = []
        """The frames that started a navigation, in order (cleared at every step)."""
        self._frames_before: frozenset[Frame] = frozenset()
        """The frames there were when the step began."""
        self._loading: dict[Frame, asyncio.Future[None]] = {}
        """The frames whose last navigation started and has not ended yet, with or without a
        new document (commit, failure, a response without content, the frame gone)."""
        self._drop_downs: dict[tuple[str, str], bool] = {}
        """Whether the drop-down a `select` locator finds on a screen (URL) is a <select>."""
        context.set_default_timeout(self.app.timeout_ms)
        context.set_default_navigation_timeout(self.app.navigation_timeout_ms)
        page.on("request", self._on_request)
        page.on("response", self._on_response)
        page.on("requestfailed", self._on_request_failed)
        page.on("framenavigated", self._navigation_ended)
        page.on("framedetached", self._on_frame_detached)
        page.on("dialog", self._on_dialog)

    def _on_request(self, request: Request) -> None:
        if request.is_navigation_request():
            frame = request.frame
            self._navigations.append(frame)
            self._navigation_ended(frame)  # a new one (or the next hop of a redirect) replaces it
            self._loading[frame] = asyncio.get_running_loop().create_future()

    def _on_request_failed(self, request: Request) -> None:
        if request.is_navigation_request():
            self._navigation_ended(request.frame)

    def _navigation_ended(self, frame: Frame) -> None:
        loading = self._loading.pop(frame, None)
        if loading is not None and not loading.done():
            loading.set_result(None)

    def _on_response(self, response: Response) -> None:
        request = response.request
        if request.is_navigation_request():
            frame = request.frame
            if frame.parent_frame is None:
                self.last_status = response.status
                self.last_url = response.url
            else:
                self._frame_status[frame] = response.status
            if response.status in (204, 205):  # no content: the frame keeps its document
                self._navigation_ended(frame)

    def _on_frame_detached(self, frame: Frame) -> None:
        self._frame_status.pop(frame, None)
        self._navigation_ended(frame)

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append((str(dialog.type), redact(dialog.message)))
        # an unexpected dialog would block the page; dismiss it (never agree to what the bot was
        # not told about) and keep its text for the trail and the item's message
        self._pending.add(asyncio.ensure_future(dialog.dismiss()))

    # --- login and page checks -------------------------------------------------------------

    async def login(self, credentials: Credentials | None) -> None:
        """Run the app's login steps and check that the session is logged in."""
        context: dict[str, Any] = {}
        if credentials is not None:
            context["credentials"] = {
                "username": credentials.username,
                "password": credentials.password.get_secret_value(),
            }
        item = ItemContext(key="login", values={})
        self.logging_in = True
        try:
            for step in in_frame(self.app.login):
                data = step.model_dump(exclude_none=True)
                rendered = type(step).model_validate(render_tree(data, context))
                await self.perform(rendered, item)
        except BotError as exc:
            raise AppUnavailableError(f"login failed: {exc}") from None
        finally:
            self.logging_in = False
        documents = await self.page_state()
        wanted = self.app.logged_in
        positive = bool(wanted.texts or wanted.url_contains)
        if _shown(self.app.session_expired, documents, status=False) or (
            positive and not _shown(wanted, documents)
        ):
            raise LoginRefusedError(
                f"login to {self.app.name} failed: still on {_path(self.page.url)} after "
                "logging in; check the credentials"
            )

    async def page_state(self) -> list[Shown]:
        """What the window shows, its own document first and then each frame's: URL, title,
        which of the app's signal phrases, and the HTTP status that loaded it."""
        statuses = {
            frame.url: self._frame_status[frame]
            for frame in self.page.frames
            if frame in self._frame_status
        }
        try:
            read = await self.page.evaluate(_PAGE_STATE_JS, self._phrases)
        except PlaywrightError:  # the window is between two documents: the URLs still tell
            read = [[frame.url, "", []] for frame in self.page.frames]
        documents = [
            Shown(str(url), str(title), frozenset(found), statuses.pop(str(url), None))
            for url, title, found in read
        ]
        if documents:
            window = documents[0]
            documents[0] = Shown(window.url, window.title, window.found, self.last_status)
        # frames of another origin, which the page cannot read: their status still counts
        documents += [Shown(url, "", frozenset(), status) for url, status in statuses.items()]
        return documents

    async def check_page(self, *, everywhere: bool = False) -> None:
        """Raise AppUnavailableError when the window, or a frame this step loaded a new page
        in, shows a page of an expired session, or of a busy or failing app. With `everywhere`
        (to explain a step that failed) every frame counts.

        A frame that came with a new window document (the menu of a frameset that login
        opened) is part of that page, not of the step's work: its own trouble is the app's
        business until a step loads a page in it.
        """
        documents = await self.page_state()
        if not everywhere:
            loaded = {
                frame.url
                for frame in self._navigations
                if frame in self._frames_before and not frame.is_detached()
            }
            documents = documents[:1] + [shown for shown in documents[1:] if shown.url in loaded]
        expired = _shown(self.app.session_expired, documents)
        if expired is not None and not self.logging_in:
            raise SessionExpiredError(f"session expired (at {_path(expired.url)})")
        # a busy or failing page leaves a logged-in session as it was: retry without a new login
        session_ok = not self.logging_in
        busy = _shown(self.app.busy, documents)
        if busy is not None:
            raise AppUnavailableError(
                f"{self.app.name} is busy (at {_path(busy.url)})", session_ok=session_ok
            )
        failing = _shown(self.app.failing, documents)
        if failing is not None:
            what = f"HTTP {failing.status}" if failing.status is not None else "an error page"
            raise AppUnavailableError(
                f"{self.app.name} failed: {what} at {_path(failing.url)}"
                + (f" ({failing.title})" if failing.title else ""),
                session_ok=session_ok,
            )

    # --- steps -------------------------------------------------------------------------------

    async def perform(self, step: StepModel, item: ItemContext) -> StepOutcome:
        """Do one rendered step."""
        executor = _EXECUTORS[type(step)]
        timeout = step.timeout_ms
        seen = len(self.dialogs)
        self._navigations.clear()
        self._frames_before = frozenset(self.page.frames)
        try:
            try:
                outcome = await executor(self, step, item, timeout)
            except (BusinessError, AppUnavailableError):
                raise
            except PlaywrightTimeout as exc:
                await self.check_page(everywhere=True)
                raise BotError(await self._not_found(step, exc)) from None
            except PlaywrightError as exc:
                message = str(exc).splitlines()[0]
                if "net::ERR_CONNECTION_REFUSED" in message or "net::ERR_" in message:
                    raise AppUnavailableError(
                        f"{self.app.name} cannot be reached at {self.bot.base_url}: {message}"
                    ) from None
                await self.check_page(everywhere=True)
                raise BotError(
                    f"{kind_of(step)} failed on page {_path(self.page.url)}: {message}"
                ) from None
        except KlerkError as exc:
            shown = _dialogs_shown(self.dialogs[seen:])
            if shown:
                exc.args = (f"{exc}; {shown}",)
            raise
        dialogs = self.dialogs[seen:]
        questions = [(kind, text) for kind, text in dialogs if kind != "alert"]
        if questions:
            kind, text = questions[0]
            raise BotError(
                f"the app asked {_DIALOG_KINDS.get(kind, kind)} {text!r} on page "
                f"{_path(self.page.url)} and klerk dismissed it: {step_label(step)} "
                "did not go through"
            )
        if dialogs:
            shown = _dialogs_shown(dialogs)
            outcome.detail = f"{outcome.detail}; {shown}" if outcome.detail else shown
        return outcome

    async def _not_found(self, step: StepModel, exc: Exception) -> str:
        kind = kind_of(step)
        args = getattr(step, kind)
        if " action done" in str(exc):  # Playwright's call log: found and acted on, then waited
            return (
                f"{step_label(step)} on page {_path(self.page.url)} went through, but the next "
                f"page did not load within {self._timeout(step.timeout_ms)} ms; "
                f"{self.app.name} is slow or stuck"
            )
        what = args.describe() if isinstance(args, Locator) else kind
        alike = await closest(self.page, args) if isinstance(args, Locator) else []
        return (
            f"element not found: {what} on page {_path(self.page.url)} "
            f"(step {kind}, waited {self._timeout(step.timeout_ms)} ms){did_you_mean(alike)}"
        )

    def _timeout(self, override: int | None) -> int:
        return override or self.app.timeout_ms

    def locate(self, locator: Locator) -> PwLocator:
        """The Playwright locator for an element as the definition names it."""
        return locate(self.page, self.root(locator.frame), locator)

    def root(self, frame: str | None) -> Page | Frame | FrameLocator:
        """Where to look for an element: the page, or the frame that `frame` names.

        A frame on the page now is used itself: found without asking the browser, and its
        elements are found directly, not through the window's document on every call. It stays
        valid while it navigates; a frame not there yet (or detached) is looked for through a
        frame locator, which waits for it to appear.
        """
        if not frame:
            return self.page
        found = find_frame(self.page, frame)
        if found is not None and not found.is_detached():
            return found
        return self.page.frame_locator(_frame_selector(frame)).first

    async def present(self, locator: Locator) -> bool:
        """Whether the element is on the page now (visible), without waiting for it."""
        await self.check_page()
        found = self.locate(locator)
        try:
            return bool(await found.count()) and await found.is_visible()
        except PlaywrightError:
            return False

    def navigations(self) -> int:
        """A mark for `settle`: how many navigations klerk has seen start during this step."""
        return len(self._navigations)

    async def settle(self, since: int) -> None:
        """After a click or key press: wait for the navigations it started (seen since the mark
        `since`; of the window, of the element's frame, of another frame a link targets) to
        load their document, then check the page and its frames.

        A navigation shows itself by its request, which comes before the frame's document is
        replaced, so a step that started none has nothing to wait for and asks nothing. Then
        the new document must arrive (Playwright waits for that in the window only) and be
        parsed; a navigation that ends without one (it failed, or gave no content) ends the wait.
        """
        if len(self._navigations) == since:
            # a form's submit is queued in the page when the click returns: let it start first
            with contextlib.suppress(PlaywrightError):
                await self.page.evaluate("() => new Promise(done => setTimeout(done, 0))")
        clock = asyncio.get_running_loop()
        deadline = clock.time() + self.app.navigation_timeout_ms / 1000
        while True:  # again after each wait: a redirect, or another frame, starts a new one
            started = dict.fromkeys(self._navigations[since:])  # each once, in order
            loading = [self._loading[frame] for frame in started if frame in self._loading]
            if not loading or clock.time() >= deadline:
                break
            await asyncio.wait(loading, timeout=deadline - clock.time())
        with contextlib.suppress(PlaywrightError):
            for frame in started:
                if not frame.is_detached():
                    await frame.wait_for_load_state("domcontentloaded")
        await self.check_page()

    async def call(self, action: str, args: Mapping[str, Any], item: ItemContext) -> Any:
        """Run a Python action of the app's module."""
        function = find_action(self.app.name, action)
        try:
            return await function(self, dict(args))
        except PlaywrightTimeout:
            await self.check_page(everywhere=True)
            raise BotError(f"action {action} timed out on page {_path(self.page.url)}") from None
        except PlaywrightError as exc:
            await self.check_page(everywhere=True)
            raise BotError(f"action {action} failed: {str(exc).splitlines()[0]}") from None

    # --- evidence ----------------------------------------------------------------------------

    async def begin_item(self) -> None:
        """With --trace on-failure: start a trace of this item (DOM snapshots and network).

        A trace per item rather than one per context cut into chunks: Playwright keeps the
        network log of the whole context in every chunk, so a chunk would also hold the login
        and the items before this one. Screenshots stay off: pixels cannot be scrubbed.
        """
        if self.bot.options.trace is not TraceMode.ON_FAILURE:
            return
        await self.end_item()
        self._trace_name = f"item-{uuid.uuid4().hex}"
        try:
            await self.context.tracing.start(
                name=self._trace_name, snapshots=True, screenshots=False, sources=False
            )
        except PlaywrightError as exc:
            logger.warning("no trace of this item: {}", str(exc).splitlines()[0])
            return
        self.tracing = True

    async def end_item(self) -> None:
        """The item went well: drop its trace (nothing of it is written)."""
        if self.tracing:
            self.tracing = False
            with contextlib.suppress(PlaywrightError):
                await self.context.tracing.stop()
            self._forget_trace()

    async def evidence(self, name: str) -> list[Path]:
        """A full-page screenshot with every input and the app's personal fields masked, and the
        item's trace when tracing, scrubbed of personal data; the screenshot first."""
        folder = self.bot.options.evidence_dir
        folder.mkdir(parents=True, exist_ok=True)
        # the trace first, so that the screenshot is not in it
        trace = await self._keep_trace(folder / f"{name}.trace.zip") if self.tracing else None
        path = folder / f"{name}.png"
        for tries_left in (1, 0):  # a page caught navigating loses frames under the masks
            masks = evidence_masks(self.page, self.bot.options.mask_labels)
            try:
                await self.page.screenshot(path=path, full_page=True, mask=masks, timeout=10_000)
                return [path, trace] if trace else [path]
            except PlaywrightError as exc:
                if tries_left:
                    with contextlib.suppress(PlaywrightError):
                        await self.page.wait_for_load_state("domcontentloaded", timeout=2_000)
                    continue
                logger.warning("no screenshot for {}: {}", name, str(exc).splitlines()[0])
        return [trace] if trace else []

    async def _keep_trace(self, target: Path) -> Path | None:
        """Stop tracing and keep the trace at `target` with every text in it redacted.

        Playwright writes the raw trace to a private temporary folder that is removed right
        after; only the scrubbed copy reaches the run folder.
        """
        self.tracing = False
        with tempfile.TemporaryDirectory(prefix="klerk-trace-") as scratch:
            raw = Path(scratch) / "trace.zip"
            try:
                await self.context.tracing.stop(path=raw)
                left_out = redact_archive(raw, target)
            except (PlaywrightError, OSError, zipfile.BadZipFile) as exc:
                logger.warning("no trace kept for {}: {}", target.name, str(exc).splitlines()[0])
                return None
            finally:
                self._forget_trace()
        logger.debug("trace kept: {} ({} binary entries left out)", target.name, left_out)
        return target

    def _forget_trace(self) -> None:
        """Remove Playwright's working files of this session's last trace."""
        folder = self.bot.traces_dir
        if folder is not None and self._trace_name:
            for path in folder.glob(f"{self._trace_name}*"):
                path.unlink(missing_ok=True)

    async def close(self) -> None:
        """Close the context; never raises."""
        with contextlib.suppress(PlaywrightError):
            await self.context.close()
        if self.tracing:
            self.tracing = False
            self._forget_trace()


# --- executors: one per step kind ---------------------------------------------------------------

Executor = Callable[[GenericSession, Any, ItemContext, int | None], Awaitable[StepOutcome]]


async def _goto(
    session: GenericSession, step: GotoStep, item: ItemContext, timeout: int | None
) -> StepOutcome:
    try:
        response = await session.page.goto(
            step.goto, timeout=timeout, wait_until="domcontentloaded"
        )
    except PlaywrightTimeout:
        waited = timeout or session.app.navigation_timeout_ms
        raise AppUnavailableError(
            f"page {_path(step.goto)} did not load within {waited} ms; "
            f"{session.app.name} is slow or stuck"
        ) from None
    except PlaywrightError as exc:
        message = str(exc).splitlines()[0]
        if "net::ERR_" in message:
            raise AppUnavailableError(
                f"{session.app.name} cannot be reached at {session.bot.base_url}"
            ) from None
        raise
    if response is not None:
        session.last_status = response.status
    await session.check_page()
    return StepOutcome(detail=f"HTTP {response.status if response else '-'}")


async def _fill(
    session: GenericSession, step: FillStep, item: ItemContext, timeout: int | None
) -> StepOutcome:
    await session.locate(step.fill).fill(step.fill.value, timeout=timeout)
    return StepOutcome()


async def _select(
    session: GenericSession, step: SelectStep, item: ItemContext, timeout: int | None
) -> StepOutcome:
    args = step.select
    root = session.root(args.frame)
    target = locate(session.page, root, args)
    # Whether the element is a <select> is asked once per locator and screen (the URL without
    # its query): the same screen has the same kind of drop-down. Unknown through a frame
    # locator, whose document is not known here: asked every time.
    screen = _screen(root)
    where = (args.model_dump_json(exclude={"value", "by"}), screen)
    is_select = session._drop_downs.get(where) if screen else None
    if is_select is None:
        is_select = await target.evaluate("el => el.tagName", timeout=timeout) == "SELECT"
        if screen:
            session._drop_downs[where] = is_select
    if is_select:
        return await _select_option(target, args, timeout)
    await _choose_in_widget(session, root, target, args, timeout)
    return StepOutcome()


async def _select_option(target: PwLocator, args: SelectArgs, timeout: int | None) -> StepOutcome:
    """Choose in a real <select>, by the option's label or value."""
    if args.by == "value":
        chosen = await target.select_option(value=args.value, timeout=timeout)
    else:
        chosen = await target.select_option(label=args.value, timeout=timeout)
    if not chosen:
        raise BotError(f"no option {args.value!r} in {args.describe()}")
    return StepOutcome()


async def _choose_in_widget(
    session: GenericSession,
    scope: Page | Frame | FrameLocator,
    widget: PwLocator,
    args: SelectArgs,
    timeout: int | None,
) -> None:
    """A drop-down built from divs or a list (role combobox, or any element that opens a
    list): open it, then click the option in `scope` that reads `value`, as a person would."""
    await widget.click(timeout=timeout)
    exact = re.compile(rf"^\s*{re.escape(args.value)}\s*$")
    listed_options = scope.get_by_role("option").or_(scope.locator("li, [role=menuitem]"))
    choice = listed_options.filter(has_text=exact).filter(visible=True).first
    try:
        await choice.click(timeout=timeout)
        return
    except PlaywrightTimeout:
        pass
    offered = await scope.get_by_role("option").filter(visible=True).all_inner_texts()
    listed = ", ".join(repr(" ".join(text.split())) for text in offered[:8])
    raise BotError(
        f"no option {args.value!r} in {args.describe()} on page {_path(session.page.url)}"
        + (f"; it offers {listed}" if listed else "; it opened no list of options")
    )


async def _upload(
    session: GenericSession, step: UploadStep, item: ItemContext, timeout: int | None
) -> StepOutcome:
    args = step.upload
    path = Path(args.file).expanduser()
    if not path.is_absolute():
        path = (session.bot.options.files_dir or Path.cwd()) / path
    if not path.is_file():
        raise BusinessError(
            f"the file to upload is not there: {path} "
            f"(a relative name is looked for next to the input file)"
        )
    await session.locate(args).set_input_files(path, timeout=timeout)
    return StepOutcome(detail=f"file {path.name}")


async def _check(
    session: GenericSession, step: CheckStep, item: ItemContext, timeout: int | None
) -> StepOutcome:
    value = step.check.checked
    checked = (
        value
        if isinstance(value, bool)
        else str(value).strip().lower() in {"true", "ja", "1", "yes"}
    )
    await session.locate(step.check).set_checked(checked, timeout=timeout)
    return StepOutcome()


async def _click(
    session: GenericSession, step: ClickStep, item: ItemContext, timeout: int | None
) -> StepOutcome:
    since = session.navigations()
    await session.locate(step.click).click(timeout=timeout)
    await session.settle(since)
    return StepOutcome()


async def _press(
    session: GenericSession, step: PressStep, item: ItemContext, timeout: int | None
) -> StepOutcome:
    since = session.navigations()
    await session.locate(step.press).press(step.press.key, timeout=timeout)
    await session.settle(since)
    return StepOutcome()


async def _wait(session: GenericSession, args: WaitForArgs, timeout: int | None) -> None:
    limit = args.timeout_ms or timeout
    if args.element is not None:
        await session.locate(args.element).wait_for(state="visible", timeout=limit)
    elif args.text is not None:
        await session.page.get_by_text(args.text).first.wait_for(state="visible", timeout=limit)
    elif args.url is not None:
        pattern = re.compile(re.escape(args.url))
        await session.page.wait_for_url(pattern, timeout=limit)


async def _wait_for(
    session: GenericSession, step: WaitForStep, item: ItemContext, timeout: int | None
) -> StepOutcome:
    await _wait(session, step.wait_for, timeout)
    return StepOutcome()


async def _expect(
    session: GenericSession, step: ExpectStep, item: ItemContext, timeout: int | None
) -> StepOutcome:
    try:
        await _wait(session, step.expect, timeout)
    except PlaywrightTimeout:
        await session.check_page(everywhere=True)
        args = step.expect
        what = (
            args.element.describe()
            if args.element
            else (f"text {args.text!r}" if args.text else f"url {args.url!r}")
        )
        raise BotError(
            args.message or f"expected {what} on page {_path(session.page.url)}, not there"
        ) from None
    return StepOutcome()


async def _business_error_if(
    session: GenericSession, step: BusinessErrorIfStep, item: ItemContext, timeout: int | None
) -> StepOutcome:
    args = step.business_error_if
    if args.element is not None:
        found = session.locate(args.element)
    else:
        assert args.text is not None
        found = session.page.get_by_text(args.text).first
    if await found.count() and await found.is_visible():
        shown = (await found.inner_text()).strip()
        raise BusinessError(redact(args.message or shown or "refused by the application"))
    return StepOutcome()


async def _extract(
    session: GenericSession, step: ExtractStep, item: ItemContext, timeout: int | None
) -> StepOutcome:
    outputs: dict[str, Any] = {}
    for name, field in step.extract.items():
        target = session.locate(field)
        if field.attribute:
            outputs[name] = await target.get_attribute(field.attribute, timeout=timeout)
        else:
            outputs[name] = (await target.inner_text(timeout=timeout)).strip()
    return StepOutcome(outputs=outputs, detail=", ".join(outputs))


async def _extract_table(
    session: GenericSession, step: ExtractTableStep, item: ItemContext, timeout: int | None
) -> StepOutcome:
    args = step.extract_table
    rows: list[dict[str, Any]] = []
    pages = 0
    while True:
        table = session.locate(args.table)
        rows.extend(await table.evaluate(_TABLE_JS, timeout=timeout))
        pages += 1
        if args.next is None or pages >= args.max_pages:
            break
        next_link = session.locate(args.next)
        if not await next_link.count():
            break
        since = session.navigations()
        await next_link.click(timeout=timeout)
        await session.settle(since)
    return StepOutcome(outputs={args.into: rows}, detail=f"{len(rows)} rows from {pages} pages")


async def _download(
    session: GenericSession, step: DownloadStep, item: ItemContext, timeout: int | None
) -> StepOutcome:
    args = step.download
    folder = session.bot.options.evidence_dir.parent / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    waited = args.timeout_ms or session._timeout(timeout)
    where = _path(session.page.url)
    clicked = False
    try:
        async with session.page.expect_download(timeout=waited) as info:
            await session.locate(args.click).click(timeout=timeout)
            clicked = True
        download = await info.value
    except PlaywrightTimeout:
        if not clicked:
            raise
        await session.check_page(everywhere=True)
        raise BotError(
            f"no download came within {waited} ms after clicking {args.click.describe()} "
            f"on page {where} (download into {args.into!r})"
        ) from None
    path = folder / download.suggested_filename
    await download.save_as(path)
    return StepOutcome(outputs={args.into: str(path)}, detail=path.name)


async def _action(
    session: GenericSession, step: ActionStep, item: ItemContext, timeout: int | None
) -> StepOutcome:
    result = await session.call(step.action.name, step.action.args, item)
    if isinstance(result, StepOutcome):
        return result
    if isinstance(result, Mapping):
        return StepOutcome(outputs=dict(result))
    return StepOutcome()


_EXECUTORS: dict[type[StepModel], Executor] = {
    GotoStep: _goto,
    FillStep: _fill,
    SelectStep: _select,
    CheckStep: _check,
    ClickStep: _click,
    PressStep: _press,
    UploadStep: _upload,
    WaitForStep: _wait_for,
    ExpectStep: _expect,
    BusinessErrorIfStep: _business_error_if,
    ExtractStep: _extract,
    ExtractTableStep: _extract_table,
    DownloadStep: _download,
    ActionStep: _action,
}


_DIALOG_KINDS = {
    "confirm": "to confirm",
    "prompt": "for input",
    "beforeunload": "to leave the page",
}


def _dialogs_shown(dialogs: list[tuple[str, str]]) -> str:
    """The dialogs a step met, for the trail and the item's message (their texts are redacted)."""
    return "; ".join(f"the app showed {kind} {text!r} (dismissed)" for kind, text in dialogs)


def _shown(signal: PageSignal, documents: Sequence[Shown], *, status: bool = True) -> Shown | None:
    """The first document (the window's, then the frames') that shows `signal`, if one does."""
    for document in documents:
        if status and document.status is not None and document.status in signal.status:
            return document
        if any(part in document.url for part in signal.url_contains):
            return document
        if any(phrase in document.found for phrase in signal.texts):
            return document
    return None


def _frame_selector(frame: str) -> str:
    """The frames or iframes named `frame`, or whose `src` holds it; the first in the page."""
    value = frame.replace("\\", "\\\\").replace('"', '\\"')
    return ", ".join(
        f'{tag}[{attribute}{match}"{value}"]'
        for attribute, match in (("name", "="), ("src", "*="))
        for tag in ("frame", "iframe")
    )


def _screen(root: Page | Frame | FrameLocator) -> str:
    """The URL of the document `root` shows, without its query and fragment ('' if unknown)."""
    if isinstance(root, FrameLocator):
        return ""
    parsed = urlparse(root.url)
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path}"


def _path(url: str) -> str:
    parsed = urlparse(url)
    return parsed.path or url

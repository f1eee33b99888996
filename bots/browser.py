"""Finding and launching Chromium: Playwright's own build where it is installed, else the system's.

Order: KLERK_BROWSER_PATH; Playwright's own Chromium; /usr/bin/chromium (and alike); with
`install=True` also `playwright install chromium`, then Debian's package when root with apt-get.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tasks.errors import KlerkError

# Flags for a server without internet: without the networking ones Chromium keeps calling home.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
SYSTEM_CHROMIUMS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/snap/bin/chromium")


class BrowserNotFoundError(KlerkError):
    """No usable Chromium on this machine."""


@dataclass(frozen=True)
class BrowserChoice:
    """Which Chromium to launch: None means Playwright's own build."""

    executable: str | None
    origin: str


def playwright_chromium() -> str | None:
    """The path of Playwright's own Chromium when it is installed, else None."""
    from playwright.sync_api import Error, sync_playwright

    try:
        with sync_playwright() as playwright:
            path = playwright.chromium.executable_path
    except Error:
        return None
    return path if path and Path(path).exists() else None


def system_chromium() -> str | None:
    """A Chromium installed by the operating system, if any."""
    for candidate in SYSTEM_CHROMIUMS:
        if Path(candidate).exists():
            return candidate
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return found


def choose_browser(own: str | None, override: str | None = None) -> BrowserChoice | None:
    """The Chromium to use given the path of Playwright's own build (None if not installed)."""
    override = override or os.environ.get("KLERK_BROWSER_PATH")
    if override:
        if not Path(override).exists():
            raise BrowserNotFoundError(
                f"KLERK_BROWSER_PATH points to {override}, which does not exist"
            )
        return BrowserChoice(override, "KLERK_BROWSER_PATH")
    if own and Path(own).exists():
        return BrowserChoice(None, f"Playwright's Chromium ({own})")
    system = system_chromium()
    if system:
        return BrowserChoice(system, f"system Chromium ({system})")
    return None


def find_browser(override: str | None = None, *, install: bool = False) -> BrowserChoice:
    """The Chromium to use (installing one when asked); raises BrowserNotFoundError if none.

    Uses Playwright's sync API: call it outside an asyncio loop (set-up, the CLI).
    """
    choice = choose_browser(playwright_chromium(), override)
    if choice is not None:
        return choice
    if install:
        if _run([sys.executable, "-m", "playwright", "install", "chromium"]):
            own = playwright_chromium()
            if own:
                return BrowserChoice(None, f"Playwright's Chromium ({own}), just installed")
        if os.geteuid() == 0 and shutil.which("apt-get"):
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            _run(["apt-get", "update", "-qq"], env=env)
            _run(["apt-get", "install", "-y", "-qq", "chromium"], env=env)
            system = system_chromium()
            if system:
                return BrowserChoice(system, f"Debian's chromium ({system}), just installed")
    raise not_found()


def not_found() -> BrowserNotFoundError:
    """The error that says what to install."""
    return BrowserNotFoundError(
        "no Chromium found. Install one: `python -m playwright install chromium`, or your "
        "system's package (Debian/Ubuntu: `sudo apt-get install chromium`), or point "
        "KLERK_BROWSER_PATH at a Chromium executable"
    )


def _run(command: list[str], env: dict[str, str] | None = None) -> bool:
    try:
        result = subprocess.run(command, env=env, capture_output=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def main() -> None:
    """`python -m bots.browser [--install]`: print the Chromium klerk will use."""
    try:
        choice = find_browser(install="--install" in sys.argv)
    except BrowserNotFoundError as exc:
        print(f"klerk: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(choice.origin)


if __name__ == "__main__":
    main()

"""A screen for a headed browser on a server: the desktop's display, or a virtual one (Xvfb).

`klerk record` shows the browser so that a person can use it. On a Linux server without a
desktop (no DISPLAY) it starts Xvfb, which picks a free display number itself (`-displayfd`),
and stops it again afterwards; without Xvfb it says what to install.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

from tasks.errors import KlerkError

_START_TIMEOUT = 10.0


class NoDisplayError(KlerkError):
    """A headed browser was asked for where there is no screen and no Xvfb to make one."""


@dataclass
class Display:
    """The X display a headed browser uses; `virtual` when klerk started Xvfb for it."""

    name: str | None
    virtual: bool = False
    process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str] | None:
        """The browser's environment: this process's, with DISPLAY set when it must change."""
        if self.name is None or not self.virtual:
            return None
        return {**os.environ, "DISPLAY": self.name}

    def close(self) -> None:
        """Stop the Xvfb that klerk started (nothing otherwise)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None


def display_for_headed() -> Display:
    """The display for a headed browser: DISPLAY (or another OS's desktop) when there is one,
    else a new Xvfb; NoDisplayError when neither is there."""
    if not sys.platform.startswith("linux") or os.environ.get("DISPLAY"):
        return Display(os.environ.get("DISPLAY"))
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        raise NoDisplayError(
            "no screen to show the browser on (DISPLAY is not set) and no Xvfb to make a "
            "virtual one: install it (Debian/Ubuntu: `sudo apt-get install xvfb`), log in "
            "with a desktop (or `ssh -X`), or record with --headless and drive the browser "
            "with --cdp-port"
        )
    return start_xvfb(xvfb)


def start_xvfb(executable: str) -> Display:
    """Start Xvfb on a free display number and wait until it accepts clients."""
    read_end, write_end = os.pipe()
    try:
        process = subprocess.Popen(
            [
                executable,
                "-displayfd",
                str(write_end),
                "-screen",
                "0",
                "1366x900x24",
                "-nolisten",
                "tcp",
            ],
            pass_fds=(write_end,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal is for klerk, which stops it after
        )
    except OSError as exc:
        os.close(read_end)
        os.close(write_end)
        raise NoDisplayError(f"cannot start Xvfb ({executable}): {exc}") from None
    os.close(write_end)
    number = b""
    deadline = time.monotonic() + _START_TIMEOUT
    try:
        while not number.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([read_end], [], [], max(left, 0))
            if not ready:
                break
            chunk = os.read(read_end, 16)
            if not chunk:
                break
            number += chunk
    finally:
        os.close(read_end)
    if not number.strip().isdigit():
        display = Display(None, virtual=True, process=process)
        display.close()
        raise NoDisplayError(
            f"Xvfb ({executable}) did not start within {_START_TIMEOUT:.0f} s; "
            "record with --headless instead"
        )
    return Display(f":{int(number)}", virtual=True, process=process)

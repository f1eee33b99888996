"""Run the demo application with uvicorn: in the foreground, or in a thread for tests.

`serve` blocks until interrupted (it is what `python -m demo` runs); `DemoServer` starts
the app on a free port in a background thread, waits until it answers, and stops it
when the `with` block ends.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from types import TracebackType

import uvicorn
from starlette.applications import Starlette

from demo.afval import SESSION_LIFETIME, Afvalcontainers
from demo.app import Parkeervergunningen
from demo.faults import NO_FAULTS, Faults

_START_TIMEOUT = 15.0


def serve(
    port: int = 8650,
    host: str = "127.0.0.1",
    faults: Faults = NO_FAULTS,
    db_path: str | None = None,
) -> None:
    """Serve the demo application until interrupted (Ctrl+C)."""
    app = Parkeervergunningen(faults, db_path=db_path)
    uvicorn.run(app.asgi, host=host, port=port, log_level="warning", access_log=False)


class DemoServer:
    """The demo application served by uvicorn in a background thread, as a context manager.

    >>> with DemoServer(port=0) as server:
    ...     page.goto(server.url + "/login")
    """

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        faults: Faults = NO_FAULTS,
        db_path: str | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        """The port asked for; once started, the port in use (also when 0 was asked)."""
        self.app = Parkeervergunningen(faults, db_path=db_path, users=users)
        """The running application, for tests that want to look inside."""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. "http://127.0.0.1:54321" (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Start serving and wait until `/api/health` answers."""
        if self._thread is not None:
            raise RuntimeError("the demo server is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._asgi(), log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"demo-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        try:
            self._wait_until_healthy()
        except BaseException:
            self.stop()
            sock.close()
            raise

    def _wait_until_healthy(self) -> None:
        """Poll `/api/health` until it answers, the thread dies, or the timeout passes."""
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            if self._thread is None or not self._thread.is_alive():
                raise RuntimeError(f"the demo server on {self.url} stopped while starting")
            try:
                with urllib.request.urlopen(self.url + "/api/health", timeout=2) as answer:
                    if json.load(answer).get("ok") is True:
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the demo server on {self.url} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=_START_TIMEOUT)
        self._server = None
        self._thread = None

    def set_faults(self, faults: Faults) -> None:
        """Put other faults in force while the server runs (like `POST /api/faults`)."""
        self.app.faults.replace(faults)

    def __enter__(self) -> DemoServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        self._close()

    def _asgi(self) -> Starlette:
        """The ASGI app to serve."""
        return self.app.asgi

    def _close(self) -> None:
        """Release what the app holds once serving ended."""
        self.app.close()

    def __repr__(self) -> str:
        return f"DemoServer(url={self.url!r})"


def serve_afval(
    port: int = 8651, host: str = "127.0.0.1", session_lifetime: float = SESSION_LIFETIME
) -> None:
    """Serve the second demo application, Afvalcontainers, until interrupted."""
    app = Afvalcontainers(session_lifetime=session_lifetime)
    uvicorn.run(app.asgi, host=host, port=port, log_level="warning", access_log=False)


class AfvalServer(DemoServer):
    """The second demo application, Afvalcontainers, served in a background thread.

    >>> with AfvalServer(port=0) as server:
    ...     page.goto(server.url + "/login")
    """

    def __init__(
        self, port: int = 0, host: str = "127.0.0.1", users: dict[str, str] | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.afval = Afvalcontainers(users=users)
        """The running application, for tests that want to look inside."""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def _asgi(self) -> Starlette:
        return self.afval.asgi

    def _close(self) -> None:
        self.afval.close()

    def set_faults(self, faults: Faults) -> None:
        """Afvalcontainers switches only its session lifetime (`POST /api/faults`)."""
        raise TypeError("Afvalcontainers has no Faults: set server.afval.session_lifetime")

    def __enter__(self) -> AfvalServer:
        self.start()
        return self

    def __repr__(self) -> str:
        return f"AfvalServer(url={self.url!r})"

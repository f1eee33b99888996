"""Shared fixtures: the demo app on localhost, an isolated klerk home, the CLI as a user runs it."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from demo.app import DEMO_PASSWORD, DEMO_USERNAME
from demo.server import DemoServer

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class DemoApp:
    """The running demo app and its test endpoints."""

    url: str

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def permits(self) -> list[dict[str, Any]]:
        """Every stored permit."""
        result: list[dict[str, Any]] = self._call("GET", "/api/vergunningen")
        return result

    def reset(self) -> None:
        """Back to the seed permits, no faults."""
        self._call("POST", "/api/reset")
        self.faults()

    def faults(self, **faults: Any) -> None:
        """Switch faults on (or all off when called without arguments)."""
        base = {
            "latency_ms": 0,
            "error_rate": 0.0,
            "busy_rate": 0.0,
            "session_lifetime": 900.0,
            "random_ids": False,
            "notice_on_form": False,
            "confirm_on_submit": False,
            "renamed_labels": False,
            "broken_export": False,
            "seed": 7,
        }
        self._call("POST", "/api/faults", {**base, **faults})

    def stats(self) -> dict[str, Any]:
        """The app's request counters."""
        result: dict[str, Any] = self._call("GET", "/api/stats")
        return result


@pytest.fixture(scope="session")
def demo_server() -> Iterator[DemoApp]:
    """One demo app per test worker, on a free port of 127.0.0.1."""
    with DemoServer(port=0) as server:
        yield DemoApp(server.url)


@pytest.fixture
def demo_app(demo_server: DemoApp) -> Iterator[DemoApp]:
    """The demo app, reset to its seed permits and without faults, for one test."""
    demo_server.reset()
    yield demo_server
    demo_server.reset()


@dataclass
class Klerk:
    """klerk as a user runs it: a separate process, in its own home folder."""

    home: Path
    env: dict[str, str]

    def __call__(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run `klerk ARGS` and return what it printed and its exit code."""
        return subprocess.run(
            [sys.executable, str(ROOT / "runner.py"), *args],
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, *args: str, output: IO[str] | None = None) -> subprocess.Popen[str]:
        """Start `klerk ARGS` in the background (to signal or kill it while it works). Its
        output is piped, or goes to `output` when it may outgrow a pipe nobody reads yet."""
        return subprocess.Popen(
            [sys.executable, str(ROOT / "runner.py"), *args],
            cwd=self.home,
            env=self.env,
            stdout=output or subprocess.PIPE,
            stderr=output or subprocess.PIPE,
            text=True,
        )

    def written_files(self) -> list[Path]:
        """Every file a run wrote under the home (runs/, var/ except the database)."""
        return [path for path in self.home.rglob("*") if path.is_file()]


def stand_still(
    process: subprocess.Popen[str], until: Callable[[], object], seconds: float
) -> tuple[str, str]:
    """Let a `klerk.start`ed run work until `until()` holds, stop it for `seconds` (a laptop's
    lid closed: the app may end its session meanwhile), then let it finish; its output."""
    deadline = time.monotonic() + 60
    while not until() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGSTOP)
    time.sleep(seconds)
    process.send_signal(signal.SIGCONT)
    return process.communicate(timeout=120)


def _klerk(home: Path, demo_url: str, database_url: str | None = None) -> Klerk:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("KLERK_") and key not in ("PYTEST_XDIST_WORKER",)
    }
    env.update(
        KLERK_HOME=str(home),
        KLERK_APP_URL=demo_url,
        KLERK_CRED_PARKEREN_USERNAME=DEMO_USERNAME,
        KLERK_CRED_PARKEREN_PASSWORD=DEMO_PASSWORD,
        KLERK_STARTED_BY="test",
        PYTHONPATH=str(ROOT),
        COLUMNS="200",
    )
    if database_url:
        env["KLERK_DATABASE_URL"] = database_url
    return Klerk(home, env)


@pytest.fixture
def klerk(request: pytest.FixtureRequest, tmp_path: Path, demo_app: DemoApp) -> Klerk:
    """The CLI in a fresh home folder, pointed at the demo app.

    Its store is SQLite under the home, or (parametrized indirectly with "postgres") a fresh
    PostgreSQL database.
    """
    home = tmp_path / "home"
    home.mkdir()
    store = getattr(request, "param", "sqlite")
    database_url = request.getfixturevalue("postgres_url") if store == "postgres" else None
    return _klerk(home, demo_app.url, database_url)


def _postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=3
        ):
            return True
    except Exception:
        return False


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    if not _postgres_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is not running")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not running")
    name = f"klerk_test_{secrets.token_hex(4)}"
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def write_intake(
    path: Path,
    rows: list[dict[str, Any]],
    sheet: str = "Aanvragen",
    headers: list[str] | None = None,
) -> Path:
    """Write intake rows to an .xlsx file the way the demo's sample is written (the headers of
    `demo.sample` unless others are given)."""
    from connectors.xlsx import XlsxSink
    from demo.sample import HEADERS
    from tasks.definition import SinkSpec

    spec = SinkSpec(kind="xlsx", path=str(path), sheet=sheet)
    return XlsxSink(spec, path).write(headers or HEADERS, rows)


def read_results(path: Path) -> list[dict[str, Any]]:
    """The rows of a results workbook as dicts by header (read back with openpyxl)."""
    import openpyxl

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    sheet = workbook.worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    workbook.close()
    headers = [str(h) for h in rows[0]]
    # read-only sheets leave out empty cells at the end of a row: pad them back as None
    return [dict(zip(headers, [*row, *[None] * len(headers)], strict=False)) for row in rows[1:]]

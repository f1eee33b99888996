"""Privacy in everything a run writes: neither the password nor any BSN of the input is in any
file of a run, the traces of its failed items included (read entry by entry).

The input and the results sheet are the user's own data, and the store is the working copy of
the input that resume needs: those are the only files left out of the search.
"""

from __future__ import annotations

import random
import re
import tempfile
import urllib.parse
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.app import DEMO_PASSWORD
from demo.sample import EXISTING_PLATE, aanvragen, invalid_bsn
from tests.conftest import ROOT, DemoApp, Klerk, read_results, write_intake

pytestmark = pytest.mark.browser

SHIPPED_TASK = ROOT / "tasks" / "definitions" / "vergunningen-invoeren.yaml"


def _with_quick_retries(home: Path) -> Path:
    """The shipped task with three quick attempts instead of ten slow ones: the same job, but an
    item the app keeps failing ends as a system error within seconds."""
    shipped = SHIPPED_TASK.read_text(encoding="utf-8")
    retry = re.compile(r"^retry: .*$", re.MULTILINE)
    assert retry.search(shipped), "the shipped task no longer says how it retries"
    path = home / SHIPPED_TASK.name
    path.write_text(retry.sub("retry: {attempts: 3, backoff_seconds: 0}", shipped), "utf-8")
    return path


def _contents(path: Path) -> Iterator[tuple[str, bytes]]:
    """A file's bytes and, for a zip archive, each entry's name and decompressed bytes."""
    yield str(path), path.read_bytes()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for entry in archive.infolist():
                yield f"{path} » {entry.filename}", entry.filename.encode() + archive.read(entry)


def _hits(files: list[Path], secrets: list[str]) -> list[str]:
    """Where any of `secrets` is found, as 'secret (first two characters)... in file'."""
    return [
        f"{secret[:2]}... in {where}"
        for path in files
        for where, data in _contents(path)
        for secret in secrets
        if secret.encode() in data
    ]


@pytest.fixture
def temporary() -> Iterator[Path]:
    """A temporary folder for the runs of one test (short: Chromium puts a socket in it)."""
    with tempfile.TemporaryDirectory(prefix="klerk-test-") as folder:
        yield Path(folder)


def test_nothing_a_run_writes_holds_the_password_or_a_bsn(
    klerk: Klerk, demo_app: DemoApp, temporary: Path
) -> None:
    rows = aanvragen(8, seed=8, bad_rows=False, prefix="PR-")
    rows[1]["Kenteken"] = EXISTING_PLATE  # the app refuses it: a business error, with evidence
    rows[5]["BSN"] = invalid_bsn(random.Random(6))  # a bad cell: refused before the app is used
    intake = write_intake(klerk.home / "privacy.xlsx", rows)
    task = _with_quick_retries(klerk.home)
    klerk.env["TMPDIR"] = str(temporary)  # to see what the runs leave behind there
    demo_app.faults(error_rate=0.4, seed=6)  # seeded: done items, system and business errors

    result = klerk("--debug", "run", str(task), "--input", str(intake), "--trace", "on-failure")

    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    results = read_results(klerk.home / "privacy-resultaten.xlsx")
    states = {row["Aanvraagnummer"]: row["status"] for row in results}
    assert states["PR-00002"] == states["PR-00006"] == "business_error"
    assert {"done", "system_error"} <= set(states.values()), states
    # evidence of every item that failed in the app, a screenshot and a trace; none of the
    # others (the bad cell never reached the app)
    failed = {
        f"{seq:05d}-{key}"
        for seq, (key, state) in enumerate(states.items(), start=1)
        if state != "done" and key != "PR-00006"
    }
    (run_dir,) = [path for path in (klerk.home / "runs").iterdir() if path.is_dir()]
    evidence = run_dir / "evidence"
    assert {path.name.removesuffix(".trace.zip") for path in evidence.glob("*.trace.zip")} == failed
    assert {path.stem for path in evidence.glob("*.png")} == failed
    trail = (run_dir / "audit.jsonl").read_text(encoding="utf-8")
    report = (run_dir / "report.html").read_text(encoding="utf-8")
    for name in failed:
        assert f"{name}.trace.zip" in trail  # the item's end in the trail names its trace
        assert f'href="evidence/{name}.trace.zip"' in report  # and the report links it
        with zipfile.ZipFile(evidence / f"{name}.trace.zip") as trace:
            assert trace.testzip() is None
            assert "trace.trace" in trace.namelist()
            assert b'"method":"goto"' in trace.read("trace.trace")  # still the item's steps
            assert not [n for n in trace.namelist() if n.endswith((".png", ".jpeg", ".jpg"))]

    # a run resumed with tracing too
    demo_app.faults()
    resumed = klerk("resume", run_dir.name, "--trace", "on-failure")
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr  # the refused rows stay

    password = [
        DEMO_PASSWORD,
        urllib.parse.quote_plus(DEMO_PASSWORD),  # as the login form posts it
        urllib.parse.quote(DEMO_PASSWORD, safe=""),
    ]
    secrets = [*password, *(row["BSN"] for row in rows)]
    own_data = {intake, klerk.home / "privacy-resultaten.xlsx"}
    written = [
        path
        for path in klerk.written_files()
        if path not in own_data and not path.name.startswith("klerk.db")
    ]
    assert any(path.name == "audit.jsonl" for path in written)
    assert any(path.name == "klerk.log" for path in written)
    assert _hits(written, secrets) == []
    # Playwright's working copies of the traces are gone with the browser; whatever else the
    # runs left in their temporary folder is clean too
    assert not list(temporary.glob("klerk-trace*"))
    assert _hits([p for p in temporary.rglob("*") if p.is_file()], secrets) == []
    for output in (result, resumed):
        assert not [s for s in secrets if s in output.stdout + output.stderr]


def test_a_trace_that_caught_the_login_is_scrubbed_of_the_password(
    demo_app: DemoApp, tmp_path: Path
) -> None:
    # klerk starts a trace only after the login; this proves the scrubber would still take the
    # password out of one: as typed, in the request log, and as the form posts it (%21 for !)
    from playwright.sync_api import sync_playwright

    from bots.browser import CHROMIUM_ARGS, choose_browser
    from demo.app import DEMO_USERNAME
    from tasks.privacy import add_secrets, redact_archive

    raw, kept = tmp_path / "raw.zip", tmp_path / "kept.trace.zip"
    with sync_playwright() as playwright:
        choice = choose_browser(playwright.chromium.executable_path)
        assert choice is not None
        browser = playwright.chromium.launch(
            executable_path=choice.executable, args=list(CHROMIUM_ARGS)
        )
        context = browser.new_context(base_url=demo_app.url)
        context.tracing.start(snapshots=True, screenshots=False)
        page = context.new_page()
        page.goto("/login")
        page.get_by_label("Gebruikersnaam").fill(DEMO_USERNAME)
        page.get_by_label("Wachtwoord").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Inloggen").click()
        page.wait_for_load_state()
        context.tracing.stop(path=raw)
        browser.close()
    password = [DEMO_PASSWORD, urllib.parse.quote_plus(DEMO_PASSWORD)]
    assert len(_hits([raw], password)) >= 3  # the raw trace does hold it, in three forms

    add_secrets([DEMO_PASSWORD])
    redact_archive(raw, kept)

    assert _hits([kept], password) == []
    with zipfile.ZipFile(kept) as trace:
        assert b'"method":"fill"' in trace.read("trace.trace")

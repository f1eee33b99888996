"""Trouble in the application, each case a real `klerk run` against the demo app: down at the
start, down in the middle of a run, a renamed label, a slow page, unexpected dialogs and a
download that never comes. Every case checks the message a clerk reads and what the app holds."""

from __future__ import annotations

import csv
import json
import re
import socket
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from demo.sample import aanvragen
from demo.server import DemoServer
from tests.conftest import ROOT, DemoApp, Klerk, read_results, stand_still, write_intake

pytestmark = pytest.mark.browser

SHIPPED_TASK = ROOT / "tasks" / "definitions" / "vergunningen-invoeren.yaml"
SEED_PERMITS = 3


def _task(klerk: Klerk, retry: str, **steps: str) -> Path:
    """The shipped task with quick retries and some steps replaced (shipped text -> new text)."""
    text = SHIPPED_TASK.read_text(encoding="utf-8")
    text, found = re.subn(r"^retry: .*$", f"retry: {retry}", text, flags=re.MULTILINE)
    assert found == 1, "the shipped task no longer says how it retries"
    for old, new in steps.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = klerk.home / "invoeren.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _run_id(output: str) -> str:
    found = re.search(r"run (\d{8}-\d{6}-[0-9a-f]{6})", output)
    assert found, output
    return found.group(1)


def _free_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port: int = free.getsockname()[1]
        return port


def _aborted(stderr: str) -> str:
    """What the CLI said about an aborted run (after its progress bar), line wrapping undone."""
    return " ".join(stderr[stderr.index("Run aborted:") :].split())


def _entered(url: str) -> Counter[str]:
    """How often each application (not the seed permits) is stored in the app at `url`."""
    with urllib.request.urlopen(url + "/api/vergunningen", timeout=30) as answer:
        permits: list[dict[str, Any]] = json.load(answer)
    return Counter(
        p["aanvraagnummer"] for p in permits if not p["aanvraagnummer"].startswith("SEED")
    )


def _trail(klerk: Klerk, run_id: str) -> list[dict[str, Any]]:
    path = klerk.home / "runs" / run_id / "audit.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _screenshot(klerk: Klerk, run_id: str, seq: int, key: str) -> Path:
    path = klerk.home / "runs" / run_id / "evidence" / f"{seq:05d}-{key}.png"
    assert path.is_file() and path.stat().st_size > 0, f"no screenshot {path}"
    return path


def test_app_down_at_start_stops_the_run_and_marks_nothing(klerk: Klerk, demo_app: DemoApp) -> None:
    rows = aanvragen(3, seed=81, bad_rows=False, prefix="DS-")
    intake = write_intake(klerk.home / "weg.xlsx", rows)
    task = _task(klerk, "{attempts: 2, backoff_seconds: 0.1}")
    url = f"http://127.0.0.1:{_free_port()}"
    klerk.env["KLERK_APP_URL"] = url

    result = klerk("run", str(task), "--input", str(intake))

    assert result.returncode == 3, result.stdout + result.stderr
    run_id = _run_id(result.stdout)
    assert _aborted(result.stderr) == (
        f"Run aborted: parkeren is not available (parkeren cannot be reached at {url}); "
        f"no item was touched. Start it again with `klerk resume {run_id}` when the app is back "
        f"Continue later with: klerk resume {run_id}"
    )
    results = read_results(klerk.home / "weg-resultaten.xlsx")
    assert [(r["status"], r["melding"]) for r in results] == [("pending", None)] * 3
    assert not (klerk.home / "runs" / run_id / "evidence").exists()
    assert "aborted" in klerk("runs", "list").stdout


def test_app_down_mid_run_trips_the_breaker_and_resume_enters_each_row_once(
    klerk: Klerk, tmp_path: Path
) -> None:
    rows = aanvragen(10, seed=82, bad_rows=False, prefix="MD-")
    keys = [row["Aanvraagnummer"] for row in rows]
    intake = write_intake(klerk.home / "midden.xlsx", rows)
    task = _task(klerk, "{attempts: 2, backoff_seconds: 0.2, max_consecutive_system_errors: 3}")
    database, port = str(tmp_path / "parkeren.db"), _free_port()
    first = DemoServer(port=port, db_path=database)
    first.start()
    url = first.url
    klerk.env["KLERK_APP_URL"] = url
    try:
        first.app.faults.update({"latency_ms": 100})
        process = klerk.start("run", str(task), "--input", str(intake))
        deadline = time.monotonic() + 60
        while first.app.store.count() < SEED_PERMITS + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        first.stop()
        first.app.close()
    out, err = process.communicate(timeout=120)

    assert process.returncode == 3, out + err
    run_id = _run_id(out)
    reason = f"parkeren cannot be reached at {url}"
    assert _aborted(err) == (
        f"Run aborted: 3 items in a row failed with a system error (the last: {reason}); "
        "the run stops so that a failing parkeren is not hammered "
        f"Continue later with: klerk resume {run_id}"
    )
    results = read_results(klerk.home / "midden-resultaten.xlsx")
    states = [r["status"] for r in results]
    done = states.count("done")
    assert done >= 2  # the item in flight when the app went down may be stored, yet not done
    assert states == ["done"] * done + ["system_error"] * 3 + ["pending"] * (7 - done), states
    for seq, row in enumerate(results, start=1):
        if row["status"] == "system_error":
            shot = _screenshot(klerk, run_id, seq, row["Aanvraagnummer"])
            assert row["melding"] == f"{reason}; screenshot: {shot}"
        elif row["status"] == "pending":
            assert row["melding"] is None

    with DemoServer(port=port, db_path=database) as second:
        resumed = klerk("resume", run_id)
        entered = _entered(second.url)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert entered == Counter({key: 1 for key in keys})
    again = read_results(klerk.home / "midden-resultaten.xlsx")
    assert [r["status"] for r in again] == ["done"] * 10
    assert [r["zaaknummer"] is not None for r in again] == [True] * 10


def test_a_renamed_label_says_what_where_and_shows_the_page(
    klerk: Klerk, demo_app: DemoApp
) -> None:
    rows = aanvragen(2, seed=83, bad_rows=False, prefix="LB-")
    intake = write_intake(klerk.home / "label.xlsx", rows)
    fill_bsn = '- fill: {label: BSN, value: "{{ item.bsn }}"}'
    task = _task(klerk, "{attempts: 1}", **{fill_bsn: fill_bsn + "\n    timeout_ms: 500"})
    demo_app.faults(renamed_labels=True)

    result = klerk("run", str(task), "--input", str(intake))

    assert result.returncode == 1, result.stdout + result.stderr
    run_id = _run_id(result.stdout)
    results = read_results(klerk.home / "label-resultaten.xlsx")
    for seq, row in enumerate(results, start=1):
        shot = _screenshot(klerk, run_id, seq, row["Aanvraagnummer"])
        assert (row["status"], row["melding"]) == (
            "system_error",
            "element not found: label 'BSN' on page /vergunningen/nieuw "
            "(step fill, waited 500 ms); did you mean label 'Burgerservicenummer'?; "
            f"screenshot: {shot}",
        )
    assert _entered(demo_app.url) == Counter()


def test_a_page_slower_than_its_timeout_is_a_system_error(klerk: Klerk, demo_app: DemoApp) -> None:
    rows = aanvragen(1, seed=84, bad_rows=False, prefix="SL-")
    intake = write_intake(klerk.home / "traag.xlsx", rows)
    # the form is opened by the app's sequence; here by a goto of its own with a short timeout
    opening = "- use: nieuwe_aanvraag_openen"
    goto = "- goto: /vergunningen/nieuw\n    timeout_ms: 300"
    task = _task(klerk, "{attempts: 1}", **{opening: goto})
    demo_app.faults(latency_ms=1000)

    result = klerk("run", str(task), "--input", str(intake))

    assert result.returncode == 1, result.stdout + result.stderr
    run_id = _run_id(result.stdout)
    (row,) = read_results(klerk.home / "traag-resultaten.xlsx")
    shot = _screenshot(klerk, run_id, 1, "SL-00001")
    assert (row["status"], row["melding"]) == (
        "system_error",
        "page /vergunningen/nieuw did not load within 300 ms; parkeren is slow or stuck; "
        f"screenshot: {shot}",
    )
    assert _entered(demo_app.url) == Counter()


PYTHON_LOOK_UP = """already_done:
  action: zoek_aanvraag
  args: {aanvraagnummer: "{{ item.aanvraagnummer }}"}
sink:"""


@pytest.mark.parametrize("look_up", ["yaml", "python"])
def test_a_submit_slower_than_its_timeout_is_found_in_the_app_not_entered_twice(
    klerk: Klerk, demo_app: DemoApp, look_up: str
) -> None:
    rows = aanvragen(1, seed=87, bad_rows=False, prefix="SS-")
    intake = write_intake(klerk.home / "verzenden.xlsx", rows)
    click = "- click: {role: button, name: Aanvragen}"
    changes = {click: click + "\n    timeout_ms: 300"}
    if look_up == "python":  # the app's Python action instead of the shipped YAML look-up
        shipped = SHIPPED_TASK.read_text(encoding="utf-8")
        yaml_look_up = shipped[shipped.index("already_done:") : shipped.index("sink:") + 5]
        changes[yaml_look_up] = PYTHON_LOOK_UP
    task = _task(klerk, "{attempts: 2, backoff_seconds: 0}", **changes)
    demo_app.faults(latency_ms=1000)

    result = klerk("run", str(task), "--input", str(intake))

    assert result.returncode == 0, result.stdout + result.stderr
    (row,) = read_results(klerk.home / "verzenden-resultaten.xlsx")
    assert (row["status"], row["melding"]) == ("done", "al ingevoerd (gevonden bij controle)")
    (stored,) = [p for p in demo_app.permits() if p["aanvraagnummer"] == "SS-00001"]
    assert row["zaaknummer"] == stored["zaaknummer"]  # read back by the look-up
    assert _entered(demo_app.url) == Counter({"SS-00001": 1})
    (retry,) = [r for r in _trail(klerk, _run_id(result.stdout)) if r["name"] == "retry"]
    assert retry["attributes"]["bio.result"] == (
        "BotError: click role button 'Aanvragen' on page /vergunningen/nieuw went through, but "
        "the next page did not load within 300 ms; parkeren is slow or stuck"
    )


def test_a_session_that_ended_while_the_bot_waited_costs_a_login_not_an_attempt(
    klerk: Klerk, demo_app: DemoApp
) -> None:
    rows = aanvragen(5, seed=88, bad_rows=False, prefix="PZ-")
    intake = write_intake(klerk.home / "pauze.xlsx", rows)
    task = _task(klerk, "{attempts: 1}")  # any failure that counts is a system error
    # a lifetime long enough that a loaded machine's pauses between items do not end it too
    demo_app.faults(latency_ms=150, session_lifetime=5.0)

    process = klerk.start("run", str(task), "--input", str(intake))
    # the runner stands still (a laptop's lid closed) until the app has ended its session
    out, err = stand_still(process, lambda: _entered(demo_app.url), 6.5)

    assert process.returncode == 0, out + err
    results = read_results(klerk.home / "pauze-resultaten.xlsx")
    assert [r["status"] for r in results] == ["done"] * 5
    assert _entered(demo_app.url) == Counter({r["Aanvraagnummer"]: 1 for r in rows})
    relogins = [r for r in _trail(klerk, _run_id(out)) if r["name"] == "retry"]
    assert [r["attributes"]["bio.result"].split(" (at")[0] for r in relogins] == [
        "SessionExpiredError: session expired"
    ]


def test_an_alert_is_dismissed_and_its_text_kept_redacted_in_the_trail(
    klerk: Klerk, demo_app: DemoApp
) -> None:
    rows = aanvragen(2, seed=85, bad_rows=False, prefix="AL-")
    intake = write_intake(klerk.home / "melding.xlsx", rows)
    task = _task(klerk, "{attempts: 2, backoff_seconds: 0}")
    demo_app.faults(notice_on_form=True)

    result = klerk("run", str(task), "--input", str(intake))

    assert result.returncode == 0, result.stdout + result.stderr
    assert _entered(demo_app.url) == Counter({"AL-00001": 1, "AL-00002": 1})
    run_id = _run_id(result.stdout)
    shown = [
        (record["attributes"]["klerk.item_key"], record["attributes"]["bio.result"])
        for record in _trail(klerk, run_id)
        if record["attributes"].get("bio.action") == "goto"
    ]
    notice = (
        "the app showed alert 'Let op: vanavond van 18:00 tot 20:00 is Parkeervergunningen niet "
        "beschikbaar. Vragen: [e-mail]' (dismissed)"
    )
    assert shown == [("AL-00001", f"HTTP 200; {notice}"), ("AL-00002", f"HTTP 200; {notice}")]
    trail = (klerk.home / "runs" / run_id / "audit.jsonl").read_text(encoding="utf-8")
    assert "servicedesk@klerkdam.nl" not in trail


def test_a_dismissed_confirm_is_not_reported_as_done(klerk: Klerk, demo_app: DemoApp) -> None:
    rows = aanvragen(1, seed=86, bad_rows=False, prefix="CF-")
    intake = write_intake(klerk.home / "bevestig.xlsx", rows)
    task = _task(klerk, "{attempts: 1}")
    demo_app.faults(confirm_on_submit=True)

    result = klerk("run", str(task), "--input", str(intake))

    assert result.returncode == 1, result.stdout + result.stderr
    run_id = _run_id(result.stdout)
    (row,) = read_results(klerk.home / "bevestig-resultaten.xlsx")
    shot = _screenshot(klerk, run_id, 1, "CF-00001")
    assert (row["status"], row["melding"], row["zaaknummer"]) == (
        "system_error",
        "the app asked to confirm 'Weet u zeker dat u deze aanvraag wilt indienen?' on page "
        "/vergunningen/nieuw and klerk dismissed it: click role button 'Aanvragen' did not go "
        f"through; screenshot: {shot}",
        None,
    )
    assert _entered(demo_app.url) == Counter()


def test_a_download_that_never_comes_says_which_and_how_long(
    klerk: Klerk, demo_app: DemoApp
) -> None:
    task = klerk.home / "export.yaml"
    task.write_text(
        """\
name: export-ophalen
app: parkeren
credentials: PARKEREN
processing_activity: https://register.example/verwerkingen/parkeren
legal_basis: AVG art. 6 lid 1 sub e
source: {kind: none}
steps:
  - goto: /vergunningen
  - download: {click: {role: link, name: Exporteer CSV}, into: export, timeout_ms: 1000}
retry: {attempts: 1}
sink: {kind: csv, path: uit.csv}
""",
        encoding="utf-8",
    )
    demo_app.faults(broken_export=True)

    result = klerk("run", str(task))

    assert result.returncode == 1, result.stdout + result.stderr
    run_id = _run_id(result.stdout)
    with (klerk.home / "uit.csv").open(encoding="utf-8-sig", newline="") as stream:
        (row,) = list(csv.DictReader(stream, delimiter=_delimiter(klerk.home / "uit.csv")))
    shot = _screenshot(klerk, run_id, 1, "export-ophalen")
    assert (row["status"], row["melding"]) == (
        "system_error",
        "no download came within 1000 ms after clicking role link 'Exporteer CSV' on page "
        f"/vergunningen (download into 'export'); screenshot: {shot}",
    )
    assert not list(klerk.home.glob("runs/*/downloads/*"))


def _delimiter(path: Path) -> str:
    header = path.read_text(encoding="utf-8-sig").splitlines()[0]
    return ";" if header.count(";") > header.count(",") else ","

"""The scheduler: schedule files, fire times on Dutch working days, and `klerk serve` as a real
process firing real runs against the demo app, with e-mail (a local SMTP server in this test
process) and a webhook when a run does not get everything done.
"""

from __future__ import annotations

import datetime as dt
import email
import http.server
import itertools
import json
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from demo.sample import EXISTING_PLATE, aanvragen
from schedules.definition import Schedule
from schedules.state import Fire, ScheduleBook
from schedules.triggers import ScheduleTrigger, fire_times
from tasks.store import RunRecord, Store, aware
from tests.conftest import ROOT, DemoApp, Klerk, write_intake

AMS = ZoneInfo("Europe/Amsterdam")
EVERY_DAY = {
    "working_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
    "public_holidays": False,
}
BOTH_STORES = pytest.mark.parametrize("klerk", ["sqlite", "postgres"], indirect=True)


# --- fire times: pure computation --------------------------------------------------------------


def _times(spec: dict[str, Any], after: str, count: int = 5) -> list[str]:
    schedule = Schedule.model_validate({"name": "t", "task": "vergunningen-invoeren", **spec})
    start = dt.datetime.fromisoformat(after).replace(tzinfo=AMS)
    return [f"{moment:%a %d-%m-%Y %H:%M}" for moment in fire_times(schedule, start, count)]


WORKDAYS_7 = {"trigger": {"cron": "0 7 * * *"}}


def test_christmas_2026_and_a_closing_day_are_skipped() -> None:
    assert _times(WORKDAYS_7, "2026-12-23") == [
        "Wed 23-12-2026 07:00",
        "Thu 24-12-2026 07:00",
        # Fri 25 and Sat 26 (Christmas), Sun 27: no
        "Mon 28-12-2026 07:00",
        "Tue 29-12-2026 07:00",
        "Wed 30-12-2026 07:00",
    ]
    with_closing = {**WORKDAYS_7, "calendar": {"closing_days": ["24-12-2026", "2026-12-31"]}}
    assert _times(with_closing, "2026-12-23", 6) == [
        "Wed 23-12-2026 07:00",
        "Mon 28-12-2026 07:00",
        "Tue 29-12-2026 07:00",
        "Wed 30-12-2026 07:00",
        "Mon 04-01-2027 07:00",  # 31-12 closed, 1-1 Nieuwjaarsdag
        "Tue 05-01-2027 07:00",
    ]


def test_koningsdag_easter_monday_and_ascension_2027_are_skipped() -> None:
    assert _times(WORKDAYS_7, "2027-04-26", 3) == [
        "Mon 26-04-2027 07:00",
        "Wed 28-04-2027 07:00",  # Tue 27 April: Koningsdag
        "Thu 29-04-2027 07:00",
    ]
    assert _times(WORKDAYS_7, "2027-03-25", 3) == [
        "Thu 25-03-2027 07:00",  # Fri 26 Goede Vrijdag, Mon 29 Tweede paasdag
        "Tue 30-03-2027 07:00",
        "Wed 31-03-2027 07:00",
    ]
    no_good_friday = {**WORKDAYS_7, "calendar": {"goede_vrijdag": False}}
    assert _times(no_good_friday, "2027-03-25", 2) == [
        "Thu 25-03-2027 07:00",
        "Fri 26-03-2027 07:00",
    ]
    assert _times(WORKDAYS_7, "2027-05-05", 3) == [
        "Wed 05-05-2027 07:00",  # Bevrijdingsdag off only in lustrum years by default
        "Fri 07-05-2027 07:00",  # Thu 6 May: Hemelvaartsdag
        "Mon 10-05-2027 07:00",
    ]
    every_fifth_of_may = {**WORKDAYS_7, "calendar": {"bevrijdingsdag": "every_year"}}
    assert _times(every_fifth_of_may, "2027-05-05", 1) == ["Fri 07-05-2027 07:00"]


def test_koningsdag_2025_moves_to_saturday_26_april() -> None:
    seven_days = {"working_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}
    spec = {"trigger": {"cron": {"hour": 7}}, "calendar": seven_days}
    assert _times(spec, "2025-04-25", 3) == [
        "Fri 25-04-2025 07:00",
        "Sun 27-04-2025 07:00",  # 27 April 2025 is a Sunday: Koningsdag is Saturday the 26th
        "Mon 28-04-2025 07:00",
    ]


def test_office_hours_first_working_day_and_cron_weekday_numbers() -> None:
    quarter = {
        "trigger": {"interval": {"minutes": 15}},
        "office_hours": {"start": "08:00", "end": "17:00"},
    }
    assert _times(quarter, "2026-12-24T16:20", 4) == [
        "Thu 24-12-2026 16:30",
        "Thu 24-12-2026 16:45",  # 17:00 is outside; then Christmas and the weekend
        "Mon 28-12-2026 08:00",
        "Mon 28-12-2026 08:15",
    ]
    first = {"trigger": {"cron": {"hour": 6, "minute": 30}, "working_day_of_month": 1}}
    assert _times(first, "2026-12-15", 3) == [
        "Mon 04-01-2027 06:30",  # 1 January is Nieuwjaarsdag, 2 and 3 are a weekend
        "Mon 01-02-2027 06:30",
        "Mon 01-03-2027 06:30",
    ]
    # crontab counts weekdays from Sunday = 0: 1-5 is Monday to Friday
    numbers = {"trigger": {"cron": "30 9 * * 1-5"}, "calendar": {"public_holidays": False}}
    assert _times(numbers, "2026-12-25", 2) == ["Fri 25-12-2026 09:30", "Mon 28-12-2026 09:30"]


def test_trigger_survives_the_job_store() -> None:
    schedule = Schedule.model_validate(
        {"name": "t", "task": "x", **WORKDAYS_7, "calendar": {"closing_days": ["2026-12-24"]}}
    )
    trigger = pickle.loads(pickle.dumps(ScheduleTrigger(schedule)))
    start = dt.datetime(2026, 12, 23, 8, tzinfo=AMS)
    assert trigger.get_next_fire_time(None, start) == dt.datetime(2026, 12, 28, 7, tzinfo=AMS)


# --- definitions and the CLI without serve ---------------------------------------------------


def _klerk_env(klerk: Klerk) -> Path:
    folder = klerk.home / "schedules"
    folder.mkdir(exist_ok=True)
    klerk.env.update(
        KLERK_SCHEDULES_DIR=str(folder),
        KLERK_SCHEDULER_POLL_SECONDS="0.5",
        KLERK_LOCK_STALE_SECONDS="20",
    )
    return folder


def _schedule_file(folder: Path, name: str, **fields: Any) -> Path:
    data = {"name": name, "task": "vergunningen-invoeren", "calendar": EVERY_DAY, **fields}
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(data, default=str, indent=2), encoding="utf-8")
    return path


def test_validate_list_and_schema(klerk: Klerk) -> None:
    folder = _klerk_env(klerk)
    (folder / "ochtend.yaml").write_text(
        "name: ochtend\n"
        "task: vergunningen-invoeren\n"
        "trigger:\n"
        "  cron: {hour: 7}\n"
        "calender:\n"
        "  closing_days: [24-12-2026]\n"
        "overlap: wait\n",
        encoding="utf-8",
    )
    bad = klerk("schedule", "validate")
    assert bad.returncode == 2
    assert f"{folder / 'ochtend.yaml'}:5:1: unknown key 'calender'" in bad.stderr
    assert "did you mean 'calendar'?" in bad.stderr
    assert f"{folder / 'ochtend.yaml'}:7:10: overlap:" in bad.stderr

    text = (folder / "ochtend.yaml").read_text().replace("calender", "calendar")
    (folder / "ochtend.yaml").write_text(text.replace("wait", "queue"), encoding="utf-8")
    good = klerk("schedule", "validate")
    assert good.returncode == 0, good.stderr
    assert "ochtend.yaml: ok" in good.stdout

    listed = klerk("schedule", "list", "--from", "23-12-2026", "--json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    assert [moment[:16] for moment in entry["next"]] == [
        "2026-12-23T07:00",
        "2026-12-28T07:00",
        "2026-12-29T07:00",
        "2026-12-30T07:00",
        "2026-12-31T07:00",
    ]
    assert {"date": "2026-12-24", "reason": "sluitingsdag"} in entry["skipped_days"]
    assert {"date": "2026-12-25", "reason": "Eerste kerstdag"} in entry["skipped_days"]

    schema = klerk("schema", "--schedules")
    shipped = (ROOT / "schemas" / "schedule.schema.json").read_text(encoding="utf-8")
    assert json.loads(schema.stdout) == json.loads(shipped), "run: make schemas"

    shipped_check = klerk(
        "schedule", "validate", "--schedules", str(ROOT / "schedules" / "definitions")
    )
    assert shipped_check.returncode == 0, shipped_check.stderr


# --- helpers for the scheduler process ---------------------------------------------------------


@dataclass
class Serve:
    """`klerk serve` as a separate process, its log in a file."""

    process: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        """Everything it logged so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90) -> int:
        """Send `sig` and wait for it to exit; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"klerk serve did not stop:\n{self.text()}") from None


@contextmanager
def serving(klerk: Klerk, label: str = "serve") -> Iterator[Serve]:
    """Start `klerk serve` in the home of `klerk`; wait until it runs; stop it afterwards."""
    log = klerk.home / f"{label}.log"
    with log.open("wb") as stream:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "runner.py"), "serve"],
            cwd=klerk.home,
            env=klerk.env,
            stdout=stream,
            stderr=subprocess.STDOUT,
        )
    serve = Serve(process, log)
    try:
        _wait(lambda: "klerk serve is running" in serve.text(), 60, "serve to start", serve)
        yield serve
    finally:
        if process.poll() is None:
            serve.stop()


def _wait(check: Callable[[], Any], timeout: float, what: str, serve: Serve | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        if serve is not None and serve.process.poll() is not None:
            break
        time.sleep(0.25)
    log = serve.text() if serve else ""
    raise AssertionError(f"timed out waiting for {what}\n{log}")


@contextmanager
def book_of(klerk: Klerk) -> Iterator[ScheduleBook]:
    """The scheduler's tables in the database of `klerk` (read from this test process)."""
    url = klerk.env.get("KLERK_DATABASE_URL") or f"sqlite:///{klerk.home / 'var' / 'klerk.db'}"
    store = Store(url)
    try:
        yield ScheduleBook(store)
    finally:
        store.close()


def _fires(book: ScheduleBook, name: str) -> list[Fire]:
    return list(reversed(book.history(name, 500)))


def _runs(book: ScheduleBook) -> list[RunRecord]:
    return list(reversed(book.store.runs(None, 500)))


def _assert_no_overlap(runs: list[RunRecord]) -> None:
    spans = sorted((aware(r.started_at), aware(r.ended_at or r.started_at), r.id) for r in runs)
    for (_, end, first), (start, _, second) in itertools.pairwise(spans):
        assert start >= end, f"runs {first} and {second} overlap"


@dataclass
class Mailbox:
    """A local SMTP server (aiosmtpd) and the messages it received."""

    port: int
    messages: list[email.message.Message] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """An SMTP server on 127.0.0.1 in this test process."""
    box = Mailbox(_free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@dataclass
class Hook:
    """A webhook receiver on 127.0.0.1 and the JSON bodies it got."""

    url: str
    bodies: list[dict[str, Any]]


@pytest.fixture
def webhook() -> Iterator[Hook]:
    """An HTTP server in this test process that takes JSON POSTs."""
    bodies: list[dict[str, Any]] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Hook(f"http://127.0.0.1:{server.server_address[1]}/klerk", bodies)
    finally:
        server.shutdown()
        server.server_close()


def _smtp_env(klerk: Klerk, mailbox: Mailbox) -> None:
    klerk.env.update(
        KLERK_SMTP_HOST="127.0.0.1",
        KLERK_SMTP_PORT=str(mailbox.port),
        KLERK_SMTP_STARTTLS="false",
        KLERK_SMTP_SENDER="klerk@klerkdam.nl",
        KLERK_SMTP_RECIPIENTS="beheer@klerkdam.nl",
    )


def _entered(demo: DemoApp, prefix: str) -> list[str]:
    return sorted(
        p["aanvraagnummer"] for p in demo.permits() if p["aanvraagnummer"].startswith(prefix)
    )


# --- klerk serve -----------------------------------------------------------------------------


@pytest.mark.browser
@BOTH_STORES
def test_serve_fires_never_overlaps_notifies_and_obeys_pause(
    klerk: Klerk, demo_app: DemoApp, mailbox: Mailbox, webhook: Hook
) -> None:
    folder = _klerk_env(klerk)
    _smtp_env(klerk, mailbox)
    rows = aanvragen(3, seed=51, bad_rows=False, prefix="SC-")
    rows[2]["Kenteken"] = EXISTING_PLATE  # the app refuses this one: a run with an item not done
    write_intake(klerk.home / "intake" / "aanvragen.xlsx", rows)
    _schedule_file(
        folder,
        "elke-2s",
        trigger={"interval": {"seconds": 2}},
        input="intake/aanvragen.xlsx",
        notify={"webhook": webhook.url},
    )
    with serving(klerk) as serve, book_of(klerk) as book:
        assert "schedule elke-2s: added" in serve.text()
        _wait(
            lambda: any(f.outcome == "not_all_done" for f in _fires(book, "elke-2s")),
            90,
            "a fire's run to finish",
            serve,
        )
        # a run takes longer than the 2 s interval: the fires in between were skipped
        _wait(
            lambda: any(
                f.outcome == "skipped" and "still running" in f.reason
                for f in _fires(book, "elke-2s")
            ),
            30,
            "a skipped fire",
            serve,
        )
        assert _entered(demo_app, "SC-") == ["SC-00001", "SC-00002"]

        paused = klerk("schedule", "pause", "elke-2s", "--reason", "onderhoud")
        assert paused.returncode == 0, paused.stderr
        _wait(lambda: "schedule elke-2s: paused by" in serve.text(), 30, "the pause", serve)
        _wait(lambda: not book.unfinished(), 60, "the running fire to end", serve)
        paused_at = time.time()
        listed = klerk("schedule", "list")
        assert "paused by test: onderhoud" in listed.stdout
        time.sleep(5)
        assert all(aware(f.fired_at).timestamp() < paused_at for f in _fires(book, "elke-2s"))

        resumed = klerk("schedule", "resume", "elke-2s")
        assert resumed.returncode == 0, resumed.stderr
        _wait(
            lambda: any(aware(f.fired_at).timestamp() > paused_at for f in _fires(book, "elke-2s")),
            30,
            "a fire after resume",
            serve,
        )
        assert serve.stop() == 0
        _assert_no_overlap(_runs(book))
        assert all(r.started_by == "schedule:elke-2s" for r in _runs(book))
    # nothing entered twice, however many fires ran
    assert _entered(demo_app, "SC-") == ["SC-00001", "SC-00002"]

    assert mailbox.messages, "no e-mail about the run with an item not done"
    message = mailbox.messages[0]
    assert message["To"] == "beheer@klerkdam.nl"
    assert "[klerk] elke-2s: finished with items not done" in message["Subject"]
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    text = body.decode()
    assert "business error 1" in text and "done 2" in text
    assert "report.html" in text
    for row in rows:  # no personal data: no BSN, plate, name or key of any row
        for value in (row["BSN"], row["Kenteken"], row["Naam"], row["Aanvraagnummer"]):
            assert str(value) not in text
    assert webhook.bodies
    assert webhook.bodies[0]["event"] == "not_all_done"
    assert webhook.bodies[0]["counts"] == {"done": 2, "business_error": 1}
    assert webhook.bodies[0]["report"].endswith("report.html")
    assert str(rows[0]["BSN"]) not in json.dumps(webhook.bodies)


@contextmanager
def _started(command: list[str], klerk: Klerk) -> Iterator[subprocess.Popen[bytes]]:
    """A klerk process in the background, killed if the test leaves it running."""
    process = subprocess.Popen(
        command, cwd=klerk.home, env=klerk.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


@pytest.mark.browser
def test_manual_run_blocks_fires_skip_records_why_and_queue_waits(
    klerk: Klerk, demo_app: DemoApp
) -> None:
    folder = _klerk_env(klerk)
    demo_app.faults(latency_ms=250)
    manual_rows = aanvragen(4, seed=61, bad_rows=False, prefix="HM-")
    manual_input = write_intake(klerk.home / "handmatig.xlsx", manual_rows)
    write_intake(klerk.home / "gepland.xlsx", aanvragen(1, seed=62, bad_rows=False, prefix="GP-"))
    _schedule_file(folder, "overslaan", trigger={"interval": {"seconds": 2}}, input="gepland.xlsx")
    _schedule_file(
        folder,
        "wachten",
        trigger={"interval": {"seconds": 3}},
        input="gepland.xlsx",
        overlap="queue",
    )
    command = [sys.executable, str(ROOT / "runner.py"), "run", "vergunningen-invoeren"]
    (klerk.home / "var").mkdir()
    with (
        book_of(klerk) as book,
        _started([*command, "--input", str(manual_input)], klerk) as manual,
    ):
        _wait(lambda: book.store.lock_holder("vergunningen-invoeren"), 60, "the manual run")
        holder = book.store.lock_holder("vergunningen-invoeren")
        assert holder is not None
        manual_run = holder.run_id
        with serving(klerk) as serve:
            _wait(
                lambda: any(
                    f.outcome == "skipped" and manual_run in f.reason
                    for f in _fires(book, "overslaan")
                ),
                60,
                "a fire skipped because of the manual run",
                serve,
            )
            skipped = next(f for f in _fires(book, "overslaan") if manual_run in f.reason)
            assert "started by hand" in skipped.reason
            _wait(
                lambda: any(f.outcome == "queued" for f in _fires(book, "wachten")),
                30,
                "a queued fire",
                serve,
            )
            assert manual.wait(120) == 0
            _wait(
                lambda: any(
                    f.run_id and f.reason.startswith("waited") for f in _fires(book, "wachten")
                ),
                60,
                "the queued fire to start",
                serve,
            )
            _wait(
                lambda: [
                    f for f in _fires(book, "wachten") if f.run_id and f.outcome == "finished"
                ],
                90,
                "the queued fire to finish",
                serve,
            )
            assert serve.stop() == 0
        _assert_no_overlap(_runs(book))
    assert _entered(demo_app, "GP-") == ["GP-00001"]
    assert len(_entered(demo_app, "HM-")) == 4


@pytest.mark.browser
def test_restart_keeps_schedules_and_handles_missed_fires(klerk: Klerk) -> None:
    folder = _klerk_env(klerk)
    # no input file: every fire ends quickly (skipped), which is all this test needs
    _schedule_file(
        folder,
        "vaak",
        trigger={"interval": {"seconds": 2}},
        input="bestaat-niet.xlsx",
        if_input_missing="skip",
    )
    _schedule_file(folder, "ooit", trigger={"date": "2031-01-06T07:00:00"})
    with serving(klerk, "first") as first, book_of(klerk) as book:
        assert "schedule vaak: added" in first.text()
        _wait(lambda: _fires(book, "vaak"), 30, "a first fire", first)
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
        killed_at = time.time()
        paused = klerk("schedule", "pause", "ooit")
        assert "klerk serve is not running" in paused.stdout
        time.sleep(max(0.0, 5 - (time.time() - killed_at)))
        with serving(klerk, "second") as second:
            log = second.text()
            assert "added" not in log  # the job store kept both schedules
            assert "due while klerk serve was down" in log
            assert "schedule ooit: paused" in log
            coalesced = _wait(
                lambda: [f for f in _fires(book, "vaak") if "coalesced" in f.reason],
                30,
                "the coalesced fires in the history",
                second,
            )
            assert coalesced[0].outcome == "missed"
            _wait(
                lambda: [
                    f
                    for f in _fires(book, "vaak")
                    if aware(f.fired_at).timestamp() > killed_at
                    and "bestaat-niet.xlsx is not there" in f.reason
                ],
                30,
                "a fire after the restart",
                second,
            )
            assert second.stop() == 0
    history = klerk("schedule", "history", "vaak")
    assert history.returncode == 0, history.stderr
    assert "missed" in history.stdout and "skipped" in history.stdout


@pytest.mark.browser
def test_sigterm_during_a_run_leaves_it_resumable(klerk: Klerk, demo_app: DemoApp) -> None:
    folder = _klerk_env(klerk)
    demo_app.faults(latency_ms=200)
    rows = aanvragen(6, seed=71, bad_rows=False, prefix="ST-")
    write_intake(klerk.home / "aanvragen.xlsx", rows)
    _schedule_file(
        folder, "eenmalig", trigger={"date": "2031-01-06T07:00:00"}, input="aanvragen.xlsx"
    )
    with serving(klerk) as serve, book_of(klerk) as book:
        asked = klerk("schedule", "run-now", "eenmalig")
        assert asked.returncode == 0, asked.stderr
        assert "asked klerk serve" in asked.stdout
        fire = _wait(
            lambda: next((f for f in _fires(book, "eenmalig") if f.run_id), None),
            60,
            "the run-now fire",
            serve,
        )
        _wait(lambda: book.store.counts(fire.run_id).get("done", 0) >= 1, 90, "a first item", serve)
        assert serve.stop(signal.SIGTERM) == 0
        assert "passing SIGTERM #1" in serve.text()
        record = book.store.run(fire.run_id)
        assert record is not None and record.state == "interrupted"
        counts = book.store.counts(fire.run_id)
        assert "running" not in counts and counts.get("pending", 0) >= 1, counts
        ended = book.fire(fire.id)
        assert ended is not None and ended.outcome == "interrupted"
        assert f"klerk resume {fire.run_id}" in ended.reason
    resumed = klerk("resume", fire.run_id)
    assert resumed.returncode == 0, resumed.stderr
    assert _entered(demo_app, "ST-") == [r["Aanvraagnummer"] for r in rows]


def test_run_now_without_serve_runs_here_and_mails_a_failure(
    klerk: Klerk, mailbox: Mailbox
) -> None:
    folder = _klerk_env(klerk)
    _smtp_env(klerk, mailbox)
    _schedule_file(
        folder,
        "ontbreekt",
        trigger={"cron": {"hour": 7}},
        input="intake-{{ today.strftime('%Y%m%d') }}.xlsx",
        notify={"email": ["team@klerkdam.nl"]},
    )
    result = klerk("schedule", "run-now", "ontbreekt")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "firing it here, in the foreground" in result.stdout
    assert "failed" in result.stdout
    today = dt.datetime.now(AMS).strftime("%Y%m%d")
    assert f"intake-{today}.xlsx is not there" in result.stdout
    (message,) = mailbox.messages
    assert message["Subject"] == "[klerk] ontbreekt: failed"
    assert message["To"] == "team@klerkdam.nl, beheer@klerkdam.nl"

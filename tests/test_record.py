"""`klerk record`: a scripted browser session (real, trusted input over CDP) becomes a task
definition that validates and then enters other rows in the app."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.async_api import async_playwright
from playwright.sync_api import Browser, Frame, Page, expect, sync_playwright

from bots.browser import CHROMIUM_ARGS, choose_browser
from bots.locating import locate
from bots.recorder import BINDING, page_script
from connectors.xlsx import XlsxSink
from demo.afval import AFVAL_PASSWORD, AFVAL_USERNAME
from demo.afval_sample import HEADERS as AFVAL_HEADERS
from demo.afval_sample import containeraanvragen
from demo.app import DEMO_PASSWORD
from demo.sample import aanvragen
from demo.server import AfvalServer
from tasks.definition import Locator, SinkSpec
from tests.conftest import ROOT, DemoApp, Klerk, write_intake

pytestmark = pytest.mark.browser

READY = "recording:"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Recorder:
    """`klerk record` running in the background, its output in a file."""

    def __init__(self, klerk: Klerk, *args: str) -> None:
        self.port = free_port()
        self.log = klerk.home / f"record-{self.port}.log"
        self._output = self.log.open("w")
        self.process = klerk.start(
            "record", *args, "--cdp-port", str(self.port), output=self._output
        )

    def output(self) -> str:
        """What it printed so far (standard output and error)."""
        return self.log.read_text()

    def wait_until_ready(self, timeout: float = 60) -> None:
        """Until it says it records (or fails)."""
        deadline = time.monotonic() + timeout
        while READY not in self.output():
            assert self.process.poll() is None, f"klerk record stopped:\n{self.output()}"
            assert time.monotonic() < deadline, f"klerk record not ready:\n{self.output()}"
            time.sleep(0.05)

    def finish(self, timeout: float = 60) -> str:
        """Wait for it to write the definition and exit; what it printed."""
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            self._output.close()
        assert code == 0, self.output()
        return self.output()

    def stop(self) -> None:
        """Kill it if a test left it running."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._output.close()


@pytest.fixture
def recorders() -> Iterator[list[Recorder]]:
    """The recorders a test starts; none outlives it."""
    started: list[Recorder] = []
    yield started
    for recorder in started:
        recorder.stop()


@contextmanager
def driving(recorder: Recorder, url: str) -> Iterator[tuple[Browser, Page]]:
    """Connect to the recording browser over CDP, as a person's hands: its page at `url`."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{recorder.port}")
        pages = [page for context in browser.contexts for page in context.pages]
        page = next(page for page in pages if page.url.startswith(url))
        page.set_default_timeout(10_000)
        yield browser, page


def frame(page: Page, name: str) -> Frame:
    """The frame of the frameset called `name`."""
    found = page.frame(name=name)
    assert found is not None, f"no frame {name!r} on {page.url}"
    return found


def in_main(kind: str, **args: Any) -> dict[str, Any]:
    """A step on an element in the work frame (`main`) of the frameset."""
    return {kind: {**args, "frame": "main"}}


def steps_of(path: Path) -> list[dict[str, Any]]:
    """The steps of a definition file, as YAML reads them."""
    steps: list[dict[str, Any]] = yaml.safe_load(path.read_text())["steps"]
    return steps


def test_a_recorded_permit_application_enters_other_rows(
    klerk: Klerk, demo_app: DemoApp, recorders: list[Recorder]
) -> None:
    rows = aanvragen(4, seed=71, bad_rows=False, prefix="REC-")
    sample = write_intake(klerk.home / "sample.xlsx", rows[:1])
    others = write_intake(klerk.home / "other-rows.xlsx", rows[1:])
    definition = klerk.home / "opname.yaml"
    recorder = Recorder(
        klerk, "/", "--app", "parkeren", "--headless", "--input", str(sample),
        "--out", str(definition),
    )  # fmt: skip
    recorders.append(recorder)
    recorder.wait_until_ready()

    row = rows[0]
    start = row["Ingangsdatum"]
    typed_date = start.strftime("%d-%m-%Y") if isinstance(start, dt.date) else str(start)
    with driving(recorder, demo_app.url) as (_browser, page):
        frame(page, "menu").get_by_role("link", name="Nieuwe aanvraag").click()
        main = frame(page, "main")
        main.wait_for_url("**/vergunningen/nieuw")
        main.get_by_label("Aanvraagnummer").fill(row["Aanvraagnummer"])
        main.get_by_label("BSN").click()
        main.get_by_label("BSN").press_sequentially(row["BSN"])  # key by key: one step
        main.get_by_label("Kenteken").fill(row["Kenteken"])
        main.get_by_label("Zone").select_option(label=row["Zone"])
        main.get_by_label("Ingangsdatum").click()
        main.get_by_label("Ingangsdatum").fill(typed_date)
        main.get_by_label(row["Soort"].capitalize(), exact=True).check()
        main.get_by_label("Ik verklaar").check()
        main.get_by_role("button", name="Aanvragen").click()
        expect(main.get_by_text("Uw aanvraag is ontvangen")).to_be_visible()
        page.close()
    printed = recorder.finish()

    text = definition.read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    assert "# Recorded with `klerk record`" in text
    assert steps_of(definition) == [
        {"goto": "/"},
        {"click": {"role": "link", "name": "Nieuwe aanvraag", "frame": "menu"}},
        in_main("fill", label="Aanvraagnummer", value="{{ item.aanvraagnummer }}"),
        in_main("fill", label="BSN", value="{{ item.bsn }}"),
        in_main("fill", label="Kenteken", value="{{ item.kenteken }}"),
        in_main("select", label="Zone", value="{{ item.zone }}"),
        in_main("fill", label="Ingangsdatum", value="{{ item.ingangsdatum | dmy }}"),
        in_main("check", label="{{ item.soort | capitalize }}"),
        in_main("check", label="Ik verklaar dat de gegevens naar waarheid zijn ingevuld"),
        in_main("click", role="button", name="Aanvragen"),
    ]
    source = yaml.safe_load(text)["source"]
    assert source["key"] == "aanvraagnummer" and source["subject"] == "bsn"
    assert source["columns"]["bsn"] == "bsn" and source["columns"]["ingangsdatum"] == "date"
    for secret in (row["BSN"], DEMO_PASSWORD):
        assert secret not in text
        assert secret not in printed
    assert "warning" not in printed

    assert klerk("validate", str(definition)).returncode == 0
    result = klerk("run", str(definition), "--input", str(others))
    assert result.returncode == 0, result.stdout + result.stderr
    entered = [permit["aanvraagnummer"] for permit in demo_app.permits()]
    for each in rows:
        assert entered.count(each["Aanvraagnummer"]) == 1, each["Aanvraagnummer"]


@pytest.fixture
def afval() -> Iterator[AfvalServer]:
    """Afvalcontainers on a free port."""
    with AfvalServer(port=0) as server:
        yield server


def test_a_legacy_form_is_recorded_by_captions_in_frames_with_widgets_and_upload(
    klerk: Klerk, afval: AfvalServer, recorders: list[Recorder], tmp_path: Path
) -> None:
    row = containeraanvragen(5, seed=3)[4]  # a row that names an attachment
    sample = write_afval_sample(tmp_path / "containers.xlsx", row)
    photo = tmp_path / row["Bijlage"]
    photo.write_bytes(b"\xff\xd8\xff\xe0" + b"standplaats" * 50)
    definition = klerk.home / "afval.yaml"
    recorder = Recorder(
        klerk, afval.url + "/login", "--headless", "--input", str(sample), "--out", str(definition)
    )
    recorders.append(recorder)
    recorder.wait_until_ready()

    def caption(scope: Page | Frame, text: str) -> Any:
        cell = f"//td[normalize-space()='{text}']/following-sibling::td[1]"
        return scope.locator(f"xpath={cell}//input[not(@type='hidden')]")

    with driving(recorder, afval.url) as (_browser, page):
        caption(page, "Gebruiker").fill(AFVAL_USERNAME)
        caption(page, "Wachtwoord").fill(AFVAL_PASSWORD)
        page.get_by_role("button", name="Aanmelden").click()
        page.wait_for_url(afval.url + "/")
        frame(page, "menu").get_by_role("link", name="Container aanvragen").click()
        main = frame(page, "main")
        main.wait_for_url("**/aanvraag")
        caption(main, "Aanvraagnummer").fill(row["Aanvraagnummer"])
        caption(main, "Straat en huisnummer").fill(row["Adres"])
        caption(main, "Postcode").fill(row["Postcode"])
        main.get_by_role("combobox").click()
        main.get_by_role("option", name=row["Container"]).click()
        caption(main, "Gewenste leverdatum").click()  # the calendar opens
        main.locator(".kalender").get_by_role("link", name=">>").click()
        main.locator(".kalender").get_by_role("link", name="15", exact=True).click()
        picked = caption(main, "Gewenste leverdatum").input_value()
        caption(main, "Bijlage (foto of PDF)").set_input_files(photo)
        main.get_by_role("button", name="Indienen").click()
        main.get_by_role("button", name="Ja, indienen").click()
        expect(main.locator(".zaaknummer")).to_be_visible()
        page.close()
    printed = recorder.finish()

    assert steps_of(definition) == [
        {"goto": afval.url + "/login"},
        {"fill": {"next_to": "Gebruiker", "value": AFVAL_USERNAME}},
        {"fill": {"next_to": "Wachtwoord", "value": "{{ credentials.password }}"}},
        {"click": {"role": "button", "name": "Aanmelden"}},
        {"click": {"role": "link", "name": "Container aanvragen", "frame": "menu"}},
        in_main("fill", next_to="Aanvraagnummer", value="{{ item.aanvraagnummer }}"),
        in_main("fill", next_to="Straat en huisnummer", value="{{ item.adres }}"),
        in_main("fill", next_to="Postcode", value="{{ item.postcode }}"),
        in_main("select", next_to="Soort container", value="{{ item.container }}"),
        in_main("fill", next_to="Gewenste leverdatum", value=picked),
        in_main("upload", next_to="Bijlage (foto of PDF)", file="{{ item.bijlage }}"),
        in_main("click", role="button", name="Indienen"),
        in_main("click", role="button", name="Ja, indienen"),
    ]
    assert AFVAL_PASSWORD not in definition.read_text() + printed
    with urllib.request.urlopen(afval.url + "/api/aanvragen", timeout=10) as answer:
        stored = [r for r in json.load(answer) if r["aanvraagnummer"] == row["Aanvraagnummer"]]
    assert len(stored) == 1 and stored[0]["bijlage_naam"] == row["Bijlage"]


def write_afval_sample(path: Path, row: dict[str, str]) -> Path:
    """One row of the Afvalcontainers intake, written as the tutorial writes it."""
    spec = SinkSpec(kind="xlsx", path=str(path), sheet="Aanvragen")
    return XlsxSink(spec, path).write(AFVAL_HEADERS, [row])


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed")
def test_without_a_screen_the_browser_is_shown_on_xvfb_and_ctrl_c_writes_the_steps(
    klerk: Klerk, demo_app: DemoApp, recorders: list[Recorder]
) -> None:
    headless_server = Klerk(klerk.home, {k: v for k, v in klerk.env.items() if k != "DISPLAY"})
    definition = klerk.home / "zoeken.yaml"
    recorder = Recorder(
        headless_server, "/vergunningen", "--app", "parkeren", "--out", str(definition)
    )
    recorders.append(recorder)
    recorder.wait_until_ready()
    shown_on = next(line for line in recorder.output().splitlines() if "(Xvfb)" in line)
    display = shown_on.split("virtual display ")[1].split()[0]

    bsn = "111222333"  # passes the elfproef: a BSN typed where no column maps it
    with driving(recorder, demo_app.url) as (browser, page):
        assert "Headless" not in page.evaluate("navigator.userAgent")
        page.get_by_label("Aanvraagnummer").fill(bsn)
        page.get_by_label("Kenteken").fill("HX-441-B")
        page.get_by_label("Kenteken").press("Enter")
        expect(page.get_by_text("Geen vergunningen gevonden")).to_be_visible()
        browser.close()  # the connection only: the recording goes on
    time.sleep(0.3)
    assert recorder.process.poll() is None
    recorder.process.send_signal(signal.SIGINT)
    printed = recorder.finish()

    assert steps_of(definition) == [
        {"goto": "/vergunningen"},
        {"fill": {"label": "Aanvraagnummer", "value": bsn}},
        {"fill": {"label": "Kenteken", "value": "HX-441-B"}},
        {"press": {"label": "Kenteken", "key": "Enter"}},
    ]
    assert "step 2 (fill label 'Aanvraagnummer') keeps a literal value that looks like" in (
        " ".join(printed.split())
    )
    assert bsn not in printed
    assert not Path(f"/tmp/.X{display.lstrip(':')}-lock").exists()  # Xvfb stopped again


def test_without_a_screen_or_xvfb_it_says_what_to_install(klerk: Klerk, tmp_path: Path) -> None:
    env = {k: v for k, v in klerk.env.items() if k != "DISPLAY"}
    env["PATH"] = str(tmp_path)  # no Xvfb on it
    result = subprocess.run(
        [sys.executable, str(ROOT / "runner.py"), "record", "/", "--app", "parkeren"],
        cwd=klerk.home, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "apt-get install xvfb" in result.stderr
    assert "--headless" in result.stderr
    assert not list(klerk.home.glob("*.yaml"))


def test_an_existing_file_is_not_overwritten_without_force(klerk: Klerk) -> None:
    existing = klerk.home / "parkeren-opname.yaml"
    existing.write_text("# mine\n")
    result = klerk("record", "/", "--app", "parkeren", "--headless")
    assert result.returncode == 2
    assert "--force" in result.stderr
    assert existing.read_text() == "# mine\n"


def test_a_map_to_a_column_the_sample_lacks_is_refused_before_the_browser_opens(
    klerk: Klerk,
) -> None:
    sample = write_intake(klerk.home / "sample.xlsx", aanvragen(1, bad_rows=False))
    result = klerk(
        "record", "/", "--app", "parkeren", "--input", str(sample), "--map", "A - Centrum=zones"
    )
    assert result.returncode == 2
    assert "no such column in" in result.stderr
    assert "did you mean 'zone'?" in result.stderr


NAMING_PAGE = """<html><body>
<table>
<tr><td><b>Postcode:</b></td><td><input name="pc_{token}" data-t="pc"></td></tr>
<tr><td>Postcode correspondentie</td><td><input name="pc2_{token}" data-t="pc2"></td></tr>
</table>
<label>Straat <input data-t="straat1"></label> <label>Straat <input data-t="straat2"></label>
<table>
<tr><th>Zaak</th><th>Actie</th></tr>
<tr><td>Z-1</td><td><a href="#1" data-t="z1">Bekijken</a></td></tr>
<tr><td>Z-10</td><td><a href="#10" data-t="z10">Bekijken</a></td></tr>
</table>
<input placeholder="Zoek op zaaknummer" data-t="zoek">
<input id="f{token}" data-t="kaal">
<div onclick="void 0" data-t="meer"><span>Meer opties</span></div>
</body></html>"""


def test_the_page_script_names_each_element_so_that_a_run_finds_that_element() -> None:
    """What the recorder writes, looked up the way a run looks it up, is the element used."""

    async def record() -> list[tuple[str, dict[str, Any]]]:
        async with async_playwright() as playwright:
            choice = choose_browser(playwright.chromium.executable_path)
            assert choice is not None
            browser = await playwright.chromium.launch(
                executable_path=choice.executable, args=list(CHROMIUM_ARGS)
            )
            context = await browser.new_context()
            events: list[dict[str, Any]] = []
            await context.expose_binding(BINDING, lambda _source, event: events.append(event))
            await context.add_init_script(page_script())
            page = await context.new_page()
            html = NAMING_PAGE.replace("{token}", secrets.token_hex(3))
            await page.route("http://naming.test/", lambda route: route.fulfill(body=html))
            await page.goto("http://naming.test/")
            for target in ("pc", "pc2", "straat2", "zoek", "kaal"):
                await page.locator(f"[data-t={target}]").fill("x")
            for target in ("z1", "z10", "meer"):
                await page.locator(f"[data-t={target}]").click()
            await page.wait_for_timeout(100)
            named = []
            for event in events:
                if event["kind"] in ("fill", "click"):
                    found = locate(page, page, Locator(**event["locator"]))
                    used = await found.evaluate("el => el.closest('[data-t]').dataset.t")
                    named.append((used, event["locator"]))
            await browser.close()
            return named

    named = asyncio.run(record())
    assert [used for used, _locator in named] == [
        "pc", "pc2", "straat2", "zoek", "kaal", "z1", "z10", "meer",
    ]  # fmt: skip
    assert [locator for _used, locator in named] == [
        {"next_to": "Postcode:", "exact": True},
        {"next_to": "Postcode correspondentie"},
        {"label": "Straat", "nth": 1},
        {"placeholder": "Zoek op zaaknummer"},
        {"css": "input", "nth": 5},
        {"role": "link", "name": "Bekijken", "in_row_with": "Z-1"},
        {"role": "link", "name": "Bekijken", "in_row_with": "Z-10"},
        {"text": "Meer opties"},
    ]

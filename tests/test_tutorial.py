"""docs/new-application.md, done literally: its files written, its `$ klerk` commands run in
its order against the Afvalcontainers demo app (the recording driven by a scripted browser
session), and what the app stored checked. The tutorial cannot drift from the product."""

from __future__ import annotations

import json
import re
import shlex
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from playwright.sync_api import Frame, Locator, expect

from demo.server import AfvalServer
from tests.conftest import ROOT, Klerk, read_results
from tests.test_record import Recorder, driving, frame, steps_of

pytestmark = pytest.mark.browser

TUTORIAL = ROOT / "docs" / "new-application.md"
_BLOCK = re.compile(
    r"(?:<!-- (?P<mark>file|recorded): (?P<path>\S+) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```",
    re.DOTALL,
)


@dataclass(frozen=True)
class Part:
    """One thing the tutorial has the reader do: write a file, run a command, or compare what
    the recorder wrote with what the page shows."""

    kind: str  # "file", "recorded" or "command"
    path: str
    text: str


def tutorial_parts(text: str) -> list[Part]:
    """The files, recorded results and `$ klerk` commands of the tutorial, in its order."""
    parts = []
    for block in _BLOCK.finditer(text):
        if block["mark"]:
            parts.append(Part(block["mark"], block["path"], block["body"]))
        elif block["lang"] == "console":
            parts.extend(
                Part("command", "", line[2:].strip())
                for line in block["body"].splitlines()
                if line.startswith("$ klerk ")
            )
    return parts


def test_the_tutorial_names_its_files_and_commands() -> None:
    parts = tutorial_parts(TUTORIAL.read_text(encoding="utf-8"))
    files = [p.path for p in parts if p.kind == "file"]
    commands = [shlex.split(p.text)[1] for p in parts if p.kind == "command"]
    assert files == ["apps/containers.yaml", ".env", "containers-invoeren.yaml"]
    assert commands == ["demo-app", "validate", "sample", "record", "validate", "try", "run"]
    assert [p.path for p in parts if p.kind == "recorded"] == ["containers-invoeren.yaml"]


@pytest.fixture
def afval() -> Iterator[AfvalServer]:
    """Afvalcontainers on a free port: the tutorial's application."""
    with AfvalServer(port=0) as server:
        yield server


def _stored(afval: AfvalServer) -> list[dict[str, Any]]:
    with urllib.request.urlopen(afval.url + "/api/aanvragen", timeout=10) as answer:
        stored: list[dict[str, Any]] = json.load(answer)
    return stored


def _reset(afval: AfvalServer) -> None:
    request = urllib.request.Request(afval.url + "/api/reset", method="POST", data=b"")
    urllib.request.urlopen(request, timeout=10).close()


def _record_as_the_tutorial_says(klerk: Klerk, afval: AfvalServer, args: list[str]) -> None:
    """`klerk record ...` as the page gives it, with the hands of a clerk over CDP: the first
    row of the sample typed in, the container chosen, sent and confirmed, the window closed."""
    (row, *_rest) = read_results(klerk.home / "containers.xlsx")
    recorder = Recorder(klerk, *args, "--headless")
    try:
        recorder.wait_until_ready()
        with driving(recorder, afval.url) as (_browser, page):
            frame(page, "menu").get_by_role("link", name="Container aanvragen").click()
            main = frame(page, "main")
            main.wait_for_url("**/aanvraag")
            _caption(main, "Aanvraagnummer").fill(row["Aanvraagnummer"])
            _caption(main, "Straat en huisnummer").fill(row["Adres"])
            _caption(main, "Postcode").fill(row["Postcode"])
            main.get_by_role("combobox").click()
            main.get_by_role("option", name=row["Container"], exact=True).click()
            _caption(main, "Gewenste leverdatum").fill(row["Leverdatum"])
            main.get_by_role("button", name="Indienen", exact=True).click()
            main.get_by_role("button", name="Ja, indienen").click()
            expect(main.locator(".zaaknummer")).to_be_visible()
            page.close()
        printed = recorder.finish()
    finally:
        recorder.stop()
    assert "Afval-Demo-2026!" not in printed


def _caption(scope: Frame, text: str) -> Locator:
    cell = f"//td[normalize-space()='{text}']/following-sibling::td[1]"
    return scope.locator(f"xpath={cell}//input[not(@type='hidden')]")


def test_the_tutorial_automates_afvalcontainers_as_written(
    klerk: Klerk, afval: AfvalServer
) -> None:
    klerk.env["KLERK_APP_URL"] = afval.url  # the tutorial's base_url is port 8651
    seeded = len(_stored(afval))
    done: list[str] = []
    for part in tutorial_parts(TUTORIAL.read_text(encoding="utf-8")):
        if part.kind == "file":
            target = klerk.home / part.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(part.text, encoding="utf-8")
        elif part.kind == "recorded":
            shown = yaml.safe_load(part.text)["steps"]
            assert steps_of(klerk.home / part.path) == shown
            _reset(afval)  # "stop the demo application and start it again"
        else:
            args = shlex.split(part.text)[1:]
            if args[0] == "demo-app":
                continue  # the test's own Afvalcontainers runs already
            if args[0] == "record":
                _record_as_the_tutorial_says(klerk, afval, args[1:])
            else:
                result = klerk(*args)
                assert result.returncode == 0, f"$ {part.text}\n{result.stdout}{result.stderr}"
                if args[0] == "try":
                    assert "stopped before Bevestigen" in result.stdout, result.stdout
                    assert len(_stored(afval)) == seeded  # nothing sent
            done.append(args[0])
    assert done == ["validate", "sample", "record", "validate", "try", "run"]

    rows = read_results(klerk.home / "containers.xlsx")
    stored = {r["aanvraagnummer"]: r for r in _stored(afval)[seeded:]}
    assert Counter(r["aanvraagnummer"] for r in _stored(afval)[seeded:]) == Counter(
        {row["Aanvraagnummer"]: 1 for row in rows}
    )
    for row in rows:
        request = stored[row["Aanvraagnummer"]]
        assert (request["container"], request["leverdatum"]) == (
            row["Container"],
            row["Leverdatum"],
        )
        if row["Bijlage"]:
            photo = klerk.home / row["Bijlage"]
            assert (request["bijlage_naam"], request["bijlage_grootte"]) == (
                row["Bijlage"],
                photo.stat().st_size,
            )
        else:
            assert not request["bijlage_naam"]
    results = read_results(klerk.home / "containers-resultaten.xlsx")
    assert [(r["status"], r["zaaknummer"]) for r in results] == [
        ("done", stored[r["Aanvraagnummer"]]["zaaknummer"]) for r in results
    ]


def test_a_row_stored_before_a_failure_is_found_by_the_tutorials_look_up(
    klerk: Klerk, afval: AfvalServer
) -> None:
    """The tutorial's `already_done` pages through the list: a row stored just before a step
    failed is found there, on a later page than the first, and not entered twice."""
    for part in tutorial_parts(TUTORIAL.read_text(encoding="utf-8")):
        if part.kind == "file":
            target = klerk.home / part.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(part.text, encoding="utf-8")
    klerk.env["KLERK_APP_URL"] = afval.url
    assert klerk("sample", "containers.xlsx", "--app", "afval", "--rows", "14").returncode == 0
    task = klerk.home / "containers-invoeren.yaml"
    extract = "        - extract:\n            zaaknummer: {css: .zaaknummer}\n"
    # for the last row, a step after the submit that fails: the row is stored, the item is not
    failing = (
        "        - when: item.aanvraagnummer == 'CA-2026-00014'\n"
        "          wait_for: {text: Nooit getoond, timeout_ms: 200}\n"
    )
    text = task.read_text(encoding="utf-8")
    assert text.count(extract) == 1
    task.write_text(text.replace(extract, extract + failing), encoding="utf-8")
    seeded = len(_stored(afval))

    result = klerk("run", str(task), "--input", "containers.xlsx")

    assert result.returncode == 0, result.stdout + result.stderr
    stored = _stored(afval)
    numbers = Counter(r["aanvraagnummer"] for r in stored[seeded:])
    assert numbers == Counter({f"CA-2026-{n:05d}": 1 for n in range(1, 15)})
    assert len(stored) > 10  # the list has a second page, where the row is
    last = read_results(klerk.home / "containers-resultaten.xlsx")[-1]
    assert (last["status"], last["melding"]) == ("done", "al ingevoerd (gevonden bij controle)")
    assert last["zaaknummer"] == stored[-1]["zaaknummer"]  # read from its row in the list

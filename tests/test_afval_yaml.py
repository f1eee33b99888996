"""The second demo app, Afvalcontainers, automated from its app and task definitions: real
`klerk run`s in real Chromium against the app on a free port, checked in the app's own
`GET /api/aanvragen`. Its frameset, captions in cells instead of labels, input names new on
every load, div drop-down, calendar field, upload and modal are all in the way of every row."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from demo.afval import AFVAL_PASSWORD, AFVAL_USERNAME, SESSION_LIFETIME
from demo.afval_sample import HEADERS, attachment, containeraanvragen, write_attachments
from demo.server import AfvalServer
from tests.conftest import (
    ROOT,
    DemoApp,
    Klerk,
    _klerk,
    read_results,
    stand_still,
    write_intake,
)

pytestmark = pytest.mark.browser

SHIPPED_TASK = ROOT / "tasks" / "definitions" / "afval-aanvragen.yaml"
SEED_REQUESTS = 23
RESULTS = "aanvragen-resultaten.xlsx"


class Afval(DemoApp):
    """Afvalcontainers and its test endpoints."""

    def requests(self) -> list[dict[str, Any]]:
        """Every stored request, the seed requests first."""
        result: list[dict[str, Any]] = self._call("GET", "/api/aanvragen")
        return result

    def entered(self, prefix: str) -> Counter[str]:
        """How often each aanvraagnummer starting with `prefix` is stored."""
        return Counter(
            r["aanvraagnummer"] for r in self.requests() if r["aanvraagnummer"].startswith(prefix)
        )

    def sessions_expired(self) -> int:
        """How many sessions the app has ended for being idle."""
        return int(self._call("GET", "/api/health")["sessions_expired"])

    def reset(self) -> None:
        """Back to the seed requests, the usual session lifetime and no crashes."""
        self._call("POST", "/api/reset")
        self._call("POST", "/api/faults", {"session_lifetime": SESSION_LIFETIME, "http_500": {}})


@pytest.fixture(scope="module")
def afval() -> Iterator[Afval]:
    """Afvalcontainers on a free port of 127.0.0.1, for this module."""
    with AfvalServer(port=0) as server:
        yield Afval(server.url)


@pytest.fixture
def klerk(tmp_path: Path, afval: Afval) -> Klerk:
    """The CLI in a fresh home folder, pointed at Afvalcontainers (back at its seed requests)
    with its credentials."""
    afval.reset()
    home = tmp_path / "home"
    home.mkdir()
    klerk = _klerk(home, afval.url)
    klerk.env.update(
        KLERK_CRED_AFVAL_USERNAME=AFVAL_USERNAME, KLERK_CRED_AFVAL_PASSWORD=AFVAL_PASSWORD
    )
    return klerk


def _intake(klerk: Klerk, rows: list[dict[str, Any]]) -> Path:
    """The intake workbook in the home folder, with the attachments it names beside it."""
    write_attachments(rows, klerk.home)
    return write_intake(klerk.home / "aanvragen.xlsx", rows, headers=HEADERS)


def _trail(klerk: Klerk, name: str) -> list[dict[str, Any]]:
    """The attributes of the records called `name` in the trails of every run in the home."""
    trails = (klerk.home / "runs").glob("*/audit.jsonl")
    lines = [line for trail in trails for line in trail.read_text(encoding="utf-8").splitlines()]
    records = [json.loads(line) for line in lines]
    return [r["attributes"] for r in records if r["name"] == name]


def test_requests_are_entered_once_and_one_the_run_lost_is_found_on_an_earlier_page(
    klerk: Klerk, afval: Afval
) -> None:
    rows = containeraanvragen(10, seed=41, prefix="YA-")
    rows[3]["Aanvraagnummer"] = "CA-2025-0004"  # a seed request: the app refuses it again
    intake = _intake(klerk, rows)
    # the first run loses the first row's zaaknummer after the app stored it, and gives up
    lost = "'.zaaknummer' if item.aanvraagnummer != 'YA-00001' else '.geen-zaaknummer'"
    variant = klerk.home / "kwijt.yaml"
    variant.write_text(
        SHIPPED_TASK.read_text(encoding="utf-8")
        .replace("zaaknummer: {css: .zaaknummer}", f'zaaknummer: {{css: "{{{{ {lost} }}}}"}}')
        .replace("retry: {attempts: 5,", "retry: {attempts: 1,")
        .replace("- extract:\n", "- timeout_ms: 500\n          extract:\n"),
        encoding="utf-8",
    )

    first = klerk("run", str(variant), "--input", str(intake))

    assert first.returncode == 1, first.stdout + first.stderr
    good = [row for row in rows if row["Aanvraagnummer"].startswith("YA-")]
    assert afval.entered("YA-") == Counter({row["Aanvraagnummer"]: 1 for row in good})
    assert afval.entered("CA-2025-0004") == Counter({"CA-2025-0004": 1})  # only the seed
    stored = {r["aanvraagnummer"]: r for r in afval.requests()}
    for row in good:
        name = row["Bijlage"]
        assert stored[row["Aanvraagnummer"]] == {
            "zaaknummer": stored[row["Aanvraagnummer"]]["zaaknummer"],
            "aanvraagnummer": row["Aanvraagnummer"],
            "adres": row["Adres"],
            "postcode": row["Postcode"],
            "container": row["Container"],  # chosen in the drop-down of divs
            "leverdatum": row["Leverdatum"],  # typed into the calendar field
            "bijlage_naam": name,
            "bijlage_grootte": len(attachment(name)) if name else 0,
        }
    assert sum(1 for row in good if row["Bijlage"]) == 2  # rows 5 and 10 upload a file
    results = read_results(klerk.home / RESULTS)
    assert [r["Aanvraagnummer"] for r in results] == [r["Aanvraagnummer"] for r in rows]
    odd = {0: "system_error", 3: "business_error"}
    assert [r["status"] for r in results] == [odd.get(n, "done") for n in range(10)]
    assert results[3]["melding"] == "Aanvraag CA-2025-0004 is al geregistreerd"
    for result in results[1:3] + results[4:]:
        assert result["zaaknummer"] == stored[result["Aanvraagnummer"]]["zaaknummer"]

    # 23 seed requests + 9: the look-up reads pages 1 and 2 of the list and finds it on page 3
    again = klerk("run", "afval-aanvragen", "--input", str(intake))

    assert again.returncode == 1, again.stdout + again.stderr
    assert afval.entered("YA-") == Counter({row["Aanvraagnummer"]: 1 for row in good})
    results = read_results(klerk.home / RESULTS)
    assert (results[0]["status"], results[0]["melding"], results[0]["zaaknummer"]) == (
        "done",
        "al ingevoerd (gevonden bij controle)",
        stored["YA-00001"]["zaaknummer"],
    )
    assert stored["YA-00001"]["zaaknummer"] == "AFV-2026-00024"
    odd = {0: "done", 3: "business_error"}
    assert [r["status"] for r in results] == [odd.get(n, "skipped") for n in range(10)]


def test_the_list_is_read_from_every_page(klerk: Klerk, afval: Afval) -> None:
    target = klerk.home / "overzicht.xlsx"

    result = klerk("run", "afval-overzicht", "--results", str(target))

    assert result.returncode == 0, result.stdout + result.stderr
    requests = afval.requests()
    assert len(requests) == SEED_REQUESTS
    assert read_results(target) == [
        {
            "Zaaknummer": r["zaaknummer"],
            "Aanvraagnummer": r["aanvraagnummer"],
            "Adres": r["adres"],
            "Postcode": r["postcode"],
            "Container": r["container"],
            "Levering": r["leverdatum"],
        }
        for r in requests
    ]
    (table,) = [a for a in _trail(klerk, "action") if a["bio.action"] == "extract_table"]
    assert table["bio.result"] == f"{SEED_REQUESTS} rows from 3 pages"


def test_a_session_that_expires_mid_run_costs_a_login(klerk: Klerk, afval: Afval) -> None:
    rows = containeraanvragen(4, seed=42, prefix="VS-")
    intake = _intake(klerk, rows)
    # long enough that a loaded machine's pauses between items do not end it as well
    afval._call("POST", "/api/faults", {"session_lifetime": 5})
    expired = afval.sessions_expired()

    process = klerk.start("run", "afval-aanvragen", "--input", str(intake))
    # the runner stands still until the app has ended its session; then it goes on
    out, err = stand_still(process, lambda: afval.entered("VS-"), 6)

    assert process.returncode == 0, out + err
    assert afval.sessions_expired() > expired
    assert afval.entered("VS-") == Counter({row["Aanvraagnummer"]: 1 for row in rows})
    stored = {r["aanvraagnummer"]: r["zaaknummer"] for r in afval.requests()}
    results = read_results(klerk.home / RESULTS)
    assert [(r["status"], r["zaaknummer"]) for r in results] == [
        ("done", stored[row["Aanvraagnummer"]]) for row in rows
    ]
    # the expired-session page was recognised: a new login, not a failed attempt
    retries = [a["bio.result"].split(" (at")[0] for a in _trail(klerk, "retry")]
    assert retries == ["SessionExpiredError: session expired"]


def test_a_crash_inside_a_frame_is_the_app_failing_not_a_missing_element(
    klerk: Klerk, afval: Afval
) -> None:
    rows = containeraanvragen(3, seed=43, prefix="HF-")
    intake = _intake(klerk, rows)
    # the first request form crashes: frame `main` shows a bare HTTP 500 under the menu bar,
    # while the window itself still shows the frameset it loaded fine
    afval._call("POST", "/api/faults", {"http_500": {"/aanvraag": 1}})

    result = klerk("run", "afval-aanvragen", "--input", str(intake))

    assert result.returncode == 0, result.stdout + result.stderr
    assert afval._call("GET", "/api/faults")["http_500"] == {"/aanvraag": 0}  # it did crash
    assert afval.entered("HF-") == Counter({row["Aanvraagnummer"]: 1 for row in rows})
    results = read_results(klerk.home / RESULTS)
    assert [r["status"] for r in results] == ["done"] * 3
    # recognised as the app failing (the app definition's status codes), in the frame that
    # shows it: retried as such, not reported as an element that could not be found
    retries = [a["bio.result"] for a in _trail(klerk, "retry")]
    assert retries == ["AppUnavailableError: afval failed: HTTP 500 at /aanvraag"]

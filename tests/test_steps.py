"""Step kinds not covered by the sample tasks, from YAML alone: frames, press, wait_for, expect,
download, and the messages a clerk sees when an element is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import DemoApp, Klerk

pytestmark = pytest.mark.browser

HEADER = """\
name: {name}
app: parkeren
credentials: PARKEREN
processing_activity: https://register.example/verwerkingen/parkeren
legal_basis: AVG art. 6 lid 1 sub e
source: {{kind: none}}
"""


def _task(klerk: Klerk, name: str, steps: str) -> Path:
    path = klerk.home / f"{name}.yaml"
    path.write_text(HEADER.format(name=name) + steps, encoding="utf-8")
    return path


def _run_file(klerk: Klerk) -> dict[str, object]:
    (run_json,) = klerk.home.glob("runs/*/run.json")
    result: dict[str, object] = json.loads(run_json.read_text())
    return result


def test_frames_press_wait_expect_and_download(klerk: Klerk, demo_app: DemoApp) -> None:
    task = _task(
        klerk,
        "stappen",
        """\
steps:
  - goto: /
  - click: {role: link, name: Overzicht vergunningen, frame: menu}
  - wait_for: {element: {css: table.overzicht, frame: main}}
  - goto: /vergunningen
  - fill: {label: Kenteken, value: HX-441-B}
  - press: {label: Kenteken, key: Enter}
  - wait_for: {url: "kenteken=HX"}
  - expect: {text: SEED-2}
  - extract:
      zaaknummer: {css: "table.overzicht td", nth: 0}
  - download:
      click: {role: link, name: Exporteer CSV}
      into: export
sink: {kind: csv, path: uit.csv}
""",
    )

    result = klerk("run", str(task))

    assert result.returncode == 0, result.stdout + result.stderr
    (downloaded,) = klerk.home.glob("runs/*/downloads/*.csv")
    lines = downloaded.read_text(encoding="utf-8").splitlines()
    assert lines[0].split(";")[0] == "Zaaknummer"
    assert len(lines) == 2 and "SEED-2" in lines[1]  # the export keeps the filter
    written = (klerk.home / "uit.csv").read_text(encoding="utf-8-sig")
    assert "Z-2026-000002" in written and str(downloaded) in written


def test_a_missing_element_says_what_and_where(klerk: Klerk, demo_app: DemoApp) -> None:
    task = _task(
        klerk,
        "ontbreekt",
        """\
steps:
  - goto: /vergunningen/nieuw
  - fill: {label: Burgerservicenummer, value: "123"}
    timeout_ms: 500
retry: {attempts: 1}
sink: {kind: csv, path: uit.csv}
""",
    )

    result = klerk("run", str(task))

    assert result.returncode == 1
    written = (klerk.home / "uit.csv").read_text(encoding="utf-8-sig")
    assert (
        "element not found: label 'Burgerservicenummer' on page /vergunningen/nieuw "
        "(step fill, waited 500 ms); did you mean label 'BSN'?; screenshot: "
    ) in written
    assert _run_file(klerk)["counts"] == {"system_error": 1}
    assert list(klerk.home.glob("runs/*/evidence/*.png")), "a screenshot of the page is kept"


def _message(klerk: Klerk) -> str:
    """What the results file says (the task's only item, with its message)."""
    return (klerk.home / "uit.csv").read_text(encoding="utf-8-sig")


def test_a_renamed_button_is_suggested_by_its_role_and_name(
    klerk: Klerk, demo_app: DemoApp
) -> None:
    task = _task(
        klerk,
        "knop",
        """\
steps:
  - goto: /vergunningen/nieuw
  - click: {role: button, name: Aanvraag}
    timeout_ms: 500
retry: {attempts: 1}
sink: {kind: csv, path: uit.csv}
""",
    )
    before = demo_app.permits()

    result = klerk("run", str(task))

    assert result.returncode == 1
    assert (
        "element not found: role button 'Aanvraag' on page /vergunningen/nieuw "
        "(step click, waited 500 ms); did you mean role button 'Aanvragen'?; screenshot: "
    ) in _message(klerk)
    assert demo_app.permits() == before, "nothing was sent"


def test_a_missing_element_with_nothing_alike_suggests_nothing(
    klerk: Klerk, demo_app: DemoApp
) -> None:
    task = _task(
        klerk,
        "niets",
        """\
steps:
  - goto: /vergunningen/nieuw
  - fill: {label: Huisdier, value: kat}
    timeout_ms: 500
retry: {attempts: 1}
sink: {kind: csv, path: uit.csv}
""",
    )

    result = klerk("run", str(task))

    assert result.returncode == 1
    message = _message(klerk)
    assert (
        "element not found: label 'Huisdier' on page /vergunningen/nieuw "
        "(step fill, waited 500 ms); screenshot: "
    ) in message
    assert "did you mean" not in message


def test_expect_failure_is_a_system_error_with_its_message(klerk: Klerk, demo_app: DemoApp) -> None:
    task = _task(
        klerk,
        "verwacht",
        """\
steps:
  - goto: /vergunningen
  - expect: {text: Er zijn geen vergunningen, timeout_ms: 300, message: het overzicht is niet leeg}
retry: {attempts: 2, backoff_seconds: 0}
sink: {kind: csv, path: uit.csv}
""",
    )

    result = klerk("run", str(task))

    assert result.returncode == 1
    assert "het overzicht is niet leeg" in (klerk.home / "uit.csv").read_text(encoding="utf-8-sig")

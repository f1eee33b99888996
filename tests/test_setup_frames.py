"""Setup and teardown steps of a task (once per browser context) and `in_frame` groups, each
case a real `klerk run` or `klerk try` against the demo app's frameset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from demo.sample import aanvragen
from tests.conftest import ROOT, DemoApp, Klerk, read_results, write_intake

pytestmark = pytest.mark.browser

SHIPPED_TASK = ROOT / "tasks" / "definitions" / "vergunningen-invoeren.yaml"

# after logging in the app shows its frameset: the menu on the left, the work frame "main"
OPEN_OVERVIEW = """\
setup:
  - in_frame:
      frame: menu
      steps:
        - click: {role: link, name: Overzicht vergunningen}
  - in_frame:
      frame: main
      steps:
        - expect: {text: Overzicht vergunningen}
"""


def _task(klerk: Klerk, extra: str) -> Path:
    """The shipped task, quick to retry, with `extra` (setup, teardown) added at the end."""
    text = SHIPPED_TASK.read_text(encoding="utf-8")
    path = klerk.home / "invoeren.yaml"
    path.write_text(text + extra, encoding="utf-8")
    return path


def _trail(klerk: Klerk) -> list[dict[str, Any]]:
    (trail,) = (klerk.home / "runs").glob("*/audit.jsonl")
    lines = trail.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _phase(records: list[dict[str, Any]], phase: str) -> list[dict[str, Any]]:
    return [r for r in records if json.dumps(r).find(f'"klerk.phase": "{phase}"') >= 0]


def test_setup_and_teardown_are_done_once_in_every_browser_context(
    klerk: Klerk, demo_app: DemoApp
) -> None:
    task = _task(klerk, OPEN_OVERVIEW + "teardown:\n  - goto: /vergunningen\n")
    rows = aanvragen(4, bad_rows=False)
    intake = write_intake(klerk.home / "aanvragen.xlsx", rows)

    # two workers: two browser contexts, each logged in and set up on its own
    result = klerk("run", str(task), "--input", str(intake), "--concurrency", "2")

    assert result.returncode == 0, result.stdout + result.stderr
    assert [row["status"] for row in read_results(klerk.home / "aanvragen-resultaten.xlsx")] == [
        "done"
    ] * 4
    records = _trail(klerk)
    setup, teardown = _phase(records, "setup"), _phase(records, "teardown")
    assert len(setup) == 2 * 2 and len(teardown) == 2
    assert all("klerk.item_key" not in json.dumps(r) for r in setup + teardown)
    assert "click role link 'Overzicht vergunningen'" in json.dumps(setup)
    first_item = next(n for n, r in enumerate(records) if "item_started" in json.dumps(r))
    assert records.index(setup[0]) < first_item
    assert klerk("audit", "verify", "--all").returncode == 0
    entered = {p["aanvraagnummer"] for p in demo_app.permits()}
    assert {row["Aanvraagnummer"] for row in rows} <= entered


def test_a_failing_teardown_leaves_the_items_done(klerk: Klerk, demo_app: DemoApp) -> None:
    task = _task(klerk, "teardown:\n  - {click: {text: Bestaat niet}, timeout_ms: 300}\n")
    intake = write_intake(klerk.home / "aanvragen.xlsx", aanvragen(2, bad_rows=False))

    result = klerk("run", str(task), "--input", str(intake))

    assert result.returncode == 0, result.stdout + result.stderr
    assert [row["status"] for row in read_results(klerk.home / "aanvragen-resultaten.xlsx")] == [
        "done",
        "done",
    ]
    (teardown,) = _phase(_trail(klerk), "teardown")
    assert "failed: element not found: text 'Bestaat niet'" in json.dumps(teardown)


def test_try_does_the_setup_and_an_in_frame_group_clicks_in_the_menu(
    klerk: Klerk, demo_app: DemoApp
) -> None:
    # the item's step only passes when the setup opened the overview in the work frame
    task = klerk.home / "menu.yaml"
    task.write_text(
        "name: menu-proef\n"
        "app: parkeren\n"
        "credentials: PARKEREN\n"
        "processing_activity: https://register.example/verwerkingen/1\n"
        "legal_basis: AVG art. 6 lid 1 sub e\n"
        "source: {kind: none}\n"
        "steps:\n"
        "  - in_frame: {frame: main, steps: [expect: {text: Overzicht vergunningen}]}\n"
        "  - in_frame: {frame: /menu, steps: [click: {role: link, name: Nieuwe aanvraag}]}\n"
        "  - expect: {element: {label: Kenteken, frame: main}}\n" + OPEN_OVERVIEW,
        encoding="utf-8",
    )
    before = demo_app.permits()

    result = klerk("try", str(task))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "click role link 'Overzicht vergunningen'" in result.stdout
    assert "click role link 'Nieuwe aanvraag'" in result.stdout
    assert demo_app.permits() == before


def test_a_failing_setup_stops_the_run_before_any_item(klerk: Klerk, demo_app: DemoApp) -> None:
    task = _task(klerk, "setup:\n  - {click: {text: Bestaat niet}, timeout_ms: 300}\n")
    intake = write_intake(klerk.home / "aanvragen.xlsx", aanvragen(2, bad_rows=False))
    before = demo_app.permits()

    result = klerk("run", str(task), "--input", str(intake))

    assert result.returncode == 3, result.stdout + result.stderr
    assert "the setup steps of vergunningen-invoeren failed" in " ".join(result.stderr.split())
    assert demo_app.permits() == before
    (setup,) = _phase(_trail(klerk), "setup")
    assert "failed: element not found: text 'Bestaat niet'" in json.dumps(setup)

"""The run report: after a real run, runs/<run-id>/report.html shows an auditor the whole run,
renders in the real Chromium, and holds no BSN or password."""

from __future__ import annotations

import hashlib
import random
import re
import struct
from pathlib import Path

import pytest
from loguru import logger
from playwright.sync_api import sync_playwright

from bots.browser import CHROMIUM_ARGS, choose_browser
from demo.app import DEMO_PASSWORD
from demo.sample import EXISTING_PLATE, aanvragen, invalid_bsn
from tasks.definition import Task
from tasks.loading import find_task, load_model
from tasks.report import check_trail, render_report, write_report_safely
from tasks.store import Store
from tests.conftest import DemoApp, Klerk, write_intake

pytestmark = pytest.mark.browser

TASK = "vergunningen-invoeren"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_report_shows_the_run_and_renders_in_chromium(
    klerk: Klerk, demo_app: DemoApp, tmp_path: Path
) -> None:
    rows = aanvragen(7, seed=71, bad_rows=False, prefix="RP-")
    rows[2]["BSN"] = invalid_bsn(random.Random(3))  # refused before the app is touched
    rows[4]["Kenteken"] = EXISTING_PLATE  # refused by the app: a screenshot is kept
    intake = write_intake(klerk.home / "rapport.xlsx", rows)

    result = klerk("run", TASK, "--input", str(intake))

    assert result.returncode == 1, result.stdout + result.stderr
    found = re.search(r"run (\d{8}-\d{6}-[0-9a-f]{6})", result.stdout)
    assert found, result.stdout
    run_id = found.group(1)
    run_dir = klerk.home / "runs" / run_id
    report = run_dir / "report.html"
    page_text = report.read_text(encoding="utf-8")

    task = load_model(find_task(TASK), Task)
    for expected in (
        run_id,
        task.processing_activity,
        task.legal_basis,
        "rapport.xlsx",
        hashlib.sha256(intake.read_bytes()).hexdigest(),
        hashlib.sha256(find_task(TASK).read_bytes()).hexdigest(),
        "Audit trail: Intact",
        "geen geldig BSN",
        f"Er bestaat al een actieve vergunning voor kenteken {EXISTING_PLATE}",
        *(row["Aanvraagnummer"] for row in rows),
    ):
        assert expected in page_text, expected
    for secret in (DEMO_PASSWORD, *(row["BSN"] for row in rows)):
        assert secret not in page_text, f"{secret[:2]}... found in the report"
    # self-contained: no script, style sheet or image loaded from elsewhere
    assert "<script" not in page_text and "<link" not in page_text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page_text)
    assert not list(run_dir.glob("*.tmp")) and not list(run_dir.glob(".*.tmp"))

    shot = tmp_path / "report.png"
    with sync_playwright() as playwright:
        choice = choose_browser(playwright.chromium.executable_path)
        assert choice is not None, "no Chromium to look at the report with"
        browser = playwright.chromium.launch(
            executable_path=choice.executable, args=list(CHROMIUM_ARGS)
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(report.as_uri())
            assert page.get_by_role("heading", name=TASK, level=1).is_visible()
            assert page.get_by_role("heading", name="Audit trail: Intact").is_visible()
            counts = {
                state: page.locator(f"#summary .card.c-{state} .n").inner_text()
                for state in ("done", "business_error", "system_error")
            }
            assert counts == {"done": "5", "business_error": "2", "system_error": "0"}
            table = page.locator("#items table")
            assert table.is_visible()
            assert table.locator("tbody tr").count() == len(rows)
            states = table.locator("tbody tr td:nth-child(4)").all_inner_texts()
            assert states.count("done") == 5 and states.count("business error") == 2
            zaaknummers = table.locator("tbody tr.s-done td:nth-child(6)").all_inner_texts()
            assert all("zaaknummer:" in text for text in zaaknummers)
            evidence = page.locator("#attention img")
            assert evidence.count() == 1  # the app's refusal; the invalid BSN never got there
            evidence.scroll_into_view_if_needed()
            page.wait_for_function("document.querySelector('#attention img').complete")
            assert evidence.evaluate("img => img.naturalWidth") > 100
            page.screenshot(path=shot, full_page=True)
        finally:
            browser.close()
    width, height = _png_size(shot)
    assert width == 1280 and height > 1200
    assert shot.stat().st_size > 50_000

    # the page escapes and masks what it shows, whatever an app or a sheet puts in a message
    store = Store(f"sqlite:///{klerk.home / 'var' / 'klerk.db'}")
    try:
        record = store.run(run_id)
        assert record is not None
        items = list(store.items(run_id))
        items[0].message = f"<script>alert(1)</script> {rows[0]['BSN']} jan@example.nl"
        items[0].outputs = {"iban": "NL91 ABNA 0417 1643 00"}
        html = render_report(run_dir, task, record, items, check_trail(run_dir / "x", None))
        assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert rows[0]["BSN"] not in html and "jan@example.nl" not in html
        assert "NL91" not in html and "[IBAN]" in html and "Audit trail: Not signed" in html

        # a report that cannot be written costs a warning, never the run
        blocked = tmp_path / "blocked"
        (blocked / "report.html").mkdir(parents=True)
        warnings: list[str] = []
        sink = logger.add(warnings.append, level="WARNING", format="{message}")
        try:
            assert write_report_safely(store, run_id, task, blocked, None) is None
        finally:
            logger.remove(sink)
        assert any("could not be written" in text for text in warnings)
    finally:
        store.close()

    # `klerk runs show RUN --open` writes a missing report again and says where it is
    report.unlink()
    no_browser = {
        k: v for k, v in klerk.env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")
    }
    shown = Klerk(klerk.home, no_browser)("runs", "show", run_id, "--open")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"report   {report}" in shown.stdout
    assert "No browser" in shown.stdout
    again = report.read_text(encoding="utf-8")
    assert "Audit trail: Intact" in again and all(row["BSN"] not in again for row in rows), (
        "the report written again must be as clean as the first"
    )

"""The yardstick for klerk's overhead: the plain Playwright script a developer would write.

It does the job of the task `vergunningen-invoeren` without klerk: read the intake workbook
with openpyxl, log in once, enter every row in the permit form with the same user-facing
locators, read the zaaknummer, and write a results workbook (input columns, zaaknummer,
status, melding). No store, no trail, no retries: what klerk adds is what is being measured.

    python bench/plain_playwright.py --url http://127.0.0.1:8650 \
        --input intake.xlsx --results resultaten.xlsx

The credentials come from --username/--password, else from the same environment variables
klerk reads (KLERK_CRED_PARKEREN_USERNAME, KLERK_CRED_PARKEREN_PASSWORD).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openpyxl import Workbook, load_workbook
from playwright.sync_api import Browser, Locator, Page, Playwright, sync_playwright
from playwright.sync_api import Error as PlaywrightError

SYSTEM_CHROMIUM = "/usr/bin/chromium"
# The same flags klerk gives a system Chromium, so both sides launch the same browser.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
DECLARATION = "Ik verklaar dat de gegevens naar waarheid zijn ingevuld"


def read_intake(path: Path, sheet: str = "Aanvragen") -> tuple[list[str], list[dict[str, Any]]]:
    """The headers and the rows (dicts by header) of the intake sheet; empty rows skipped."""
    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        rows = list(workbook[sheet].iter_rows(values_only=True))
    finally:
        workbook.close()
    headers = [str(cell) for cell in rows[0] if cell is not None]
    records = [
        dict(zip(headers, row, strict=False))
        for row in rows[1:]
        if any(cell not in (None, "") for cell in row)
    ]
    return headers, records


def text(value: Any) -> str:
    """A cell as the text to type: whole numbers without '.0', dates as dd-mm-jjjj."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime | dt.date):
        return value.strftime("%d-%m-%Y")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def launch(playwright: Playwright) -> Browser:
    """Playwright's own Chromium when it is installed, else the system's."""
    own = Path(playwright.chromium.executable_path)
    if own.exists():
        return playwright.chromium.launch(args=CHROMIUM_ARGS)
    return playwright.chromium.launch(executable_path=SYSTEM_CHROMIUM, args=CHROMIUM_ARGS)


def log_in(page: Page, username: str, password: str) -> None:
    """Log in through the login form; exits when the app sends us back to it."""
    page.goto("/login")
    page.get_by_label("Gebruikersnaam").fill(username)
    page.get_by_label("Wachtwoord").fill(password)
    page.get_by_role("button", name="Inloggen").click()
    page.wait_for_load_state()
    if "/login" in page.url:
        sys.exit("login refused: check the username and password")


def enter(page: Page, row: dict[str, Any]) -> tuple[str, str, str]:
    """Enter one application; returns (zaaknummer, status, melding)."""
    # The form is usable once its HTML is parsed; waiting for "load" only waits for the CSS.
    page.goto("/vergunningen/nieuw", wait_until="domcontentloaded")
    page.get_by_label("Aanvraagnummer").fill(text(row["Aanvraagnummer"]))
    page.get_by_label("BSN").fill(text(row["BSN"]))
    page.get_by_label("Kenteken").fill(text(row["Kenteken"]))
    page.get_by_label("Zone").select_option(label=text(row["Zone"]))
    page.get_by_label("Ingangsdatum").fill(text(row["Ingangsdatum"]))
    page.get_by_label(text(row["Soort"]).capitalize(), exact=True).check()
    page.get_by_label(DECLARATION).check()
    page.get_by_role("button", name="Aanvragen").click()
    return outcome(page.locator("#zaaknummer"), page.locator("div.fout"))


def outcome(zaaknummer: Locator, refusal: Locator) -> tuple[str, str, str]:
    """(zaaknummer, status, melding) of what the app shows after sending: the confirmation with
    its zaaknummer, or the form again with the refusal."""
    zaaknummer.or_(refusal).first.wait_for()
    if refusal.count():
        return "", "business_error", refusal.inner_text().strip()
    return zaaknummer.inner_text().strip(), "done", ""


def write_results(path: Path, headers: list[str], rows: list[dict[str, Any]]) -> None:
    """Write the input columns plus zaaknummer, status and melding to a new workbook."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Resultaten")
    columns = [*headers, "zaaknummer", "status", "melding"]
    sheet.append(columns)
    for row in rows:
        sheet.append([row.get(column) for column in columns])
    workbook.save(path)


def parse_args(argv: list[str] | None, doc: str, credentials: str) -> argparse.Namespace:
    """The command line of a plain script: the app, the intake, the results, the credentials
    (default: klerk's KLERK_CRED_<credentials>_USERNAME and _PASSWORD)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--url", required=True, help="base URL of the demo app")
    parser.add_argument("--input", required=True, type=Path, help="intake .xlsx")
    parser.add_argument("--results", required=True, type=Path, help="results .xlsx to write")
    prefix = f"KLERK_CRED_{credentials}_"
    parser.add_argument("--username", default=os.environ.get(prefix + "USERNAME"))
    parser.add_argument("--password", default=os.environ.get(prefix + "PASSWORD"))
    args = parser.parse_args(argv)
    if not args.username or not args.password:
        parser.error(f"give --username and --password (or {prefix}* variables)")
    return args


def enter_all(
    args: argparse.Namespace,
    log_in: Callable[[Page, str, str], None],
    enter: Callable[[Page, dict[str, Any]], tuple[str, str, str]],
) -> int:
    """Log in once, `enter` every row of the intake, write the results; exit code 0 when
    every row was stored, 1 otherwise."""
    started = time.perf_counter()
    headers, rows = read_intake(args.input)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(base_url=args.url.rstrip("/"))
        log_in(page, args.username, args.password)
        for row in rows:
            try:
                row["zaaknummer"], row["status"], row["melding"] = enter(page, row)
            except PlaywrightError as exc:
                row["zaaknummer"], row["status"] = "", "system_error"
                row["melding"] = str(exc).splitlines()[0]
        browser.close()
    write_results(args.results, headers, rows)

    done = sum(1 for row in rows if row["status"] == "done")
    elapsed = time.perf_counter() - started
    print(f"{done}/{len(rows)} entered in {elapsed:.1f} s; results in {args.results}")
    return 0 if done == len(rows) else 1


def main(argv: list[str] | None = None) -> int:
    """Enter every row of the intake; exit 0 when all were stored, 1 otherwise."""
    return enter_all(parse_args(argv, __doc__, "PARKEREN"), log_in, enter)


if __name__ == "__main__":
    sys.exit(main())

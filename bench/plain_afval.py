"""The yardstick on Afvalcontainers: the plain Playwright script for the task afval-aanvragen.

What a developer would write for this app without klerk: log in once; per row click
"Container aanvragen" in the menu frame, find every field of the form in frame `main` by the
caption in the cell left of it (the input names change on every load), choose the container
in the drop-down of divs, type the date (which closes the calendar), upload the attachment the
row names (next to the intake), click Indienen and "Ja, indienen" in the modal, and read the
zaaknummer or the refusal. The same locators as the task; no store, no trail, no retries.

    python bench/plain_afval.py --url http://127.0.0.1:8651 \
        --input intake.xlsx --results resultaten.xlsx

The credentials come from --username/--password, else from KLERK_CRED_AFVAL_USERNAME and
KLERK_CRED_AFVAL_PASSWORD.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

from plain_playwright import enter_all, outcome, parse_args, text
from playwright.sync_api import Frame, Locator, Page


def next_to(scope: Page | Frame, caption: str) -> Locator:
    """The input in the table cell right of the cell that reads `caption` (there are no labels)."""
    return scope.locator(
        f"xpath=//td[normalize-space()='{caption}']/following-sibling::td[1]"
        "//input[not(@type='hidden')]"
    )


def log_in(page: Page, username: str, password: str) -> None:
    """Log in through the login form; exits when the app sends us back to it."""
    page.goto("/login")
    next_to(page, "Gebruiker").fill(username)
    next_to(page, "Wachtwoord").fill(password)
    page.get_by_role("button", name="Aanmelden").click()
    page.wait_for_load_state()
    if "/login" in page.url:
        sys.exit("login refused: check the username and password")


def enter(page: Page, row: dict[str, Any], folder: Path) -> tuple[str, str, str]:
    """Enter one request; returns (zaaknummer, status, melding)."""
    menu, main = page.frame(name="menu"), page.frame(name="main")
    assert menu is not None and main is not None, "not in the frameset"
    menu.get_by_role("link", name="Container aanvragen").click()
    # the new form, not the one shown before (after a refusal): nothing chosen yet
    main.get_by_text("-- maak een keuze --").wait_for()
    next_to(main, "Aanvraagnummer").fill(text(row["Aanvraagnummer"]))
    next_to(main, "Straat en huisnummer").fill(text(row["Adres"]))
    next_to(main, "Postcode").fill(text(row["Postcode"]))
    main.get_by_role("combobox").click()
    main.get_by_role("option", name=text(row["Container"]), exact=True).click()
    next_to(main, "Gewenste leverdatum").fill(text(row["Leverdatum"]))
    if row.get("Bijlage"):
        next_to(main, "Bijlage (foto of PDF)").set_input_files(folder / text(row["Bijlage"]))
    main.get_by_role("button", name="Indienen", exact=True).click()
    main.get_by_role("button", name="Ja, indienen", exact=True).click()
    return outcome(main.locator(".zaaknummer"), main.locator("div.fout"))


def main(argv: list[str] | None = None) -> int:
    """Enter every row of the intake; exit 0 when all were stored, 1 otherwise."""
    args = parse_args(argv, __doc__, "AFVAL")
    return enter_all(args, log_in, functools.partial(enter, folder=args.input.parent))


if __name__ == "__main__":
    sys.exit(main())

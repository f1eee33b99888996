"""The second demo app, Afvalcontainers, driven by real Chromium the way a clerk uses it."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Frame, Locator, Page, expect, sync_playwright

from bots.browser import CHROMIUM_ARGS, choose_browser
from demo.afval import AFVAL_PASSWORD, AFVAL_USERNAME, check_request
from demo.afval_pages import MSG_CONFIRM, MSG_STORED
from demo.afval_sample import containeraanvragen
from demo.server import AfvalServer


@pytest.fixture(scope="module")
def afval() -> Iterator[AfvalServer]:
    """Afvalcontainers on a free port, for this module."""
    with AfvalServer(port=0) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for this module."""
    with sync_playwright() as playwright:
        choice = choose_browser(playwright.chromium.executable_path)
        assert choice is not None, "no Chromium to drive Afvalcontainers with"
        launched = playwright.chromium.launch(
            executable_path=choice.executable, args=list(CHROMIUM_ARGS)
        )
        yield launched
        launched.close()


@pytest.fixture
def page(afval: AfvalServer, browser: Browser) -> Iterator[Page]:
    """A fresh context, logged in, on the frameset; the app back at its seed requests."""
    _call(afval, "POST", "/api/reset")
    context = browser.new_context()
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(afval.url + "/login")
    by_caption(page, "Gebruiker").fill(AFVAL_USERNAME)
    by_caption(page, "Wachtwoord").fill(AFVAL_PASSWORD)
    page.get_by_role("button", name="Aanmelden").click()
    page.wait_for_url(afval.url + "/")
    yield page
    context.close()


def _call(server: AfvalServer, method: str, path: str) -> Any:
    request = urllib.request.Request(
        server.url + path, method=method, data=b"" if method == "POST" else None
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def by_caption(scope: Page | Frame, caption: str) -> Locator:
    """The input in the cell right of the cell that reads `caption` (there is no label)."""
    return scope.locator(
        f"xpath=//td[normalize-space()='{caption}']/following-sibling::td[1]//input"
        "[not(@type='hidden')]"
    )


def open_form(page: Page) -> Frame:
    """Open the request form through the menu frame; the work frame that shows it."""
    menu = page.frame(name="menu")
    main = page.frame(name="main")
    assert menu is not None and main is not None
    menu.get_by_role("link", name="Container aanvragen").click()
    main.wait_for_url("**/aanvraag")
    expect(main.get_by_role("heading", name="Container aanvragen")).to_be_visible()
    return main


def test_a_request_with_picker_dropdown_upload_and_modal_lands_in_the_paged_list(
    page: Page, afval: AfvalServer
) -> None:
    main = open_form(page)
    by_caption(main, "Aanvraagnummer").fill("CA-2026-00001")
    by_caption(main, "Straat en huisnummer").fill("Havenkade 12")
    by_caption(main, "Postcode").fill("2417kd")

    date_field = by_caption(main, "Gewenste leverdatum")
    date_field.click()
    calendar = main.locator(".kalender")
    expect(calendar).to_be_visible()
    calendar.get_by_role("link", name=">>").click()
    day = calendar.get_by_role("link", name="15", exact=True)
    picked = day.get_attribute("data-datum")
    assert picked is not None and picked.startswith("15-")
    day.click()
    expect(calendar).to_be_hidden()
    expect(date_field).to_have_value(picked)

    row = main.locator("xpath=//td[normalize-space()='Soort container']/following-sibling::td[1]")
    row.get_by_role("combobox").click()
    row.get_by_role("option", name="GFT 140 liter").click()
    expect(row.get_by_role("combobox")).to_have_text("GFT 140 liter")

    photo = b"\xff\xd8\xff\xe0" + b"standplaats" * 100
    by_caption(main, "Bijlage (foto of PDF)").set_input_files(
        {"name": "standplaats.jpg", "mimeType": "image/jpeg", "buffer": photo}
    )

    main.get_by_role("button", name="Indienen").click()
    dialog = main.get_by_role("dialog", name="Bevestigen")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(MSG_CONFIRM)
    dialog.get_by_role("button", name="Ja, indienen").click()
    expect(main.locator(".melding")).to_contain_text(MSG_STORED)
    zaaknummer = main.locator(".zaaknummer").inner_text()

    menu = page.frame(name="menu")
    assert menu is not None
    menu.get_by_role("link", name="Aanvragen bekijken").click()
    main.wait_for_url("**/aanvragen")
    expect(main.locator(".teller")).to_have_text("Blad 1 van 3")
    expect(main.get_by_text("Vorige")).to_be_visible()
    assert main.get_by_role("link", name="« Vorige").count() == 0
    main.get_by_role("link", name="Volgende »").click()
    expect(main.locator(".teller")).to_have_text("Blad 2 van 3")
    main.get_by_role("link", name="Volgende »").click()
    expect(main.locator(".teller")).to_have_text("Blad 3 van 3")
    line = main.locator("table.lijst tr", has_text=zaaknummer)
    expect(line).to_contain_text("CA-2026-00001")
    expect(line).to_contain_text("2417 KD")
    main.get_by_role("link", name="« Vorige").click()
    expect(main.locator(".teller")).to_have_text("Blad 2 van 3")

    stored = [r for r in _call(afval, "GET", "/api/aanvragen") if r["zaaknummer"] == zaaknummer]
    assert stored == [
        {
            "zaaknummer": zaaknummer,
            "aanvraagnummer": "CA-2026-00001",
            "adres": "Havenkade 12",
            "postcode": "2417 KD",
            "container": "GFT 140 liter",
            "leverdatum": picked,
            "bijlage_naam": "standplaats.jpg",
            "bijlage_grootte": len(photo),
        }
    ]


def test_input_names_change_on_every_load_and_no_input_has_a_label(page: Page) -> None:
    main = open_form(page)
    first = main.locator("form input").evaluate_all("els => els.map(e => e.name).filter(n => n)")
    assert main.locator("label").count() == 0
    main.goto(main.url)
    second = main.locator("form input").evaluate_all("els => els.map(e => e.name).filter(n => n)")
    changed = set(first) - {"csrf_token"}
    assert len(changed) == 6
    assert changed.isdisjoint(second)


def test_cancelling_the_modal_sends_nothing_and_typed_dates_are_accepted(
    page: Page, afval: AfvalServer
) -> None:
    before = len(_call(afval, "GET", "/api/aanvragen"))
    main = open_form(page)
    by_caption(main, "Aanvraagnummer").fill("CA-2026-00002")
    by_caption(main, "Straat en huisnummer").fill("Kerkweg 3")
    by_caption(main, "Postcode").fill("2401 KD")
    main.get_by_role("combobox").click()
    main.get_by_role("option", name="Papier 240 liter").click()
    by_caption(main, "Gewenste leverdatum").fill("03-02-2027")
    main.get_by_role("button", name="Indienen").click()
    main.get_by_role("dialog").get_by_role("button", name="Annuleren").click()
    expect(main.get_by_role("dialog")).to_be_hidden()
    assert len(_call(afval, "GET", "/api/aanvragen")) == before

    main.get_by_role("button", name="Indienen").click()
    main.get_by_role("button", name="Ja, indienen").click()
    expect(main.locator(".zaaknummer")).to_be_visible()
    after = _call(afval, "GET", "/api/aanvragen")
    assert len(after) == before + 1
    assert after[-1]["leverdatum"] == "03-02-2027"
    assert after[-1]["bijlage_naam"] == ""


def test_the_sample_intake_passes_the_apps_own_checks() -> None:
    rows = containeraanvragen(30)
    assert len({row["Aanvraagnummer"] for row in rows}) == 30
    for row in rows:
        values = {
            "aanvraagnummer": row["Aanvraagnummer"],
            "adres": row["Adres"],
            "postcode": row["Postcode"],
            "container": row["Container"],
            "leverdatum": row["Leverdatum"],
        }
        assert check_request(values) is None

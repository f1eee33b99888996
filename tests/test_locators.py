"""Every way a definition names an element, in real Chromium on a legacy-style page: labels,
roles, texts, placeholders, captions in the next table cell (names that change on every load),
regions (`near`, `in_row_with`), the n-th match, and the candidates offered when one misses."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from bots.browser import CHROMIUM_ARGS, choose_browser
from bots.candidates import closest, did_you_mean
from bots.locating import evidence_masks, locate, xpath_literal
from tasks.definition import Locator

pytestmark = pytest.mark.browser


def legacy_page() -> str:
    """A form of the kind klerk meets: captions in cells, input names new on every load."""
    name = {field: f"{field}_{secrets.token_hex(4)}" for field in ("nummer", "pc", "pc2", "soort")}
    return f"""<html><body>
<h2>Melding invoeren</h2>
<table class="invoer">
<tr><td>Aanvraagnummer</td><td><input name="{name["nummer"]}" id="{name["nummer"]}"
  data-t="nummer"></td></tr>
<tr><td><b>Postcode:</b></td><td><input name="{name["pc"]}" data-t="pc"></td></tr>
<tr><td>Postcode correspondentie</td><td><input type="hidden" name="x">
  <input name="{name["pc2"]}" data-t="pc2"></td></tr>
<tr><td>Soort 'melding' "B"</td><td><select name="{name["soort"]}" data-t="soort">
  <option>Afval</option><option>Verlichting</option></select></td></tr>
</table>
<fieldset><legend>Bezorgadres</legend><label>Straat <input data-t="straat1"></label></fieldset>
<fieldset><legend>Factuuradres</legend><label>Straat <input data-t="straat2"></label></fieldset>
<table class="lijst">
<tr><th>Zaak</th><th>Actie</th></tr>
<tr><td>Z-1</td><td><a href="#1" data-t="z1">Bekijken</a></td></tr>
<tr><td>Z-10</td><td><a href="#10" data-t="z10">Bekijken</a></td></tr>
<tr><td>Jan  de
  Vries</td><td><a href="#jdv" data-t="jdv">Bekijken</a></td></tr>
</table>
<input placeholder="Zoek op zaaknummer" data-t="zoek">
<button data-t="opslaan">Opslaan</button>
<p data-t="voet">Gemeente Klerkdam</p>
</body></html>"""


class Chromium:
    """One headless Chromium for the module, driven from an event loop of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.browser: Browser = self.run(self._launch())

    async def _launch(self) -> Browser:
        self._playwright = await async_playwright().start()
        choice = choose_browser(self._playwright.chromium.executable_path)
        assert choice is not None, "no Chromium to test locators with"
        return await self._playwright.chromium.launch(
            executable_path=choice.executable, args=list(CHROMIUM_ARGS)
        )

    def run(self, work: Any) -> Any:
        return self.loop.run_until_complete(work)

    def close(self) -> None:
        self.run(self.browser.close())
        self.run(self._playwright.stop())
        self.loop.close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    chromium = Chromium()
    yield chromium
    chromium.close()


@pytest.fixture
def page(chromium: Chromium) -> Iterator[Page]:
    page: Page = chromium.run(chromium.browser.new_page())
    chromium.run(page.set_content(legacy_page()))
    yield page
    chromium.run(page.close())


def _found(chromium: Chromium, page: Page, **named: Any) -> str:
    """The data-t of the element the locator names."""
    element = locate(page, page, Locator(**named))
    found: str = chromium.run(element.get_attribute("data-t", timeout=2000))
    return found


@pytest.mark.parametrize(
    ("named", "expected"),
    [
        ({"label": "Straat"}, "straat1"),
        ({"label": "Straat", "nth": 1}, "straat2"),
        ({"role": "button", "name": "Opslaan"}, "opslaan"),
        ({"text": "Gemeente Klerkdam", "exact": True}, "voet"),
        ({"placeholder": "Zoek op zaak"}, "zoek"),
        ({"css": "select"}, "soort"),
        ({"xpath": "//a[@href='#10']"}, "z10"),
        # the caption in the cell to the left, whatever the input's name or id is on this load
        ({"next_to": "Aanvraagnummer"}, "nummer"),
        ({"next_to": "postcode"}, "pc"),  # a part of the caption, any case: the first match
        ({"next_to": "Postcode:", "exact": True}, "pc"),
        ({"next_to": "Postcode correspondentie"}, "pc2"),  # the hidden input is passed over
        ({"next_to": "Soort 'melding' \"B\"", "exact": True}, "soort"),  # both kinds of quotes
        # regions: the fieldset that holds the text, the row with a cell that reads exactly it
        ({"label": "Straat", "near": "Factuuradres"}, "straat2"),
        ({"label": "Straat", "near": "Bezorgadres"}, "straat1"),
        ({"role": "link", "name": "Bekijken", "in_row_with": "Z-1"}, "z1"),
        ({"role": "link", "name": "Bekijken", "in_row_with": "Z-10"}, "z10"),
        ({"text": "Bekijken", "near": "Actie", "in_row_with": "Z-10"}, "z10"),
        ({"role": "link", "in_row_with": "Jan de Vries"}, "jdv"),  # a line break in the cell
    ],
    ids=lambda value: str(value) if not isinstance(value, dict) else " ".join(map(str, value)),
)
def test_each_way_of_naming_an_element_finds_the_one_a_person_means(
    chromium: Chromium, page: Page, named: dict[str, Any], expected: str
) -> None:
    assert _found(chromium, page, **named) == expected


def test_next_to_fills_the_same_field_when_its_name_changes_on_every_load(
    chromium: Chromium, page: Page
) -> None:
    names = []
    for _load in range(3):
        chromium.run(page.set_content(legacy_page()))
        field = locate(page, page, Locator(next_to="Postcode correspondentie"))
        chromium.run(field.fill("1234 AB"))
        names.append(chromium.run(field.get_attribute("name")))
        typed = chromium.run(page.locator("[data-t=pc2]").input_value())
        assert typed == "1234 AB"
    assert len(set(names)) == 3, names


def test_regions_and_captions_work_inside_a_frame(chromium: Chromium, page: Page) -> None:
    inner = legacy_page().replace('"', "&quot;")
    chromium.run(page.set_content(f'<iframe name="werk" srcdoc="{inner}"></iframe>'))
    frame = page.frame(name="werk")
    assert frame is not None
    chromium.run(frame.wait_for_load_state())
    # through a frame locator (a frame not there yet) and through the Frame itself
    for root in (page.frame_locator("iframe[name=werk]").first, frame):
        for named, expected in [
            ({"role": "link", "name": "Bekijken", "near": "Actie", "in_row_with": "Z-10"}, "z10"),
            ({"next_to": "Aanvraagnummer"}, "nummer"),
            ({"label": "Straat", "near": "Factuuradres"}, "straat2"),
        ]:
            element = locate(page, root, Locator(**named))
            assert chromium.run(element.get_attribute("data-t", timeout=2000)) == expected, named


def test_a_missed_label_on_a_form_without_labels_suggests_the_caption_next_to_the_field(
    chromium: Chromium, page: Page
) -> None:
    wanted = Locator(label="Postcode")
    element = locate(page, page, wanted)
    assert chromium.run(element.count()) == 0  # no <label> says Postcode on this page

    offered = did_you_mean(chromium.run(closest(page, wanted)))

    assert offered == "; did you mean next_to 'Postcode:' or next_to 'Postcode correspondentie'?"


def test_a_missed_caption_suggests_the_captions_on_the_page(chromium: Chromium, page: Page) -> None:
    offered = did_you_mean(chromium.run(closest(page, Locator(next_to="Aanvraagnr"))))
    assert offered == "; did you mean next_to 'Aanvraagnummer'?"


def test_describe_says_the_region_too() -> None:
    named = Locator(role="link", name="Bekijken", in_row_with="Z-1", nth=0)
    assert named.describe() == "role link 'Bekijken' in the row with 'Z-1' nth 0"
    assert Locator(next_to="Postcode", near="Factuur").describe() == (
        "next_to 'Postcode' near 'Factuur'"
    )


def test_xpath_literals_hold_any_quote() -> None:
    assert xpath_literal("abc") == "'abc'"
    assert xpath_literal("it's") == '"it\'s"'
    assert xpath_literal("""'a' "b\"""") == """concat('', "'", 'a', "'", ' "b"')"""


MAGENTA = (255, 0, 255)  # the colour Playwright paints over a masked element


def _pixels(
    chromium: Chromium, png: bytes, points: list[tuple[float, float]]
) -> list[tuple[int, ...]]:
    """The colour at each point of a PNG, decoded by the browser itself."""
    viewer: Page = chromium.run(chromium.browser.new_page())
    try:
        return [
            tuple(rgb)
            for rgb in chromium.run(
                viewer.evaluate(
                    """async ([data, points]) => {
                        const img = new Image();
                        img.src = 'data:image/png;base64,' + data;
                        await img.decode();
                        const canvas = document.createElement('canvas');
                        canvas.width = img.width; canvas.height = img.height;
                        const ctx = canvas.getContext('2d');
                        ctx.drawImage(img, 0, 0);
                        return points.map(([x, y]) =>
                            Array.from(ctx.getImageData(x, y, 1, 1).data.slice(0, 3)));
                    }""",
                    [base64.b64encode(png).decode(), points],
                )
            )
        ]
    finally:
        chromium.run(viewer.close())


def test_a_screenshot_hides_fields_and_personal_captions_in_every_frame(
    chromium: Chromium, page: Page
) -> None:
    """Evidence of a framed legacy app: the address typed in a frame, the postcode shown as
    text next to its caption, the div drop-down and the BSN on top are all painted over; the
    page's headings and a value that is not personal stay readable."""
    inner = """<table>
<tr><td>Straat en huisnummer</td><td><input value="Kerkstraat 1" data-t="adres"></td></tr>
<tr><td>Postcode:</td><td data-t="postcode">1234 AB</td></tr>
<tr><td>Soort</td><td data-t="soort">Restafval 240 liter</td></tr>
<tr><td>Container</td><td><div role="combobox" data-t="keuze">GFT 140 liter</div></td></tr>
</table>""".replace('"', "&quot;")
    chromium.run(
        page.set_content(
            '<h1 data-t="kop">Aanvraag bekijken</h1><label>BSN <input data-t="bsn"'
            ' value="111222333"></label><br>'
            f'<iframe name="main" srcdoc="{inner}" style="width:600px;height:200px"></iframe>'
        )
    )
    frame = page.frame(name="main")
    assert frame is not None
    chromium.run(frame.wait_for_load_state())
    masks = evidence_masks(page, ("Postcode",))
    png = chromium.run(page.screenshot(full_page=True, mask=masks))

    async def centres() -> dict[str, tuple[float, float]]:
        found: dict[str, tuple[float, float]] = {}
        for scope in (page, frame):
            for element in await scope.locator("[data-t]").all():
                box = await element.bounding_box()
                assert box is not None
                found[str(await element.get_attribute("data-t"))] = (
                    box["x"] + box["width"] / 2,
                    box["y"] + box["height"] / 2,
                )
        return found

    where = chromium.run(centres())
    names = sorted(where)
    colours = dict(zip(names, _pixels(chromium, png, [where[n] for n in names]), strict=True))
    hidden = {name for name, colour in colours.items() if colour == MAGENTA}
    assert hidden == {"bsn", "adres", "postcode", "keuze"}, colours

"""From an element as a definition names it to a Playwright locator.

A person finds a field by what the screen shows: its label, the caption in the table cell
next to it, the button's text, the row of the case it belongs to. Legacy forms often have no
`<label for>` and give their inputs a new name or id on every load, so `next_to` follows the
table layout instead of attributes; `near` and `in_row_with` narrow the search to a region
of the page, and `nth` picks one of several matches.
"""

from __future__ import annotations

import re

from playwright.async_api import Frame, FrameLocator, Page
from playwright.async_api import Locator as PwLocator

from tasks.definition import Locator

Scope = Page | Frame | FrameLocator | PwLocator

CONTROLS = (
    "self::input[not(@type='hidden')] or self::select or self::textarea"
    " or @role='combobox' or @role='textbox' or @role='listbox' or @contenteditable='true'"
)
"""What counts as a field in the cell next to a caption (XPath predicate)."""

_CELL = "(self::td or self::th or @role='cell' or @role='gridcell' or @role='rowheader')"
_ROWS = "tr, [role=row]"
_CELLS = "td, th, [role=cell], [role=gridcell], [role=rowheader]"
_REGIONS = (
    "form, fieldset, table, tbody, tr, section, article, aside, nav, ul, ol, li, dl, div, "
    "[role=dialog], [role=alertdialog], [role=group], [role=region], [role=form]"
)
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZÀÁÂÄÈÉÊËÌÍÎÏÒÓÔÖÙÚÛÜ"
_NEXT_CELL = f"/following-sibling::*[{_CELL}][1]"


def locate(page: Page, root: Page | Frame | FrameLocator, locator: Locator) -> PwLocator:
    """The Playwright locator of the element `locator` names, in `root` (the page or a frame).

    Narrowing goes from large to small: the smallest region that holds both the `near` text
    and the element, then in it the row with a cell reading `in_row_with`, then the element.
    """
    scope: Scope = root
    if locator.near is not None:
        # relative: queried inside each candidate region, so of the frame the regions are in
        element = _element(root if isinstance(root, Frame) else page, locator)
        scope = scope.locator(_REGIONS).filter(has_text=locator.near).filter(has=element).last
    if locator.in_row_with is not None:
        words = r"\s+".join(re.escape(word) for word in locator.in_row_with.split())
        reads = re.compile(rf"^\s*{words}\s*$")  # the whole cell, line breaks as spaces
        cell = root.locator(_CELLS).filter(has_text=reads)
        scope = scope.locator(_ROWS).filter(has=cell).last  # the innermost row (nested tables)
    found = _element(scope, locator)
    return found.nth(locator.nth) if locator.nth is not None else found.first


def find_frame(page: Page, frame: str) -> Frame | None:
    """The frame named `frame`, or else the first whose URL holds it (what `frame:` means)."""
    return page.frame(name=frame) or next(
        (found for found in page.frames if frame in found.url), None
    )


def _element(scope: Scope, locator: Locator) -> PwLocator:
    exact = locator.exact
    if locator.label is not None:
        return scope.get_by_label(locator.label, exact=exact)
    if locator.next_to is not None:
        return scope.locator("xpath=" + next_to_xpath(locator.next_to, exact=exact))
    if locator.role is not None:
        return scope.get_by_role(locator.role, name=locator.name, exact=exact)  # type: ignore[arg-type]
    if locator.text is not None:
        return scope.get_by_text(locator.text, exact=exact)
    if locator.placeholder is not None:
        return scope.get_by_placeholder(locator.placeholder, exact=exact)
    if locator.css is not None:
        return scope.locator(locator.css)
    return scope.locator(f"xpath={locator.xpath}")


def next_to_xpath(caption: str, *, exact: bool) -> str:
    """The fields in the cell right of a cell that reads `caption` (the whole text when
    `exact`, else a part of it, ignoring case); the caption cell holds no field itself."""
    return f"{_caption_cell(caption, exact=exact)}{_NEXT_CELL}//*[{CONTROLS}]"


def _caption_cell(caption: str, *, exact: bool) -> str:
    """The table cells that read `caption` and hold no field themselves (XPath)."""
    if exact:
        reads = f"normalize-space(.)={xpath_literal(' '.join(caption.split()))}"
    else:
        lower = caption.lower()
        text = f"translate(normalize-space(.), '{_UPPER}', '{_UPPER.lower()}')"
        reads = f"contains({text}, {xpath_literal(' '.join(lower.split()))})"
    return f"//*[{_CELL}][{reads}][not(.//*[{CONTROLS}])]"


def xpath_literal(text: str) -> str:
    """`text` as an XPath 1.0 string literal, quotes of either kind included."""
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    parts = text.split("'")
    return "concat(" + ', "\'", '.join(f"'{part}'" for part in parts) + ")"


FIELDS = (
    "input:not([type=hidden]), textarea, select, [role=combobox], [role=textbox],"
    " [role=listbox], [contenteditable=true]"
)
"""What a person types or chooses in: masked on every screenshot, whatever its label."""


def evidence_masks(page: Page, personal: tuple[str, ...]) -> list[PwLocator]:
    """What a screenshot of `page` must hide, in every frame: each field, and for each of the
    app's `personal` labels the field so labelled and the whole cell next to a caption that
    reads it (a part of it, ignoring case), so a value shown as text is hidden too."""
    masks: list[PwLocator] = []
    for frame in page.frames:
        if frame.is_detached():
            continue
        masks.append(frame.locator(FIELDS))
        for label in personal:
            masks.append(frame.get_by_label(label))
            masks.append(frame.locator("xpath=" + _caption_cell(label, exact=False) + _NEXT_CELL))
    return masks

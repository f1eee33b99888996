"""Python actions for the Parkeervergunningen app: the pattern for what YAML cannot say.

The shipped task says its `already_done` look-up in YAML (steps, `found`, `extract`). When a
check needs more than a person does on the screens (a computed value, an API call, a file to
parse), it becomes a Python action like `zoek_aanvraag` below, the same look-up written out,
which a task names with `already_done: {action: zoek_aanvraag, args: {...}}`;
tests/test_app_trouble.py runs both."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from bots.apps import action

if TYPE_CHECKING:
    from bots.session import GenericSession


@action("parkeren", "zoek_aanvraag")
async def zoek_aanvraag(session: GenericSession, args: dict[str, Any]) -> dict[str, Any] | None:
    """The permit entered for `aanvraagnummer` ({'zaaknummer': ...}), or None when there is none."""
    number = str(args["aanvraagnummer"])
    await session.page.goto("/vergunningen?" + urlencode({"aanvraagnummer": number}))
    await session.check_page()
    rows = session.page.locator("table.overzicht tr").filter(has=session.page.locator("td"))
    for index in range(await rows.count()):
        cells = [text.strip() for text in await rows.nth(index).locator("td").all_inner_texts()]
        if len(cells) >= 2 and cells[1] == number:
            return {"zaaknummer": cells[0]}
    return None

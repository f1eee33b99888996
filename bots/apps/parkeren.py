"""Python actions for the Parkeervergunningen app: what YAML cannot say well.

`zoek_aanvraag` looks an application up in the overview by its aanvraagnummer; tasks use it
as their `already_done` check, so that an item interrupted after submitting is not entered
again on resume.
"""

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

"""The HTML of the demo application: server-rendered strings in the style of around 2004.

Tables for layout, a grey header with the municipality's name, Verdana, a frameset. The
texts, labels, ids and titles here are a contract: bots and tests find elements by them,
so change them only together with the tests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import urlencode

from demo.rules import SOORTEN, ZONES, format_datum, format_kenteken
from demo.store import Vergunning

DOCTYPE = (
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN" '
    '"http://www.w3.org/TR/html4/loose.dtd">'
)
GEMEENTE = "Gemeente Klerkdam"
APP_NAME = "Parkeervergunningen"
VERSION = "PVS 3.2.1 (build 1187)"

MSG_CSRF = "Ongeldig formulier (CSRF)"
MSG_LOGIN_FAILED = "Onjuiste gebruikersnaam of wachtwoord"
MSG_SESSION_EXPIRED = "Uw sessie is verlopen. Log opnieuw in."
MSG_SERVER_ERROR = "Er is een interne fout opgetreden"
MSG_BUSY = "Het systeem is bezet, probeer het later opnieuw"
MSG_RECEIVED = "Uw aanvraag is ontvangen"
MSG_NOTHING_FOUND = "Geen vergunningen gevonden"
MSG_NOTICE = (
    "Let op: vanavond van 18:00 tot 20:00 is Parkeervergunningen niet beschikbaar. "
    "Vragen: servicedesk@klerkdam.nl"
)
MSG_CONFIRM = "Weet u zeker dat u deze aanvraag wilt indienen?"
MSG_EXPORT_QUEUED = "De export wordt voorbereid. U ontvangt hem later per e-mail."
LABEL_BSN_RENAMED = "Burgerservicenummer"

TITLE_FORM = "Nieuwe aanvraag parkeervergunning"
TITLE_OVERVIEW = "Overzicht vergunningen"
TITLE_SERVER_ERROR = "Interne serverfout"

FORM_FIELDS = (
    "aanvraagnummer",
    "bsn",
    "kenteken",
    "zone",
    "ingangsdatum",
    "soort",
    "verklaring",
)
"""The permit form's fields, by the name they have when ids are not randomised."""

FILTER_FIELDS = ("zaaknummer", "aanvraagnummer", "kenteken", "zone")
"""The overview filter's fields; also its GET parameter names."""

OVERVIEW_COLUMNS = (
    "Zaaknummer",
    "Aanvraagnummer",
    "Kenteken",
    "Zone",
    "Ingangsdatum",
    "Soort",
    "Status",
)
"""The overview's columns, which are also the CSV export's header."""
STATUS_ACTIVE = "Actief"


def _e(text: str) -> str:
    """Escape text for HTML content and attribute values."""
    return escape(text, quote=True)


def page(title: str, body: str, *, user: str | None = None) -> str:
    """A whole page of the application: the grey header, the content, the footer."""
    who = (
        f'<td class="gebruiker" align="right">Ingelogd als: <b>{_e(user)}</b></td>'
        if user
        else '<td class="gebruiker" align="right">&nbsp;</td>'
    )
    return f"""{DOCTYPE}
<html lang="nl">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<title>{_e(title)}</title>
<link rel="stylesheet" type="text/css" href="/static/klerkdam.css">
</head>
<body>
<table class="kop" width="100%" cellspacing="0" cellpadding="4" border="0">
<tr>
<td class="wapen" width="44"><div class="schild">KD</div></td>
<td class="gemeente">{GEMEENTE}<br><span class="afdeling">{APP_NAME} &middot;
Afdeling Vergunningen &amp; Handhaving</span></td>
{who}
</tr>
</table>
<table class="balk" width="100%" cellspacing="0" cellpadding="2" border="0">
<tr><td>&nbsp;{_e(title)}</td></tr>
</table>
<div class="inhoud">
{body}
</div>
<hr size="1" noshade>
<div class="voet">&copy; 2004-2026 {GEMEENTE} &middot; {VERSION} &middot;
Vragen? Bel de servicedesk, toestel 4321</div>
</body>
</html>
"""


def frameset() -> str:
    """The start page after login: the menu frame on the left, the work frame on the right."""
    return f"""<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Frameset//EN" \
"http://www.w3.org/TR/html4/frameset.dtd">
<html lang="nl">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<title>{APP_NAME} - {GEMEENTE}</title>
</head>
<frameset cols="200,*" frameborder="1" border="3" framespacing="2">
<frame name="menu" src="/menu">
<frame name="main" src="/welkom">
<noframes>
<body>Uw browser ondersteunt geen frames. <a href="/welkom">Verder zonder frames</a></body>
</noframes>
</frameset>
</html>
"""


def menu(user: str) -> str:
    """The menu frame."""
    return f"""{DOCTYPE}
<html lang="nl">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<title>Menu</title>
<link rel="stylesheet" type="text/css" href="/static/klerkdam.css">
</head>
<body class="menu">
<table class="kop" width="100%" cellspacing="0" cellpadding="4" border="0">
<tr><td class="gemeente">{GEMEENTE}</td></tr>
</table>
<table class="menutabel" width="100%" cellspacing="0" cellpadding="3" border="0">
<tr><th>Vergunningen</th></tr>
<tr><td><a href="/vergunningen/nieuw" target="main">Nieuwe aanvraag</a></td></tr>
<tr><td><a href="/vergunningen" target="main">Overzicht vergunningen</a></td></tr>
<tr><th>Sessie</th></tr>
<tr><td class="klein">Gebruiker: {_e(user)}</td></tr>
<tr><td><a href="/logout" target="_top">Uitloggen</a></td></tr>
</table>
<p class="klein">{VERSION}</p>
</body>
</html>
"""


def welkom(user: str) -> str:
    """The first page in the work frame."""
    body = f"""<h1>Welkom, {_e(user)}</h1>
<p>U bent ingelogd in het {APP_NAME}systeem (PVS) van de {GEMEENTE}.</p>
<p>Kies links in het menu wat u wilt doen.</p>
<table class="mededeling" cellspacing="0" cellpadding="4" border="1">
<tr><th align="left">Mededeling van de functioneel beheerder</th></tr>
<tr><td>Het systeem is elke eerste dinsdag van de maand van 18:00 tot 22:00 uur
niet beschikbaar wegens onderhoud.</td></tr>
</table>
"""
    return page(f"Welkom - {APP_NAME}", body, user=user)


def login(
    csrf_token: str, *, username: str = "", failed: bool = False, expired: bool = False
) -> str:
    """The login page, optionally with the failed-login or session-expired message."""
    notices = ""
    if expired:
        notices += f'<div class="melding" role="status">{MSG_SESSION_EXPIRED}</div>\n'
    if failed:
        notices += f'<div class="fout" role="alert">{MSG_LOGIN_FAILED}</div>\n'
    body = f"""<h1>Inloggen</h1>
{notices}<p>Log in met uw gebruikersnaam en wachtwoord van het gemeentelijk netwerk.</p>
<form method="post" action="/login" target="_top" name="login">
<input type="hidden" name="csrf_token" value="{_e(csrf_token)}">
<table class="formulier" cellspacing="0" cellpadding="4" border="0">
<tr>
<td class="lbl"><label for="gebruikersnaam">Gebruikersnaam</label></td>
<td><input type="text" id="gebruikersnaam" name="gebruikersnaam" value="{_e(username)}"
 size="25"></td>
</tr>
<tr>
<td class="lbl"><label for="wachtwoord">Wachtwoord</label></td>
<td><input type="password" id="wachtwoord" name="wachtwoord" value="" size="25"></td>
</tr>
<tr><td>&nbsp;</td><td><input type="submit" class="knop" value="Inloggen"></td></tr>
</table>
</form>
"""
    return page(f"Inloggen - {APP_NAME}", body)


@dataclass(frozen=True)
class FormView:
    """What the permit form shows: the input names in use, the CSRF token, values, an error."""

    names: Mapping[str, str]
    """Field (one of FORM_FIELDS) → the id and name of its input on this load."""
    csrf_token: str
    values: Mapping[str, str]
    """Field → the value entered, when the form is shown again after an error."""
    error: str | None = None
    bsn_label: str = "BSN"
    notice: str = ""
    """Text of an alert() shown when the form loads (a fault); empty for none."""
    confirm: str = ""
    """Text of a confirm() asked before the form is sent (a fault); empty for none."""


def _error_box(message: str | None) -> str:
    """The red box with a validation or refusal message."""
    return "" if message is None else f'<div class="fout" role="alert">{_e(message)}</div>\n'


def _text_row(
    label: str,
    input_id: str,
    value: str,
    *,
    size: int = 20,
    placeholder: str = "",
    hint: str = "",
) -> str:
    """One table row of the permit form: a label, a required text input, maybe a hint."""
    placeholder_attr = f' placeholder="{_e(placeholder)}"' if placeholder else ""
    tip = f' <span class="hint">{_e(hint)}</span>' if hint else ""
    return (
        f'<tr><td class="lbl"><label for="{_e(input_id)}">{_e(label)}</label>'
        ' <span class="verplicht">*</span></td>'
        f'<td><input type="text" id="{_e(input_id)}" name="{_e(input_id)}" value="{_e(value)}"'
        f' size="{size}"{placeholder_attr} aria-required="true">{tip}</td></tr>\n'
    )


def _zone_select(select_id: str, name: str, selected: str, *, required: bool = False) -> str:
    """The zone drop-down, with the empty "-- kies --" option first."""
    options = ['<option value="">-- kies --</option>']
    for code, text in ZONES.items():
        chosen = " selected" if code == selected else ""
        options.append(f'<option value="{code}"{chosen}>{_e(text)}</option>')
    aria = ' aria-required="true"' if required else ""
    return f'<select id="{_e(select_id)}" name="{_e(name)}"{aria}>{"".join(options)}</select>'


def permit_form(view: FormView, *, user: str) -> str:
    """The form for a new parking permit application."""
    n = view.names
    v = view.values
    radios = []
    for soort, label in SOORTEN.items():
        radio_id = f"{n['soort']}_{soort}"
        checked = " checked" if v.get("soort") == soort else ""
        radios.append(
            f'<input type="radio" id="{_e(radio_id)}" name="{_e(n["soort"])}" value="{soort}"'
            f'{checked}> <label for="{_e(radio_id)}">{label}</label>'
        )
    verklaard = " checked" if v.get("verklaring") else ""
    verklaring = _e(n["verklaring"])
    aanvraag = _text_row(
        "Aanvraagnummer",
        n["aanvraagnummer"],
        v.get("aanvraagnummer", ""),
        hint="nummer van het intakeformulier",
    )
    bsn = _text_row(view.bsn_label, n["bsn"], v.get("bsn", ""), size=12)
    kenteken = _text_row(
        "Kenteken", n["kenteken"], v.get("kenteken", ""), size=10, hint="bijv. GZ-123-K"
    )
    zone = _zone_select(n["zone"], n["zone"], v.get("zone", ""), required=True)
    ingangsdatum = _text_row(
        "Ingangsdatum",
        n["ingangsdatum"],
        v.get("ingangsdatum", ""),
        size=10,
        placeholder="dd-mm-jjjj",
    )
    notice = f"<script>alert({json.dumps(view.notice)});</script>\n" if view.notice else ""
    ask = f' onsubmit="{_e(f"return confirm({json.dumps(view.confirm)})")}"' if view.confirm else ""
    body = f"""{notice}<h1>{TITLE_FORM}</h1>
<p>Vul de gegevens uit het intakeformulier in. Velden met een
<span class="verplicht">*</span> zijn verplicht.</p>
{_error_box(view.error)}<form method="post" action="/vergunningen/nieuw" name="aanvraag"
 autocomplete="off"{ask}>
<input type="hidden" name="csrf_token" value="{_e(view.csrf_token)}">
<table class="formulier" cellspacing="0" cellpadding="4" border="0">
<tr><th colspan="2" align="left">Aanvraag</th></tr>
{aanvraag}<tr><th colspan="2" align="left">Aanvrager en voertuig</th></tr>
{bsn}{kenteken}<tr><th colspan="2" align="left">Vergunning</th></tr>
<tr><td class="lbl"><label for="{_e(n["zone"])}">Zone</label>
 <span class="verplicht">*</span></td><td>{zone}</td></tr>
{ingangsdatum}<tr><td class="lbl"><span id="soort_kop">Soort vergunning</span>
 <span class="verplicht">*</span></td>
<td role="radiogroup" aria-labelledby="soort_kop">{" &nbsp; ".join(radios)}</td></tr>
<tr><td>&nbsp;</td><td class="verklaring"><input type="checkbox" id="{verklaring}"
 name="{verklaring}" value="ja"{verklaard} aria-required="true">
<label for="{verklaring}">Ik verklaar dat de gegevens naar waarheid zijn ingevuld</label>
<span class="verplicht">*</span></td></tr>
<tr><td>&nbsp;</td><td><input type="submit" class="knop" value="Aanvragen"></td></tr>
</table>
</form>
"""
    return page(TITLE_FORM, body, user=user)


def confirmation(vergunning: Vergunning, *, user: str) -> str:
    """The page after a permit was stored, with its zaaknummer."""
    v = vergunning
    body = f"""<h1>Aanvraag ontvangen</h1>
<div class="gelukt"><b>{MSG_RECEIVED}</b></div>
<table class="gegevens" cellspacing="0" cellpadding="4" border="1">
<tr><th align="left">Zaaknummer</th><td><span id="zaaknummer">{_e(v.zaaknummer)}</span></td></tr>
<tr><th align="left">Aanvraagnummer</th><td>{_e(v.aanvraagnummer)}</td></tr>
<tr><th align="left">Kenteken</th><td>{_e(format_kenteken(v.kenteken))}</td></tr>
<tr><th align="left">Zone</th><td>{_e(ZONES.get(v.zone, v.zone))}</td></tr>
<tr><th align="left">Ingangsdatum</th><td>{format_datum(v.ingangsdatum)}</td></tr>
<tr><th align="left">Soort</th><td>{_e(SOORTEN.get(v.soort, v.soort))}</td></tr>
<tr><th align="left">Status</th><td>{STATUS_ACTIVE}</td></tr>
</table>
<p>Noteer het zaaknummer op het intakeformulier.</p>
<p><a href="/vergunningen/nieuw">Volgende aanvraag invoeren</a></p>
"""
    return page(f"Aanvraag ontvangen - {APP_NAME}", body, user=user)


def overview_row(vergunning: Vergunning) -> tuple[str, ...]:
    """One permit as the overview and the CSV export show it (the BSN is left out)."""
    v = vergunning
    return (
        v.zaaknummer,
        v.aanvraagnummer,
        format_kenteken(v.kenteken),
        v.zone,
        format_datum(v.ingangsdatum),
        SOORTEN.get(v.soort, v.soort),
        STATUS_ACTIVE,
    )


@dataclass(frozen=True)
class OverviewView:
    """What the overview shows: the filter, one page of permits and where that page is."""

    filters: Mapping[str, str]
    """GET parameter (one of FILTER_FIELDS) → its value."""
    ids: Mapping[str, str]
    """Filter field → the id of its input on this load."""
    rows: Sequence[Vergunning]
    total: int
    page_number: int
    page_count: int


def overview(view: OverviewView, *, user: str) -> str:
    """The paginated, filterable list of permits."""
    f = view.filters
    ids = view.ids
    query = {name: f.get(name, "") for name in FILTER_FIELDS if f.get(name, "")}

    def field_row(label: str, name: str, size: int) -> str:
        return (
            f'<td class="lbl"><label for="{_e(ids[name])}">{label}</label></td>'
            f'<td><input type="text" id="{_e(ids[name])}" name="{name}"'
            f' value="{_e(f.get(name, ""))}" size="{size}"></td>'
        )

    header = "".join(f"<th>{column}</th>" for column in OVERVIEW_COLUMNS)
    rows = []
    for number, vergunning in enumerate(view.rows):
        stripe = "even" if number % 2 else "oneven"
        cells = "".join(f"<td>{_e(cell)}</td>" for cell in overview_row(vergunning))
        rows.append(f'<tr class="{stripe}">{cells}</tr>')
    nothing = f'<p class="melding">{MSG_NOTHING_FOUND}</p>\n' if view.total == 0 else ""

    def page_link(number: int, text: str) -> str:
        href = "/vergunningen?" + urlencode({**query, "pagina": str(number)})
        return f'<a href="{_e(href)}">{text}</a>'

    pager = []
    if view.page_number > 1:
        pager.append(page_link(view.page_number - 1, "Vorige"))
    pager.append(
        f'<span class="paginanummer">Pagina {view.page_number} van {view.page_count}</span>'
    )
    if view.page_number < view.page_count:
        pager.append(page_link(view.page_number + 1, "Volgende"))
    export_href = "/vergunningen/export.csv" + ("?" + urlencode(query) if query else "")
    body = f"""<h1>{TITLE_OVERVIEW}</h1>
<form method="get" action="/vergunningen" name="zoeken">
<table class="formulier zoeken" cellspacing="0" cellpadding="4" border="0">
<tr><th colspan="4" align="left">Zoeken</th></tr>
<tr>{field_row("Zaaknummer", "zaaknummer", 16)}
{field_row("Aanvraagnummer", "aanvraagnummer", 16)}</tr>
<tr>{field_row("Kenteken", "kenteken", 10)}
<td class="lbl"><label for="{_e(ids["zone"])}">Zone</label></td>
<td>{_zone_select(ids["zone"], "zone", f.get("zone", ""))}</td></tr>
<tr><td>&nbsp;</td><td colspan="3"><input type="submit" class="knop" value="Zoeken"></td></tr>
</table>
</form>
<p class="acties">Aantal gevonden: <b>{view.total}</b> &nbsp;|&nbsp;
<a href="{_e(export_href)}">Exporteer CSV</a></p>
<table class="overzicht" cellspacing="0" cellpadding="3" border="1" width="100%">
<tr>{header}</tr>
{chr(10).join(rows)}
</table>
{nothing}<div class="pager">{" &nbsp; ".join(pager)}</div>
"""
    return page(TITLE_OVERVIEW, body, user=user)


def message(title: str, text: str, *, user: str | None = None, detail: str = "") -> str:
    """A page with one message, for errors outside a form (CSRF, not found).

    It uses class "storing", not "fout": `div.fout` is reserved for the permit form's
    validation errors and refusals, which bots read as business errors.
    """
    extra = f"<p>{detail}</p>\n" if detail else ""
    body = f'<h1>{_e(title)}</h1>\n<div class="storing" role="alert">{_e(text)}</div>\n{extra}'
    return page(title, body, user=user)


def server_error() -> str:
    """The HTTP 500 page."""
    body = f"""<h1>{TITLE_SERVER_ERROR}</h1>
<div class="storing" role="alert">{MSG_SERVER_ERROR}</div>
<p>Foutcode: PVS-500. Meld dit bij de servicedesk als het vaker voorkomt.</p>
"""
    return page(TITLE_SERVER_ERROR, body)


def busy() -> str:
    """The page the application shows when it is too busy to take the request."""
    body = f"""<h1>Systeem bezet</h1>
<div class="melding" role="status">{MSG_BUSY}</div>
<p>Foutcode: PVS-503.</p>
"""
    return page(f"Systeem bezet - {APP_NAME}", body)

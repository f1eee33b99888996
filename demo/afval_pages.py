"""The HTML of "Afvalcontainers", the second demo app: a different legacy look from the first.

Where Parkeervergunningen labels its inputs, this app puts each caption in the table cell
next to its input (no `<label for>`), gives the inputs new names on every load, and builds
its widgets from divs and script: a calendar popup, a list that only looks like a
`<select>`, a modal that asks before anything is sent. The texts, captions and classes here
are a contract with the tests; change them together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

APP_NAME = "Afvalcontainers"
GEMEENTE = "Gemeente Klerkdam"
VERSION = "AFV 1.4 (Stadsbeheer, 2003)"

CONTAINERS = (
    "Restafval 240 liter",
    "GFT 140 liter",
    "Papier 240 liter",
    "PMD 240 liter",
    "Restafval 1100 liter (bedrijven)",
)
"""The container types the custom dropdown offers, in its order."""

FORM_FIELDS = ("aanvraagnummer", "adres", "postcode", "container", "leverdatum", "bijlage")
"""The request form's fields; each input's name and id is the field plus a random suffix."""

CAPTIONS = {
    "aanvraagnummer": "Aanvraagnummer",
    "adres": "Straat en huisnummer",
    "postcode": "Postcode",
    "container": "Soort container",
    "leverdatum": "Gewenste leverdatum",
    "bijlage": "Bijlage (foto of PDF)",
}
"""The caption in the cell left of each field's input."""

LIST_COLUMNS = ("Zaaknummer", "Aanvraagnummer", "Adres", "Postcode", "Container", "Levering")

MSG_CSRF = "Formulier verlopen of ongeldig (CSRF). Open het formulier opnieuw."
MSG_LOGIN_FAILED = "Aanmelden mislukt: controleer gebruikersnaam en wachtwoord"
MSG_SESSION_EXPIRED = "Uw sessie is verlopen. Meld u opnieuw aan."
MSG_CONFIRM = "Wilt u deze containeraanvraag definitief indienen?"
MSG_STORED = "De aanvraag is geregistreerd onder zaaknummer"

_STYLE = """
body { font-family: Tahoma, Geneva, sans-serif; font-size: 11px; background: #eef3e6;
       margin: 0; color: #1d2b12; }
.kop { background: #3f6b2a; color: #fff; padding: 6px 10px; font-size: 14px; }
.kop b { font-size: 16px; }
.inhoud { padding: 10px; }
table.invoer { border: 1px solid #6b8f55; background: #fbfdf7; }
table.invoer td { padding: 3px 6px; vertical-align: top; }
td.bijschrift { text-align: right; font-weight: bold; color: #355a22; white-space: nowrap; }
.fout { color: #a00000; border: 1px solid #a00000; background: #fff0f0; padding: 4px;
        margin-bottom: 8px; }
.melding { color: #1d4d0f; border: 1px solid #3f6b2a; background: #e6f5dc; padding: 4px;
           margin-bottom: 8px; }
.knop { background: #d7e4c8; border: 2px outset #9db585; font-size: 11px; padding: 2px 8px; }
.kalender { position: absolute; background: #fff; border: 2px solid #3f6b2a; padding: 4px;
            z-index: 20; }
.kalender table td { text-align: center; width: 22px; }
.kalender a.dag { display: block; text-decoration: none; color: #1d2b12; }
.kalender a.dag:hover { background: #3f6b2a; color: #fff; }
.keuzelijst { position: relative; width: 220px; }
.keuzelijst .gekozen { border: 1px solid #6b8f55; background: #fff; padding: 2px 4px;
                       cursor: pointer; }
.keuzelijst ul { list-style: none; margin: 0; padding: 0; position: absolute; width: 100%;
                 background: #fff; border: 1px solid #3f6b2a; z-index: 10; }
.keuzelijst li { padding: 2px 4px; cursor: pointer; }
.keuzelijst li:hover { background: #d7e4c8; }
.sluier { position: fixed; inset: 0; background: rgba(0, 0, 0, 0.45); z-index: 50; }
.venster { position: fixed; top: 30%; left: 50%; width: 340px; margin-left: -170px;
           background: #fbfdf7; border: 3px double #3f6b2a; padding: 10px; z-index: 60; }
table.lijst { border-collapse: collapse; }
table.lijst th { background: #3f6b2a; color: #fff; padding: 2px 6px; text-align: left; }
table.lijst td { border-bottom: 1px solid #c5d6b3; padding: 2px 6px; }
.bladeren { margin-top: 6px; }
.menu { background: #3f6b2a; color: #fff; padding: 4px 10px; }
.menu a { color: #fff; margin-right: 14px; font-weight: bold; }
"""


def _e(text: str) -> str:
    """Escape text for HTML content and attribute values."""
    return escape(text, quote=True)


def page(title: str, body: str, *, script: str = "") -> str:
    """A whole page: the green header, the content, an optional script at the end."""
    return f"""<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">
<html lang="nl">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<title>{_e(title)}</title>
<style type="text/css">{_STYLE}</style>
</head>
<body>
<div class="kop"><b>{APP_NAME}</b> &mdash; {GEMEENTE}, afdeling Stadsbeheer</div>
<div class="inhoud">
{body}
</div>
<div class="inhoud" style="color:#777">{VERSION}</div>
{f'<script type="text/javascript">{script}</script>' if script else ""}
</body>
</html>
"""


def login(
    csrf_token: str, *, username: str = "", failed: bool = False, expired: bool = False
) -> str:
    """The login page: captions in cells, no labels, the CSRF token hidden. Shown in a frame
    (the session expired while the frameset was open), it takes the whole window."""
    notice = f'<div class="fout">{MSG_LOGIN_FAILED}</div>' if failed else ""
    if expired:
        notice = f'<div class="melding">{MSG_SESSION_EXPIRED}</div>{notice}'
    body = f"""<h2>Aanmelden</h2>
{notice}
<form method="post" action="/login" target="_top">
<input type="hidden" name="csrf_token" value="{_e(csrf_token)}">
<table class="invoer">
<tr><td class="bijschrift">Gebruiker</td>
<td><input type="text" name="gebruiker" value="{_e(username)}"></td></tr>
<tr><td class="bijschrift">Wachtwoord</td>
<td><input type="password" name="wachtwoord"></td></tr>
<tr><td></td><td><input type="submit" class="knop" value="Aanmelden"></td></tr>
</table>
</form>"""
    return page(f"Aanmelden - {APP_NAME}", body, script=_OUT_OF_FRAMES)


# What such applications did when their login page landed in a frame.
_OUT_OF_FRAMES = "if (top !== self) { top.location.href = self.location.href; }"


def frameset() -> str:
    """After login: a menu bar frame on top and the work frame below it."""
    return f"""<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Frameset//EN">
<html lang="nl">
<head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<title>{APP_NAME} - {GEMEENTE}</title></head>
<frameset rows="34,*" frameborder="0" border="0">
<frame name="menu" src="/menu" scrolling="no" noresize>
<frame name="main" src="/start">
</frameset>
</html>
"""


def menu(user: str) -> str:
    """The menu bar frame."""
    return f"""<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">
<html lang="nl"><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<title>Menu</title><style type="text/css">{_STYLE}</style></head>
<body class="menu">
<a href="/aanvraag" target="main">Container aanvragen</a>
<a href="/aanvragen" target="main">Aanvragen bekijken</a>
<a href="/logout" target="_top">Afmelden</a>
<span style="float:right">Gebruiker: {_e(user)}</span>
</body></html>
"""


def start(user: str) -> str:
    """The first page in the work frame."""
    body = f"""<h2>Goedendag {_e(user)}</h2>
<p>Kies in de menubalk bovenaan: een container aanvragen of de aanvragen bekijken.</p>"""
    return page(APP_NAME, body)


@dataclass(frozen=True)
class FormView:
    """What the request form shows on one load."""

    names: Mapping[str, str]
    """Field → the input name (and id) on this load."""
    csrf_token: str
    values: Mapping[str, str]
    error: str | None = None


def request_form(view: FormView) -> str:
    """The request form: a table of caption cells, a calendar, a div list and a modal."""
    names, values = view.names, view.values
    error = f'<div class="fout">{_e(view.error)}</div>' if view.error else ""

    def text_row(field: str, size: int) -> str:
        return (
            f'<tr><td class="bijschrift">{CAPTIONS[field]}</td>'
            f'<td><input type="text" name="{names[field]}" id="{names[field]}" size="{size}"'
            f' value="{_e(values.get(field, ""))}"></td></tr>'
        )

    chosen = values.get("container", "")
    options = "".join(f'<li role="option">{_e(c)}</li>' for c in CONTAINERS)
    body = f"""<h2>Container aanvragen</h2>
{error}
<form method="post" action="/aanvraag" enctype="multipart/form-data" id="aanvraagformulier">
<input type="hidden" name="csrf_token" value="{_e(view.csrf_token)}">
<table class="invoer">
{text_row("aanvraagnummer", 18)}
{text_row("adres", 32)}
{text_row("postcode", 8)}
<tr><td class="bijschrift">{CAPTIONS["container"]}</td>
<td><div class="keuzelijst" id="keuzelijst">
<input type="hidden" name="{names["container"]}" value="{_e(chosen)}">
<div class="gekozen" role="combobox" aria-expanded="false" tabindex="0">\
{_e(chosen) or "-- maak een keuze --"}</div>
<ul role="listbox" style="display:none">{options}</ul>
</div></td></tr>
<tr><td class="bijschrift">{CAPTIONS["leverdatum"]}</td>
<td><input type="text" name="{names["leverdatum"]}" id="{names["leverdatum"]}" size="10"
 class="datumveld" autocomplete="off" value="{_e(values.get("leverdatum", ""))}">
<span style="color:#777">(dd-mm-jjjj)</span>
<div class="kalender" style="display:none"></div></td></tr>
<tr><td class="bijschrift">{CAPTIONS["bijlage"]}</td>
<td><input type="file" name="{names["bijlage"]}" id="{names["bijlage"]}"></td></tr>
<tr><td></td><td><input type="button" class="knop" value="Indienen" id="indienen"></td></tr>
</table>
<div class="sluier" style="display:none"></div>
<div class="venster" role="dialog" aria-modal="true" aria-label="Bevestigen" style="display:none">
<p>{MSG_CONFIRM}</p>
<input type="button" class="knop" value="Ja, indienen" id="ja">
<input type="button" class="knop" value="Annuleren" id="nee">
</div>
</form>"""
    return page(f"Container aanvragen - {APP_NAME}", body, script=_FORM_SCRIPT)


# The widgets, in the plain DOM script such an application would have had.
_FORM_SCRIPT = """
(function () {
  var MAANDEN = ['januari','februari','maart','april','mei','juni','juli','augustus',
                 'september','oktober','november','december'];
  var veld = document.querySelector('.datumveld');
  var kalender = document.querySelector('.kalender');
  var getoond = new Date();
  function twee(n) { return (n < 10 ? '0' : '') + n; }
  function teken() {
    var jaar = getoond.getFullYear(), maand = getoond.getMonth();
    var eerste = (new Date(jaar, maand, 1).getDay() + 6) % 7;
    var dagen = new Date(jaar, maand + 1, 0).getDate();
    var html = '<div><a href="#" class="terug">&lt;&lt;</a> <b class="maand">' +
      MAANDEN[maand] + ' ' + jaar + '</b> <a href="#" class="verder">&gt;&gt;</a></div>' +
      '<table><tr><th>ma</th><th>di</th><th>wo</th><th>do</th><th>vr</th><th>za</th>' +
      '<th>zo</th></tr><tr>';
    for (var i = 0; i < eerste; i++) { html += '<td></td>'; }
    for (var d = 1; d <= dagen; d++) {
      if ((eerste + d - 1) % 7 === 0 && d > 1) { html += '</tr><tr>'; }
      html += '<td><a href="#" class="dag" data-datum="' + twee(d) + '-' + twee(maand + 1) +
        '-' + jaar + '">' + d + '</a></td>';
    }
    kalender.innerHTML = html + '</tr></table>';
  }
  veld.addEventListener('focus', function () { teken(); kalender.style.display = 'block'; });
  kalender.addEventListener('mousedown', function (e) { e.preventDefault(); });
  kalender.addEventListener('click', function (e) {
    e.preventDefault();
    var doel = e.target;
    if (doel.className === 'terug' || doel.className === 'verder') {
      getoond = new Date(getoond.getFullYear(),
        getoond.getMonth() + (doel.className === 'verder' ? 1 : -1), 1);
      teken();
    } else if (doel.className === 'dag') {
      veld.value = doel.getAttribute('data-datum');
      kalender.style.display = 'none';
    }
  });
  function sluit() { kalender.style.display = 'none'; }
  veld.addEventListener('blur', sluit);
  veld.addEventListener('input', sluit);
  veld.addEventListener('keydown', function (e) { if (e.key === 'Escape') { sluit(); } });

  var lijst = document.getElementById('keuzelijst');
  var gekozen = lijst.querySelector('.gekozen');
  var opties = lijst.querySelector('ul');
  var waarde = lijst.querySelector('input');
  gekozen.addEventListener('click', function () {
    var open = opties.style.display === 'none';
    opties.style.display = open ? 'block' : 'none';
    gekozen.setAttribute('aria-expanded', open ? 'true' : 'false');
  });
  opties.addEventListener('click', function (e) {
    if (e.target.tagName !== 'LI') { return; }
    waarde.value = e.target.textContent;
    gekozen.textContent = e.target.textContent;
    opties.style.display = 'none';
    gekozen.setAttribute('aria-expanded', 'false');
  });

  var sluier = document.querySelector('.sluier');
  var venster = document.querySelector('.venster');
  function toon(zichtbaar) {
    sluier.style.display = zichtbaar ? 'block' : 'none';
    venster.style.display = zichtbaar ? 'block' : 'none';
  }
  document.getElementById('indienen').addEventListener('click', function () { toon(true); });
  document.getElementById('nee').addEventListener('click', function () { toon(false); });
  document.getElementById('ja').addEventListener('click', function () {
    document.getElementById('aanvraagformulier').submit();
  });
})();
"""


def stored(zaaknummer: str) -> str:
    """The page after a request was stored."""
    body = f"""<h2>Aanvraag geregistreerd</h2>
<div class="melding">{MSG_STORED} <b class="zaaknummer">{_e(zaaknummer)}</b>.</div>
<p><a href="/aanvraag">Nog een container aanvragen</a> &middot;
<a href="/aanvragen?blad=laatste">Naar de aanvragen</a></p>"""
    return page(f"Geregistreerd - {APP_NAME}", body)


def request_list(rows: Sequence[Sequence[str]], *, page_number: int, page_count: int) -> str:
    """One page of the requests, with its own "Vorige"/"Volgende" links and a counter."""
    head = "".join(f"<th>{c}</th>" for c in LIST_COLUMNS)
    lines = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in rows)
    previous = (
        f'<a href="/aanvragen?blad={page_number - 1}">&laquo; Vorige</a>'
        if page_number > 1
        else "&laquo; Vorige"
    )
    following = (
        f'<a href="/aanvragen?blad={page_number + 1}">Volgende &raquo;</a>'
        if page_number < page_count
        else "Volgende &raquo;"
    )
    body = f"""<h2>Aanvragen</h2>
<table class="lijst"><tr>{head}</tr>{lines or '<tr><td colspan="6">Geen aanvragen</td></tr>'}
</table>
<div class="bladeren">{previous} &nbsp;
<span class="teller">Blad {page_number} van {page_count}</span> &nbsp; {following}</div>"""
    return page(f"Aanvragen - {APP_NAME}", body)


def message(title: str, text: str, *, again: str = "") -> str:
    """A page with one message and an optional link to try again."""
    link = f'<p><a href="{_e(again)}">Opnieuw</a></p>' if again else ""
    return page(
        f"{title} - {APP_NAME}", f'<h2>{_e(title)}</h2><div class="fout">{text}</div>{link}'
    )

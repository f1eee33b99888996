"""The business rules of a parking permit application: BSN, kenteken, zone, date, kind.

Validation runs in a fixed order and stops at the first problem, the way the legacy
application did; each problem has one exact message that bots and tests match on.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

ZONES: dict[str, str] = {
    "A": "A - Centrum",
    "B": "B - Oost",
    "C": "C - West",
    "D": "D - Noord",
}
"""Zone code → the text the zone select shows."""

SOORTEN: dict[str, str] = {"bewoner": "Bewoner", "bedrijf": "Bedrijf"}
"""Kind of permit as stored → the label of its radio button."""

ERR_AANVRAAGNUMMER = "Aanvraagnummer is verplicht"
ERR_BSN = "BSN is ongeldig"
ERR_KENTEKEN = "Kenteken is ongeldig"
ERR_ZONE = "Kies een zone"
ERR_INGANGSDATUM = "Ingangsdatum is ongeldig (dd-mm-jjjj)"
ERR_SOORT = "Kies een soort vergunning"
ERR_VERKLARING = "U moet de verklaring aanvinken"

_BSN_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)
_DMY = re.compile(r"([0-9]{1,2})-([0-9]{1,2})-([0-9]{4})")
_KENTEKEN = re.compile(r"[A-Z0-9]{6}")
_GROUPS = re.compile(r"[A-Z]+|[0-9]+")


def bsn_is_valid(bsn: str) -> bool:
    """Whether `bsn` is nine digits that pass the elfproef (and is not all zeros)."""
    if len(bsn) != 9 or not bsn.isascii() or not bsn.isdigit() or bsn == "000000000":
        return False
    return (
        sum(int(digit) * weight for digit, weight in zip(bsn, _BSN_WEIGHTS, strict=True)) % 11 == 0
    )


def normalise_kenteken(kenteken: str) -> str:
    """The plate as stored: upper case, dashes and spaces removed ("gz-123-k" → "GZ123K")."""
    return kenteken.replace("-", "").replace(" ", "").upper()


def kenteken_is_valid(kenteken: str) -> bool:
    """Whether a plate, once normalised, is six letters or digits."""
    return _KENTEKEN.fullmatch(normalise_kenteken(kenteken)) is not None


def format_kenteken(kenteken: str) -> str:
    """The plate as people write it, with dashes between its groups ("GZ123K" → "GZ-123-K").

    Letters and digits form the groups (sidecodes 7 and later, e.g. XX-999-X); a plate of
    two groups or one (older sidecodes, e.g. XX-99-99) is split in pairs.
    """
    plate = normalise_kenteken(kenteken)
    groups = _GROUPS.findall(plate)
    if len(groups) == 3:
        return "-".join(groups)
    return "-".join(plate[i : i + 2] for i in range(0, len(plate), 2))


def parse_datum(text: str) -> dt.date | None:
    """The date written as dd-mm-jjjj, or None when it is not a real date in that form."""
    match = _DMY.fullmatch(text.strip())
    if match is None:
        return None
    day, month, year = (int(part) for part in match.groups())
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def format_datum(date: dt.date) -> str:
    """A date as dd-mm-jjjj, the way the application shows it."""
    return date.strftime("%d-%m-%Y")


@dataclass(frozen=True)
class Aanvraag:
    """A validated permit application, ready to be stored."""

    aanvraagnummer: str
    bsn: str
    kenteken: str
    """Normalised: upper case, no dashes."""
    zone: str
    ingangsdatum: dt.date
    soort: str
    """"bewoner" or "bedrijf"."""


def check_aanvraag(values: Mapping[str, str]) -> Aanvraag | str:
    """Validate the form's values (keyed by field name) into an `Aanvraag`, or the first error.

    The fields are aanvraagnummer, bsn, kenteken, zone, ingangsdatum, soort and
    verklaring; missing fields count as empty.
    """

    def value(name: str) -> str:
        return values.get(name, "").strip()

    aanvraagnummer = value("aanvraagnummer")
    if not aanvraagnummer:
        return ERR_AANVRAAGNUMMER
    bsn = value("bsn")
    if not bsn_is_valid(bsn):
        return ERR_BSN
    kenteken = value("kenteken")
    if not kenteken_is_valid(kenteken):
        return ERR_KENTEKEN
    zone = value("zone")
    if zone not in ZONES:
        return ERR_ZONE
    ingangsdatum = parse_datum(value("ingangsdatum"))
    if ingangsdatum is None:
        return ERR_INGANGSDATUM
    soort = value("soort")
    if soort not in SOORTEN:
        return ERR_SOORT
    if not value("verklaring"):
        return ERR_VERKLARING
    return Aanvraag(
        aanvraagnummer=aanvraagnummer,
        bsn=bsn,
        kenteken=normalise_kenteken(kenteken),
        zone=zone,
        ingangsdatum=ingangsdatum,
        soort=soort,
    )


def refusal_active_permit(kenteken: str) -> str:
    """The business refusal shown when the plate already has an active permit."""
    return f"Er bestaat al een actieve vergunning voor kenteken {format_kenteken(kenteken)}"

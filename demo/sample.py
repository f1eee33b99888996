"""Synthetic intake data for the demo: realistic permit applications with valid test BSNs.

Pure Python, so the demo, the tests and the benchmarks make the same rows; writing them to a
spreadsheet is the connectors' job (see `make_sample`).
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

HEADERS = ["Aanvraagnummer", "Naam", "BSN", "Kenteken", "Zone", "Ingangsdatum", "Soort"]
ZONES = ["A - Centrum", "B - Oost", "C - West", "D - Noord"]
_FIRST = [
    "Anouk",
    "Bram",
    "Chantal",
    "Daan",
    "Eva",
    "Fatima",
    "Gijs",
    "Hanneke",
    "Ilse",
    "Jeroen",
    "Kees",
    "Lotte",
    "Mohamed",
    "Noor",
    "Okke",
    "Priya",
    "Quinten",
    "Roos",
    "Sem",
    "Tess",
]
_LAST = [
    "de Vries",
    "Jansen",
    "van den Berg",
    "Bakker",
    "Visser",
    "Smit",
    "Meijer",
    "de Boer",
    "Mulder",
    "de Groot",
    "Bos",
    "Vos",
    "Peters",
    "Hendriks",
    "van Leeuwen",
    "Dekker",
]
_PLATE_LETTERS = "BDFGHJKLNPRSTVXZ"
# The bad rows of the sample and why they are bad (the seed permit HX-441-B exists in the app).
EXISTING_PLATE = "HX-441-B"


def bsn(rng: random.Random) -> str:
    """A random nine-digit number that passes the elfproef (a test BSN, nobody's real one)."""
    weights = (9, 8, 7, 6, 5, 4, 3, 2)
    while True:
        digits = [rng.randrange(10) for _ in range(8)]
        digits[0] = rng.choice((1, 2, 3, 6, 9))
        check = sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
        if check < 10:
            return "".join(map(str, digits)) + str(check)


def invalid_bsn(rng: random.Random) -> str:
    """Nine digits that fail the elfproef."""
    valid = bsn(rng)
    last = (int(valid[-1]) + 1) % 10
    return valid[:-1] + str(last)


def plate(rng: random.Random, taken: set[str]) -> str:
    """A unique Dutch-looking licence plate like 'KZ-417-T'."""
    while True:
        value = (
            "".join(rng.choice(_PLATE_LETTERS) for _ in range(2))
            + f"-{rng.randrange(100, 1000)}-"
            + rng.choice(_PLATE_LETTERS)
        )
        if value not in taken and value != EXISTING_PLATE:
            taken.add(value)
            return value


def aanvragen(
    count: int = 50, *, seed: int = 2026, bad_rows: bool = True, prefix: str = "AV-2026-"
) -> list[dict[str, Any]]:
    """`count` applications; with `bad_rows`, rows 10, 20 and 30 carry a deliberate problem.

    Row 10: a BSN failing the elfproef; row 20: an impossible date (31-02-2027, as text);
    row 30: a licence plate that already has an active permit in the app.
    """
    rng = random.Random(seed)
    taken: set[str] = set()
    start = dt.date(2027, 1, 4)
    rows = []
    for number in range(1, count + 1):
        ingangsdatum: dt.date | str = start + dt.timedelta(days=rng.randrange(0, 120))
        row: dict[str, Any] = {
            "Aanvraagnummer": f"{prefix}{number:05d}",
            "Naam": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
            "BSN": bsn(rng),
            "Kenteken": plate(rng, taken),
            "Zone": rng.choice(ZONES),
            "Ingangsdatum": ingangsdatum,
            "Soort": rng.choice(("bewoner", "bewoner", "bewoner", "bedrijf")),
        }
        if number % 7 == 0 and isinstance(ingangsdatum, dt.date):
            row["Ingangsdatum"] = ingangsdatum.strftime("%d-%m-%Y")  # typed as text, as clerks do
        if bad_rows and number == 10:
            row["BSN"] = invalid_bsn(rng)
        if bad_rows and number == 20:
            row["Ingangsdatum"] = "31-02-2027"
        if bad_rows and number == 30:
            row["Kenteken"] = EXISTING_PLATE
        rows.append(row)
    return rows

"""Synthetic intake for Afvalcontainers: container requests per address, the same every run.

Pure Python, like `demo.sample`; the tutorial and the benchmark write these rows to a
spreadsheet with the connectors.
"""

from __future__ import annotations

import datetime as dt
import random

from demo.afval_pages import CONTAINERS

HEADERS = ["Aanvraagnummer", "Adres", "Postcode", "Container", "Leverdatum", "Bijlage"]
_STREETS = [
    "Dorpsstraat",
    "Kerkweg",
    "Molenlaan",
    "Stationsplein",
    "Beukenhof",
    "Havenkade",
    "Lindelaan",
    "Schoolstraat",
    "Vaartweg",
    "Zuiderpark",
]
_LETTERS = "ABDEGHJKLNPRSTVXZ"


def postcode(rng: random.Random) -> str:
    """A Dutch-looking postcode like '2417 KD'."""
    return f"{rng.randrange(1000, 10000)} {rng.choice(_LETTERS)}{rng.choice(_LETTERS)}"


def containeraanvragen(
    count: int = 50, *, seed: int = 2026, prefix: str = "CA-2026-"
) -> list[dict[str, str]]:
    """`count` requests: an address, a container type, a delivery date (dd-mm-jjjj).

    Every fifth row names an attachment (a photo of where the container should stand);
    the file itself is for the caller to make.
    """
    rng = random.Random(seed)
    start = dt.date(2027, 1, 4)
    rows = []
    for number in range(1, count + 1):
        leverdatum = start + dt.timedelta(days=rng.randrange(0, 90))
        rows.append(
            {
                "Aanvraagnummer": f"{prefix}{number:05d}",
                "Adres": f"{rng.choice(_STREETS)} {rng.randrange(1, 200)}",
                "Postcode": postcode(rng),
                "Container": rng.choice(CONTAINERS),
                "Leverdatum": leverdatum.strftime("%d-%m-%Y"),
                "Bijlage": f"standplaats-{number:05d}.jpg" if number % 5 == 0 else "",
            }
        )
    return rows

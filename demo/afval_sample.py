"""Synthetic intake for Afvalcontainers: container requests per address, the same every run.

Pure Python, like `demo.sample`; the tutorial and the benchmark write these rows to a
spreadsheet with the connectors, and the attachments they name with `write_attachments`.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable, Mapping
from pathlib import Path

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


def attachment(name: str) -> bytes:
    """The content of a sample attachment: a small JPEG-like file, its size differing by name."""
    return (
        b"\xff\xd8\xff\xe0"
        + f"standplaats {name} ".encode() * (20 + sum(name.encode()) % 17)
        + b"\xff\xd9"
    )


def write_attachments(rows: Iterable[Mapping[str, str]], folder: Path) -> list[Path]:
    """Write the attachment each row names (column Bijlage) into `folder`, next to the
    spreadsheet, where klerk looks for it; the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for row in rows:
        name = row.get("Bijlage") or ""
        if name:
            path = folder / name
            path.write_bytes(attachment(name))
            written.append(path)
    return written

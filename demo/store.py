"""The permits of the demo application, kept in SQLite.

One connection guarded by a lock serves every thread; the duplicate-plate check and the
insert happen under that lock in one transaction, so two bots entering the same plate at
the same moment get one permit and one refusal. Without a file path the database lives
in memory and disappears with the application.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from demo.rules import Aanvraag, normalise_kenteken

ZAAKNUMMER_PREFIX = "Z-2026-"
"""Every zaaknummer is this prefix and a six-digit sequence number."""

SEED_AANVRAGEN: tuple[Aanvraag, ...] = (
    Aanvraag("SEED-1", "999990019", "GZ123K", "A", dt.date(2026, 1, 1), "bewoner"),
    Aanvraag("SEED-2", "999990032", "HX441B", "B", dt.date(2026, 1, 1), "bewoner"),
    Aanvraag("SEED-3", "999990044", "JT09PL", "C", dt.date(2026, 1, 1), "bedrijf"),
)
"""The permits present at start and after a reset, so that sample input can collide."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vergunning (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    zaaknummer TEXT UNIQUE,
    aanvraagnummer TEXT NOT NULL,
    bsn TEXT NOT NULL,
    kenteken TEXT NOT NULL,
    zone TEXT NOT NULL,
    ingangsdatum TEXT NOT NULL,
    soort TEXT NOT NULL,
    aangemaakt TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS vergunning_kenteken ON vergunning (kenteken);
CREATE INDEX IF NOT EXISTS vergunning_aanvraagnummer ON vergunning (aanvraagnummer);
"""

_COLUMNS = "zaaknummer, aanvraagnummer, bsn, kenteken, zone, ingangsdatum, soort, aangemaakt"


@dataclass(frozen=True)
class Vergunning:
    """A stored parking permit; every stored permit is active."""

    zaaknummer: str
    aanvraagnummer: str
    bsn: str
    kenteken: str
    """Normalised: upper case, no dashes."""
    zone: str
    ingangsdatum: dt.date
    soort: str
    aangemaakt: dt.datetime
    """When it was stored (UTC)."""

    def to_json(self) -> dict[str, str]:
        """The permit as `GET /api/vergunningen` shows it (dates in ISO 8601)."""
        return {
            "zaaknummer": self.zaaknummer,
            "aanvraagnummer": self.aanvraagnummer,
            "bsn": self.bsn,
            "kenteken": self.kenteken,
            "zone": self.zone,
            "ingangsdatum": self.ingangsdatum.isoformat(),
            "soort": self.soort,
            "aangemaakt": self.aangemaakt.isoformat(timespec="milliseconds"),
        }


@dataclass(frozen=True)
class Zoekvraag:
    """The overview's filter; empty fields do not filter. Matches are exact, ignoring case."""

    zaaknummer: str = ""
    aanvraagnummer: str = ""
    kenteken: str = ""
    """Normalised before it is compared."""
    zone: str = ""


class KentekenHeeftVergunning(Exception):
    """Raised when a permit is registered for a plate that already has an active permit."""

    def __init__(self, kenteken: str) -> None:
        super().__init__(kenteken)
        self.kenteken = kenteken


class VergunningStore:
    """The permits table; every method is safe to call from any thread."""

    def __init__(self, path: str | None = None) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path or ":memory:", check_same_thread=False)
        with self._lock, self._transaction():
            if path:
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        with self._lock:
            empty = self._db.execute("SELECT COUNT(*) FROM vergunning").fetchone()[0] == 0
        if empty:
            self.reset()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """Commit what the block did, or roll it back when it raises (the caller holds the lock)."""
        try:
            yield
        except BaseException:
            self._db.rollback()
            raise
        self._db.commit()

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def register(self, aanvraag: Aanvraag) -> Vergunning:
        """Store a permit and give it the next zaaknummer.

        Raises KentekenHeeftVergunning when the plate already has one.
        """
        aangemaakt = dt.datetime.now(dt.UTC)
        with self._lock, self._transaction():
            return self._insert(aanvraag, aangemaakt)

    def _insert(self, aanvraag: Aanvraag, aangemaakt: dt.datetime) -> Vergunning:
        """Insert one permit inside the caller's transaction and lock."""
        taken = self._db.execute(
            "SELECT 1 FROM vergunning WHERE kenteken = ? LIMIT 1", (aanvraag.kenteken,)
        ).fetchone()
        if taken is not None:
            raise KentekenHeeftVergunning(aanvraag.kenteken)
        cursor = self._db.execute(
            "INSERT INTO vergunning"
            " (aanvraagnummer, bsn, kenteken, zone, ingangsdatum, soort, aangemaakt)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                aanvraag.aanvraagnummer,
                aanvraag.bsn,
                aanvraag.kenteken,
                aanvraag.zone,
                aanvraag.ingangsdatum.isoformat(),
                aanvraag.soort,
                aangemaakt.isoformat(),
            ),
        )
        row_id = cursor.lastrowid
        assert row_id is not None
        zaaknummer = f"{ZAAKNUMMER_PREFIX}{row_id:06d}"
        self._db.execute("UPDATE vergunning SET zaaknummer = ? WHERE id = ?", (zaaknummer, row_id))
        return Vergunning(
            zaaknummer=zaaknummer,
            aanvraagnummer=aanvraag.aanvraagnummer,
            bsn=aanvraag.bsn,
            kenteken=aanvraag.kenteken,
            zone=aanvraag.zone,
            ingangsdatum=aanvraag.ingangsdatum,
            soort=aanvraag.soort,
            aangemaakt=aangemaakt,
        )

    def reset(self) -> None:
        """Delete every permit, restart the sequence, and store the seed permits again."""
        aangemaakt = dt.datetime.now(dt.UTC)
        with self._lock, self._transaction():
            self._db.execute("DELETE FROM vergunning")
            self._db.execute("DELETE FROM sqlite_sequence WHERE name = 'vergunning'")
            for aanvraag in SEED_AANVRAGEN:
                self._insert(aanvraag, aangemaakt)

    def count(self) -> int:
        """How many permits are stored."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM vergunning").fetchone()[0])

    def get(self, zaaknummer: str) -> Vergunning | None:
        """The permit with this zaaknummer, if there is one."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM vergunning WHERE zaaknummer = ?", (zaaknummer,)
            ).fetchone()
        return None if row is None else _vergunning(row)

    def all(self) -> list[Vergunning]:
        """Every stored permit, in zaaknummer order."""
        return self.search(Zoekvraag())

    def search(
        self, vraag: Zoekvraag, *, offset: int = 0, limit: int | None = None
    ) -> list[Vergunning]:
        """The permits that match the filter, in zaaknummer order, optionally one page of them."""
        where, params = _where(vraag)
        sql = f"SELECT {_COLUMNS} FROM vergunning{where} ORDER BY id"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params = [*params, limit, offset]
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [_vergunning(row) for row in rows]

    def count_matching(self, vraag: Zoekvraag) -> int:
        """How many permits match the filter."""
        where, params = _where(vraag)
        with self._lock:
            row = self._db.execute(f"SELECT COUNT(*) FROM vergunning{where}", params).fetchone()
        return int(row[0])


def _where(vraag: Zoekvraag) -> tuple[str, list[Any]]:
    """The WHERE clause and its parameters for a filter."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("zaaknummer", vraag.zaaknummer.strip().upper()),
        ("aanvraagnummer", vraag.aanvraagnummer.strip()),
        ("kenteken", normalise_kenteken(vraag.kenteken)),
        ("zone", vraag.zone.strip().upper()),
    ):
        if value:
            # Zaaknummers, plates and zones are stored in upper case; aanvraagnummers as typed.
            collate = " COLLATE NOCASE" if column == "aanvraagnummer" else ""
            clauses.append(f"{column} = ?{collate}")
            params.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _vergunning(row: tuple[Any, ...]) -> Vergunning:
    """A permit from a row selected with `_COLUMNS`."""
    zaaknummer, aanvraagnummer, bsn, kenteken, zone, ingangsdatum, soort, aangemaakt = row
    return Vergunning(
        zaaknummer=zaaknummer,
        aanvraagnummer=aanvraagnummer,
        bsn=bsn,
        kenteken=kenteken,
        zone=zone,
        ingangsdatum=dt.date.fromisoformat(ingangsdatum),
        soort=soort,
        aangemaakt=dt.datetime.fromisoformat(aangemaakt),
    )

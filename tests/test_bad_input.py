"""Bad input end to end: `klerk run` as a clerk starts it, on the spreadsheets clerks really have.

A row that cannot be used is reported on its own row of the results sheet, in Dutch, and the
good rows around it are entered in the app. A file that cannot be used at all, or a task whose
credentials are missing, stops `klerk run` with exit 2 and one message saying what to do: no
run stored, no results file, nothing entered.
"""

from __future__ import annotations

import io
import random
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from msoffcrypto.format.ooxml import OOXMLFile

from demo.sample import HEADERS, aanvragen, bsn, invalid_bsn
from tasks.store import Store
from tests.conftest import DemoApp, Klerk, read_results, write_intake
from tests.test_connectors import compound_file

pytestmark = pytest.mark.browser

TASK = "vergunningen-invoeren"


def _entered(demo: DemoApp) -> list[str]:
    return sorted(
        p["aanvraagnummer"] for p in demo.permits() if not p["aanvraagnummer"].startswith("SEED")
    )


def _store_formula_results(path: Path, results: dict[str, tuple[str, str]]) -> None:
    """Give formula cells the result Excel stores when it saves: cell -> (type, value);
    openpyxl writes formulas without one. Type 'str' is text, 'e' an error such as #N/A."""
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    xml = parts["xl/worksheets/sheet1.xml"].decode()
    for cell, (kind, value) in results.items():
        xml, replaced = re.subn(
            rf'<c r="{cell}"([^>]*)>(<f>[^<]*</f>)<v\s*/>',
            rf'<c r="{cell}"\1 t="{kind}">\2<v>{value}</v>',
            xml,
        )
        assert replaced == 1, cell
    parts["xl/worksheets/sheet1.xml"] = xml.encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in parts.items():
            archive.writestr(name, content)


def test_bad_rows_are_reported_on_their_row_and_the_good_rows_entered(
    klerk: Klerk, demo_app: DemoApp
) -> None:
    rng = random.Random(6)
    good = {
        row["Aanvraagnummer"]: row for row in aanvragen(4, seed=6, bad_rows=False, prefix="BI-")
    }
    first, second, third, fourth = (list(row.values()) for row in good.values())
    bad_bsn = invalid_bsn(rng)

    def row(number: str, **changes: Any) -> list[Any]:
        values = dict(zip(HEADERS, first, strict=True))
        values.update(
            Aanvraagnummer=number, BSN=bsn(rng), Kenteken=f"ZZ-{len(number)}{number[-2:]}-X"
        )
        values.update(changes)
        return [values[name] for name in HEADERS]

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Aanvragen"
    sheet.append(HEADERS)
    sheet.append(first)  # row 2
    sheet.append([*second[:4], '="' + str(second[4]) + '"', *second[5:]])  # 3: zone by formula
    sheet.append([])  # 4 and 5: empty rows in between
    sheet.append([])
    sheet.append(row("BI-10", BSN=bad_bsn))  # 6
    sheet.append(row("BI-11", Ingangsdatum="morgen"))  # 7: text in a date column
    sheet.append(row(first[0]))  # 8: the key of row 2 again
    sheet.append(row("BI-12", Zone="=VLOOKUP(1,Zones!A:B,2,FALSE)"))  # 9: formula error
    sheet.append(third)  # 10: its zone merged down over row 11
    sheet.append(row("BI-13", Zone=None))  # 11
    sheet.merge_cells("E10:E11")
    sheet.append(fourth)  # 12
    intake = klerk.home / "aanvragen.xlsx"
    workbook.save(intake)
    _store_formula_results(intake, {"E3": ("str", str(second[4])), "E9": ("e", "#N/A")})

    result = klerk("run", TASK, "--input", str(intake))

    assert result.returncode == 1, result.stderr  # finished; not every row done
    assert "Traceback" not in result.stderr
    assert _entered(demo_app) == sorted(good)
    results = read_results(klerk.home / "aanvragen-resultaten.xlsx")
    merged = "(maak het samenvoegen ongedaan en vul elke rij zelf in)"
    assert [(r["Aanvraagnummer"], r["status"], r["melding"] or "") for r in results] == [
        (first[0], "done", ""),
        (second[0], "done", ""),
        ("BI-10", "business_error", "kolom BSN: geen geldig BSN (elfproef)"),
        ("BI-11", "business_error", "kolom Ingangsdatum: geen geldige datum (dd-mm-jjjj)"),
        (first[0], "business_error", f"Aanvraagnummer {first[0]} komt vaker voor (ook op rij 2)"),
        ("BI-12", "business_error", "kolom Zone: de formule in cel E9 geeft de fout #N/A"),
        (third[0], "done", ""),
        ("BI-13", "business_error", f"kolom Zone: cel E11 is samengevoegd met E10 {merged}"),
        (fourth[0], "done", ""),
    ]
    by_number = {p["aanvraagnummer"]: p for p in demo_app.permits()}
    # the zone came from the formula's stored result ('B - Oost'); the app keeps its letter
    assert by_number[second[0]]["zone"] == str(second[4]).split(" - ")[0]
    assert all(r["zaaknummer"] for r in results if r["status"] == "done")
    assert bad_bsn not in result.stdout + result.stderr
    assert bad_bsn not in " ".join(str(r["melding"]) for r in results)


# --- a file that cannot be used at all ------------------------------------------------------


def _intake(home: Path) -> Path:
    return write_intake(home / "aanvragen.xlsx", aanvragen(3, seed=9, bad_rows=False))


def _missing(home: Path) -> tuple[Path, str]:
    path = home / "aanvragen.xlsx"
    return path, f"file not found: {path} (the folder {home} holds no .xlsx/.xlsm files)"


def _wrong_sheet(home: Path) -> tuple[Path, str]:
    path = write_intake(home / "aanvragen.xlsx", aanvragen(3, seed=9), sheet="Blad1")
    return path, f"{path} has no sheet 'Aanvragen'; its sheets are: 'Blad1'"


def _headers_changed(home: Path, renamed: dict[str, str | None]) -> Path:
    rows = aanvragen(3, seed=9, bad_rows=False)
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Aanvragen"
    kept = [name for name in HEADERS if renamed.get(name, name) is not None]
    sheet.append([renamed.get(name, name) for name in kept])
    for row in rows:
        sheet.append([row[name] for name in kept])
    path = home / "aanvragen.xlsx"
    workbook.save(path)
    return path


def _header_line(headers: list[str]) -> str:
    return ", ".join(repr(name) for name in headers)


def _column_renamed(home: Path) -> tuple[Path, str]:
    path = _headers_changed(home, {"Kenteken": "Kentekens"})
    headers = [name if name != "Kenteken" else "Kentekens" for name in HEADERS]
    return path, (
        f"{path}, sheet 'Aanvragen': missing column 'kenteken' (did you mean 'Kentekens'?). "
        f"The header row (row 1) has: {_header_line(headers)}. Correct the header in the file "
        "or the names in the task definition"
    )


def _column_missing(home: Path) -> tuple[Path, str]:
    path = _headers_changed(home, {"Zone": None, "BSN": "Burgerservicenummer"})
    headers = [
        "Burgerservicenummer" if name == "BSN" else name for name in HEADERS if name != "Zone"
    ]
    return path, (
        f"{path}, sheet 'Aanvragen': missing subject (BSN) column 'bsn'; missing column 'zone'. "
        f"The header row (row 1) has: {_header_line(headers)}. Correct the header in the file "
        "or the names in the task definition"
    )


def _xls(home: Path) -> tuple[Path, str]:
    path = home / "aanvragen.xlsx"
    path.write_bytes(compound_file(["Workbook", "SummaryInformation"]))
    return path, (
        f"{path} is an old Excel 97-2003 workbook (.xls), not an .xlsx; open it in Excel and "
        "save it as 'Excel Workbook (*.xlsx)'"
    )


def _csv(home: Path) -> tuple[Path, str]:
    path = home / "aanvragen.xlsx"
    lines = [";".join(HEADERS)] + [
        ";".join(str(row[name]) for name in HEADERS) for row in aanvragen(3, seed=9)
    ]
    path.write_bytes("\r\n".join(lines).encode("cp1252"))
    return path, (
        f"{path} is a text (CSV) file, not an Excel workbook (.xlsx); use `kind: csv` in the "
        "task definition and name the file .csv, or open it in Excel and save it as .xlsx"
    )


def _password(home: Path) -> tuple[Path, str]:
    plain = _intake(home)
    path = home / "beveiligd.xlsx"
    with path.open("wb") as encrypted:
        OOXMLFile(io.BytesIO(plain.read_bytes())).encrypt("Geheim-2024", encrypted)
    plain.unlink()
    return path, (
        f"{path} is protected with a password (encrypted); open it in Excel, remove the "
        "password (File > Info > Protect Workbook > Encrypt with Password) and save it without one"
    )


def _open_in_excel(home: Path) -> tuple[Path, str]:
    path = _intake(home)
    (home / "~$aanvragen.xlsx").write_bytes(b"\x08medewerker")
    return path, (
        f"{path} is open in Excel (lock file ~$aanvragen.xlsx found): save it, close it in Excel "
        "and start again, so that no unsaved change is missed; if Excel is not running, the lock "
        "file was left behind by a crash: delete it"
    )


FILE_PROBLEMS: dict[str, Callable[[Path], tuple[Path, str]]] = {
    "missing file": _missing,
    "missing sheet": _wrong_sheet,
    "renamed column": _column_renamed,
    "missing columns": _column_missing,
    "xls named xlsx": _xls,
    "csv named xlsx": _csv,
    "password": _password,
    "open in excel": _open_in_excel,
}


def _nothing_done(klerk: Klerk, demo_app: DemoApp) -> None:
    assert _entered(demo_app) == []
    assert not list(klerk.home.rglob("*resultaten*"))
    runs = klerk.home / "runs"
    assert not runs.exists() or not any(runs.iterdir())
    database = klerk.home / "var" / "klerk.db"
    if database.exists():
        assert Store(f"sqlite:///{database}").runs() == []


@pytest.mark.parametrize("problem", list(FILE_PROBLEMS), ids=list(FILE_PROBLEMS))
def test_a_file_that_cannot_be_used_stops_the_run_before_anything_is_done(
    klerk: Klerk, demo_app: DemoApp, problem: str
) -> None:
    path, message = FILE_PROBLEMS[problem](klerk.home)

    result = klerk("run", TASK, "--input", str(path))

    assert (result.returncode, result.stderr) == (2, f"klerk: {message}\n")
    _nothing_done(klerk, demo_app)


def test_missing_credentials_stop_the_run_before_anything_is_done(
    klerk: Klerk, demo_app: DemoApp
) -> None:
    intake = _intake(klerk.home)
    for name in ("KLERK_CRED_PARKEREN_USERNAME", "KLERK_CRED_PARKEREN_PASSWORD"):
        del klerk.env[name]
    klerk.env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"  # no OS keyring either

    result = klerk("run", TASK, "--input", str(intake))

    assert result.returncode == 2
    assert result.stderr == (
        "klerk: credentials 'PARKEREN' not found: set KLERK_CRED_PARKEREN_USERNAME and "
        "KLERK_CRED_PARKEREN_PASSWORD in the environment or in .env, or store them with "
        "`keyring set klerk PARKEREN` (username) and `keyring set klerk PARKEREN:password`\n"
    )
    _nothing_done(klerk, demo_app)

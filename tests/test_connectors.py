"""The xlsx and csv connectors against real files: typed rows, whole-file errors, atomic results."""

from __future__ import annotations

import datetime as dt
import re
import struct
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from connectors import register_all
from connectors.csv import CsvSink, CsvSource
from connectors.xlsx import XlsxSink, XlsxSource
from tasks.definition import ColumnSpec, SinkSpec, SourceSpec
from tasks.errors import DataError
from tasks.fields import FieldType
from tasks.plugins import SourceRow, make_sink, make_source, sink_kinds, source_kinds

VALID_BSN = "123456782"
LOST_ZERO_BSN = 12345672  # 012345672 as Excel shows a number: without the leading zero
BAD_BSN = "123456789"  # fails the elfproef
UTC = dt.UTC


# --- helpers ---------------------------------------------------------------------------------


def source_spec(kind: str = "xlsx", **fields: Any) -> SourceSpec:
    """A source spec with key `aanvraagnummer`, as a task definition would give it."""
    fields.setdefault("key", "aanvraagnummer")
    return SourceSpec(kind=kind, path="{{ input }}", **fields)


def write_workbook(path: Path, rows: list[list[Any]], sheet: str = "Aanvragen") -> Path:
    """An .xlsx with `rows` from A1 down, written by openpyxl as a user's program would."""
    workbook = openpyxl.Workbook()
    worksheet = workbook.active
    assert worksheet is not None
    worksheet.title = sheet
    for row in rows:
        worksheet.append(row)
    workbook.save(path)
    return path


def read(source: XlsxSource | CsvSource) -> list[SourceRow]:
    """Every row the source gives."""
    return list(source.items())


def by_key(rows: list[SourceRow]) -> dict[str, SourceRow]:
    """The rows by key (for files without duplicate keys)."""
    return {row.key: row for row in rows}


def compound_file(streams: list[str]) -> bytes:
    """A minimal OLE2 compound file (the container of .xls and of an encrypted .xlsx) whose
    directory names `streams` (without their content): enough to tell what it holds."""
    header = bytearray(512)
    header[0:8] = bytes.fromhex("D0CF11E0A1B11AE1")
    struct.pack_into("<HHHHH", header, 24, 0x3E, 3, 0xFFFE, 9, 6)
    struct.pack_into("<IIIIIIII", header, 40, 0, 1, 1, 0, 4096, 0xFFFFFFFE, 0, 0xFFFFFFFE)
    struct.pack_into("<I", header, 72, 0)
    struct.pack_into("<109I", header, 76, 0, *([0xFFFFFFFF] * 108))
    fat = struct.pack("<128I", 0xFFFFFFFD, 0xFFFFFFFE, *([0xFFFFFFFF] * 126))
    directory = bytearray()
    for number, name in enumerate(["Root Entry", *streams]):
        entry = bytearray(128)
        encoded = (name + "\0").encode("utf-16-le")
        entry[: len(encoded)] = encoded
        struct.pack_into("<HB", entry, 64, len(encoded), 5 if number == 0 else 2)
        directory += entry
    directory += bytes(-len(directory) % 512)
    return bytes(header) + fat + bytes(directory)


# --- xlsx source: typed rows -----------------------------------------------------------------


def test_xlsx_rows_are_typed_by_the_definition(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "aanvragen.xlsx",
        [
            ["Aanvraagnummer", "BSN", "Naam", "Ingangsdatum", "Bedrag", "Aantal", "Postcode",
             "Kenteken", "Akkoord", "Opmerking"],
            [123, LOST_ZERO_BSN, "Jansen", dt.date(2024, 1, 31), 12.5, 3.0, "1234ab",
             "ab-123-c", "ja", None],
            ["A-2", VALID_BSN, " de Vries ", 45000, "1.234,56", "7", "1234 AB", "AB123C",
             True, "met spoed"],
            ["A-3", VALID_BSN, "Bakker", dt.datetime(2024, 2, 29, 13, 45), "€ 10", 1, "9999zz",
             "XX99XX", "nee", 0.5],
            ["A-4", VALID_BSN, "Smit", "31-12-2024", 7, 2, "1000 AA", "12ABC3", "n", "x"],
        ],
    )  # fmt: skip
    source = XlsxSource(
        source_spec(
            sheet="Aanvragen",
            subject="bsn",
            columns={
                "ingangsdatum": FieldType.DATE,
                "bedrag": FieldType.DECIMAL,
                "aantal": FieldType.INTEGER,
                "postcode": FieldType.POSTCODE,
                "kenteken": FieldType.KENTEKEN,
                "akkoord": FieldType.YESNO,
                "opmerking": ColumnSpec(required=False),
            },
        ),
        path,
    )

    rows = read(source)

    assert source.headers() == {
        "aanvraagnummer": "Aanvraagnummer",
        "bsn": "BSN",
        "naam": "Naam",
        "ingangsdatum": "Ingangsdatum",
        "bedrag": "Bedrag",
        "aantal": "Aantal",
        "postcode": "Postcode",
        "kenteken": "Kenteken",
        "akkoord": "Akkoord",
        "opmerking": "Opmerking",
    }
    assert list(source.headers()) == list(rows[0].values)
    assert [(row.key, row.row, row.problem) for row in rows] == [
        ("123", 2, None),
        ("A-2", 3, None),
        ("A-3", 4, None),
        ("A-4", 5, None),
    ]
    first, second, third, fourth = (row.values for row in rows)
    assert first == {
        "aanvraagnummer": "123",
        "bsn": "012345672",
        "naam": "Jansen",
        "ingangsdatum": dt.date(2024, 1, 31),
        "bedrag": Decimal("12.5"),
        "aantal": 3,
        "postcode": "1234 AB",
        "kenteken": "AB123C",
        "akkoord": True,
        "opmerking": None,
    }
    assert rows[0].subject == "012345672"
    assert second["naam"] == "de Vries"
    assert second["ingangsdatum"] == dt.date(2023, 3, 15)  # Excel serial day 45000
    assert second["bedrag"] == Decimal("1234.56")
    assert second["akkoord"] is True
    assert third["ingangsdatum"] == dt.date(2024, 2, 29)  # a datetime cell in a date column
    assert third["bedrag"] == Decimal("10")
    assert third["akkoord"] is False
    assert third["opmerking"] == "0.5"
    assert fourth["ingangsdatum"] == dt.date(2024, 12, 31)  # dd-mm-jjjj text
    assert fourth["bedrag"] == Decimal("7")


def test_numbers_are_read_as_meant_not_digit_by_digit(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "Aanvraagnummer;Aantal;Bedrag\nA1;1.234;1,234.56\nA2;2.0;1.234,56\nA3;1.5;12,5\n",
        encoding="utf-8",
    )
    workbook = write_workbook(
        tmp_path / "in.xlsx", [["Aanvraagnummer", "Akkoord"], ["A1", 1], ["A2", 0], ["A3", 2]]
    )

    from_csv = read(
        CsvSource(source_spec(kind="csv", columns={"aantal": "integer", "bedrag": "decimal"}), path)
    )
    from_xlsx = read(XlsxSource(source_spec(columns={"akkoord": "yesno"}), workbook))

    assert [(row.values["aantal"], row.values["bedrag"], row.problem) for row in from_csv] == [
        (1234, Decimal("1234.56"), None),
        ("2.0", Decimal("1234.56"), "kolom Aantal: geen geheel getal"),
        ("1.5", Decimal("12.5"), "kolom Aantal: geen geheel getal"),
    ]
    assert [(row.values["akkoord"], row.problem) for row in from_xlsx] == [
        (True, None),
        (False, None),
        (2.0, "kolom Akkoord: verwacht ja of nee"),
    ]


def test_a_bad_cell_is_a_problem_on_its_row_and_never_shows_the_bsn(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "in.xlsx",
        [
            ["Aanvraagnummer", "BSN", "Ingangsdatum", "Zone"],
            ["A1", BAD_BSN, "31-02-2024", "Centrum"],
            ["A2", VALID_BSN, None, "Noord"],
            ["A3", VALID_BSN, dt.date(2024, 5, 1), "Zuid"],
            ["A4", "12-34", "morgen", None],
        ],
    )
    source = XlsxSource(
        source_spec(subject="bsn", columns={"ingangsdatum": "date", "zone": "text"}), path
    )

    rows = by_key(read(source))

    assert rows["A1"].problem == (
        "kolom BSN: geen geldig BSN (elfproef); kolom Ingangsdatum: datum bestaat niet"
    )
    assert rows["A1"].subject is None
    assert BAD_BSN not in rows["A1"].problem
    assert rows["A1"].values["bsn"] == BAD_BSN  # the results sheet can show what was typed
    assert rows["A2"].problem == "kolom Ingangsdatum is leeg"
    assert rows["A2"].subject == VALID_BSN
    assert rows["A3"].problem is None
    assert rows["A3"].values["ingangsdatum"] == dt.date(2024, 5, 1)
    assert rows["A4"].problem == (
        "kolom BSN: geen geldig BSN (elfproef); "
        "kolom Ingangsdatum: geen geldige datum (dd-mm-jjjj); kolom Zone is leeg"
    )


def test_empty_rows_are_skipped_and_rows_keep_their_numbers(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet["A1"] = "Intake parkeervergunningen"
    sheet.append([])
    sheet.append(["Aanvraagnummer", "Naam"])
    sheet.append(["A1", "Jansen"])
    sheet.append([None, "   "])  # only spaces: empty too
    sheet.append([])
    sheet.append(["A2", "Bakker"])
    sheet["A12"] = "A3"
    workbook.save(tmp_path / "in.xlsx")

    rows = read(XlsxSource(source_spec(header_row=3), tmp_path / "in.xlsx"))

    assert [(row.key, row.row) for row in rows] == [("A1", 4), ("A2", 7), ("A3", 12)]
    assert [row.values["naam"] for row in rows] == ["Jansen", "Bakker", None]


def test_duplicate_and_empty_keys_are_row_problems(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "in.xlsx",
        [
            ["Aanvraagnummer", "Naam"],
            ["A1", "Jansen"],
            ["A2", "Bakker"],
            ["A1", "de Vries"],
            [None, "Smit"],
            [1.0, "Visser"],
            ["1", "Mulder"],
            ["A1", "Bos"],
        ],
    )

    rows = read(XlsxSource(source_spec(), path))

    assert [(row.key, row.row, row.problem) for row in rows] == [
        ("A1", 2, None),
        ("A2", 3, None),
        ("A1", 4, "Aanvraagnummer A1 komt vaker voor (ook op rij 2)"),
        ("rij-5", 5, "kolom Aanvraagnummer (sleutel) is leeg"),
        ("1", 6, None),
        ("1", 7, "Aanvraagnummer 1 komt vaker voor (ook op rij 6)"),
        ("A1", 8, "Aanvraagnummer A1 komt vaker voor (ook op rij 2)"),
    ]


def test_a_bsn_key_never_appears_in_the_duplicate_message(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "in.xlsx", [["BSN"], [VALID_BSN], [VALID_BSN]])

    rows = read(XlsxSource(source_spec(key="bsn", subject="bsn"), path))

    assert rows[1].problem == "BSN komt vaker voor (ook op rij 2)"
    assert [row.key for row in rows] == [VALID_BSN, VALID_BSN]


def test_a_column_can_be_renamed_and_optional_columns_may_be_missing(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "in.xlsx",
        [["Aanvraag nummer", "Burgerservicenummer", "Zone"], ["A1", VALID_BSN, "Centrum"]],
    )
    source = XlsxSource(
        source_spec(
            key="Aanvraag nummer",
            subject="bsn",
            columns={
                "bsn": ColumnSpec(type=FieldType.BSN, header="Burgerservicenummer"),
                "toelichting": ColumnSpec(required=False),
            },
        ),
        path,
    )

    (row,) = read(source)

    assert source.headers() == {
        "aanvraag_nummer": "Aanvraag nummer",
        "bsn": "Burgerservicenummer",
        "zone": "Zone",
    }
    assert row.values == {
        "aanvraag_nummer": "A1",
        "bsn": VALID_BSN,
        "zone": "Centrum",
        "toelichting": None,
    }
    assert (row.key, row.subject) == ("A1", VALID_BSN)


def test_a_column_name_used_twice_is_numbered_with_a_warning(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "in.xlsx", [["Aanvraagnummer", "Datum", "datum"], ["A1", "x", "y"]]
    )
    source = XlsxSource(source_spec(), path)

    (row,) = read(source)

    assert row.values == {"aanvraagnummer": "A1", "datum": "x", "datum_2": "y"}
    assert any("'datum' is used more than once" in warning for warning in source.warnings)


# --- xlsx source: formulas, merged cells, sheets ---------------------------------------------


def test_a_formula_reads_as_its_cached_value_and_as_empty_without_one(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "in.xlsx",
        [["Aanvraagnummer", "Aantal", "Dubbel"], ["A1", 2, "=B2*2"], ["A2", 5, "=B3*2"]],
    )
    # openpyxl writes formulas without a result; give the first one the result Excel would have
    # stored when it saved the file.
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    sheet_xml = parts["xl/worksheets/sheet1.xml"].decode()
    sheet_xml, replaced = re.subn(
        r'(<c r="C2"[^>]*>\s*<f>B2\*2</f>)\s*<v\s*/>', r"\1<v>4</v>", sheet_xml
    )
    assert replaced == 1
    parts["xl/worksheets/sheet1.xml"] = sheet_xml.encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in parts.items():
            archive.writestr(name, content)

    rows = read(XlsxSource(source_spec(columns={"dubbel": "integer"}), path))

    assert rows[0].values["dubbel"] == 4
    assert rows[0].problem is None
    assert rows[1].values["dubbel"] is None  # never calculated: no value to read
    assert rows[1].problem == (
        "kolom Dubbel: de formule in cel C3 is niet berekend (open en bewaar het bestand in Excel)"
    )


def test_a_merged_range_has_its_value_in_the_top_left_cell_only(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Aanvraagnummer", "Zone", "Wijk"])
    sheet.append(["A1", "Centrum", None])
    sheet.append(["A2", None, None])
    sheet.merge_cells("B2:C2")
    sheet.merge_cells("B3:B4")
    sheet["B3"] = "Noord"
    sheet["A4"] = "A3"
    workbook.save(tmp_path / "in.xlsx")

    rows = read(
        XlsxSource(source_spec(columns={"zone": "text", "wijk": "text"}), tmp_path / "in.xlsx")
    )

    assert [(row.values["zone"], row.values["wijk"]) for row in rows] == [
        ("Centrum", None),
        ("Noord", None),
        (None, None),
    ]
    assert rows[0].problem == (
        "kolom Wijk: cel C2 is samengevoegd met B2 (maak het samenvoegen ongedaan en vul elke rij "
        "zelf in)"
    )
    assert rows[2].problem == (
        "kolom Zone: cel B4 is samengevoegd met B3 (maak het samenvoegen ongedaan en vul elke rij "
        "zelf in); kolom Wijk is leeg"
    )


def test_the_named_sheet_is_found_ignoring_case_and_the_first_visible_by_default(
    tmp_path: Path,
) -> None:
    workbook = openpyxl.Workbook()
    hidden = workbook.active
    assert hidden is not None
    hidden.title = "Instellingen"
    hidden.sheet_state = "hidden"
    hidden.append(["Sleutel"])
    visible = workbook.create_sheet("Aanvragen")
    visible.append(["Aanvraagnummer"])
    visible.append(["A1"])
    workbook.save(tmp_path / "in.xlsx")

    by_default = read(XlsxSource(source_spec(), tmp_path / "in.xlsx"))
    by_name = read(XlsxSource(source_spec(sheet=" aanvragen"), tmp_path / "in.xlsx"))

    assert [row.key for row in by_default] == [row.key for row in by_name] == ["A1"]


# --- xlsx source: whole-file problems --------------------------------------------------------


def test_a_missing_column_names_file_sheet_headers_and_a_likely_match(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "in.xlsx", [["Aanvraagnummer", "Ingangsdatm", "Zone"], ["A1", "x", "y"]]
    )
    source = XlsxSource(source_spec(columns={"ingangsdatum": "date", "zone": "text"}), path)

    with pytest.raises(DataError) as caught:
        source.headers()

    message = str(caught.value)
    assert f"{path}, sheet 'Aanvragen'" in message
    assert "column 'ingangsdatum' (did you mean 'Ingangsdatm'?)" in message
    assert "'Aanvraagnummer', 'Ingangsdatm', 'Zone'" in message


@pytest.mark.parametrize(
    ("spec_fields", "expected"),
    [
        ({"key": "aanvraagnr"}, "key column 'aanvraagnr' (did you mean 'Aanvraagnummer'?)"),
        ({"subject": "bsn"}, "subject (BSN) column 'bsn'"),
    ],
)
def test_a_missing_key_or_subject_column_is_a_data_error(
    tmp_path: Path, spec_fields: dict[str, str], expected: str
) -> None:
    path = write_workbook(tmp_path / "in.xlsx", [["Aanvraagnummer", "Naam"], ["A1", "Jansen"]])

    with pytest.raises(DataError, match=re.escape(expected)):
        read(XlsxSource(source_spec(**spec_fields), path))


def test_a_header_row_that_holds_data_is_not_shown_in_the_error(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "in.xlsx", [[VALID_BSN, "A1"], ["111222333", "A2"]])

    with pytest.raises(DataError) as caught:
        read(XlsxSource(source_spec(subject="bsn"), path))

    assert VALID_BSN not in str(caught.value)


def test_a_missing_sheet_lists_the_sheets_with_a_likely_match(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "in.xlsx", [["Aanvraagnummer"]], sheet="Aanvragen 2024")

    with pytest.raises(DataError) as caught:
        read(XlsxSource(source_spec(sheet="Aanvragen"), path))

    assert str(caught.value) == (
        f"{path} has no sheet 'Aanvragen' (did you mean 'Aanvragen 2024'?); "
        "its sheets are: 'Aanvragen 2024'"
    )


def test_a_missing_file_names_the_workbooks_in_its_folder(tmp_path: Path) -> None:
    write_workbook(tmp_path / "aanvragen-2024.xlsx", [["Aanvraagnummer"]])
    write_workbook(tmp_path / "overig.xlsx", [["Aanvraagnummer"]])
    (tmp_path / "notities.txt").write_text("x")

    with pytest.raises(DataError) as caught:
        read(XlsxSource(source_spec(), tmp_path / "aanvragen.xlsx"))

    message = str(caught.value)
    assert message.startswith(f"file not found: {tmp_path / 'aanvragen.xlsx'}")
    assert "did you mean 'aanvragen-2024.xlsx'?" in message
    assert "aanvragen-2024.xlsx, overig.xlsx" in message
    assert "notities.txt" not in message


def test_a_missing_folder_is_said_so(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"the folder .* does not exist"):
        read(XlsxSource(source_spec(), tmp_path / "nergens" / "in.xlsx"))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (compound_file(["Workbook", "SummaryInformation"]), "old Excel 97-2003 workbook (.xls)"),
        (
            compound_file(["EncryptionInfo", "EncryptedPackage", "DataSpaces"]),
            "is protected with a password",
        ),
        ("Aanvraagnummer;Naam\r\nA1;Jansen\r\n".encode("cp1252"), "a text (CSV) file"),
        (b"<html><body><table><tr><td>A1</td></tr></table></body></html>", "an HTML page"),
        (b"", "is empty (0 bytes)"),
        (b"PK\x03\x04 this zip was cut off", "is damaged"),
    ],
    ids=["xls", "encrypted", "csv", "html", "empty", "truncated"],
)
def test_a_file_that_is_no_xlsx_says_what_it_really_is(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "aanvragen.xlsx"
    path.write_bytes(content)

    with pytest.raises(DataError, match=re.escape(expected)):
        read(XlsxSource(source_spec(), path))


def test_a_word_document_named_xlsx_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "aanvragen.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", "<document/>")

    with pytest.raises(DataError, match="is a Word document"):
        read(XlsxSource(source_spec(), path))


@pytest.mark.parametrize("lock_name", ["~$aanvragen.xlsx", "~$nvragen.xlsx"])
def test_a_workbook_open_in_excel_is_refused(tmp_path: Path, lock_name: str) -> None:
    # Excel names its owner file ~$ + the name, or (long names) ~$ over the first two letters
    path = write_workbook(tmp_path / "aanvragen.xlsx", [["Aanvraagnummer"], ["A1"]])
    (tmp_path / lock_name).write_bytes(b"\x05Klerk")

    with pytest.raises(DataError) as caught:
        read(XlsxSource(source_spec(), path))

    assert str(caught.value) == (
        f"{path} is open in Excel (lock file {lock_name} found): save it, close it in Excel and "
        "start again, so that no unsaved change is missed; if Excel is not running, the lock "
        "file was left behind by a crash: delete it"
    )


def test_without_a_lock_file_there_is_no_warning(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "aanvragen.xlsx", [["Aanvraagnummer"], ["A1"]])

    source = XlsxSource(source_spec(), path)
    read(source)

    assert source.warnings == []


def test_an_empty_sheet_or_header_row_is_a_data_error(tmp_path: Path) -> None:
    empty = write_workbook(tmp_path / "leeg.xlsx", [])
    short = write_workbook(tmp_path / "kort.xlsx", [["Aanvraagnummer"], ["A1"]])
    blank_header = write_workbook(tmp_path / "kop.xlsx", [[], ["Aanvraagnummer"], ["A1"]])

    with pytest.raises(DataError, match="the sheet is empty"):
        read(XlsxSource(source_spec(), empty))
    with pytest.raises(DataError, match="header row is set to row 5, but the sheet ends at row 2"):
        read(XlsxSource(source_spec(header_row=5), short))
    with pytest.raises(DataError, match=r"row 1 \(the header row\) is empty"):
        read(XlsxSource(source_spec(), blank_header))


# --- csv source ------------------------------------------------------------------------------

CSV_ROWS = [
    ["Aanvraagnummer", "Naam", "Bedrag", "Ingangsdatum", "BSN"],
    ["0012", "Éénhoorn, Zoë", "€ 1.234,50", "01-02-2024", "12345672"],
    ["0013", "Brûlé", "12,5", "2024-03-31", VALID_BSN],
]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
@pytest.mark.parametrize("delimiter", [";", ",", "\t"])
def test_csv_is_read_in_the_encodings_and_delimiters_excel_writes(
    tmp_path: Path, encoding: str, delimiter: str
) -> None:
    path = tmp_path / "aanvragen.csv"
    with path.open("w", encoding=encoding, newline="") as handle:
        for record in CSV_ROWS:
            quoted = [f'"{field}"' if delimiter in field else field for field in record]
            handle.write(delimiter.join(quoted) + "\r\n")
    source = CsvSource(
        source_spec(
            kind="csv", subject="bsn", columns={"bedrag": "decimal", "ingangsdatum": "date"}
        ),
        path,
    )

    rows = read(source)

    assert source.encoding == ("utf-8-sig" if encoding == "utf-8-sig" else encoding)
    assert source.delimiter == delimiter
    assert [(row.key, row.row, row.problem) for row in rows] == [
        ("0012", 2, None),
        ("0013", 3, None),
    ]
    assert rows[0].values == {
        "aanvraagnummer": "0012",
        "naam": "Éénhoorn, Zoë",
        "bedrag": Decimal("1234.50"),
        "ingangsdatum": dt.date(2024, 2, 1),
        "bsn": "012345672",
    }
    assert rows[1].values["naam"] == "Brûlé"
    assert rows[1].values["bedrag"] == Decimal("12.5")
    assert rows[1].values["ingangsdatum"] == dt.date(2024, 3, 31)


def test_csv_as_excel_unicode_text_with_a_title_above_the_header(tmp_path: Path) -> None:
    path = tmp_path / "export.txt"
    path.write_bytes("Export parkeren\t\r\nAanvraagnummer\tNaam\r\nA1\tZoë\r\n".encode("utf-16"))
    source = CsvSource(source_spec(kind="csv", header_row=2), path)

    rows = read(source)

    assert (source.encoding, source.delimiter) == ("utf-16", "\t")
    assert [(row.key, row.row, row.values) for row in rows] == [
        ("A1", 3, {"aanvraagnummer": "A1", "naam": "Zoë"})
    ]


def test_csv_short_records_empty_lines_and_bad_cells(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "Aanvraagnummer;BSN;Zone\nA1;123456789;Noord\n\nA2;"
        + VALID_BSN
        + "\n;;\nA1;"
        + VALID_BSN
        + ';"Zuid\nOost"\n',
        encoding="utf-8",
    )

    rows = read(CsvSource(source_spec(kind="csv", subject="bsn"), path))

    assert [(row.key, row.row, row.subject, row.problem) for row in rows] == [
        ("A1", 2, None, "kolom BSN: geen geldig BSN (elfproef)"),
        ("A2", 4, VALID_BSN, None),
        ("A1", 6, VALID_BSN, "Aanvraagnummer A1 komt vaker voor (ook op rij 2)"),
    ]
    assert rows[1].values == {"aanvraagnummer": "A2", "bsn": VALID_BSN, "zone": None}
    assert rows[2].values["zone"] == "Zuid\nOost"


def test_csv_in_the_wrong_encoding_or_no_text_at_all_is_a_data_error(tmp_path: Path) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes("Aanvraagnummer;Naam\nA1;Zoë\n".encode("cp1252"))
    workbook = write_workbook(tmp_path / "echt.xlsx", [["Aanvraagnummer"]])
    renamed = tmp_path / "werkmap.csv"
    renamed.write_bytes(workbook.read_bytes())
    empty = tmp_path / "leeg.csv"
    empty.write_text("\r\n;;\r\n", encoding="utf-8")

    with pytest.raises(DataError, match=r"latin.csv, line 2: not valid utf-8 text"):
        read(CsvSource(source_spec(kind="csv", encoding="utf-8"), latin))
    with pytest.raises(DataError, match=r"is an Excel workbook \(.xlsx\) named .csv"):
        read(CsvSource(source_spec(kind="csv"), renamed))
    with pytest.raises(DataError, match="the file is empty"):
        read(CsvSource(source_spec(kind="csv"), empty))
    with pytest.raises(DataError, match="file not found"):
        read(CsvSource(source_spec(kind="csv"), tmp_path / "weg.csv"))
    old_excel = tmp_path / "oud.csv"
    old_excel.write_bytes(compound_file(["Workbook"]))
    with pytest.raises(DataError, match=r"old-format Office file \(an Excel 97-2003 .xls\?\)"):
        read(CsvSource(source_spec(kind="csv"), old_excel))


def test_csv_open_in_excel_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("Aanvraagnummer\nA1\n", encoding="utf-8")
    (tmp_path / "~$in.csv").write_bytes(b"x")

    with pytest.raises(DataError) as caught:
        read(CsvSource(source_spec(kind="csv"), path))

    assert str(caught.value).startswith(f"{path} is open in Excel (lock file ~$in.csv found)")


# --- sinks -----------------------------------------------------------------------------------


class Status(Enum):
    """An enum in the results, as the engine's item states are."""

    DONE = "done"


RESULT_COLUMNS = [
    "aanvraagnummer",
    "zaaknummer",
    "bedrag",
    "prijs",
    "aantal",
    "akkoord",
    "datum",
    "verwerkt",
    "lokaal",
    "regels",
    "bestand",
    "status",
    "melding",
]
RESULT_ROWS: list[dict[str, Any]] = [
    {
        "aanvraagnummer": "A1",
        "zaaknummer": "Z-2024-000001",
        "bedrag": Decimal("1234.50"),
        "prijs": 0.1,
        "aantal": 3,
        "akkoord": True,
        "datum": dt.date(2024, 1, 31),
        "verwerkt": dt.datetime(2024, 7, 1, 10, 0, 5, tzinfo=UTC),  # 12:00 in Amsterdam (CEST)
        "lokaal": dt.datetime(2024, 1, 15, 9, 30),
        "regels": [{"kenteken": "AB123C", "vanaf": dt.date(2024, 1, 1)}],
        "bestand": Path("downloads/export.csv"),
        "status": Status.DONE,
        "melding": None,
    },
    {
        "aanvraagnummer": '=HYPERLINK("http://x")',
        "akkoord": False,
        "verwerkt": dt.datetime(2024, 1, 15, 10, 0, tzinfo=UTC),  # 11:00 in Amsterdam (CET)
        "aantal": 12345678901234567890,
        "status": "business_error",
        "melding": "er bestaat al een actieve vergunning\x0b (zie #N/A)",
    },
]


def test_xlsx_results_read_back_with_openpyxl(tmp_path: Path) -> None:
    path = tmp_path / "uit" / "resultaten.xlsx"

    written = XlsxSink(SinkSpec(kind="xlsx", path="x"), path).write(RESULT_COLUMNS, RESULT_ROWS)

    assert written == path
    workbook = openpyxl.load_workbook(path)
    sheet = workbook["Resultaten"]
    header, first, second = (list(row) for row in sheet.iter_rows())
    assert [cell.value for cell in header] == RESULT_COLUMNS
    assert all(cell.font.b for cell in header)
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:M3"
    assert all((sheet.column_dimensions[letter].width or 0) >= 8 for letter in "ABCDEFGHIJKLM")
    assert [cell.value for cell in first] == [
        "A1",
        "Z-2024-000001",
        1234.5,
        0.1,
        3,
        "ja",
        dt.datetime(2024, 1, 31),
        dt.datetime(2024, 7, 1, 12, 0, 5),
        dt.datetime(2024, 1, 15, 9, 30),
        '[{"kenteken":"AB123C","vanaf":"2024-01-01"}]',
        str(Path("downloads/export.csv")),
        "done",
        None,
    ]
    assert first[2].data_type == "n" and first[2].number_format == "#,##0.00"
    assert first[6].number_format == "DD-MM-YYYY"
    assert first[7].number_format == "DD-MM-YYYY HH:MM:SS"
    assert [cell.value for cell in second] == [
        '=HYPERLINK("http://x")',
        None,
        None,
        None,
        "12345678901234567890",
        "nee",
        None,
        dt.datetime(2024, 1, 15, 11, 0),
        None,
        None,
        None,
        "business_error",
        "er bestaat al een actieve vergunning (zie #N/A)",
    ]
    assert second[0].data_type == "s"  # text, not a formula


def test_xlsx_results_read_back_with_the_source(tmp_path: Path) -> None:
    path = tmp_path / "resultaten.xlsx"
    XlsxSink(SinkSpec(kind="xlsx", path="x"), path).write(RESULT_COLUMNS, RESULT_ROWS)

    rows = read(
        XlsxSource(
            source_spec(
                sheet="Resultaten",
                columns={
                    "bedrag": ColumnSpec(type=FieldType.DECIMAL, required=False),
                    "datum": ColumnSpec(type=FieldType.DATE, required=False),
                    "akkoord": FieldType.YESNO,
                },
            ),
            path,
        )
    )

    assert [(row.key, row.row, row.problem) for row in rows] == [
        ("A1", 2, None),
        ('=HYPERLINK("http://x")', 3, None),
    ]
    assert rows[0].values["bedrag"] == Decimal("1234.5")
    assert rows[0].values["datum"] == dt.date(2024, 1, 31)
    assert rows[0].values["akkoord"] is True
    assert rows[1].values["akkoord"] is False


def test_xlsx_results_without_rows_have_the_header_only(tmp_path: Path) -> None:
    path = XlsxSink(SinkSpec(kind="xlsx", path="x", sheet="Leeg"), tmp_path / "r.xlsx").write(
        ["a", "b", "c"], []
    )

    sheet = openpyxl.load_workbook(path)["Leeg"]

    assert [[cell.value for cell in row] for row in sheet.iter_rows()] == [["a", "b", "c"]]
    assert sheet.auto_filter.ref == "A1:C1"


def test_a_sheet_name_excel_refuses_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot be used in Excel"):
        XlsxSink(SinkSpec(kind="xlsx", path="x", sheet="Resultaten 1/2"), tmp_path / "r.xlsx")


def test_csv_results_open_right_in_dutch_excel_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "uit" / "resultaten.csv"

    CsvSink(SinkSpec(kind="csv", path="x"), path).write(RESULT_COLUMNS, RESULT_ROWS)

    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    lines = data[3:].decode("utf-8").split("\r\n")
    assert lines[0] == ";".join(RESULT_COLUMNS)
    assert lines[1] == (
        "A1;Z-2024-000001;1234,50;0,1;3;ja;31-01-2024;01-07-2024 12:00:05;15-01-2024 09:30:00;"
        '"[{""kenteken"":""AB123C"",""vanaf"":""2024-01-01""}]";'
        f"{Path('downloads/export.csv')};done;"
    )
    assert lines[2].startswith('"\'=HYPERLINK(""http://x"")";')  # not run as a formula
    source = CsvSource(source_spec(kind="csv", columns={"akkoord": "yesno"}), path)
    rows = read(source)
    assert source.delimiter == ";"
    assert rows[0].values["bedrag"] == "1234,50"
    assert rows[0].values["akkoord"] is True
    assert rows[1].values["melding"] == "er bestaat al een actieve vergunning\x0b (zie #N/A)"


def test_csv_results_keep_signed_numbers_and_quote_formulas() -> None:
    from connectors.csv import _field

    assert [_field(text) for text in ["-12,50", "+31 6 1234 5678", "-", "@SUM(A1)", "-x"]] == [
        "-12,50",
        "+31 6 1234 5678",
        "-",
        "'@SUM(A1)",
        "'-x",
    ]


class Unwritable:
    """A value no results file can hold."""


def failing_rows(fail_at: int) -> Iterator[Mapping[str, Any]]:
    """`fail_at` good result rows, then one with a value no file can hold."""
    for number in range(fail_at):
        yield {"aanvraagnummer": f"A{number}", "status": "done"}
    yield {"aanvraagnummer": "kapot", "status": Unwritable()}


def exploding_rows() -> Iterator[Mapping[str, Any]]:
    """One result row, then the producer of the rows fails."""
    yield {"aanvraagnummer": "A0", "status": "done"}
    raise RuntimeError("the store went away")


@pytest.mark.parametrize("kind", ["xlsx", "csv"])
@pytest.mark.parametrize("rows", ["unwritable", "exploding"])
def test_a_failing_write_leaves_the_old_results_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, rows: str
) -> None:
    # openpyxl and tempfile keep their own temporary files in the system's temporary folder;
    # point it at a folder of this test to see that they are gone too.
    system_temp = tmp_path / "systeem-tmp"
    system_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    results = tmp_path / "uit"
    results.mkdir()
    path = results / f"resultaten.{kind}"
    sink = make_sink_of(kind, path)
    sink.write(["aanvraagnummer", "status"], [{"aanvraagnummer": "OUD", "status": "done"}])
    before = path.read_bytes()

    with pytest.raises((DataError, RuntimeError)) as caught:
        sink.write(
            ["aanvraagnummer", "status"],
            failing_rows(1500) if rows == "unwritable" else exploding_rows(),
        )

    if rows == "unwritable":
        assert isinstance(caught.value, DataError)
        assert "results column 'status', row 1501" in str(caught.value)
        assert "Unwritable" in str(caught.value)
    assert path.read_bytes() == before
    assert sorted(entry.name for entry in results.iterdir()) == [path.name]
    assert list(system_temp.iterdir()) == []


def make_sink_of(kind: str, path: Path) -> XlsxSink | CsvSink:
    """The sink of `kind` writing `path`."""
    spec = SinkSpec(kind=kind, path="x")
    return XlsxSink(spec, path) if kind == "xlsx" else CsvSink(spec, path)


def test_a_successful_write_replaces_the_old_results(tmp_path: Path) -> None:
    path = tmp_path / "resultaten.xlsx"
    sink = XlsxSink(SinkSpec(kind="xlsx", path="x"), path)
    sink.write(["aanvraagnummer"], [{"aanvraagnummer": "OUD"}])

    sink.write(["aanvraagnummer"], [{"aanvraagnummer": "NIEUW"}])

    sheet = openpyxl.load_workbook(path)["Resultaten"]
    assert [row[0].value for row in sheet.iter_rows()] == ["aanvraagnummer", "NIEUW"]
    assert [entry.name for entry in tmp_path.iterdir()] == ["resultaten.xlsx"]


# --- registry --------------------------------------------------------------------------------


def test_register_all_makes_xlsx_and_csv_available(tmp_path: Path) -> None:
    register_all()
    path = write_workbook(tmp_path / "in.xlsx", [["Aanvraagnummer"], ["A1"]])

    source = make_source(source_spec(), path)
    sink = make_sink(SinkSpec(kind="csv", path="x"), tmp_path / "uit.csv")

    assert {"xlsx", "csv"} <= set(source_kinds()) & set(sink_kinds())
    assert [row.key for row in source.items()] == ["A1"]
    assert sink.write(["aanvraagnummer"], [{"aanvraagnummer": "A1"}]).exists()


# --- bad input: what a clerk's spreadsheet really holds --------------------------------------


def test_a_real_password_protected_workbook_is_refused(tmp_path: Path) -> None:
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = write_workbook(tmp_path / "open.xlsx", [["Aanvraagnummer"], ["A1"]])
    path = tmp_path / "aanvragen.xlsx"
    with plain.open("rb") as source, path.open("wb") as encrypted:
        OOXMLFile(source).encrypt("Geheim-2024", encrypted)

    with pytest.raises(DataError) as caught:
        read(XlsxSource(source_spec(), path))

    assert str(caught.value) == (
        f"{path} is protected with a password (encrypted); open it in Excel, remove the password "
        "(File > Info > Protect Workbook > Encrypt with Password) and save it without one"
    )


def test_a_formula_that_gives_an_error_is_named_on_its_row(tmp_path: Path) -> None:
    path = write_workbook(
        tmp_path / "in.xlsx",
        [
            ["Aanvraagnummer", "Zone", "Aantal", "Opmerking"],
            ["A1", "=VLOOKUP(1,Zones!A:B,2,FALSE)", 1, "x"],
            ["A2", "Noord", "=1/0", "=NA()"],
            ["A3", "Zuid", "=2*3", None],
        ],
    )
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    sheet_xml = parts["xl/worksheets/sheet1.xml"].decode()
    for cell, kind, value in [("B2", "e", "#N/A"), ("C3", "e", "#DIV/0!"), ("D3", "e", "#N/A")]:
        sheet_xml, replaced = re.subn(
            rf'<c r="{cell}"([^>]*)>(<f>[^<]*</f>)<v\s*/>',
            rf'<c r="{cell}"\1 t="{kind}">\2<v>{value}</v>',
            sheet_xml,
        )
        assert replaced == 1
    parts["xl/worksheets/sheet1.xml"] = sheet_xml.encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    spec = source_spec(
        columns={"zone": "text", "aantal": "integer", "opmerking": {"required": False}}
    )

    rows = read(XlsxSource(spec, path))

    assert [(row.key, row.problem) for row in rows] == [
        ("A1", "kolom Zone: de formule in cel B2 geeft de fout #N/A"),
        ("A2", "kolom Aantal: de formule in cel C3 geeft de fout #DIV/0!"),
        (
            "A3",
            "kolom Aantal: de formule in cel C4 is niet berekend (open en bewaar het bestand in "
            "Excel)",
        ),
    ]
    assert rows[1].values["opmerking"] is None  # an optional column: an error is no value


def test_a_file_of_100000_rows_is_read_whole(tmp_path: Path) -> None:
    count = 100_000
    path = tmp_path / "groot.xlsx"
    start = dt.date(2027, 1, 1)
    XlsxSink(SinkSpec(kind="xlsx", path="x", sheet="Aanvragen"), path).write(
        ["Aanvraagnummer", "BSN", "Ingangsdatum", "Bedrag", "Zone"],
        (
            {
                "Aanvraagnummer": f"AV-{number:06d}",
                "BSN": VALID_BSN if number % 1000 else BAD_BSN,
                "Ingangsdatum": start + dt.timedelta(days=number % 365),
                "Bedrag": Decimal(number) / 100,
                "Zone": ("Centrum", "Noord", "Oost", "Zuid")[number % 4],
            }
            for number in range(1, count + 1)
        ),
    )
    source = XlsxSource(
        source_spec(
            sheet="Aanvragen", subject="bsn", columns={"ingangsdatum": "date", "bedrag": "decimal"}
        ),
        path,
    )

    rows = read(source)

    assert len(rows) == count
    assert [row.row for row in rows[:2]] == [2, 3] and rows[-1].row == count + 1
    assert rows[0].values == {
        "aanvraagnummer": "AV-000001",
        "bsn": VALID_BSN,
        "ingangsdatum": dt.date(2027, 1, 2),
        "bedrag": Decimal("0.01"),
        "zone": "Noord",
    }
    assert rows[-1].key == "AV-100000" and rows[-1].values["bedrag"] == Decimal("1000")
    bad = [row for row in rows if row.problem]
    assert len(bad) == count // 1000
    assert bad[0].key == "AV-001000" and bad[0].problem == "kolom BSN: geen geldig BSN (elfproef)"

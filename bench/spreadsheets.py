"""Reading and writing big spreadsheets: klerk's xlsx connector next to the bare libraries.

Targets (DESIGN.md › Targets): read 100,000 rows × 10 columns in ≤ 1 s; write the results of
100,000 rows in ≤ 10 s. The input is generated: text, BSNs (valid, a tenth of them numbers
that lost their leading zero, as Excel keeps them), postcodes, kentekens, dates, amounts,
counts and ja/nee, in two forms: with shared strings, as Excel saves a workbook, and with
inline strings, as openpyxl (and klerk's results) write one.

Side by side in one run, best of `--rounds`, wall and CPU seconds:
- read: python-calamine alone (cells as Python lists, untyped) and XlsxSource (every cell typed
  and validated, a SourceRow per row);
- write: openpyxl's write-only mode cell by cell, and XlsxSink (openpyxl for the workbook, the
  data rows streamed), with the 13 columns of default results and the 4 of the demo task.

Benchmarks print; they never fail on the figures.

    python bench/spreadsheets.py                  # 100,000 rows, 3 rounds
    python bench/spreadsheets.py --rows 10000 --rounds 1 --no-baseline   # a quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import re
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(REPO))

import python_calamine  # noqa: E402
from openpyxl import Workbook  # noqa: E402

from connectors.xlsx import XlsxSink, XlsxSource  # noqa: E402
from tasks.definition import SinkSpec, SourceSpec  # noqa: E402
from tasks.fields import FieldType  # noqa: E402
from tasks.plugins import SourceRow  # noqa: E402

READ_TARGET = 1.0
WRITE_TARGET = 10.0
HEADERS = ["Aanvraagnummer", "BSN", "Naam", "Postcode", "Kenteken", "Zone", "Ingangsdatum",
           "Bedrag", "Aantal", "Akkoord"]  # fmt: skip
ZONES = ["Centrum", "Noord", "Oost", "Zuid", "West"]
SPEC = SourceSpec(
    kind="xlsx",
    path="{{ input }}",
    sheet="Aanvragen",
    key="aanvraagnummer",
    subject="bsn",
    columns={
        "postcode": FieldType.POSTCODE,
        "kenteken": FieldType.KENTEKEN,
        "ingangsdatum": FieldType.DATE,
        "bedrag": FieldType.DECIMAL,
        "aantal": FieldType.INTEGER,
        "akkoord": FieldType.YESNO,
    },
)
RESULT_COLUMNS = [
    *(header.lower() for header in HEADERS),
    "zaaknummer",
    "status",
    "melding",
]
DEMO_COLUMNS = ["aanvraagnummer", "zaaknummer", "status", "melding"]


def bsn(rng: random.Random) -> str:
    """A random nine-digit number that passes the elfproef."""
    while True:
        digits = [rng.randrange(10) for _ in range(8)]
        check = sum(d * w for d, w in zip(digits, (9, 8, 7, 6, 5, 4, 3, 2), strict=True)) % 11
        if check < 10 and any(digits):
            return "".join(map(str, digits)) + str(check)


def intake_rows(count: int) -> Iterator[list[Any]]:
    """The generated input rows, the header first; the same for every run (seeded)."""
    rng = random.Random(20241126)
    yield HEADERS
    start = dt.date(2024, 1, 1)
    for number in range(count):
        person = bsn(rng)
        yield [
            f"AV-{number:07d}",
            # a tenth typed as numbers, which drop a leading zero (a BSN has at most one)
            int(person) if number % 10 == 0 and not person.startswith("00") else person,
            f"{rng.choice(['de Vries', 'Jansen', 'Bakker', 'Visser', 'Smit'])} {number}",
            f"{rng.randrange(1000, 10000)} {rng.choice('ABCDEFGH')}{rng.choice('JKLMNPRS')}",
            f"{rng.choice('GHJKLNPRSTXZ')}{rng.choice('BDFGHJ')}-{rng.randrange(100, 1000)}-"
            f"{rng.choice('BDFGHJ')}",
            rng.choice(ZONES),
            start + dt.timedelta(days=rng.randrange(365)),
            round(rng.uniform(10, 500), 2),
            rng.randrange(1, 4),
            rng.choice(["ja", "nee"]),
        ]


def write_intake(path: Path, count: int) -> None:
    """The input as openpyxl writes it: inline strings."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Aanvragen")
    for row in intake_rows(count):
        sheet.append(row)
    workbook.save(path)


def with_shared_strings(source: Path, target: Path) -> None:
    """A copy of an openpyxl workbook with its text in a shared-strings table, as Excel saves."""
    inline = re.compile(r'<c r="([A-Z]+[0-9]+)" t="inlineStr"><is><t>([^<]*)</t></is></c>')
    strings: dict[str, int] = {}

    def shared(match: re.Match[str]) -> str:
        index = strings.setdefault(match[2], len(strings))
        return f'<c r="{match[1]}" t="s"><v>{index}</v></c>'

    with (
        zipfile.ZipFile(source) as original,
        zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as copy,
    ):
        for name in original.namelist():
            content = original.read(name).decode()
            if name == "xl/worksheets/sheet1.xml":
                content = inline.sub(shared, content)
            elif name == "[Content_Types].xml":
                content = content.replace(
                    "</Types>",
                    '<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                    'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
                )
            elif name == "xl/_rels/workbook.xml.rels":
                content = content.replace(
                    "</Relationships>",
                    '<Relationship Id="rIdShared" Type="http://schemas.openxmlformats.org/'
                    'officeDocument/2006/relationships/sharedStrings" '
                    'Target="sharedStrings.xml"/></Relationships>',
                )
            copy.writestr(name, content)
        table = "".join(f"<si><t>{text}</t></si>" for text in strings)  # already escaped
        copy.writestr(
            "xl/sharedStrings.xml",
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="http://'
            f'schemas.openxmlformats.org/spreadsheetml/2006/main" count="{len(strings)}" '
            f'uniqueCount="{len(strings)}">{table}</sst>',
        )


def best_of(rounds: int, job: Callable[[], Any]) -> tuple[float, float, Any]:
    """The lowest wall and CPU seconds of `rounds` runs of `job`, and its last result."""
    walls, cpus, result = [], [], None
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        result = job()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), result


def calamine_rows(path: Path) -> list[list[Any]]:
    """Every cell of the sheet as Python values, untyped: the floor for any reader."""
    with python_calamine.CalamineWorkbook.from_path(str(path)) as workbook:
        return workbook.get_sheet_by_name("Aanvragen").to_python(skip_empty_area=False)


def klerk_rows(path: Path) -> list[SourceRow]:
    """Every row typed and validated by XlsxSource."""
    return list(XlsxSource(SPEC, path).items())


def result_rows(items: list[SourceRow]) -> Iterator[dict[str, Any]]:
    """Results as the engine would hand them to a sink: the input, outputs, status, melding."""
    for number, item in enumerate(items):
        refused = number % 10 == 0
        yield {
            **item.values,
            "zaaknummer": None if refused else f"Z-2024-{number:07d}",
            "status": "business_error" if refused else "done",
            "melding": "er bestaat al een actieve vergunning" if refused else None,
        }


def openpyxl_write(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """openpyxl's write-only mode, a cell at a time, with the same date format: the baseline."""
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Resultaten")
    sheet.append(columns)
    for row in rows:
        cells: list[Any] = []
        for name in columns:
            value = row.get(name)
            if isinstance(value, dt.date):
                cell = WriteOnlyCell(sheet, value=value)
                cell.number_format = "DD-MM-YYYY"
                value = cell
            elif isinstance(value, Decimal):
                value = float(value)
            cells.append(value)
        sheet.append(cells)
    workbook.save(path)


def line(label: str, wall: float, cpu: float, target: float | None = None) -> str:
    """One figure, and whether it meets its target when it has one."""
    verdict = ""
    if target is not None:
        verdict = f"  target ≤ {target:.2f} s: {'met' if wall <= target else 'MISSED'}"
    return f"  {label:<58} {wall:6.2f} s wall {cpu:6.2f} s CPU{verdict}"


def main() -> None:
    """Generate the input, time reading and writing side by side, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip openpyxl cell by cell (slow)"
    )
    args = parser.parse_args()
    scale = args.rows / 100_000  # the targets are for 100,000 rows

    with tempfile.TemporaryDirectory(prefix="klerk-bench-") as folder:
        inline = Path(folder) / "aanvragen-openpyxl.xlsx"
        shared = Path(folder) / "aanvragen-excel.xlsx"
        print(f"generating {args.rows:,} rows × {len(HEADERS)} columns ...", flush=True)
        write_intake(inline, args.rows)
        with_shared_strings(inline, shared)

        print(f"read {args.rows:,} rows × {len(HEADERS)} columns (best of {args.rounds}):")
        items: list[SourceRow] = []
        for label, path in (("as Excel saves it", shared), ("as openpyxl writes it", inline)):
            wall, cpu, cells = best_of(args.rounds, partial(calamine_rows, path))
            assert len(cells) == args.rows + 1
            print(line(f"python-calamine alone, untyped ({label})", wall, cpu))
            floor = wall
            wall, cpu, items = best_of(args.rounds, partial(klerk_rows, path))
            problems = [item.problem for item in items if item.problem]
            assert len(items) == args.rows and not problems, problems[:3]
            print(line(f"XlsxSource, typed ({label})", wall, cpu, READ_TARGET * scale))
            print(f"  {'':<58} {wall / floor:6.2f} × calamine alone")

        results = list(result_rows(items))
        print(f"write {args.rows:,} result rows (best of {args.rounds}):")
        for columns in (RESULT_COLUMNS, DEMO_COLUMNS):
            target = Path(folder) / "resultaten.xlsx"
            sink = XlsxSink(SinkSpec(kind="xlsx", path="{{ output }}"), target)
            wall, cpu, _ = best_of(args.rounds, partial(sink.write, columns, results))
            print(line(f"XlsxSink, {len(columns)} columns", wall, cpu, WRITE_TARGET * scale))
            if not args.no_baseline:
                baseline = Path(folder) / "baseline.xlsx"
                base_wall, base_cpu, _ = best_of(
                    1, partial(openpyxl_write, baseline, columns, results)
                )
                label = f"openpyxl write-only cell by cell, {len(columns)} columns"
                print(line(label, base_wall, base_cpu))
                print(f"  {'':<58} {base_wall / wall:6.2f} × XlsxSink")


if __name__ == "__main__":
    main()

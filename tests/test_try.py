"""`klerk try`: one row through the real bot, step by step, and nothing stored."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.sample import aanvragen
from tasks.loading import find_task
from tests.conftest import ROOT, DemoApp, Klerk, write_intake

pytestmark = pytest.mark.browser

TASK = "vergunningen-invoeren"
SUBMIT = "click role button 'Aanvragen'"
STEP_LINE = re.compile(r"^\s*(\d+)  (.+?)  (ok|failed|refused)  (\d+\.\d\d) s", re.MULTILINE)


def test_until_the_submit_step_fills_the_form_and_submits_nothing(
    klerk: Klerk, demo_app: DemoApp
) -> None:
    intake = write_intake(klerk.home / "aanvragen.xlsx", aanvragen(3, bad_rows=False))
    before = demo_app.permits()

    result = klerk("try", TASK, "--input", str(intake), "--row", "2", "--until", SUBMIT)

    assert result.returncode == 0, result.stdout + result.stderr
    assert demo_app.permits() == before
    steps = STEP_LINE.findall(result.stdout)
    assert [(int(n), verdict) for n, _label, verdict, _s in steps] == [
        (n, "ok") for n in range(1, 9)
    ]
    assert steps[0][1] == "goto /vergunningen/nieuw"
    assert steps[2][1] == "fill label 'BSN'"
    assert SUBMIT not in [label for _n, label, _v, _s in steps]
    assert f"stopped before {SUBMIT}" in result.stdout


def test_until_takes_a_step_number_and_suggests_a_label(klerk: Klerk, demo_app: DemoApp) -> None:
    intake = write_intake(klerk.home / "aanvragen.xlsx", aanvragen(1, bad_rows=False))
    before = demo_app.permits()

    by_number = klerk("try", TASK, "--input", str(intake), "--until", "9")
    misspelt = klerk("try", TASK, "--input", str(intake), "--until", SUBMIT.replace("vr", "r"))

    assert by_number.returncode == 0, by_number.stderr
    assert len(STEP_LINE.findall(by_number.stdout)) == 8
    assert misspelt.returncode == 2
    assert f"did you mean {SUBMIT!r}?" in misspelt.stderr
    assert demo_app.permits() == before


def test_a_key_enters_exactly_that_row_and_stores_no_run(klerk: Klerk, demo_app: DemoApp) -> None:
    rows = aanvragen(4, bad_rows=False)
    intake = write_intake(klerk.home / "aanvragen.xlsx", rows)
    number = rows[2]["Aanvraagnummer"]
    before = {p["aanvraagnummer"] for p in demo_app.permits()}

    result = klerk("try", TASK, "--input", str(intake), "--key", number)

    assert result.returncode == 0, result.stdout + result.stderr
    entered = [p for p in demo_app.permits() if p["aanvraagnummer"] not in before]
    assert [p["aanvraagnummer"] for p in entered] == [number]
    assert f"zaaknummer: {entered[0]['zaaknummer']}" in result.stdout
    assert len(STEP_LINE.findall(result.stdout)) == 11
    listed = klerk("runs", "list")
    assert listed.returncode == 0, listed.stderr
    assert TASK not in listed.stdout
    assert not (klerk.home / "aanvragen-resultaten.xlsx").exists()
    assert not list(klerk.home.rglob("audit.jsonl"))


def test_a_bad_row_exits_1_with_the_clerk_message(klerk: Klerk, demo_app: DemoApp) -> None:
    intake = write_intake(klerk.home / "aanvragen.xlsx", aanvragen(10))  # row 11: a bad BSN
    before = demo_app.permits()

    result = klerk("try", TASK, "--input", str(intake), "--row", "11")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "business error: kolom BSN: geen geldig BSN (elfproef)" in result.stderr
    assert "Traceback" not in result.stderr
    assert demo_app.permits() == before


def test_a_row_without_an_item_is_a_usage_error(klerk: Klerk, demo_app: DemoApp) -> None:
    intake = write_intake(klerk.home / "aanvragen.xlsx", aanvragen(2, bad_rows=False))

    result = klerk("try", TASK, "--input", str(intake), "--row", "9")

    assert result.returncode == 2
    assert "row 9 holds no item; items are on rows 2 to 3" in result.stderr


def test_a_missing_element_exits_3_with_its_diagnostics_and_a_screenshot(
    klerk: Klerk, demo_app: DemoApp
) -> None:
    intake = write_intake(klerk.home / "aanvragen.xlsx", aanvragen(1, bad_rows=False))
    shipped = find_task(TASK).read_text(encoding="utf-8")
    wrong = shipped.replace(
        "  - fill: {label: Kenteken,", "  - timeout_ms: 1000\n    fill: {label: Kentekn,"
    )
    assert wrong != shipped
    task = klerk.home / "proef.yaml"
    task.write_text(wrong, encoding="utf-8")

    result = klerk("try", str(task), "--input", str(intake))

    assert result.returncode == 3, result.stdout + result.stderr
    steps = STEP_LINE.findall(result.stdout)
    assert steps[-1][1:3] == ("fill label 'Kentekn'", "failed")
    assert "system error:" in result.stderr and "'Kentekn'" in result.stderr
    evidence = re.search(r"^evidence: (.+\.png)$", result.stderr, re.MULTILINE)
    assert evidence and Path(evidence.group(1)).is_file(), result.stderr
    assert Path(evidence.group(1)).parent.parent.name.startswith("try-")


@pytest.fixture
def display() -> Iterator[str]:
    """A virtual display (Xvfb) for a headed browser on this server."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is not installed (make setup installs it)")
    number = next(n for n in range(140, 200) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    server = subprocess.Popen(
        [xvfb, f":{number}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)


def _descendants(pid: int) -> list[str]:
    """The command lines of every process below `pid`."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        with contextlib.suppress(OSError):
            found.append((Path("/proc") / str(child) / "cmdline").read_bytes().decode())
        todo.extend(children.get(child, []))
    return found


def test_headed_try_keeps_the_browser_open_on_a_failure_with_the_diagnostics_shown(
    klerk: Klerk, demo_app: DemoApp, display: str
) -> None:
    intake = write_intake(klerk.home / "aanvragen.xlsx", aanvragen(1, bad_rows=False))
    shipped = find_task(TASK).read_text(encoding="utf-8")
    task = klerk.home / "proef.yaml"
    task.write_text(
        shipped.replace("  - fill: {label: BSN,", "  - timeout_ms: 1000\n    fill: {label: BSM,"),
        encoding="utf-8",
    )
    command = [sys.executable, str(ROOT / "runner.py"), "try", str(task), "--headed"]
    process = subprocess.Popen(
        [*command, "--input", str(intake)],
        cwd=klerk.home,
        env={**klerk.env, "DISPLAY": display, "COLUMNS": "200"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None and process.stdin is not None
    said = ""
    deadline = time.monotonic() + 60
    while "Press Enter" not in said and time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        said += line
    try:
        # while the clerk looks: the message, and a real (headed) browser still running
        assert "Press Enter to close it" in said, said
        assert "element not found: label 'BSM' on page /vergunningen/nieuw" in " ".join(
            said.split()
        )
        assert "did you mean label 'BSN'?" in said
        browsers = [cmd for cmd in _descendants(process.pid) if "chrom" in cmd]
        assert browsers, "the browser closed before the clerk pressed Enter"
        assert not any("--headless" in cmd for cmd in browsers)
    finally:
        out, rest = process.communicate("\n", timeout=60)
    assert process.returncode == 3, out + said + rest
    assert "system error" not in rest  # said once, before the wait

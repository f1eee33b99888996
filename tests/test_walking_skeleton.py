"""The walking skeleton end to end: spreadsheet -> demo app (real Chromium) -> results sheet."""

from __future__ import annotations

import re
import signal
from collections import Counter
from pathlib import Path

import pytest

from demo.sample import EXISTING_PLATE, aanvragen
from tests.conftest import DemoApp, Klerk, read_results, write_intake

pytestmark = pytest.mark.browser

SEED_PERMITS = 3


def _run_id(output: str) -> str:
    found = re.search(r"run (\d{8}-\d{6}-[0-9a-f]{6})", output)
    assert found, output
    return found.group(1)


def _entered(demo: DemoApp) -> Counter[str]:
    return Counter(
        p["aanvraagnummer"] for p in demo.permits() if not p["aanvraagnummer"].startswith("SEED")
    )


BOTH_STORES = pytest.mark.parametrize("klerk", ["sqlite", "postgres"], indirect=True)


@BOTH_STORES
def test_sample_rows_are_entered_once_and_reported(klerk: Klerk, demo_app: DemoApp) -> None:
    rows = aanvragen(50)
    intake = write_intake(klerk.home / "aanvragen.xlsx", rows)

    result = klerk("run", "vergunningen-invoeren", "--input", str(intake), "--concurrency", "2")

    assert result.returncode == 1, result.stderr  # finished, but the three bad rows are not done
    entered = _entered(demo_app)
    good = [r["Aanvraagnummer"] for i, r in enumerate(rows, start=1) if i not in (10, 20, 30)]
    assert sorted(entered) == sorted(good)
    assert set(entered.values()) == {1}
    by_number = {p["aanvraagnummer"]: p for p in demo_app.permits()}

    results = read_results(klerk.home / "aanvragen-resultaten.xlsx")
    assert [r["Aanvraagnummer"] for r in results] == [r["Aanvraagnummer"] for r in rows]
    for row in results:
        number = row["Aanvraagnummer"]
        if number in good:
            assert row["status"] == "done"
            assert row["zaaknummer"] == by_number[number]["zaaknummer"]
        else:
            assert row["status"] == "business_error"
            assert not row["zaaknummer"]
    messages = {r["Aanvraagnummer"]: r["melding"] for r in results}
    assert "geen geldig BSN" in messages["AV-2026-00010"]
    assert rows[9]["BSN"] not in messages["AV-2026-00010"]
    assert "datum bestaat niet" in messages["AV-2026-00020"]
    assert messages["AV-2026-00030"] == (
        f"Er bestaat al een actieve vergunning voor kenteken {EXISTING_PLATE}"
    )
    assert "done" in result.stdout and "business error" in result.stdout

    # the same input again: nothing new in the app, every good row reported as done before
    again = klerk("run", "vergunningen-invoeren", "--input", str(intake))
    assert again.returncode == 1, again.stderr
    assert _entered(demo_app) == entered
    second = read_results(klerk.home / "aanvragen-resultaten.xlsx")
    skipped = [r for r in second if r["status"] == "skipped"]
    assert len(skipped) == len(good)
    assert all(r["zaaknummer"] == by_number[r["Aanvraagnummer"]]["zaaknummer"] for r in skipped)


@BOTH_STORES
def test_faults_do_not_lose_or_double_items(klerk: Klerk, demo_app: DemoApp) -> None:
    rows = aanvragen(24, seed=11, bad_rows=False, prefix="FT-")
    intake = write_intake(klerk.home / "storing.xlsx", rows)
    demo_app.faults(error_rate=0.1, busy_rate=0.05, session_lifetime=2.0, latency_ms=20, seed=3)

    result = klerk("run", "vergunningen-invoeren", "--input", str(intake), "--concurrency", "2")

    stats = demo_app.stats()
    assert result.returncode == 0, result.stdout + result.stderr
    entered = _entered(demo_app)
    assert sorted(entered) == sorted(r["Aanvraagnummer"] for r in rows)
    assert set(entered.values()) == {1}
    results = read_results(klerk.home / "storing-resultaten.xlsx")
    assert {r["status"] for r in results} == {"done"}
    assert all(r["zaaknummer"] for r in results)
    # the faults really happened
    assert sum(v for k, v in stats.items() if "500" in k or "error" in k) > 0


def test_export_reads_every_page(klerk: Klerk, demo_app: DemoApp) -> None:
    rows = aanvragen(40, seed=5, bad_rows=False, prefix="EX-")
    intake = write_intake(klerk.home / "export.xlsx", rows)
    assert klerk("run", "vergunningen-invoeren", "--input", str(intake)).returncode == 0
    target = klerk.home / "overzicht.xlsx"

    result = klerk("run", "vergunningen-exporteren", "--results", str(target))

    assert result.returncode == 0, result.stderr
    exported = read_results(target)
    permits = demo_app.permits()
    assert len(permits) == 40 + SEED_PERMITS
    assert sorted(r["Zaaknummer"] for r in exported) == sorted(p["zaaknummer"] for p in permits)
    assert set(exported[0]) >= {"Zaaknummer", "Aanvraagnummer", "Kenteken", "Zone", "Status"}


@pytest.mark.parametrize(
    ("klerk", "stop"),
    [("sqlite", signal.SIGTERM), ("postgres", signal.SIGINT)],  # SIGINT: Ctrl-C
    indirect=["klerk"],
)
def test_interrupted_run_resumes_without_doubles(
    klerk: Klerk, demo_app: DemoApp, stop: signal.Signals
) -> None:
    import time

    rows = aanvragen(30, seed=31, bad_rows=False, prefix="RS-")
    intake = write_intake(klerk.home / "resume.xlsx", rows)
    demo_app.faults(latency_ms=150, seed=2)
    process = klerk.start("run", "vergunningen-invoeren", "--input", str(intake))
    deadline = time.monotonic() + 120
    while len(demo_app.permits()) < SEED_PERMITS + 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(stop)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 3, err
    assert "klerk resume" in out + err
    stored = len(_entered(demo_app))
    assert 3 <= stored < 30
    run_id = next(line.split()[-1] for line in (out + err).splitlines() if "klerk resume" in line)

    demo_app.faults()
    resumed = klerk("resume", run_id)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    entered = _entered(demo_app)
    assert sorted(entered) == sorted(r["Aanvraagnummer"] for r in rows)
    assert set(entered.values()) == {1}
    results = read_results(klerk.home / "resume-resultaten.xlsx")
    assert len(results) == 30 and {r["status"] for r in results} == {"done"}
    # the trail of the interrupted and resumed run is one unbroken chain
    verified = klerk("audit", "verify", run_id)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_app_down_at_start_aborts_and_marks_nothing(tmp_path: Path, klerk: Klerk) -> None:
    import socket

    rows = aanvragen(3, seed=41, bad_rows=False, prefix="DN-")
    intake = write_intake(klerk.home / "down.xlsx", rows)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    klerk.env["KLERK_APP_URL"] = f"http://127.0.0.1:{port}"

    result = klerk("run", "vergunningen-invoeren", "--input", str(intake))

    assert result.returncode == 3
    assert "not available" in result.stderr and "klerk resume" in result.stderr
    assert "Traceback" not in result.stderr
    shown = klerk("runs", "list")
    assert "aborted" in shown.stdout and "pending:3" in shown.stdout


@pytest.mark.parametrize("klerk", ["postgres"], indirect=True)
def test_postgres_store_is_used(klerk: Klerk, demo_app: DemoApp) -> None:
    rows = aanvragen(4, seed=21, bad_rows=False, prefix="PG-")
    intake = write_intake(klerk.home / "pg.xlsx", rows)
    assert klerk("run", "vergunningen-invoeren", "--input", str(intake)).returncode == 0
    assert not (klerk.home / "var" / "klerk.db").exists()
    listing = klerk("runs", "list")
    assert listing.returncode == 0 and "vergunningen-invoeren" in listing.stdout


def test_dry_run_touches_nothing(klerk: Klerk, demo_app: DemoApp) -> None:
    rows = aanvragen(12, seed=51, prefix="DR-")
    intake = write_intake(klerk.home / "droog.xlsx", rows)

    result = klerk("run", "vergunningen-invoeren", "--input", str(intake), "--dry-run")

    assert result.returncode == 0, result.stderr
    assert "12 items" in result.stdout
    assert "11 items would be entered; 1 have problems" in result.stdout
    assert "row 11 (DR-00010): kolom BSN: geen geldig BSN (elfproef)" in result.stdout
    assert rows[9]["BSN"] not in result.stdout
    assert _entered(demo_app) == Counter()
    assert not (klerk.home / "droog-resultaten.xlsx").exists()


def test_runs_show_lists_every_item(klerk: Klerk, demo_app: DemoApp) -> None:
    rows = aanvragen(3, seed=61, bad_rows=False, prefix="SH-")
    intake = write_intake(klerk.home / "show.xlsx", rows)
    ran = klerk("run", "vergunningen-invoeren", "--input", str(intake), "--limit", "2")
    assert ran.returncode == 0, ran.stderr
    run_id = _run_id(ran.stdout)
    assert run_id in klerk("runs", "list").stdout

    shown = klerk("runs", "show", run_id[:15])
    verified = klerk("audit", "verify", run_id)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"{run_id}: intact" in verified.stdout

    # an auditor with the subject key finds the person's item, without a BSN in the trail
    about = klerk("audit", "subject", rows[1]["BSN"])
    assert about.returncode == 0, about.stderr
    assert run_id in about.stdout and "SH-00002" in about.stdout and "SH-00001" not in about.stdout
    assert "item_ended" in about.stdout and "AVG art. 6" in about.stdout
    assert rows[1]["BSN"] not in about.stdout + about.stderr
    nobody = klerk("audit", "subject", rows[2]["BSN"])  # row 3 was not run (--limit 2)
    assert nobody.returncode == 0 and "no record concerns this person" in nobody.stdout
    assert klerk("audit", "subject", "123456789").returncode == 2
    init = klerk("audit", "init")
    assert init.returncode == 0 and "kept" in init.stdout and "signing.pub" in init.stdout

    assert shown.returncode == 0, shown.stderr
    assert "SH-00001" in shown.stdout and "SH-00002" in shown.stdout
    assert "SH-00003" not in shown.stdout  # --limit 2
    assert "Z-2026-" in shown.stdout
    assert rows[0]["BSN"] not in shown.stdout


def test_a_duplicate_key_refuses_only_the_second_row(klerk: Klerk, demo_app: DemoApp) -> None:
    rows = aanvragen(3, seed=71, bad_rows=False, prefix="DU-")
    rows[2]["Aanvraagnummer"] = rows[0]["Aanvraagnummer"]
    intake = write_intake(klerk.home / "dubbel.xlsx", rows)

    result = klerk("run", "vergunningen-invoeren", "--input", str(intake))

    assert result.returncode == 1, result.stderr
    assert _entered(demo_app) == Counter({"DU-00001": 1, "DU-00002": 1})
    results = read_results(klerk.home / "dubbel-resultaten.xlsx")
    assert [r["status"] for r in results] == ["done", "done", "business_error"]
    assert "komt vaker voor" in results[2]["melding"]

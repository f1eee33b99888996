"""Exactly once under chaos: 100 items through 10 % HTTP 500s, busy pages, latency, sessions
that expire every few seconds and two SIGKILLs of the runner, then resume."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from demo.sample import aanvragen
from tests.chaos import TASK, item_ends, run_chaos
from tests.conftest import DemoApp, Klerk, write_intake

pytestmark = pytest.mark.browser


def test_nothing_lost_nothing_twice_after_faults_and_kills(klerk: Klerk, demo_app: DemoApp) -> None:
    result = run_chaos(klerk, demo_app, items=100, kills=2, seed=5)

    assert (result.lost, result.duplicated) == ([], []), result.summary()
    assert result.states == {"done": 100}, result.summary()
    assert result.faults["errors_injected"] > 0 and result.faults["sessions_expired"] > 0
    assert result.verify.returncode == 0, result.verify.stdout + result.verify.stderr


def test_a_rerun_of_the_same_input_after_a_kill_enters_nothing_twice(
    klerk: Klerk, demo_app: DemoApp
) -> None:
    rows = aanvragen(12, seed=61, bad_rows=False, prefix="RR-")
    numbers = [row["Aanvraagnummer"] for row in rows]
    intake = write_intake(klerk.home / "rerun.xlsx", rows)
    demo_app.faults(latency_ms=120)
    process = klerk.start("run", TASK, "--input", str(intake))
    runs, deadline = klerk.home / "runs", time.monotonic() + 120
    # the worst moment: the app has stored the item in hand, klerk has not recorded it done
    while time.monotonic() < deadline and process.poll() is None:
        stored = sum(1 for p in demo_app.permits() if p["aanvraagnummer"] in numbers)
        if stored >= 3 and stored > item_ends(runs):
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert sum(1 for p in demo_app.permits() if p["aanvraagnummer"] in numbers) > item_ends(runs)

    rerun = klerk("run", TASK, "--input", str(intake))

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    entered = Counter(p["aanvraagnummer"] for p in demo_app.permits())
    assert [entered[number] for number in numbers] == [1] * len(numbers)
    assert (
        "al ingevoerd (gevonden bij controle)" in (runs / _newest(runs) / "audit.jsonl").read_text()
    )


def _newest(runs: Path) -> str:
    return max(p.name for p in runs.iterdir() if p.is_dir())

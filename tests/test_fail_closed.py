"""Fail closed: when the trail cannot be written (here: the file may grow no more, as on a full
disk), the run stops before its next action, exits 3, loses nothing already written, and a
resume finishes the job once the disk has room again."""

from __future__ import annotations

import re
import resource
import time
from collections import Counter
from pathlib import Path

import pytest

from demo.sample import aanvragen
from tasks.signing import load_public_key
from tasks.verify import Verdict, verify_trail
from tests.conftest import DemoApp, Klerk, write_intake

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

ROWS = 12


def _item_ends(trail: Path) -> int:
    return trail.read_bytes().count(b'"name":"item_ended"') if trail.exists() else 0


@pytest.mark.parametrize("klerk", ["postgres"], indirect=True)
def test_a_trail_that_cannot_grow_stops_the_run_and_resume_finishes_it(
    klerk: Klerk, demo_app: DemoApp
) -> None:
    rows = aanvragen(ROWS, seed=7, bad_rows=False, prefix="FC-")
    intake = write_intake(klerk.home / "aanvragen.xlsx", rows)
    process = klerk.start("run", "vergunningen-invoeren", "--input", str(intake))
    deadline = time.monotonic() + 300
    trail = None
    while time.monotonic() < deadline and process.poll() is None:
        found = list((klerk.home / "runs").glob("*/audit.jsonl"))
        if found and _item_ends(found[0]) >= 3:
            trail = found[0]
            break
        time.sleep(0.05)
    assert trail is not None, "the run did not get going"
    # from now on no file of the runner may grow much: the disk is as good as full
    limit = trail.stat().st_size + 1500
    resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (limit, limit))
    stdout, stderr = process.communicate(timeout=300)

    assert process.returncode == 3, stdout + stderr
    assert re.search(r"cannot write the audit trail .*audit\.jsonl: File too large", stderr)
    assert "klerk resume" in stderr
    assert "Traceback" not in stderr
    # every record written before is whole: the trail stops early, nothing is torn or changed
    key = load_public_key(klerk.home / "var" / "keys" / "signing.pub")
    report = verify_trail(trail, key)
    assert report.verdict is Verdict.INCOMPLETE, report.findings
    assert trail.read_bytes().endswith(b"\n")
    entered = Counter(p["aanvraagnummer"] for p in demo_app.permits())
    recorded = _item_ends(trail)
    assert 3 <= recorded < ROWS
    # no action after the failed write: at most the item in hand reached the app unrecorded
    assert recorded <= sum(entered[r["Aanvraagnummer"]] for r in rows) <= recorded + 1

    run_id = trail.parent.name
    resumed = klerk("resume", run_id)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    entered = Counter(p["aanvraagnummer"] for p in demo_app.permits())
    assert [entered[r["Aanvraagnummer"]] for r in rows] == [1] * ROWS
    verified = klerk("audit", "verify", "--all")
    assert verified.returncode == 0, verified.stdout + verified.stderr

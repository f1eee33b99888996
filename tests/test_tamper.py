"""Tampering with real trails of demo runs: every change is found, with the right verdict, exit
code and place (file, line, record seq).

Three small demo runs are made once per module; each test changes a copy of them.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.sample import aanvragen
from tasks.ledger import LEDGER_FILE, verify_runs
from tasks.signing import create_keys, load_public_key, load_signer
from tasks.trail import canonical
from tasks.verify import Report, Verdict, severity
from tests.conftest import DemoApp, Klerk, _klerk, write_intake

pytestmark = pytest.mark.browser

RUNS = 3


def _run_ids(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "runs").iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, demo_server: DemoApp) -> Iterator[Path]:
    """A klerk home holding three finished demo runs (one, two and two rows) and their ledger."""
    demo_server.reset()
    home = tmp_path_factory.mktemp("tamper") / "home"
    home.mkdir()
    klerk = _klerk(home, demo_server.url)
    for number in range(RUNS):
        intake = write_intake(
            home / f"in-{number}.xlsx",
            aanvragen(min(number + 1, 2), seed=100 + number, prefix=f"T{number}"),
        )
        result = klerk("run", "vergunningen-invoeren", "--input", str(intake))
        assert result.returncode == 0, result.stdout + result.stderr
    demo_server.reset()
    yield home


@pytest.fixture
def home(pristine: Path, tmp_path: Path) -> Path:
    """A copy of the pristine home for one test to change."""
    return Path(shutil.copytree(pristine, tmp_path / "home"))


def _verify(home: Path, run_ids: list[str] | None = None) -> tuple[Verdict, list[str]]:
    key = load_public_key(home / "var" / "keys" / "signing.pub")
    reports = verify_runs(home / "runs", key, run_ids)
    return _worst(reports), [str(f) for report in reports for f in report.findings]


def _worst(reports: list[Report]) -> Verdict:
    worst = Verdict.INTACT
    for report in reports:
        if severity(report.verdict) > severity(worst):
            worst = report.verdict
    return worst


def _trail(home: Path, index: int = 1) -> Path:
    return home / "runs" / _run_ids(home)[index] / "audit.jsonl"


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_untouched_runs_and_ledger_are_intact(home: Path) -> None:
    verdict, findings = _verify(home)
    assert (verdict, findings) == (Verdict.INTACT, [])
    ledger = [json.loads(line) for line in (home / "runs" / LEDGER_FILE).read_text().splitlines()]
    assert [(e["kind"], e["run_id"]) for e in ledger] == [
        (kind, run_id) for run_id in _run_ids(home) for kind in ("opened", "sealed")
    ]
    first_records = [json.loads(_lines(_trail(home, n))[0]) for n in range(RUNS)]
    for earlier, later in zip(_run_ids(home), first_records[1:], strict=False):
        assert later["attributes"]["klerk.ledger.previous_run"] == earlier


def test_every_single_byte_change_is_found(home: Path) -> None:
    path, run_id = _trail(home, 0), _run_ids(home)[0]
    original = path.read_bytes()
    missed = []
    for position in range(len(original)):
        changed = bytearray(original)
        changed[position] ^= 0x01
        path.write_bytes(bytes(changed))
        verdict, _ = _verify(home, [run_id])
        if verdict is not Verdict.TAMPERED:
            missed.append((position, chr(original[position]), verdict.name))
    path.write_bytes(original)
    assert len(original) > 3000
    assert missed == []


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ("delete", r"audit\.jsonl:4 \(seq 5\): records 4\.\.4 are missing"),
        ("duplicate", r"audit\.jsonl:5 \(seq 4\): out of order: expected seq 5"),
        ("swap", r"audit\.jsonl:5 \(seq 4\): out of order: expected seq 6"),
        ("insert", r"audit\.jsonl:5 \(seq 4\): hash chain broken"),
    ],
)
def test_a_moved_record_is_found_where_it_is(home: Path, change: str, where: str) -> None:
    path = _trail(home)
    lines = _lines(path)
    if change == "delete":
        del lines[3]
    elif change == "duplicate":
        lines.insert(4, lines[3])
    elif change == "swap":
        lines[3], lines[4] = lines[4], lines[3]
    else:
        forged = json.loads(lines[3])
        forged["attributes"]["bio.result"] = "ok"
        lines.insert(3, canonical(forged).encode() + b"\n")
    path.write_bytes(b"".join(lines))

    verdict, findings = _verify(home)

    assert verdict is Verdict.TAMPERED
    assert any(re.search(where, finding) for finding in findings), findings


def test_a_cut_tail_is_found_even_when_the_attacker_signs_a_new_end(home: Path) -> None:
    path = _trail(home)
    lines = _lines(path)
    path.write_bytes(b"".join(lines[:-4]))
    verdict, findings = _verify(home)
    assert verdict is Verdict.TAMPERED
    assert any("records were removed" in f for f in findings), findings

    # the attacker's own key signs a new checkpoint over the shortened trail
    attacker = load_signer(create_keys(home / "attacker.key").with_suffix(".key"))
    last = json.loads(lines[-1])
    sealed = json.loads(lines[-5])
    from tasks.signing import checkpoint_message
    from tasks.trail import record_hash

    last["klerk.seq"] = sealed["klerk.seq"] + 1
    last["klerk.prev_hash"] = record_hash(lines[-5].rstrip(b"\n"))
    attributes = last["attributes"]
    attributes["klerk.checkpoint.sealed_hash"] = last["klerk.prev_hash"]
    attributes["klerk.checkpoint.key_id"] = attacker.key_id
    attributes["klerk.checkpoint.signature"] = attacker.sign(
        checkpoint_message(attributes["klerk.run_id"], last["klerk.seq"], last["klerk.prev_hash"])
    )
    path.write_bytes(b"".join(lines[:-4]) + canonical(last).encode() + b"\n")

    verdict, findings = _verify(home)
    assert verdict is Verdict.TAMPERED
    assert any("signed with another key: " + attacker.key_id in f for f in findings), findings


def test_a_replaced_or_removed_run_is_found(home: Path) -> None:
    first, second = _run_ids(home)[:2]
    runs = home / "runs"
    shutil.rmtree(runs / second)
    shutil.copytree(runs / first, runs / second)
    verdict, findings = _verify(home)
    assert verdict is Verdict.TAMPERED
    assert any(second in f and "replaced or rewritten" in f for f in findings), findings

    shutil.rmtree(runs / second)
    verdict, findings = _verify(home)
    assert verdict is Verdict.TAMPERED
    assert any(f"run {second} is in the ledger but its folder is gone" in f for f in findings)


def test_a_rolled_back_ledger_is_found(home: Path) -> None:
    ledger = home / "runs" / LEDGER_FILE
    entries = _lines(ledger)
    ledger.write_bytes(b"".join(entries[:2]))  # as it was after the first run
    verdict, findings = _verify(home)
    assert verdict is Verdict.TAMPERED
    later = _run_ids(home)[1:]
    for run_id in later:
        assert any(run_id in f and "not in the ledger" in f for f in findings), findings


def test_a_ledger_forked_from_an_older_state_is_found(home: Path, demo_app: DemoApp) -> None:
    ledger = home / "runs" / LEDGER_FILE
    ledger.write_bytes(b"".join(_lines(ledger)[:2]))
    klerk: Klerk = _klerk(home, demo_app.url)
    intake = write_intake(home / "fork.xlsx", aanvragen(1, seed=99, prefix="F"))
    assert klerk("run", "vergunningen-invoeren", "--input", str(intake)).returncode == 0

    result = klerk("audit", "verify", "--all")

    assert result.returncode == int(Verdict.TAMPERED), result.stdout + result.stderr
    second = _run_ids(home)[1]
    assert re.search(rf"fork: runs .*{second}", result.stderr), result.stderr


@pytest.mark.parametrize(
    ("quirk", "verdict"),
    [
        ("duplicate key", Verdict.TAMPERED),
        ("NaN", Verdict.TAMPERED),
        ("lone surrogate", Verdict.TAMPERED),
        ("BOM", Verdict.TAMPERED),
        ("not UTF-8", Verdict.TAMPERED),
    ],
)
def test_json_quirks_are_tampering(home: Path, quirk: str, verdict: Verdict) -> None:
    path = _trail(home)
    lines = _lines(path)
    line = lines[2]
    if quirk == "duplicate key":
        line = line.replace(b'{"attributes":', b'{"name":"x","attributes":', 1)
    elif quirk == "NaN":
        line = re.sub(rb'"klerk.monotonic":[0-9.]+', b'"klerk.monotonic":NaN', line)
    elif quirk == "lone surrogate":
        line = line.replace(b'"bio.result":"', b'"bio.result":"\\ud800', 1)
    elif quirk == "BOM":
        lines[0] = b"\xef\xbb\xbf" + lines[0]
    else:
        line = line.replace(b'"bio.result":"', b'"bio.result":"\xff', 1)
    lines[2] = line
    path.write_bytes(b"".join(lines))

    found, findings = _verify(home)

    assert found is verdict, findings
    row = 1 if quirk == "BOM" else 3
    assert any(f"audit.jsonl:{row}" in f for f in findings), findings


def test_exit_codes_of_audit_verify(home: Path, demo_server: DemoApp) -> None:
    klerk = _klerk(home, demo_server.url)
    first, second, third = _run_ids(home)
    assert klerk("audit", "verify", "--all").returncode == 0

    path = home / "runs" / third / "audit.jsonl"
    path.write_bytes(b"".join(_lines(path)[:-2]))  # as a killed run leaves it
    ledger = home / "runs" / LEDGER_FILE
    ledger.write_bytes(b"".join(_lines(ledger)[:-1]))  # its seal never reached the ledger
    result = klerk("audit", "verify", third)
    assert result.returncode == int(Verdict.INCOMPLETE), result.stdout + result.stderr
    assert "sealed up to seq" in result.stderr

    (home / "runs" / second / "audit.jsonl").unlink()
    (home / "runs" / second / "audit.jsonl").mkdir()
    result = klerk("audit", "verify", second)
    assert result.returncode == int(Verdict.UNREADABLE), result.stdout + result.stderr

    lines = _lines(home / "runs" / first / "audit.jsonl")
    lines[1] = lines[1].replace(b'"status_code":1', b'"status_code":2', 1)
    (home / "runs" / first / "audit.jsonl").write_bytes(b"".join(lines))
    result = klerk("audit", "verify", "--all")
    assert result.returncode == int(Verdict.TAMPERED), result.stdout + result.stderr
    assert re.search(rf"{first}/audit\.jsonl:3 \(seq 3\): hash chain broken", result.stderr)

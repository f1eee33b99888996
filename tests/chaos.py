"""The chaos scenario, shared by the test (100 items) and the benchmark (1,000 items): the demo
app fails, is busy, is slow and drops sessions, the runner is killed with SIGKILL at random
moments and resumed, and in the end every item must be in the app exactly once.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from demo.sample import aanvragen
from tasks.loading import find_task
from tasks.store import Store
from tests.conftest import DemoApp, Klerk, write_intake

TASK = "vergunningen-invoeren"
SHIPPED_RETRY = "retry: {attempts: 10, backoff_seconds: 0.5, max_backoff_seconds: 5}"
QUICK_RETRY = "retry: {attempts: 10, backoff_seconds: 0.1, max_backoff_seconds: 0.5}"


@dataclass
class ChaosResult:
    """What the scenario did and what the app holds afterwards."""

    items: int
    kills: int
    seed: int
    seconds: float
    lost: list[str]
    duplicated: list[str]
    states: Counter[str]
    resumes: int
    verify: subprocess.CompletedProcess[str]
    faults: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for a benchmark or a failing test."""
        return (
            f"items {self.items}, kills {self.kills} (seed {self.seed}), resumes {self.resumes}, "
            f"faults {self.faults}, lost {len(self.lost)}, entered twice {len(self.duplicated)}, "
            f"states {dict(self.states)}, trail verify exit {self.verify.returncode}, "
            f"{self.seconds:.0f} s"
        )


def item_ends(runs: Path) -> int:
    return sum(p.read_bytes().count(b'"name":"item_ended"') for p in runs.glob("*/audit.jsonl"))


def _run_id(runs: Path) -> str:
    (folder,) = [p for p in runs.iterdir() if p.is_dir()]
    return folder.name


def run_chaos(
    klerk: Klerk,
    demo: DemoApp,
    *,
    items: int,
    kills: int = 2,
    seed: int = 1,
    concurrency: int = 2,
    session_lifetime: float = 4.0,
    quick_retry: bool = True,
) -> ChaosResult:
    """Enter `items` rows through faults and `kills` SIGKILLs of the runner, then resume.

    With `quick_retry` the shipped definition waits at most 0.5 s between attempts instead of
    5 s: the same code paths, without most of the waiting (the faults hit every page request,
    so most items need a few attempts).
    """
    rng = random.Random(seed)
    rows = aanvragen(items, seed=seed, bad_rows=False, prefix=f"CH{seed}-")
    intake = write_intake(klerk.home / "chaos.xlsx", rows)
    demo.faults(
        error_rate=0.10,
        busy_rate=0.05,
        latency_ms=20,
        session_lifetime=session_lifetime,
        seed=seed,
    )
    runs = klerk.home / "runs"
    started = time.monotonic()
    definition = find_task(TASK)
    if quick_retry:
        text = definition.read_text(encoding="utf-8")
        assert SHIPPED_RETRY in text, "the shipped retry policy changed: update tests/chaos.py"
        definition = klerk.home / f"{TASK}.yaml"
        definition.write_text(text.replace(SHIPPED_RETRY, QUICK_RETRY), encoding="utf-8")
    args = ["run", str(definition), "--input", str(intake), "--concurrency", str(concurrency)]
    for _ in range(kills):
        target = item_ends(runs) + rng.randint(3, max(4, items // (kills + 1)))
        with (klerk.home / "killed.log").open("w+", encoding="utf-8") as output:
            process = klerk.start(*args, output=output)
            while process.poll() is None and item_ends(runs) < target:
                time.sleep(0.02)
            # a random moment after the last item ended: before, during or after the next submit
            time.sleep(rng.uniform(0.0, 0.6))
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
            if process.returncode != -signal.SIGKILL:
                output.seek(0)
                raise AssertionError(f"the runner ended before it was killed: {output.read()}")
        args = ["resume", _run_id(runs)]
    resumes = 0
    while True:  # the faults go on; a resume gives items that ran out of retries another chance
        resumes += 1
        if klerk(*args, timeout=1800).returncode == 0 or resumes == 3:
            break
    stats = demo.stats()
    entered = Counter(p["aanvraagnummer"] for p in demo.permits())
    numbers = [row["Aanvraagnummer"] for row in rows]
    store = Store(
        klerk.env.get("KLERK_DATABASE_URL") or f"sqlite:///{klerk.home / 'var' / 'klerk.db'}"
    )
    states = Counter(store.counts(args[1]))
    store.close()
    return ChaosResult(
        items=items,
        kills=kills,
        seed=seed,
        seconds=time.monotonic() - started,
        lost=[n for n in numbers if entered[n] == 0],
        duplicated=[n for n in numbers if entered[n] > 1],
        states=states,
        resumes=resumes,
        verify=klerk("audit", "verify", "--all"),
        faults={
            name: int(stats[name])
            for name in ("errors_injected", "busy_injected", "sessions_expired", "logins")
        },
    )

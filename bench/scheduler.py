"""The scheduler's firing jitter and its idle cost, measured on a real `klerk serve`.

Jitter: `klerk serve` runs one schedule every `--interval` seconds whose task enters a one-row
intake in the demo app (the first run enters it; later runs find it done and skip it, so that
they stay short). For each of `--fires` fires it reports the fire's lateness (the moment the
scheduler acts on it minus its planned time, from the fire history) and, for the fires that
started a run, the start latency (planned time to the run's start in the store: a new Python
process, the task loaded, the input read). Fires that come while a run is still busy are
skipped by the overlap rule; their lateness counts like any other.

Idle: `klerk serve` with schedules that fire far in the future, sampled from /proc for
`--idle-seconds`: CPU time used (as % of one core) and resident memory. Linux only.
Benchmarks print; they never fail on the figures.

    python bench/scheduler.py                    # 100 fires at 1 s, 60 s idle (~3 min)
    python bench/scheduler.py --fires 20 --idle-seconds 15
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(REPO))

from connectors.xlsx import XlsxSink  # noqa: E402
from demo.app import DEMO_PASSWORD, DEMO_USERNAME  # noqa: E402
from demo.sample import HEADERS, aanvragen  # noqa: E402
from demo.server import DemoServer  # noqa: E402
from schedules.state import ScheduleBook  # noqa: E402
from tasks.definition import SinkSpec  # noqa: E402
from tasks.store import Store, aware  # noqa: E402

RUNNER = REPO / "runner.py"
EVERY_DAY = {
    "working_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
    "public_holidays": False,
}


def _env(home: Path, app_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLERK_")}
    env.update(
        KLERK_HOME=str(home),
        KLERK_APP_URL=app_url,
        KLERK_SCHEDULES_DIR=str(home / "schedules"),
        KLERK_CRED_PARKEREN_USERNAME=DEMO_USERNAME,
        KLERK_CRED_PARKEREN_PASSWORD=DEMO_PASSWORD,
        PYTHONPATH=str(REPO),
    )
    return env


def _serve(home: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = (home / "serve.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, str(RUNNER), "serve"],
        cwd=home,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    deadline = time.monotonic() + 60
    while "klerk serve is running" not in (home / "serve.log").read_text(errors="replace"):
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit(f"klerk serve did not start; see {home / 'serve.log'}")
        time.sleep(0.2)
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(120)


def _spread(label: str, values: list[float]) -> None:
    if not values:
        print(f"  {label}: no values")
        return
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    print(
        f"  {label} (ms, n={len(values)}): min {ordered[0]:.1f}  median "
        f"{statistics.median(ordered):.1f}  p95 {p95:.1f}  max {ordered[-1]:.1f}"
    )


def jitter(folder: Path, fires: int, interval: int) -> None:
    """Run a schedule every `interval` s until `fires` fires are recorded; print the spread."""
    home = folder / "jitter"
    (home / "schedules").mkdir(parents=True)
    intake = home / "aanvragen.xlsx"
    rows = aanvragen(1, seed=5, bad_rows=False, prefix="JIT-")
    XlsxSink(SinkSpec(kind="xlsx", path=str(intake), sheet="Aanvragen"), intake).write(
        HEADERS, rows
    )
    schedule = {
        "name": "jitter",
        "task": "vergunningen-invoeren",
        "trigger": {"interval": {"seconds": interval}},
        "calendar": EVERY_DAY,
        "input": "aanvragen.xlsx",
        "notify": {"when": []},
    }
    (home / "schedules" / "jitter.yaml").write_text(json.dumps(schedule), encoding="utf-8")
    with DemoServer(port=0) as server:
        env = _env(home, server.url)
        process = _serve(home, env)
        store = Store(f"sqlite:///{home / 'var' / 'klerk.db'}")
        book = ScheduleBook(store)
        print(f"jitter: {fires} fires, one every {interval} s (about {fires * interval} s)")
        try:
            while True:
                recorded = [f for f in book.history("jitter", fires + 50) if f.planned_at]
                final = [f for f in recorded if f.outcome not in ("starting", "queued", "running")]
                if len(final) >= fires:
                    break
                time.sleep(1)
        finally:
            _stop(process)
        final = sorted(final, key=lambda f: f.id)[:fires]
        lateness = [
            (aware(f.fired_at) - aware(f.planned_at)).total_seconds() * 1000
            for f in final
            if f.planned_at is not None
        ]
        starts = []
        for fire in final:
            run = store.run(fire.run_id) if fire.run_id else None
            if run is not None and fire.planned_at is not None:
                planned = aware(fire.planned_at)
                starts.append((aware(run.started_at) - planned).total_seconds() * 1000)
        print("  outcomes:", dict(Counter(f.outcome for f in final)))
        _spread("fire lateness (fired minus planned)", lateness)
        _spread("run start latency (run started minus planned)", starts)
        store.close()


def _proc_sample(pid: int) -> tuple[float, int, int]:
    """CPU seconds (user + system), resident and peak resident memory (kB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    rss = int(status["VmRSS"].split()[0])
    peak = int(status["VmHWM"].split()[0])
    return cpu, rss, peak


def idle(folder: Path, seconds: float, schedules: int) -> None:
    """Start serve with schedules far in the future and sample its CPU and memory."""
    home = folder / "idle"
    (home / "schedules").mkdir(parents=True)
    for n in range(schedules):
        schedule = {
            "name": f"ochtend-{n}",
            "task": "vergunningen-invoeren",
            "trigger": {"cron": {"hour": 7, "minute": n % 60}, "start": "2031-01-06T00:00:00"},
            "input": "intake.xlsx",
        }
        path = home / "schedules" / f"ochtend-{n}.yaml"
        path.write_text(json.dumps(schedule), encoding="utf-8")
    env = _env(home, "http://127.0.0.1:9")
    process = _serve(home, env)
    try:
        time.sleep(3)  # let start-up settle
        cpu_before, _, _ = _proc_sample(process.pid)
        started = time.monotonic()
        rss_samples = []
        while time.monotonic() - started < seconds:
            time.sleep(min(5.0, seconds))
            _, rss, _ = _proc_sample(process.pid)
            rss_samples.append(rss)
        cpu_after, rss, peak = _proc_sample(process.pid)
        elapsed = time.monotonic() - started
    finally:
        _stop(process)
    used = cpu_after - cpu_before
    print(f"idle: klerk serve with {schedules} schedule(s), {elapsed:.0f} s")
    print(f"  CPU: {used:.3f} s in {elapsed:.0f} s = {100 * used / elapsed:.3f} % of one core")
    print(
        f"  memory: resident {rss / 1024:.1f} MiB (samples {min(rss_samples) / 1024:.1f}-"
        f"{max(rss_samples) / 1024:.1f} MiB), peak {peak / 1024:.1f} MiB"
    )


def main(argv: list[str] | None = None) -> int:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fires", type=int, default=100, help="fires to measure (100)")
    parser.add_argument("--interval", type=int, default=1, help="seconds between fires (1)")
    parser.add_argument("--idle-seconds", type=float, default=60, help="idle sampling (60)")
    parser.add_argument("--schedules", type=int, default=10, help="schedules when idle (10)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="klerk-bench-scheduler-") as folder:
        jitter(Path(folder), args.fires, args.interval)
        idle(Path(folder), args.idle_seconds, args.schedules)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

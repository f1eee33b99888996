"""The audit trail's two targets, measured: verify speed and what writing the trail adds to a run.

Targets (DESIGN.md › Targets): `verify_trail` checks at least 100,000 records/s, and writing
the trail adds at most 5 % to a run. Benchmarks print; they never fail on the figures.

    python bench/audit.py                                  # both parts (~10 min)
    python bench/audit.py --part verify --records 100000   # a quick look at verify (~15 s)
    python bench/audit.py --part overhead --rows 20 --rounds 1

Verify: a trail of N records is written with `tasks.trail.Trail` the way a run writes one (run
started, per item item_started, one action record per step of the demo task, item_ended; a
business refusal or a retry now and then; signed checkpoints every 500 records; run ended and
a final checkpoint), then `verify_trail` reads it; beside it, how long merely reading the file
and hashing every line takes, the floor any verifier pays.

Overhead: `klerk run` of the demo task on the 200-row intake, as a subprocess timed from start
to exit, with a stopwatch around the trail's own methods (opening, record, checkpoint, sync,
close, and verifying it for the report): the time spent inside them, divided by the run's wall
time, is what the trail adds. Side by side, a run of the same job in which the trail writes
nothing (its methods do no work), so that costs the stopwatch cannot see show up too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(REPO))

from overhead import (  # noqa: E402 (bench/overhead.py: the demo job's helpers)
    PREFIX,
    TASK,
    api,
    base_env,
    check_results,
    check_stored,
    timed,
    workspace,
    write_intake,
)

from demo.sample import aanvragen  # noqa: E402
from demo.server import DemoServer  # noqa: E402
from tasks import verify  # noqa: E402
from tasks.definition import BusinessErrorIfStep, Task, kind_of, step_label  # noqa: E402
from tasks.loading import find_task, load_model  # noqa: E402
from tasks.signing import create_keys, load_public_key, load_signer  # noqa: E402
from tasks.trail import STATUS_ERROR, Trail, new_operation_id, new_trace_id  # noqa: E402
from tasks.verify import Verdict, verify_trail  # noqa: E402

VERIFY_TARGET = 100_000
OVERHEAD_TARGET = 0.05


# --- verify ------------------------------------------------------------------------------------


def _bsn(n: int) -> str:
    """A nine-digit number passing the elfproef, different for every n (like an intake's)."""
    while True:
        digits = f"{100_000_000 + n * 7 % 800_000_000:09d}"
        total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True))
        if (total - int(digits[8])) % 11 == 0:
            return digits
        n += 1


def write_trail(path: Path, records: int, key_file: Path) -> int:
    """Write a realistic trail of at least `records` records to `path`; returns how many."""
    task = load_model(find_task(TASK), Task)
    steps = [
        (kind_of(step), step_label(step))
        for step in task.steps
        if not isinstance(step, BusinessErrorIfStep)  # recorded only when it refuses
    ]
    trail = Trail(
        path,
        run_id="20250101-000000-bench",
        trace_id=new_trace_id(),
        task=task.name,
        definition_sha256=hashlib.sha256(b"definition").hexdigest(),
        app=task.app,
        processing_activity=task.processing_activity,
        legal_basis=task.legal_basis,
        actor="schedule:nachtelijk",
        subject_key=b"k" * 32,
        signer=load_signer(key_file),
    )
    run_op = trail.record(
        "run_started",
        action="start",
        obj=f"task {task.name}",
        extra={
            "klerk.started_by": "schedule:nachtelijk",
            "klerk.version": "0.1.0",
            "klerk.definition_path": str(find_task(TASK)),
            "klerk.input_file": "intake.xlsx",
            "klerk.items": records // (len(steps) + 2),
        },
        facts={"klerk.input_sha256": hashlib.sha256(b"intake").hexdigest()},
        sync=True,
    )
    n = 0
    # an item's records are written without fsync: a run syncs at item end, which only makes
    # the writing slower, not the file different
    while trail.seq < records - 3:
        n += 1
        key, bsn, item_op = f"{PREFIX}{n:07d}", _bsn(n), new_operation_id()
        started = time.time()
        trail.record(
            "item_started",
            operation_id=item_op,
            parent=run_op,
            action="start",
            obj=f"item {key}",
            item_key=key,
            subject=bsn,
            extra={"klerk.item_seq": n, "klerk.resumed": False},
        )
        if n % 97 == 0:  # the app was busy: one retry
            trail.record(
                "retry",
                parent=item_op,
                status=STATUS_ERROR,
                action="error",
                obj=f"item {key}",
                result="AppUnavailableError: de applicatie meldt: systeem is bezet",
                item_key=key,
                extra={"klerk.attempt": 1},
            )
        refused = n % 50 == 0  # an active permit exists already
        for kind, label in steps:
            result = "HTTP 200" if kind == "goto" else "ok"
            if kind == "extract":
                if refused:
                    trail.record(
                        "action",
                        parent=item_op,
                        status=STATUS_ERROR,
                        action="business_error_if",
                        obj="business_error_if",
                        result="refused: er bestaat al een actieve vergunning voor dit kenteken",
                        item_key=key,
                        subject=bsn,
                    )
                    break
                result = "zaaknummer"
            trail.record(
                "action",
                parent=item_op,
                start=time.time(),
                action=kind,
                obj=label,
                result=result,
                item_key=key,
                subject=bsn,
            )
        message = "business_error: er bestaat al een actieve vergunning" if refused else "done"
        trail.record(
            "item_ended",
            operation_id=item_op,
            parent=run_op,
            start=started,
            status=STATUS_ERROR if refused else 1,
            action="end",
            obj=f"item {key}",
            result=message,
            item_key=key,
            subject=bsn,
            extra={"klerk.item_seq": n, "klerk.evidence": ""},
        )
    trail.record(
        "run_ended",
        parent=run_op,
        action="end",
        obj=f"task {task.name}",
        result="finished",
        extra={"klerk.counts": {"done": n - n // 50, "business_error": n // 50}},
        sync=True,
    )
    trail.checkpoint()
    trail.close()
    return trail.seq


def read_and_hash(path: Path) -> int:
    """The floor of any verifier: read the file and SHA-256 every line. Returns the line count."""
    lines = 0
    with path.open("rb") as trail:
        for line in trail:
            hashlib.sha256(line).digest()
            lines += 1
    return lines


def bench_verify(records: int, repeat: int, folder: Path) -> None:
    """Write a trail of `records` records and time verify_trail on it `repeat` times."""
    key_file, path = folder / "keys" / "signing.key", folder / "audit.jsonl"
    kept = folder / f"records-{records}"  # a trail of this size was written here before
    started = time.perf_counter()
    if not (kept.exists() and path.exists()):
        shutil.rmtree(folder, ignore_errors=True)
        create_keys(key_file)
        kept.write_text(str(write_trail(path, records, key_file)))
    public = load_public_key(key_file.with_suffix(".pub"))
    written, size = int(kept.read_text()), path.stat().st_size
    print(
        f"verify: trail of {written:,} records, {size / 2**20:.0f} MiB "
        f"({size / written:.0f} bytes a record), written in {time.perf_counter() - started:.0f} s"
        f"; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    workers = verify.workers_for(path)
    print(
        f"\n  {'try':>4}  {'processes':>9} {'wall (s)':>9} {'records/s':>10} {'CPU (s)':>8}"
        f" {'records/CPU-s':>14} {'load':>5}"
    )
    rates: dict[int, list[float]] = {workers: [], 1: []}
    per_cpu: dict[int, list[float]] = {workers: [], 1: []}
    for attempt in range(1, repeat + 1):
        for processes in dict.fromkeys((workers, 1)):
            load = os.getloadavg()[0]
            cpu, started = _cpu_seconds(), time.perf_counter()
            report = verify_trail(path, public, workers=processes)
            seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
            rates[processes].append(report.records / seconds)
            per_cpu[processes].append(report.records / cpu)
            verdict = report.verdict.name.lower()
            if report.verdict is not Verdict.INTACT or report.records != written:
                verdict = f"WRONG: {verdict}, {report.records} records, {report.findings[:3]}"
            print(
                f"  {attempt:>4}  {processes:>9} {seconds:>9.2f} {rates[processes][-1]:>10,.0f}"
                f" {cpu:>8.2f} {per_cpu[processes][-1]:>14,.0f} {load:>5.1f}   {verdict}",
                flush=True,
            )
    started = time.perf_counter()
    read_and_hash(path)
    floor = time.perf_counter() - started
    median = statistics.median(rates[workers])
    met = "met" if median >= VERIFY_TARGET else "NOT met"
    print(
        f"\n  verify with {workers} processes: {median:,.0f} records/s (median), "
        f"{max(rates[workers]):,.0f} (best); target ≥ {VERIFY_TARGET:,}: {met}"
    )
    if workers > 1:
        speedup = statistics.median(rates[workers]) / statistics.median(rates[1])
        print(f"  {workers} processes / one: {speedup:.2f}× the records per second")
    print(
        f"  per CPU-second (steadier on a busy machine): {statistics.median(per_cpu[1]):,.0f} "
        f"records in one process; reading the file and hashing every line alone takes "
        f"{floor:.1f} s ({written / floor:,.0f} records/s), the floor of any verifier"
    )


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its children that ended."""
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# --- overhead: what writing the trail adds to a run ---------------------------------------------


class Stopwatch:
    """Time spent inside some functions, each nested call counted once, in the outermost."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self._inside = threading.local()

    def wrap(self, owner: Any, name: str, label: str) -> None:
        """Time every call of `owner.name` under `label` (nothing when it has no such name)."""
        original = getattr(owner, name, None)
        if original is None:
            return
        inside = self._inside

        @wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if getattr(inside, "busy", False):  # called by a timed function: counted there
                return original(*args, **kwargs)
            inside.busy = True
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started
                self.calls[label] += 1
                inside.busy = False

        setattr(owner, name, timed)

    def wrap_inner(self, owner: Any, name: str, label: str) -> None:
        """Time the calls of `owner.name` made inside a function timed by `wrap`, as a part of
        its time (e.g. the fsyncs of the trail's writing)."""
        original = getattr(owner, name)
        inside = self._inside

        @wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not getattr(inside, "busy", False):
                return original(*args, **kwargs)
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started
                self.calls[label] += 1

        setattr(owner, name, timed)


WRITING, LEDGER, CHECKING = "writing the trail", "the ledger", "checking it for the report"
FSYNC = "of which fsync"


def klerk_inside(mode: str, times_file: Path, arguments: list[str]) -> int:
    """Run klerk's CLI in this process, with a stopwatch around the trail's methods ("timed")
    or with a trail that writes nothing ("off"); the stopwatch goes to `times_file`."""
    import runner
    import tasks.ledger
    import tasks.report

    stopwatch = Stopwatch()
    if mode == "off":
        _trail_off()
    else:
        for name in ("__init__", "record", "checkpoint", "sync", "close"):
            stopwatch.wrap(Trail, name, WRITING)
        for name in ("_read_head", "append"):
            stopwatch.wrap(tasks.ledger.Ledger, name, LEDGER)
        stopwatch.wrap(tasks.report, "check_trail", CHECKING)
        stopwatch.wrap_inner(os, "fsync", FSYNC)
    sys.argv = ["klerk", *arguments]
    code: Any = 0
    try:
        runner.main()
    except SystemExit as done:
        code = done.code
    finally:
        times = {"seconds": dict(stopwatch.seconds), "calls": dict(stopwatch.calls)}
        times_file.write_text(json.dumps(times), encoding="utf-8")
    return code if isinstance(code, int) else 1


def _trail_off() -> None:
    """Make the trail and the ledger write nothing, keeping what the engine reads of them."""
    import tasks.ledger

    def record(self: Trail, name: str, *, operation_id: str | None = None, **_: Any) -> str:
        self.seq += 1
        return operation_id or new_operation_id()

    def nothing(*_: Any, **__: Any) -> None:
        return None

    setattr(Trail, "record", record)  # noqa: B010 (mypy: assigning to a method)
    for name in ("checkpoint", "sync"):
        setattr(Trail, name, nothing)
    setattr(tasks.ledger.Ledger, "append", nothing)  # noqa: B010


@dataclass(frozen=True)
class Run:
    """One timed `klerk run` of the demo job."""

    mode: str
    round: int
    seconds: float
    cpu_seconds: float
    records: int
    timed: dict[str, float]
    problem: str
    load: float


def run_klerk(mode: str, round_: int, url: str, intake: Path, keys: list[str], folder: Path) -> Run:
    """Reset the app, time `klerk run` of the demo task on `intake` in a fresh KLERK_HOME, and
    check that every row was stored exactly once."""
    api(url, "/api/reset", {})
    load = os.getloadavg()[0]
    folder.mkdir(parents=True)
    results, times = folder / "resultaten.xlsx", folder / "stopwatch.json"
    env = {**base_env(), "KLERK_HOME": str(folder), "KLERK_APP_URL": url}
    command = [sys.executable, str(Path(__file__).resolve()), "--inside-klerk", mode, str(times)]
    command += ["run", TASK, "--input", str(intake), "--results", str(results)]
    finished = timed([*command, "--concurrency", "1"], env, folder, results)
    problems = [f"exit code {finished.exit_code}"] if finished.exit_code != 0 else []
    problems += [check_stored(url, keys), check_results(results, len(keys))]
    problem = "; ".join(p for p in problems if p)
    if problem and finished.tail:
        problem += "\n" + "\n".join("      | " + line for line in finished.tail.splitlines())
    trails = list((folder / "runs").glob("*/audit.jsonl"))
    records = sum(len(trail.read_bytes().splitlines()) for trail in trails)
    seconds = json.loads(times.read_text()).get("seconds", {}) if times.exists() else {}
    return Run(
        mode, round_, finished.seconds, finished.cpu_seconds, records, seconds, problem, load
    )


def print_run(run: Run, timed_run: Run | None) -> None:
    """One line per run: wall and CPU time; for a timed run the trail's share of it, for a run
    without the trail the ratio of the timed run before it to this one."""
    verdict = "ok" if not run.problem else "FAILED: " + run.problem
    if run.mode == "timed":
        trail = run.timed.get(WRITING, 0.0) + run.timed.get(LEDGER, 0.0)
        fsync, checking = run.timed.get(FSYNC, 0.0), run.timed.get(CHECKING, 0.0)
        share = f"{trail:>7.2f} {trail / run.seconds:>7.1%} {fsync:>9.2f} {checking:>9.2f}"
        ratio = ""
    else:
        share = f"{'':>7} {'':>7} {'':>9} {'':>9}"
        ratio = f"{timed_run.seconds / run.seconds:.3f}×" if timed_run is not None else ""
    print(
        f"  {run.round:>5}  {run.mode:<6} {run.seconds:>8.1f} {run.cpu_seconds:>8.1f}"
        f" {run.records:>8} {share} {ratio:>8} {run.load:>5.1f}   {verdict}",
        flush=True,
    )


def bench_overhead(rows: int, rounds: int, latency_ms: int, folder: Path) -> None:
    """Time the demo job with the trail (stopwatch inside) and without it, `rounds` times."""
    items = aanvragen(rows, bad_rows=False, prefix=PREFIX)
    keys = [str(row["Aanvraagnummer"]) for row in items]
    with DemoServer(port=0) as server:
        url = server.url
        api(url, "/api/faults", {"latency_ms": latency_ms})
        intake = write_intake(folder / "intake.xlsx", items)
        print(
            f"\noverhead: klerk run of {rows} rows, {rounds} rounds of a run with the trail "
            f"(timed) and one whose trail writes nothing (off); demo app latency {latency_ms} ms",
            flush=True,
        )
        warm = write_intake(folder / "warmup.xlsx", items[:3])
        run_klerk("timed", 0, url, warm, keys[:3], folder / "warmup")  # a warm disk cache
        print(
            f"\n  {'round':>5}  {'trail':<6} {'wall (s)':>8} {'CPU (s)':>8} {'records':>8}"
            f" {'in it(s)':>7} {'share':>7} {'fsync (s)':>9} {'check (s)':>9} {'timed/off':>8}"
            f" {'load':>5}"
        )
        runs: list[Run] = []
        for round_ in range(1, rounds + 1):
            for mode in ("timed", "off"):
                run = run_klerk(mode, round_, url, intake, keys, folder / f"round{round_}-{mode}")
                runs.append(run)
                print_run(run, runs[-2] if mode == "off" else None)
    summarise_overhead(runs)


def summarise_overhead(runs: list[Run]) -> None:
    """The trail's share of a run by the stopwatch, and the ratio of the paired runs."""
    timed_runs = [run for run in runs if run.mode == "timed" and not run.problem]
    if not timed_runs:
        print("\n  no timed run succeeded: no figures")
        return
    shares = [
        (r.timed.get(WRITING, 0.0) + r.timed.get(LEDGER, 0.0)) / r.seconds for r in timed_runs
    ]
    checking = [r.timed.get(CHECKING, 0.0) / r.seconds for r in timed_runs]
    fsyncs = [
        r.timed.get(FSYNC, 0.0) / (r.timed.get(WRITING, 0.0) + r.timed.get(LEDGER, 0.0) or 1)
        for r in timed_runs
    ]
    per_record = [
        (r.timed.get(WRITING, 0.0) + r.timed.get(LEDGER, 0.0)) / r.records * 1e6
        for r in timed_runs
        if r.records
    ]
    share = statistics.median(shares)
    met = "met" if share <= OVERHEAD_TARGET else "NOT met"
    print(
        f"\n  time inside the trail and the ledger (stopwatch): {share:.1%} of the run's wall "
        f"time (median; {min(shares):.1%}..{max(shares):.1%}), "
        f"{statistics.median(per_record):.0f} µs a record, of which "
        f"{statistics.median(fsyncs):.0%} in fsync (item ends, checkpoints, the ledger)"
    )
    print(f"  target ≤ {OVERHEAD_TARGET:.0%}: {met}")
    print(f"  checking the trail for the report at run end: {statistics.median(checking):.1%} more")
    pairs = [
        (t, o)
        for t, o in zip(runs[::2], runs[1::2], strict=True)
        if not t.problem and not o.problem
    ]
    if pairs:
        wall = statistics.median(t.seconds / o.seconds for t, o in pairs)
        cpu = statistics.median(t.cpu_seconds / o.cpu_seconds for t, o in pairs)
        print(
            f"  side by side, with the trail / without: {wall:.3f}× wall time, {cpu:.3f}× CPU "
            "time (medians of the rounds; on a shared machine the spread between two runs of "
            "the same job is several per cent, so this only bounds the stopwatch's figure)"
        )


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("verify", "overhead", "all"), default="all")
    parser.add_argument(
        "--records", type=int, default=1_000_000, help="records in the trail (default 1,000,000)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="verify runs (default 3)")
    parser.add_argument("--rows", type=int, default=200, help="intake rows (default 200)")
    parser.add_argument("--rounds", type=int, default=2, help="timed+off pairs (default 2)")
    parser.add_argument(
        "--latency-ms", type=int, default=0, help="demo app latency per request (default 0)"
    )
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep the trail and run folders here; a trail kept there before is used again",
    )
    args = parser.parse_args(argv)
    if args.records < 10 or args.repeat < 1 or args.rows < 1 or args.rounds < 1:
        parser.error("--records must be at least 10; --repeat, --rows and --rounds at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print the figures; exit 0 whatever they are."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--inside-klerk"]:  # the klerk side of the overhead benchmark
        return klerk_inside(argv[1], Path(argv[2]), argv[3:])
    args = parse_args(argv)
    with workspace(args.keep) as folder:
        if args.part in ("verify", "all"):
            bench_verify(args.records, args.repeat, folder / "verify")
        if args.part in ("overhead", "all"):
            overhead = folder / "overhead"
            shutil.rmtree(overhead, ignore_errors=True)
            overhead.mkdir(parents=True)
            bench_overhead(args.rows, args.rounds, args.latency_ms, overhead)
        if args.keep is not None:
            print(f"\n  files kept in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

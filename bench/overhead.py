"""klerk's overhead over a plain Playwright script, measured side by side in one run.

Target (DESIGN.md › Targets): the same job done by klerk takes at most 1.10× the wall time of
the plain script in `bench/plain_playwright.py`. Both are started as subprocesses against the
same demo app and timed the same way: wall time from process start to exit, so Python start,
browser launch, reading the intake and writing the results count on both sides. Rounds
alternate plain and klerk; before each run the app is reset, after it every row must be stored
exactly once. Benchmarks print; they never fail on the figures.

    python bench/overhead.py                      # 200 rows, 3 rounds
    python bench/overhead.py --rows 20 --rounds 1  # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(REPO))

from openpyxl import load_workbook  # noqa: E402

from connectors.xlsx import XlsxSink  # noqa: E402
from demo.afval import AFVAL_PASSWORD, AFVAL_USERNAME  # noqa: E402
from demo.app import DEMO_PASSWORD, DEMO_USERNAME  # noqa: E402
from demo.sample import HEADERS, aanvragen  # noqa: E402
from demo.server import DemoServer  # noqa: E402
from tasks.definition import SinkSpec  # noqa: E402

TASK = "vergunningen-invoeren"
PLAIN_SCRIPT = REPO / "bench" / "plain_playwright.py"
RUNNER = REPO / "runner.py"
TARGET = 1.10
PREFIX = "BENCH-"


@dataclass(frozen=True)
class Job:
    """The job both sides do: klerk's task, the plain script that does the same, and the app's
    JSON endpoint that lists what is stored (records with an "aanvraagnummer")."""

    task: str
    plain_script: Path
    stored: str


@dataclass(frozen=True)
class Finished:
    """What a side's subprocess left behind."""

    seconds: float
    cpu_seconds: float
    """User + system CPU time of the whole process tree (Python, Playwright's driver, Chromium)."""
    exit_code: int
    tail: str
    """The last lines of its output, shown when something went wrong."""
    results: Path
    run_dir: Path | None = None


@dataclass(frozen=True)
class Measurement:
    """One timed run of one side."""

    side: str
    round: int
    seconds: float
    cpu_seconds: float
    rows: int
    problem: str
    """Empty when every row was stored exactly once and the results say done."""
    run_dir: Path | None = None
    """klerk's run folder (with audit.jsonl), for the breakdown."""
    load: float = 0.0
    """The machine's 1-minute load average just before the run: others' work skews the time."""


# --- the demo app ------------------------------------------------------------------------------


def api(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """GET (or POST `body` as JSON) one of the demo app's JSON endpoints."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url + path, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def check_stored(url: str, keys: Sequence[str], endpoint: str = "/api/vergunningen") -> str:
    """'' when every aanvraagnummer in `keys` is stored exactly once, else what is wrong."""
    stored = Counter(
        permit["aanvraagnummer"]
        for permit in api(url, endpoint)
        if str(permit["aanvraagnummer"]).startswith(PREFIX)
    )
    missing = [key for key in keys if stored[key] == 0]
    twice = [key for key in keys if stored[key] > 1]
    unexpected = set(stored) - set(keys)
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (first {missing[0]})")
    if twice:
        problems.append(f"{len(twice)} stored more than once (first {twice[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected")
    return "; ".join(problems)


def check_results(path: Path, rows: int) -> str:
    """'' when the results workbook has `rows` rows marked done with a zaaknummer."""
    if not path.exists():
        return f"no results file {path.name}"
    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        table = list(workbook.worksheets[0].iter_rows(values_only=True))
    finally:
        workbook.close()
    headers = [str(cell) for cell in table[0]]
    status, zaaknummer = headers.index("status"), headers.index("zaaknummer")
    done = sum(1 for row in table[1:] if row[status] == "done" and row[zaaknummer])
    return "" if done == rows else f"results: {done}/{rows} done with a zaaknummer"


# --- the two sides -----------------------------------------------------------------------------


def write_intake(path: Path, rows: list[dict[str, Any]], headers: Sequence[str] = HEADERS) -> Path:
    """The intake workbook (sheet "Aanvragen"), written the way the demo's sample is."""
    return XlsxSink(SinkSpec(kind="xlsx", path=str(path), sheet="Aanvragen"), path).write(
        headers, rows
    )


def timed(command: list[str], env: dict[str, str], cwd: Path, results: Path) -> Finished:
    """Run `command` in `cwd`; its wall time from start to exit and the CPU time it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
    return Finished(seconds, cpu, done.returncode, tail, results)


def base_env() -> dict[str, str]:
    """This environment without klerk settings of its own, plus the demo apps' credentials."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("KLERK_")}
    env["KLERK_CRED_PARKEREN_USERNAME"] = DEMO_USERNAME
    env["KLERK_CRED_PARKEREN_PASSWORD"] = DEMO_PASSWORD
    env["KLERK_CRED_AFVAL_USERNAME"] = AFVAL_USERNAME
    env["KLERK_CRED_AFVAL_PASSWORD"] = AFVAL_PASSWORD
    return env


PARKEREN = Job(TASK, PLAIN_SCRIPT, "/api/vergunningen")
"""Permit applications in Parkeervergunningen: the job of this benchmark."""


def run_plain(url: str, intake: Path, folder: Path, job: Job = PARKEREN) -> Finished:
    """Time the plain Playwright script on `intake`."""
    folder.mkdir(parents=True)
    results = folder / "resultaten.xlsx"
    command = [sys.executable, str(job.plain_script), "--url", url, "--input", str(intake)]
    command += ["--results", str(results)]
    return timed(command, base_env(), folder, results)


def run_klerk(
    url: str, intake: Path, folder: Path, concurrency: int, job: Job = PARKEREN
) -> Finished:
    """Time `klerk run` on `intake` with a fresh KLERK_HOME (store, trail, run folder)."""
    folder.mkdir(parents=True)
    results = folder / "resultaten.xlsx"
    env = {**base_env(), "KLERK_HOME": str(folder), "KLERK_APP_URL": url}
    command = [sys.executable, str(RUNNER), "run", job.task, "--input", str(intake)]
    command += ["--results", str(results), "--concurrency", str(concurrency)]
    finished = timed(command, env, folder, results)
    run_dirs = sorted((folder / "runs").glob("*/"))
    return replace(finished, run_dir=run_dirs[-1] if run_dirs else None)


def measure(
    side: str,
    round_: int,
    url: str,
    intake: Path,
    keys: list[str],
    folder: Path,
    concurrency: int,
    job: Job = PARKEREN,
) -> Measurement:
    """Reset the app, run one side, and check that every row was stored exactly once."""
    api(url, "/api/reset", {})
    load = os.getloadavg()[0]
    if side == "plain":
        finished = run_plain(url, intake, folder, job)
    else:
        finished = run_klerk(url, intake, folder, concurrency, job)
    problems = [f"exit code {finished.exit_code}"] if finished.exit_code != 0 else []
    problems += [check_stored(url, keys, job.stored), check_results(finished.results, len(keys))]
    problem = "; ".join(p for p in problems if p)
    if problem and finished.tail:
        problem += "\n" + "\n".join("      | " + line for line in finished.tail.splitlines())
    return Measurement(
        side,
        round_,
        finished.seconds,
        finished.cpu_seconds,
        len(keys),
        problem,
        finished.run_dir,
        load,
    )


# --- where klerk's time goes -------------------------------------------------------------------


def breakdown(run_dir: Path) -> tuple[list[tuple[str, float]], float, int]:
    """Median ms per item for each step of a klerk run and for the gaps between them.

    A gap is time inside an item that no trail record covers: the engine's own work between
    steps, and steps that leave no record (`business_error_if` is only recorded when it
    refuses). Returns the rows, the median time per item from start to end, and the count.
    """
    records: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with (run_dir / "audit.jsonl").open(encoding="utf-8") as trail:
        for line in trail:
            record = json.loads(line)
            key = record["attributes"].get("klerk.item_key")
            if key is not None:
                records[key].append(record)
    spans: dict[str, list[float]] = defaultdict(list)
    totals: list[float] = []
    bounds: list[tuple[float, float]] = []
    for item in records.values():
        if item[0]["name"] != "item_started" or item[-1]["name"] != "item_ended":
            continue
        previous = float(item[0]["end_time"])
        for record in item[1:]:
            gap = float(record["start_time"]) - previous
            if record["name"] == "action":
                step = record["attributes"]["bio.object"]
                spans[f"(gap before: {step})"].append(gap)
                spans[step].append(float(record["end_time"] - record["start_time"]))
            elif record["name"] == "item_ended":
                spans["(gap after the last step)"].append(float(record["end_time"]) - previous)
            previous = float(record["end_time"])
        bounds.append((float(item[0]["start_time"]), float(item[-1]["end_time"])))
        totals.append(bounds[-1][1] - bounds[-1][0])
    bounds.sort()
    between = [b[0] - a[1] for a, b in pairwise(bounds)]
    if between and min(between) >= 0:  # items one after the other (concurrency 1)
        spans["(between items)"] = between
    rows = [(name, statistics.median(values)) for name, values in spans.items()]
    rows = [(name, ms) for name, ms in rows if ms >= 1 or not name.startswith("(")]
    return rows, statistics.median(totals) if totals else 0.0, len(totals)


# --- output ------------------------------------------------------------------------------------


def print_run(m: Measurement, plain: Measurement | None = None) -> None:
    """One line per run; a klerk run also shows its ratio to the plain run of its round."""
    rate = m.rows / m.seconds * 60
    ratio = f"{m.seconds / plain.seconds:.2f}×" if plain is not None else ""
    verdict = "ok" if not m.problem else "FAILED: " + m.problem
    print(
        f"  {m.round:>5}  {m.side:<6} {m.seconds:>9.1f} {rate:>9.1f} {ratio:>7}"
        f" {m.cpu_seconds:>8.1f} {m.load:>6.1f}   {verdict}",
        flush=True,
    )


def print_summary(measurements: list[Measurement], concurrency: int) -> None:
    """Medians, minima and the ratio klerk/plain against the target."""
    seconds = {
        side: [m.seconds for m in measurements if m.side == side] for side in ("plain", "klerk")
    }
    median = {side: statistics.median(values) for side, values in seconds.items()}
    best = {side: min(values) for side, values in seconds.items()}
    print()
    print(f"  {'':<7}{'median (s)':>11}{'min (s)':>10}")
    for side in ("plain", "klerk"):
        print(f"  {side:<7}{median[side]:>11.1f}{best[side]:>10.1f}")
    ratio = median["klerk"] / median["plain"]
    ratio_min = best["klerk"] / best["plain"]
    same_job = concurrency == 1
    verdict = ("met" if ratio <= TARGET else "NOT met") if same_job else "n/a (concurrency > 1)"
    paired = statistics.median(
        k.seconds / p.seconds for p, k in zip(measurements[::2], measurements[1::2], strict=True)
    )
    print(
        f"\n  klerk / plain: {ratio:.2f}× (medians), {ratio_min:.2f}× (minima), "
        f"{paired:.2f}× (median of the ratios per round)"
    )
    print(f"  target ≤ {TARGET:.2f}×: {verdict}")
    cpu = {
        side: statistics.median(m.cpu_seconds for m in measurements if m.side == side)
        for side in ("plain", "klerk")
    }
    extra_ms = (cpu["klerk"] - cpu["plain"]) / measurements[0].rows * 1000
    print(
        f"  CPU time, all processes of a run (medians): plain {cpu['plain']:.1f} s, "
        f"klerk {cpu['klerk']:.1f} s = {cpu['klerk'] / cpu['plain']:.2f}× "
        f"({extra_ms:+.0f} ms per row, start-up included);"
        " steadier than wall time on a busy machine"
    )
    if any(m.problem for m in measurements):
        print("  note: some runs did not store every row exactly once; see FAILED above")


def print_breakdown(run_dir: Path) -> None:
    """Where the last klerk run spent its time per item, step by step."""
    rows, per_item, items = breakdown(run_dir)
    if not rows:
        return
    print(f"\n  klerk per item, median ms over {items} items (last run, {run_dir.name}):")
    width = max(len(step) for step, _ in rows)
    for step, ms in rows:
        print(f"    {step:<{width}}  {ms:>6.0f}")
    print(f"    {'item start to end (median of the totals)':<{width}}  {per_item:>6.0f}")


@contextmanager
def workspace(keep: Path | None, prefix: str = "klerk-bench-") -> Iterator[Path]:
    """The folder for intakes, results and klerk homes: `keep`, or a temporary one."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- main --------------------------------------------------------------------------------------


def parse_args(
    argv: list[str] | None, doc: str = __doc__, *, latency: bool = True
) -> argparse.Namespace:
    """The command line (with `--latency-ms` for an app that can be slowed down)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200, help="intake rows (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="plain+klerk pairs (default 3)")
    if latency:
        parser.add_argument(
            "--latency-ms", type=int, default=0, help="demo app latency per request (default 0)"
        )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="klerk's browser contexts; 1 (default) is the same job as the plain script",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=5,
        help="rows for one untimed run of each side first, to warm the disk cache (0: none)",
    )
    parser.add_argument(
        "--keep", type=Path, help="keep intakes, results and klerk run folders in this folder"
    )
    args = parser.parse_args(argv)
    if args.rows < 1 or args.rounds < 1 or args.concurrency < 1 or args.warmup < 0:
        parser.error("--rows, --rounds and --concurrency must be at least 1, --warmup at least 0")
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        parser.error(f"--keep {args.keep}: the folder is not empty; give a new or empty one")
    return args


def compare(
    job: Job,
    url: str,
    folder: Path,
    intakes: tuple[Path, Path],
    keys: list[str],
    args: argparse.Namespace,
) -> None:
    """The side-by-side runs of `job` against the app at `url`, and their figures: a warm-up
    on the second intake (the first `args.warmup` rows), then `args.rounds` rounds on the first
    (every row; `keys` are their aanvraagnummers), with the options of `parse_args`."""
    intake, warmup = intakes
    if args.warmup > 0:
        warm_keys = keys[: args.warmup]
        plain = measure("plain", 0, url, warmup, warm_keys, folder / "warmup-plain", 1, job)
        klerk = measure("klerk", 0, url, warmup, warm_keys, folder / "warmup-klerk", 1, job)
        print(
            f"warm-up with {args.warmup} rows (not counted): plain {plain.seconds:.1f} s, "
            f"klerk {klerk.seconds:.1f} s",
            flush=True,
        )
        for failed in (m for m in (plain, klerk) if m.problem):
            print(f"  warm-up {failed.side} FAILED: {failed.problem}", flush=True)
    print(
        f"\n  {'round':>5}  {'side':<6} {'wall (s)':>9} {'rows/min':>9} {'ratio':>7}"
        f" {'CPU (s)':>8} {'load':>6}   stored once"
    )
    measurements: list[Measurement] = []
    for round_ in range(1, args.rounds + 1):
        for side in ("plain", "klerk"):
            where = folder / f"round{round_}-{side}"
            m = measure(side, round_, url, intake, keys, where, args.concurrency, job)
            measurements.append(m)
            print_run(m, measurements[-2] if side == "klerk" else None)
    print_summary(measurements, args.concurrency)
    last = [m.run_dir for m in measurements if m.side == "klerk" and m.run_dir]
    if last and last[-1] is not None:
        print_breakdown(last[-1])
    if args.keep is not None:
        print(f"\n  files kept in {folder}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures; exit 0 whatever they are."""
    args = parse_args(argv)
    rows = aanvragen(args.rows, bad_rows=False, prefix=PREFIX)
    keys = [str(row["Aanvraagnummer"]) for row in rows]
    with workspace(args.keep) as folder, DemoServer(port=0) as server:
        url = server.url
        api(url, "/api/faults", {"latency_ms": args.latency_ms})
        intake = write_intake(folder / "intake.xlsx", rows)
        warmup = write_intake(folder / "warmup.xlsx", rows[: args.warmup])
        print(
            f"klerk overhead: {args.rows} rows, {args.rounds} rounds, demo app latency "
            f"{args.latency_ms} ms, klerk concurrency {args.concurrency}; "
            f"{os.cpu_count()} CPUs; demo app at {url}",
            flush=True,
        )
        compare(PARKEREN, url, folder, (intake, warmup), keys, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Long runs stay healthy: one `klerk run` of 10,000 items, its memory watched from /proc.

Target (issue 6, item 5): the memory of the runner (the Python process) and of its browser
(Playwright's driver and every Chromium process) stays flat over the run, and the operator log
rotates. The demo app runs in-process; `klerk run vergunningen-invoeren --concurrency 2` runs as
a subprocess in a temporary KLERK_HOME and is sampled every few seconds: resident memory of the
runner and of its process tree, the number of processes, the runner's open file descriptors,
and the items done (the `item_ended` records in its audit.jsonl). Prints the samples and the
growth in MiB per 1,000 items from 10-20 % of the items to the end; never fails on the figures.

    python bench/long_run.py                   # 10,000 items (~1 h on 2 cores)
    python bench/long_run.py --items 1500      # a quicker look (~10 min)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(REPO))

from overhead import workspace  # noqa: E402 (bench/overhead.py)

from demo.sample import aanvragen  # noqa: E402
from demo.server import DemoServer  # noqa: E402
from tests.conftest import _klerk, write_intake  # noqa: E402

TASK = "vergunningen-invoeren"
RUNNER = REPO / "runner.py"
PREFIX = "LONG-"
MIB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")
FLAT_MIB = 10.0
"""Growth over 10,000 items below which memory counts as flat (GC and allocator noise)."""
ITEM_ENDED = b'"name":"item_ended"'
KLERK_ROTATION = 20_000_000
"""klerk's own rotation size for klerk.log (KLERK_LOG_ROTATION, default "20 MB")."""
RETENTION = 5
"""Rotated operator logs klerk keeps per run (runner.py, _operator_log)."""


@dataclass(frozen=True)
class Sample:
    """The state of the run at one moment."""

    seconds: float
    items: int
    runner_mib: float
    """Resident memory (VmRSS) of the runner, the Python process."""
    browser_mib: float
    """Summed VmRSS of every process below the runner: Playwright's driver (node) and Chromium.
    Shared pages count once per process, so this is more than the memory really used."""
    browser_pss_mib: float
    """The same processes' proportional set size: shared pages divided among their sharers."""
    processes: int
    chromium: int
    fds: int


# --- /proc -------------------------------------------------------------------------------------


def _read(path: str) -> str:
    with open(path, encoding="ascii", errors="replace") as stream:
        return stream.read()


def descendants(root: int) -> list[tuple[int, str]]:
    """(pid, command name) of every process below `root`, from the ppid in /proc/*/stat."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = _read(f"/proc/{entry.name}/stat")
        except OSError:  # gone meanwhile
            continue
        # the command name is in parentheses and may itself hold spaces and parentheses
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append((int(entry.name), name))
    found: list[tuple[int, str]] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def rss_bytes(pid: int) -> int:
    """Resident memory of `pid` (0 when it is gone)."""
    try:
        return int(_read(f"/proc/{pid}/statm").split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def pss_bytes(pid: int) -> int:
    """Proportional set size of `pid` from smaps_rollup (0 when it is gone)."""
    try:
        for line in _read(f"/proc/{pid}/smaps_rollup").splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def status_kib(pid: int, field: str) -> int:
    """A field of /proc/<pid>/status in KiB (VmRSS, VmHWM), 0 when it is gone."""
    try:
        for line in _read(f"/proc/{pid}/status").splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def open_fds(pid: int) -> int:
    """Open file descriptors of `pid`."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


class ItemCounter:
    """Counts `item_ended` records in the run's audit.jsonl, reading only what was added."""

    def __init__(self, runs: Path) -> None:
        self.runs = runs
        self.path: Path | None = None
        self.offset = 0
        self.count = 0

    def __call__(self) -> int:
        if self.path is None:
            found = sorted(self.runs.glob("*/audit.jsonl"))
            if not found:
                return 0
            self.path = found[0]
        with self.path.open("rb") as stream:
            stream.seek(self.offset)
            added = stream.read()
        complete = added.rfind(b"\n") + 1  # a record being written is counted next time
        self.count += added[:complete].count(ITEM_ENDED)
        self.offset += complete
        return self.count


def sample(pid: int, started: float, items: ItemCounter) -> Sample:
    """Look at the runner `pid` and its process tree once."""
    tree = descendants(pid)
    return Sample(
        seconds=time.monotonic() - started,
        items=items(),
        runner_mib=rss_bytes(pid) / MIB,
        browser_mib=sum(rss_bytes(child) for child, _ in tree) / MIB,
        browser_pss_mib=sum(pss_bytes(child) for child, _ in tree) / MIB,
        processes=len(tree),
        chromium=sum(1 for _, name in tree if not name.startswith("node")),
        fds=open_fds(pid),
    )


# --- the run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Watched:
    """A finished run and what was seen of it."""

    samples: list[Sample]
    exit_code: int
    seconds: float
    runner_peak_mib: float
    """The runner's VmHWM at its last sample: the high-water mark, results writing included."""
    run_dir: Path | None
    output: Path


def watch_run(url: str, home: Path, intake: Path, args: argparse.Namespace) -> Watched:
    """Start `klerk run` on `intake` and sample it every `args.interval` seconds until it ends."""
    env = _klerk(home, url).env
    if args.log_rotation:
        env["KLERK_LOG_ROTATION"] = args.log_rotation
    command = [sys.executable, str(RUNNER), "run", TASK, "--input", str(intake)]
    command += ["--concurrency", str(args.concurrency)]
    output = home / "klerk-output.txt"
    items = ItemCounter(home / "runs")
    samples: list[Sample] = []
    peak = 0
    printed = 0.0
    with output.open("wb") as sink:
        started = time.monotonic()
        process = subprocess.Popen(command, env=env, cwd=home, stdout=sink, stderr=sink)
        while process.poll() is None:
            now = sample(process.pid, started, items)
            peak = max(peak, status_kib(process.pid, "VmHWM"))
            if process.poll() is not None:  # ended while being sampled: a partial look
                break
            samples.append(now)
            if now.seconds - printed >= args.progress_seconds:
                printed = now.seconds
                print(f"  {_row(now)}", flush=True)
            time.sleep(args.interval)
        seconds = time.monotonic() - started
    run_dirs = sorted(path.parent for path in (home / "runs").glob("*/audit.jsonl"))
    return Watched(
        samples=samples,
        exit_code=process.returncode,
        seconds=seconds,
        runner_peak_mib=peak / 1024,
        run_dir=run_dirs[0] if run_dirs else None,
        output=output,
    )


# --- reading the figures -----------------------------------------------------------------------

HEADER = (
    f"{'time':>7} {'items':>6} {'runner':>8} {'browser':>8} {'br. PSS':>8} "
    f"{'procs':>5} {'chrom.':>6} {'fds':>4}"
)
UNITS = f"{'(s)':>7} {'done':>6} {'(MiB)':>8} {'(MiB)':>8} {'(MiB)':>8} {'':>5} {'':>6} {'':>4}"


def _row(s: Sample) -> str:
    return (
        f"{s.seconds:7.0f} {s.items:6d} {s.runner_mib:8.1f} {s.browser_mib:8.1f} "
        f"{s.browser_pss_mib:8.1f} {s.processes:5d} {s.chromium:6d} {s.fds:4d}"
    )


def thinned(samples: Sequence[Sample], rows: int) -> list[Sample]:
    """About `rows` samples spread evenly over the run, the first and last included."""
    if len(samples) <= rows:
        return list(samples)
    step = (len(samples) - 1) / (rows - 1)
    return [samples[round(n * step)] for n in range(rows)]


@dataclass(frozen=True)
class Growth:
    """How one quantity moved from the early window of the run to its end."""

    what: str
    early: float
    end: float
    per_1000: float
    """(end - early) per 1,000 items, from the two windows' medians."""
    slope_1000: float
    """Least-squares slope per 1,000 items over every sample from the early window on."""
    second_half_1000: float
    """The same over the second half of the items only: past any warm-up of a short run."""

    def verdict(self) -> str:
        """Flat when the growth projected over 10,000 items stays under FLAT_MIB."""
        projected = self.per_1000 * 10
        return "flat" if projected < FLAT_MIB else f"GROWS ({projected:+.0f} MiB per 10,000)"


def growth(samples: Sequence[Sample], items: int, what: str) -> Growth | None:
    """Compare `what` at 10-20 % of `items` with the samples of the last 10 % before the end."""
    early = [s for s in samples if 0.10 * items <= s.items <= 0.20 * items]
    late = [s for s in samples if 0.90 * items <= s.items < items]
    if not early or not late:
        return None

    def value(s: Sample) -> float:
        number: float = getattr(s, what)
        return number

    early_items = statistics.median(s.items for s in early)
    late_items = statistics.median(s.items for s in late)
    early_value = statistics.median(value(s) for s in early)
    late_value = statistics.median(value(s) for s in late)

    def slope(first: float) -> float:
        span = [s for s in samples if first <= s.items < items]
        if len({s.items for s in span}) < 2:
            return 0.0
        fit = statistics.linear_regression([s.items for s in span], [value(s) for s in span])
        return fit.slope * 1000

    return Growth(
        what=what,
        early=early_value,
        end=late_value,
        per_1000=(late_value - early_value) / max(late_items - early_items, 1) * 1000,
        slope_1000=slope(early[0].items),
        second_half_1000=slope(0.5 * items),
    )


def write_samples(path: Path, samples: Sequence[Sample]) -> None:
    """Every sample as CSV (kept with --keep), for a plot or a second look."""
    names = list(Sample.__dataclass_fields__)
    lines = [",".join(names)]
    lines += [",".join(f"{getattr(s, name):.1f}" for name in names) for s in samples]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def print_memory(watched: Watched, items: int, rows: int) -> None:
    """The samples as a table, then the growth of every memory figure and the verdict."""
    print(f"\n  samples ({len(watched.samples)} taken, {rows} shown):")
    print(f"  {HEADER}\n  {UNITS}")
    for s in thinned(watched.samples, rows):
        print(f"  {_row(s)}")
    print(
        f"\n  runner high-water mark (VmHWM, results writing included): "
        f"{watched.runner_peak_mib:.1f} MiB"
    )
    print(
        f"\n  {'':<22} {'at 10-20 %':>10} {'at 90-100 %':>11} {'per 1,000 items':>16} "
        f"{'fitted':>8} {'2nd half':>8}   verdict (flat: < {FLAT_MIB:.0f} MiB per 10,000 items)"
    )
    names = {
        "runner_mib": "runner (MiB)",
        "browser_mib": "browser RSS sum (MiB)",
        "browser_pss_mib": "browser PSS (MiB)",
    }
    for what, label in names.items():
        found = growth(watched.samples, items, what)
        if found is None:
            print(f"  {label:<22} too few samples in the windows (a longer run, --interval lower)")
            continue
        print(
            f"  {label:<22} {found.early:10.1f} {found.end:11.1f} {found.per_1000:+16.2f} "
            f"{found.slope_1000:+8.2f} {found.second_half_1000:+8.2f}   {found.verdict()}"
        )
    working = [s for s in watched.samples if 0 < s.items < items]
    if working:
        print(
            "  processes below the runner: "
            f"{min(s.processes for s in working)}-{max(s.processes for s in working)} "
            f"(Chromium {min(s.chromium for s in working)}-{max(s.chromium for s in working)}); "
            f"runner file descriptors {min(s.fds for s in working)}-"
            f"{max(s.fds for s in working)}"
        )


def print_log(run_dir: Path, items: int, rotation: int) -> None:
    """Where the operator log is, whether it rotated, its bytes per item, when it would rotate."""
    files = sorted(run_dir.glob("klerk*.log"), key=lambda path: path.stat().st_mtime)
    sizes = [path.stat().st_size for path in files]
    lines = [path.read_text(encoding="utf-8", errors="replace").splitlines() for path in files]
    levels = Counter(
        part.split("|")[1].strip() for text in lines for part in text if part.count("|") >= 2
    )
    print(f"\n  operator log: {run_dir / 'klerk.log'}")
    for path, size, text in zip(files, sizes, lines, strict=True):
        print(f"    {path.name:<40} {size:>10,} bytes {len(text):>6} lines")
    rotated = len(files) - 1
    started = any("started (" in line for line in lines[0]) if lines else False
    print(
        f"  rotation at {rotation:,} bytes: {rotated} rotated file(s) kept (retention "
        f"{RETENTION})"
        + (
            "; the oldest kept file no longer begins at the run's start: older ones were removed"
            if rotated and not started
            else ""
        )
    )
    kept = sum(sizes)
    levels_text = ", ".join(f"{level} {n}" for level, n in sorted(levels.items())) or "-"
    print(f"  lines by level: {levels_text}")
    if rotated and not started:
        print(
            f"  bytes kept: {kept:,} (the removed files are not counted; the figure per item is a "
            "lower bound)"
        )
    per_item = kept / max(items, 1)
    print(f"  log bytes per item: {per_item:.1f}")
    if per_item > 0:
        print(
            f"  at this rate klerk's default rotation ({KLERK_ROTATION / 1e6:.0f} MB) comes after "
            f"{KLERK_ROTATION / per_item:,.0f} items"
        )


def print_outcome(url: str, run_dir: Path | None, keys: Sequence[str]) -> None:
    """The run's own counts, and whether every row is stored exactly once in the app."""
    if run_dir is not None and (run_dir / "run.json").exists():
        summary = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        print(f"  run {summary['run_id']}: {summary['state']}, items {summary['counts']}")
    with urllib.request.urlopen(url + "/api/vergunningen", timeout=60) as answer:
        permits: list[dict[str, Any]] = json.load(answer)
    stored = Counter(
        str(p["aanvraagnummer"]) for p in permits if str(p["aanvraagnummer"]).startswith(PREFIX)
    )
    missing = sum(1 for key in keys if stored[key] == 0)
    twice = sum(1 for key in keys if stored[key] > 1)
    print(f"  in the app: {len(stored)} of {len(keys)} stored; {missing} missing, {twice} twice")


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000, help="intake rows (default 10,000)")
    parser.add_argument("--concurrency", type=int, default=2, help="browser contexts (default 2)")
    parser.add_argument(
        "--interval", type=float, default=3.0, help="seconds between samples (default 3)"
    )
    parser.add_argument(
        "--error-rate",
        type=float,
        default=0.01,
        help="share of the demo app's page requests answered with HTTP 500 (default 0.01): "
        "contexts get replaced and the operator log gets its warnings",
    )
    parser.add_argument(
        "--log-rotation",
        default="1 KB",
        help='KLERK_LOG_ROTATION for the run (default "1 KB", small so that the log rotates; '
        '"" for klerk\'s own 20 MB)',
    )
    parser.add_argument("--rows-shown", type=int, default=25, help="samples in the table (25)")
    parser.add_argument(
        "--progress-seconds", type=float, default=60.0, help="print a sample this often (60)"
    )
    parser.add_argument("--keep", type=Path, help="keep the intake and klerk's home here")
    args = parser.parse_args(argv)
    if args.items < 10:
        parser.error("--items: at least 10, so that the windows at 10-20 % and 90 % hold items")
    return args


def rotation_bytes(text: str) -> int:
    """The rotation size klerk will use for `text` (as KLERK_LOG_ROTATION), in bytes."""
    from pydantic import ByteSize, TypeAdapter

    return int(TypeAdapter(ByteSize).validate_python(text)) if text else KLERK_ROTATION


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures; exit 0 whatever they are."""
    args = parse_args(argv)
    rows = aanvragen(args.items, bad_rows=False, prefix=PREFIX)
    keys = [str(row["Aanvraagnummer"]) for row in rows]
    with workspace(args.keep, "klerk-long-") as folder, DemoServer(port=0) as server:
        body = json.dumps({"error_rate": args.error_rate}).encode()
        request = urllib.request.Request(
            server.url + "/api/faults", data=body, headers={"Content-Type": "application/json"}
        )
        urllib.request.urlopen(request, timeout=30).close()
        intake = write_intake(folder / "intake.xlsx", rows)
        home = folder / "home"
        home.mkdir(exist_ok=True)
        print(
            f"klerk long run: {args.items:,} items, concurrency {args.concurrency}, demo app "
            f"HTTP 500 on {args.error_rate:.1%} of page requests, KLERK_LOG_ROTATION "
            f"{args.log_rotation or '(klerk default)'}; a sample every {args.interval:g} s; "
            f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        print(f"  {HEADER}\n  {UNITS}", flush=True)
        watched = watch_run(server.url, home, intake, args)
        minutes = watched.seconds / 60
        print(
            f"\n  klerk exited with {watched.exit_code} after {watched.seconds:,.0f} s "
            f"({args.items / max(minutes, 1e-9):.0f} items per minute); load "
            f"{os.getloadavg()[0]:.1f}"
        )
        if watched.exit_code not in (0, 1):
            tail = watched.output.read_text(encoding="utf-8", errors="replace").splitlines()
            print("  its last lines:\n    " + "\n    ".join(tail[-15:]))
        print_outcome(server.url, watched.run_dir, keys)
        write_samples(folder / "samples.csv", watched.samples)
        print_memory(watched, args.items, args.rows_shown)
        if watched.run_dir is not None:
            print_log(watched.run_dir, args.items, rotation_bytes(args.log_rotation))
        if args.keep is not None:
            print(f"\n  files kept in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

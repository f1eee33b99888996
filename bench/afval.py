"""klerk on Afvalcontainers from YAML alone versus a plain Playwright script, side by side.

The job of `bench/overhead.py` on the second demo app: `klerk run afval-aanvragen` (app and
task definitions in YAML, no Python) against `bench/plain_afval.py`, the script a developer
would write for the same app: frames, captions in cells, a drop-down of divs, a calendar
field, uploads and a modal on every row.
Same timing, checks and figures as overhead.py (whose helpers it uses); target ≤ 1.10×.

    python bench/afval.py                       # 200 rows, 3 rounds
    python bench/afval.py --rows 20 --rounds 1  # a quick look
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(REPO))

from overhead import PREFIX, Job, compare, parse_args, workspace, write_intake  # noqa: E402

from demo.afval_sample import HEADERS, containeraanvragen, write_attachments  # noqa: E402
from demo.server import AfvalServer  # noqa: E402

AFVAL = Job("afval-aanvragen", REPO / "bench" / "plain_afval.py", "/api/aanvragen")
"""Container requests in Afvalcontainers, every fifth with an attachment."""


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures; exit 0 whatever they are."""
    args = parse_args(argv, __doc__, latency=False)
    rows = containeraanvragen(args.rows, prefix=PREFIX)
    keys = [row["Aanvraagnummer"] for row in rows]
    with workspace(args.keep, "klerk-bench-afval-") as folder, AfvalServer(port=0) as server:
        intake = write_intake(folder / "intake.xlsx", rows, HEADERS)
        warmup = write_intake(folder / "warmup.xlsx", rows[: args.warmup], HEADERS)
        attachments = write_attachments(rows, folder)
        print(
            f"klerk on Afvalcontainers (YAML) vs plain Playwright: {args.rows} rows "
            f"({len(attachments)} with an attachment), {args.rounds} rounds, klerk concurrency "
            f"{args.concurrency}; {os.cpu_count()} CPUs; app at {server.url}",
            flush=True,
        )
        compare(AFVAL, server.url, folder, (intake, warmup), keys, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

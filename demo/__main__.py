"""Serve the demo application: `python -m demo --port 8650 --latency-ms 200 --error-rate 0.1`."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence

from demo.app import DEMO_USERNAME
from demo.faults import Faults
from demo.server import serve


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve until Ctrl+C."""
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description="Serve Parkeervergunningen, the legacy demo app of the Gemeente Klerkdam.",
    )
    parser.add_argument("--port", type=int, default=8650, help="TCP port (default 8650)")
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--latency-ms", type=int, default=0, help="delay per page request")
    parser.add_argument(
        "--error-rate", type=float, default=0.0, help="share of page requests that get HTTP 500"
    )
    parser.add_argument(
        "--busy-rate", type=float, default=0.0, help='share that get the "systeem is bezet" page'
    )
    parser.add_argument(
        "--session-lifetime", type=float, default=900.0, help="idle seconds before a session ends"
    )
    parser.add_argument(
        "--random-ids", action="store_true", help="new input ids and names on every form load"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for repeatable faults")
    parser.add_argument("--db", default=None, help="SQLite file (default: in memory)")
    args = parser.parse_args(argv)
    try:
        faults = Faults(
            latency_ms=args.latency_ms,
            error_rate=args.error_rate,
            busy_rate=args.busy_rate,
            session_lifetime=args.session_lifetime,
            random_ids=args.random_ids,
            seed=args.seed,
        )
    except ValueError as problem:
        parser.error(str(problem))
    print(
        f"Parkeervergunningen (Gemeente Klerkdam) on http://{args.host}:{args.port}/"
        f" - user {DEMO_USERNAME!r}; stop with Ctrl+C",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        serve(port=args.port, host=args.host, faults=faults, db_path=args.db)


if __name__ == "__main__":
    main()

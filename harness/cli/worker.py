"""`harness worker --master HOST:PORT [--workdir DIR] [--wait S]`: join a run from another machine.

The master is a `harness run SCENARIO --workers-external N [--master-bind HOST:PORT]` on
another machine. This process becomes a Locust worker of it (`harness.load.remote.run_worker`):
it asks the master for the resolved run spec over Locust's messaging (no shared file system),
checks that both run the same harness version and that its clock is within the master's
`--max-clock-skew-ms`, then runs its share of the load until the master ends the run.
Exit codes: 0 the run ended, 3 refused to join (another version, clock skew) or no master.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from harness.load.remote import parse_address, run_worker


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worker", help="join a run from another machine", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--master", required=True, metavar="HOST:PORT", help="the run's master")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the received run spec and files go (default: a new temporary directory)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=120.0,
        metavar="S",
        help="how long to wait for the master to answer (default 120)",
    )


def run(args: argparse.Namespace) -> int:
    host, port = parse_address(args.master, "--master")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="harness-worker-"))
    run_worker(f"{host}:{port}", workdir, args.wait)  # replaces this process
    return 0

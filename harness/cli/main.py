"""`harness` console script: dispatches to one module per subcommand.

Exit codes (documented in the README):
    0  success / SLO met
    1  SLO or regression failure
    2  usage or configuration error
    3  infrastructure error (target never ready, worker lost, nginx failed)
  130  interrupted (Ctrl-C / SIGTERM); what was measured is kept, status "incomplete"
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from rich.console import Console
from rich.markup import escape

from harness.errors import HarnessError

# name -> module under harness.cli; each module defines add_parser(subparsers) and run(args).
SUBCOMMANDS: dict[str, str] = {
    "serve": "harness.cli.serve",
    "stack": "harness.cli.stack",
    "run": "harness.cli.run",
    "history": "harness.cli.history",
    "sweep": "harness.cli.sweep",
    "plan": "harness.cli.plan",
    "compare": "harness.cli.compare",
    "simulate-hpa": "harness.cli.simulate_hpa",
    "capacity": "harness.cli.capacity",
    "quickstart": "harness.cli.quickstart",
    "gameday": "harness.cli.gameday",
    "faultproxy": "harness.cli.faultproxy",
    "report": "harness.cli.report",
    "worker": "harness.cli.worker",
    "k8s-job": "harness.cli.k8s_job",
}


def _requested_command(argv: list[str]) -> str | None:
    """The subcommand named on the command line, if any (the first non-option word)."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in SUBCOMMANDS else None
    return None


def build_parser(only: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, object]]:
    """The parser; with `only`, just that subcommand's module is imported (fast start-up:
    the analysis commands pull in SciPy, which costs seconds to import)."""
    parser = argparse.ArgumentParser(
        prog="harness", description="Load testing, chaos and capacity planning for ML serving."
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules: dict[str, object] = {}
    for name, module_name in SUBCOMMANDS.items():
        if only is not None and name != only:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # subcommand not built yet
                continue
            raise
        module.add_parser(sub)
        modules[name] = module
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser, modules = build_parser(only=_requested_command(argv))
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.command:
        parser.print_help()
        return 2
    err = Console(stderr=True)
    try:
        return int(modules[args.command].run(args) or 0)
    except HarnessError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())

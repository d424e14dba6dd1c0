"""Options shared by the subcommands that take a scenario file (`run`, `sweep`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_scenario_arguments(parser: argparse.ArgumentParser, scenario_help: str) -> None:
    """SCENARIO, --out DIR and repeatable --set KEY=VALUE (same meaning everywhere)."""
    parser.add_argument("scenario", type=Path, help=scenario_help)
    parser.add_argument("--out", type=Path, default=Path("results"), help="results directory")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario field, e.g. --set load.rate=300 (repeatable)",
    )

"""`harness history`: the runs recorded in `<out>/history.duckdb`, newest first.

A thin shell over `harness.results.history.list_runs` (which notebooks can call directly);
`--rebuild` re-creates the database from the run directories' summary.json files.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from harness.results.history import HistoryRow, list_runs, rebuild_history


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "history",
        help="list recorded runs with their key numbers",
        description="List runs from <out>/history.duckdb, newest first.",
    )
    parser.add_argument("--out", default="results", help="results directory (default: results)")
    parser.add_argument("--limit", type=int, default=20, help="show at most N runs (default 20)")
    parser.add_argument("--scenario", help="only runs of this scenario")
    parser.add_argument(
        "--rebuild", action="store_true", help="re-create the history from <out>/*/summary.json"
    )
    return parser


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _flag(value: bool | None) -> str:
    return {True: "[green]yes[/]", False: "[red]no[/]", None: "-"}[value]


def history_table(rows: Sequence[HistoryRow]) -> Table:
    table = Table(title="runs", title_justify="left")
    for name in ("run id", "scenario", "started (UTC)", "status"):
        table.add_column(name, no_wrap=True)
    for name in ("requests", "fail", "rps", "p50 ms", "p99 ms"):
        table.add_column(name, justify="right")
    table.add_column("SLO")
    table.add_column("valid")
    for row in rows:
        started = row.started_at.strftime("%Y-%m-%d %H:%M:%S") if row.started_at else "-"
        table.add_row(
            row.run_id,
            row.scenario or "-",
            started,
            row.status or "-",
            _num(row.requests, 0),
            _num(row.failures, 0),
            _num(row.throughput_rps),
            _num(row.p50_ms, 2),
            _num(row.p99_ms, 2),
            _flag(row.slo_passed),
            _flag(row.valid),
        )
    return table


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    console = console or Console()
    if args.rebuild:
        added = rebuild_history(args.out)
        console.print(f"history rebuilt from {added} run(s) in {args.out}")
    rows = list_runs(args.out, limit=args.limit, scenario=args.scenario)
    if not rows:
        console.print(f"no runs recorded in {args.out}/history.duckdb")
        return 0
    console.print(history_table(rows))
    return 0

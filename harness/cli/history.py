"""`harness history`: the runs recorded in `<out>/history.duckdb`, newest first.

With `--scenario NAME`, the trend of that scenario instead: its last runs oldest first (time,
status, valid, offered and achieved throughput, p50, p99, error rate, SLO, the gate's verdict
from `harness run --baseline`), then its recorded comparisons (`harness compare` and gates).
A thin shell over `harness.results.history` (which notebooks can call directly);
`--rebuild` re-creates the runs table from the run directories' summary.json files.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from dataclasses import asdict

from rich.console import Console
from rich.table import Table

from harness.results.history import (
    ComparisonRow,
    HistoryRow,
    gate_verdicts,
    list_comparisons,
    list_runs,
    rebuild_history,
)


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
    parser.add_argument("--json", action="store_true", help="one JSON object per run, for scripts")
    return parser


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _flag(value: bool | None) -> str:
    return {True: "[green]yes[/]", False: "[red]no[/]", None: "-"}[value]


def history_table(rows: Sequence[HistoryRow], wide: bool = True) -> Table:
    """`wide=False` leaves out scenario and start time (the run id carries both)."""
    table = Table(title="runs (latency in ms)", title_justify="left")
    table.add_column("run id", overflow="fold", min_width=12)
    if wide:
        table.add_column("scenario", overflow="fold")
        table.add_column("started UTC")
    table.add_column("status", overflow="fold", min_width=8)
    for name in ("req", "fail", "rps", "p50", "p99"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("SLO", no_wrap=True)
    table.add_column("valid", no_wrap=True)
    for row in rows:
        started = row.started_at.strftime("%Y-%m-%d %H:%M:%S") if row.started_at else "-"
        cells = [row.run_id, *([row.scenario or "-", started] if wide else []), row.status or "-"]
        table.add_row(
            *cells,
            _num(row.requests, 0),
            _num(row.failures, 0),
            _num(row.throughput_rps),
            _num(row.p50_ms, 2),
            _num(row.p99_ms, 2),
            _flag(row.slo_passed),
            _flag(row.valid),
        )
    return table


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def _when(row: HistoryRow | ComparisonRow) -> str:
    moment = row.started_at if isinstance(row, HistoryRow) else row.created_at
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def _gate_cell(verdict: str | None) -> str:
    colours = {"regression": "red", "pass": "green"}
    return "-" if verdict is None else f"[{colours.get(verdict, 'yellow')}]{verdict}[/]"


def trend_table(rows: Sequence[HistoryRow], gates: dict[str, str], scenario: str) -> Table:
    """One scenario's runs, oldest first: how its key numbers moved."""
    table = Table(title=f"{scenario}: trend (latency in ms)", title_justify="left")
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("status", overflow="fold")
    table.add_column("valid", no_wrap=True)
    for name in ("offered", "rps", "p50", "p99", "errors"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("SLO", no_wrap=True)
    table.add_column("gate", no_wrap=True)
    for row in reversed(rows):
        table.add_row(
            _when(row),
            row.status or "-",
            _flag(row.valid),
            _num(row.offered_rps),
            _num(row.throughput_rps),
            _num(row.p50_ms, 2),
            _num(row.p99_ms, 2),
            _pct(row.error_rate),
            _flag(row.slo_passed),
            _gate_cell(gates.get(row.run_id)),
        )
    return table


def comparisons_table(rows: Sequence[ComparisonRow]) -> Table:
    """Recorded comparisons, newest first: which run against which, and the verdict."""
    table = Table(title="comparisons (B judged against A)", title_justify="left")
    for name in ("time (UTC)", "kind", "A", "B", "verdict"):
        table.add_column(name, overflow="fold")
    for row in rows:
        a = row.run_a if row.arm_a == "all" else f"{row.run_a} {row.arm_a}"
        b = row.run_b if row.arm_b == "all" else f"{row.run_b} {row.arm_b}"
        verdict = f"[red]{row.verdict}[/]" if row.regression else row.verdict
        table.add_row(_when(row), row.kind, a, b, verdict)
    return table


def _console() -> Console:
    """Piped (cron mail, CI logs): wide enough for whole run ids instead of rich's 80."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=160)
    return console


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    console = console or _console()
    if args.rebuild:
        added = rebuild_history(args.out)
        console.print(f"history rebuilt from {added} run(s) in {args.out}")
    rows = list_runs(args.out, limit=args.limit, scenario=args.scenario)
    if getattr(args, "json", False):
        for row in rows:
            console.out(json.dumps(asdict(row), default=str), highlight=False)
        return 0
    if not rows:
        console.print(f"no runs recorded in {args.out}/history.duckdb")
        return 0
    if args.scenario is None:
        console.print(history_table(rows, wide=console.width >= 130))
        return 0
    console.print(trend_table(rows, gate_verdicts(args.out, args.scenario), args.scenario))
    comparisons = list_comparisons(args.out, scenario=args.scenario, limit=args.limit)
    if comparisons:
        console.print(comparisons_table(comparisons))
    return 0

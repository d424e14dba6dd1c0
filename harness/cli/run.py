"""`harness run SCENARIO.yaml [--out DIR] [--set key=value ...] [--run-id ID] [--no-progress]`.

Validates the scenario first (a bad file exits 2 naming the file and the field, and nothing
starts), runs it (`harness.load.api.run_scenario`), prints the summary table and where the
results are. Exit codes: 0 SLO met, 1 SLO failed, 2 bad usage/scenario, 3 infrastructure
(target never ready, worker lost), 130 interrupted (results kept, status "incomplete").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.cli.scenario_args import add_scenario_arguments
from harness.config import load_scenario


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run", help="run a load scenario", description=__doc__.splitlines()[0]
    )
    add_scenario_arguments(parser, "scenario YAML file")
    parser.add_argument("--run-id", default=None, help="run id (default: time-scenario-random)")
    parser.add_argument("--no-progress", action="store_true", help="no live progress display")


def run(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario, overrides=args.overrides)
    from harness.load.api import run_scenario

    outcome = run_scenario(
        scenario, args.out, run_id=args.run_id, show_progress=not args.no_progress
    )
    console = Console()
    if not console.is_terminal:  # piped / CI logs: do not squeeze the table into 80 columns
        console = Console(width=120)
    console.print()
    console.print(summary_table(outcome.summary))
    for line in explanation_lines(outcome.summary, Path(outcome.run_dir)):
        console.print(line, highlight=False, markup=False)
    console.print(f"results: [bold]{outcome.run_dir}[/]  (exit {outcome.exit_code})")
    return outcome.exit_code


def explanation_lines(summary: dict[str, Any], run_dir: Path) -> list[str]:
    """Why a run is not valid or not complete, in words (the table alone does not say)."""
    lines = []
    if summary.get("status") != "complete":
        try:
            reason = json.loads((run_dir / "run.json").read_text()).get("status_reason")
        except (OSError, ValueError):
            reason = None
        lines.append(f"status {summary.get('status')}: {reason or 'no reason recorded'}")
    if not summary.get("valid"):
        reasons = (summary.get("validity") or {}).get("reasons") or ["no reason recorded"]
        lines.append("not valid: " + "; ".join(str(r) for r in reasons))
    return lines


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def summary_table(summary: dict[str, Any]) -> Table:
    slo = summary.get("slo") or {}
    title = (
        f"{summary.get('scenario')}  status={summary.get('status')}  "
        f"valid={summary.get('valid')}  slo={'pass' if slo.get('passed') else 'FAIL'}"
    )
    table = Table(title=title)
    columns = (
        "endpoint",
        "measured",
        "failures",
        "rps",
        "p50 ms",
        "p99 ms",
        "p99 from send",
        "accuracy",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "endpoint" else "right")
    arms = sorted((summary.get("endpoints") or {}).items())
    measured = sum(int(stats.get("requests") or 0) for _, stats in arms)
    rows = [("all", {**summary, "requests": measured, "failures": None}), *arms]
    for name, stats in rows:
        latency = stats.get("latency_ms") or {}
        uncorrected = stats.get("latency_uncorrected_ms") or {}
        table.add_row(
            name,
            _fmt(stats.get("requests")),
            _fmt(stats.get("failures")),
            _fmt(stats.get("throughput_rps"), 1),
            _fmt(latency.get("p50")),
            _fmt(latency.get("p99")),
            _fmt(uncorrected.get("p99")),
            _fmt(stats.get("accuracy"), 4),
        )
    loadgen = summary.get("loadgen") or {}
    lag = loadgen.get("schedule_lag_ms") or {}
    lag_text = f", schedule lag p99 {_fmt(lag.get('p99'))} ms" if lag.get("p99") is not None else ""
    table.caption = (
        f"{summary.get('requests')} requests in all ({summary.get('failures')} failed), "
        f"dropped {loadgen.get('dropped', 0)}{lag_text}, unhealthy seconds "
        f"{len(loadgen.get('unhealthy_seconds', []))}\n"
    )
    for check in slo.get("checks", []):
        mark = "ok" if check.get("passed") else "FAIL"
        table.caption = (table.caption or "") + (
            f"{check.get('name')}: {_fmt(check.get('observed'))} vs {check.get('threshold')} "
            f"\\[{mark}]   "
        )
    return table

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
from harness.results.schema import Summary


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


def explanation_lines(summary: Summary, run_dir: Path) -> list[str]:
    """Why a run is not valid or not complete, in words (the table alone does not say)."""
    lines = []
    if summary["status"] != "complete":
        try:
            reason = json.loads((run_dir / "run.json").read_text()).get("status_reason")
        except (OSError, ValueError):
            reason = None
        lines.append(f"status {summary['status']}: {reason or 'no reason recorded'}")
    if not summary["valid"]:
        reasons = summary["validity"]["reasons"] or ["no reason recorded"]
        lines.append("not valid: " + "; ".join(str(r) for r in reasons))
    return lines


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def summary_table(summary: Summary) -> Table:
    slo = summary["slo"]
    title = (
        f"{summary['scenario']}  status={summary['status']}  "
        f"valid={summary['valid']}  slo={'pass' if slo['passed'] else 'FAIL'}"
    )
    table = Table(title=title, caption_justify="left")
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
    arms = sorted(summary["endpoints"].items())
    measured = sum(stats["requests"] for _, stats in arms)
    table.add_row(
        "all",
        _fmt(measured),
        "-",
        _fmt(summary["throughput_rps"], 1),
        _fmt(summary["latency_ms"]["p50"]),
        _fmt(summary["latency_ms"]["p99"]),
        _fmt(summary["latency_uncorrected_ms"]["p99"]),
        "-",
    )
    for name, stats in arms:
        table.add_row(
            name,
            _fmt(stats["requests"]),
            _fmt(stats["failures"]),
            _fmt(stats["throughput_rps"], 1),
            _fmt(stats["latency_ms"]["p50"]),
            _fmt(stats["latency_ms"]["p99"]),
            _fmt(stats["latency_uncorrected_ms"]["p99"]),
            _fmt(stats["accuracy"], 4),
        )
    table.caption = "\n".join(_caption_lines(summary))
    return table


def _caption_lines(summary: Summary) -> list[str]:
    """Short lines under the table (each fits 80 columns, so narrow terminals do not wrap a
    number onto a line of its own)."""
    lines = [f"{summary['requests']} requests in all ({summary['failures']} failed)"]
    loadgen = summary.get("loadgen")  # only runs of the load engine have this section
    if loadgen is not None:
        lag_p99 = loadgen["schedule_lag_ms"].get("p99")
        lag = f"; schedule lag p99 {_fmt(lag_p99)} ms" if lag_p99 is not None else ""
        lines.append(
            f"generator: dropped {loadgen['dropped']}{lag}; "
            f"unhealthy seconds {len(loadgen['unhealthy_seconds'])}"
        )
    for check in summary["slo"]["checks"]:
        mark = "ok" if check["passed"] else "FAIL"
        lines.append(
            f"SLO {check['name']}: {_fmt(check['observed'])} vs {check['threshold']} \\[{mark}]"
        )
    return lines

"""`harness run SCENARIO.yaml [--out DIR] [--set key=value ...] [--run-id ID] [--no-progress]
[--baseline last|RUN_ID [--margin 0.05]] [--junit FILE] [--json]
[--workers-external N [--master-bind HOST:PORT] [--workers-wait S] [--max-clock-skew-ms MS]]`.

Validates the scenario first (a bad file exits 2 naming the file and the field, and nothing
starts; so does a --baseline RUN_ID that does not exist), runs it
(`harness.load.api.run_scenario`), prints the summary table and where the results are. With
`--baseline`, the complete run is then judged against the baseline (`harness.gate`: a
significant change beyond the margin on p50, p99, error rate or throughput is a regression)
and the verdict is printed per metric, kept in gate.json and history.duckdb. `--junit`
writes JUnit XML (one testcase per SLO check and per gate metric); `--json` prints the
summary (with "gate" when --baseline) as the only thing on stdout, the table going to stderr.
`--workers-external N` makes the Locust master bind `--master-bind` (default 0.0.0.0:5557) and
wait, at most `--workers-wait` seconds, for N `harness worker --master HOST:PORT` from other
machines beside the scenario's local workers; a worker whose clock is further than
`--max-clock-skew-ms` (default 50) from the master's refuses to join.
Exit codes: 0 SLO met and no regression, 1 SLO failed or a regression, 2 bad
usage/scenario, 3 infrastructure (target never ready, worker lost), 130 interrupted
(results kept, status "incomplete"; no gate).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from harness.cli.scenario_args import add_scenario_arguments
from harness.config import load_scenario
from harness.errors import ConfigError
from harness.results.schema import Summary

if TYPE_CHECKING:
    from harness.gate import GateConfig, GateResult
    from harness.load.remote import ExternalWorkers


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run", help="run a load scenario", description=__doc__.splitlines()[0]
    )
    add_scenario_arguments(parser, "scenario YAML file")
    parser.add_argument("--run-id", default=None, help="run id (default: time-scenario-random)")
    parser.add_argument("--no-progress", action="store_true", help="no live progress display")
    parser.add_argument(
        "--baseline",
        metavar="last|RUN_ID",
        help="judge the run against a baseline: 'last' (newest earlier complete run of the "
        "scenario in <out>/history.duckdb), a run id or a run directory; exit 1 on a regression",
    )
    parser.add_argument(
        "--margin",
        type=float,
        default=0.05,
        help="with --baseline: the ratio a metric must move by to count (default 0.05 = 5%%)",
    )
    parser.add_argument(
        "--gate-min-seconds",
        type=int,
        default=20,
        metavar="N",
        help="with --baseline: measured seconds per run below which latency is inconclusive "
        "(default 20)",
    )
    parser.add_argument("--junit", type=Path, metavar="FILE", help="also write JUnit XML")
    remote = parser.add_argument_group("load from many machines")
    remote.add_argument(
        "--workers-external",
        type=int,
        default=0,
        metavar="N",
        help="also wait for N workers from other machines (`harness worker --master`)",
    )
    remote.add_argument(
        "--master-bind",
        metavar="HOST:PORT",
        default=None,
        help="where the Locust master listens for them (default 0.0.0.0:5557)",
    )
    remote.add_argument(
        "--workers-wait",
        type=float,
        default=120.0,
        metavar="S",
        help="how long to wait for every worker before giving up, exit 3 (default 120)",
    )
    remote.add_argument(
        "--max-clock-skew-ms",
        type=float,
        default=50.0,
        metavar="MS",
        help="a remote worker whose clock is further from the master's refuses (default 50)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary (and the gate verdict) as JSON on stdout, nothing else there",
    )


def _gate_config(args: argparse.Namespace) -> GateConfig | None:
    if args.baseline is None:
        return None
    from harness.gate import GateConfig

    if args.gate_min_seconds < 2:
        raise ConfigError(f"--gate-min-seconds {args.gate_min_seconds}: must be at least 2")
    try:
        return GateConfig(margin=args.margin, min_windows=args.gate_min_seconds)
    except ValueError as exc:
        raise ConfigError(f"--margin: {exc}") from exc


def _external(args: argparse.Namespace) -> ExternalWorkers | None:
    from harness.load.remote import ExternalWorkers, parse_address

    if not args.workers_external and args.master_bind is None:
        return None
    host, port = parse_address(args.master_bind or "0.0.0.0", "--master-bind")
    return ExternalWorkers(
        args.workers_external, host, port, args.workers_wait, args.max_clock_skew_ms
    )


def run(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario, overrides=args.overrides)
    external = _external(args)
    gate_config = _gate_config(args)
    baseline = None
    if gate_config is not None:
        from harness.gate import resolve_baseline

        baseline = resolve_baseline(args.baseline, args.out, scenario=scenario.name)
    from harness.load.api import run_scenario

    outcome = run_scenario(
        scenario,
        args.out,
        run_id=args.run_id,
        show_progress=not args.no_progress,
        external=external,
    )
    console = _console(stderr=args.json)
    console.print()
    console.print(summary_table(outcome.summary))
    for line in explanation_lines(outcome.summary, Path(outcome.run_dir)):
        console.print(line, highlight=False, markup=False)
    gate = None
    if gate_config is not None:
        gate = _gate(outcome.run_dir, outcome.status, baseline, gate_config, console)
    code = outcome.exit_code
    if code == 0 and gate is not None and gate.regression:
        code = 1
    if args.junit:
        from harness.gate.junit import write_junit

        console.print(f"JUnit XML: {write_junit(args.junit, outcome.summary, gate)}")
    console.print(f"results: [bold]{outcome.run_dir}[/]  (exit {code})")
    if args.json:
        document: dict[str, Any] = dict(outcome.summary)
        if args.baseline is not None:
            document["gate"] = gate.to_dict() if gate is not None else None
        sys.stdout.write(json.dumps(document) + "\n")
        sys.stdout.flush()
    return code


def _console(stderr: bool) -> Console:
    """stderr with --json (stdout carries the JSON alone); piped / CI logs: 120 columns
    rather than squeezing the table into rich's 80."""
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console = Console(stderr=stderr, width=120)
    return console


def _gate(
    run_dir: Path, status: str, baseline: Path | None, config: GateConfig, console: Console
) -> GateResult | None:
    """Judge a complete run against `baseline`, print the verdict per metric, keep it."""
    from harness.gate import gate_run, no_baseline, record_gate
    from harness.results.store import load_run

    if status != "complete":
        console.print(f"gate: not judged (the run is {status})", highlight=False)
        return None
    run = load_run(run_dir)
    if baseline is None:
        gate = no_baseline(run.run_id, run.meta.get("scenario"), config)
    else:
        gate = gate_run(run_dir, baseline, config)
    record_gate(gate, run_dir)
    colour = "bold red" if gate.regression else "green"
    console.print(f"gate: [{colour}]{gate.verdict}[/] -- {gate.summary}", highlight=False)
    for metric in gate.metrics:
        console.print(f"  {metric.describe()}", highlight=False, markup=False)
    for warning in gate.warnings:
        console.print(f"  warning: {warning}", highlight=False, markup=False)
    return gate


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
    goodput = summary.get("goodput")  # only with a p99 SLO
    if goodput is not None and goodput["goodput_rps"] is not None:
        share = goodput["good_share"]
        lines.append(
            f"goodput {_fmt(goodput['goodput_rps'], 1)} req/s within "
            f"{goodput['threshold_ms']:g} ms"
            + (f" ({share:.1%} of answers)" if share is not None else "")
            + f" of {_fmt(summary['throughput_rps'], 1)} req/s answered"
        )
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

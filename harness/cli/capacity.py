"""`harness capacity SCENARIO.yaml --peak-qps Q`: the capacity report for a planning review.

    harness capacity scenarios/quickstart.yaml --peak-qps 2000 --headroom 0.2 --redundancy 1

Sweeps the scenario (`harness sweep`'s options), plans from the sweep (`harness plan`'s
options), simulates the plan's HPA over the shipped trace and writes one report
(reports/<sweep-run>/report.html + summary.md) with the recommendation first
(`harness.capacity.run_capacity`). Prints the recommendation and the report's path. Exit 0
with a plan, 1 when no swept load met the SLO, 2 for bad options, 3 infrastructure.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harness.cli.plan import add_plan_options, plan_options
from harness.cli.scenario_args import add_scenario_arguments
from harness.config import load_scenario
from harness.config.durations import parse_duration
from harness.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("capacity", help="sweep + plan + HPA simulation: one capacity report")
    add_scenario_arguments(p, "scenario YAML to sweep")
    p.add_argument("--peak-qps", type=float, required=True, help="peak requests/s to serve")
    p.add_argument(
        "--reports", type=Path, default=Path("reports"), help="report directory (default reports)"
    )
    s = p.add_argument_group("sweep (as `harness sweep`)")
    s.add_argument("--start", type=float, help="first load (default: the scenario's)")
    s.add_argument("--resolution", type=float, help="stop bisecting at this load gap")
    s.add_argument("--max-load", type=float, help="never step above this load")
    s.add_argument("--max-steps", type=int, default=16, help="step budget (default 16)")
    s.add_argument("--step-duration", help="each step's duration, e.g. 20s")
    s.add_argument("--max-step-duration", help="re-run unsettled steps longer, up to this")
    s.add_argument("--max-workers", type=int, help="Locust workers when the generator limits")
    s.add_argument("--no-progress", action="store_true", help="no live progress display")
    s.add_argument(
        "--concurrency", type=float, help="closed loop: c_op by hand (X_op from the USL fit)"
    )
    add_plan_options(p)


def _duration(text: str | None, flag: str) -> float | None:
    try:
        return parse_duration(text) if text else None
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    from harness.capacity import run_capacity
    from harness.sweep import sweep_settings

    scenario = load_scenario(args.scenario, overrides=args.overrides)
    options = plan_options(args)  # bad plan options fail before any load runs
    settings = sweep_settings(
        scenario,
        start=args.start,
        resolution=args.resolution,
        max_load=args.max_load,
        max_steps=args.max_steps,
        slo_p99_ms=args.slo_p99_ms,
        step_duration_s=_duration(args.step_duration, "--step-duration"),
        max_step_duration_s=_duration(args.max_step_duration, "--max-step-duration"),
        max_workers=args.max_workers,
    )
    out = run_capacity(
        scenario,
        args.out,
        args.peak_qps,
        settings,
        options,
        reports_dir=args.reports,
        progress=not args.no_progress,
    )
    console = Console(soft_wrap=True, highlight=False)
    console.print(f"[bold]{escape(out.recommendation.sentence)}[/]")
    for note in out.plan.notes[1:]:
        console.print(f"note: {escape(note)}")
    console.print(f"report: {escape(str(out.report_html))} (and {escape(str(out.report_md))})")
    console.print(f"plan, manifests and simulation: {escape(str(out.run_dir))}")
    return 0

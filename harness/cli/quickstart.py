"""`harness quickstart`: the main job (`make run`), in about two minutes on two cores.

An A/B run of `digits` v1/v2 (90/10) on the local reference stack (two replicas behind
nginx), its verdict, a short sweep, a capacity plan with the HPA simulation, and one report
(`harness.mainjob.run_main_job`). Prints each stage as it starts (the load shows its own live
progress), then a one-screen summary and the report's path. Exit 0 when it completed and the
SLO held, 1 when the SLO failed, 2/3 as every command.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quickstart", help="the main job: A/B run, verdict, sweep, plan, report")
    p.add_argument("--out", type=Path, default=Path("results"), help="results directory")
    p.add_argument("--reports", type=Path, default=Path("reports"), help="report directory")
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="shorten (<1) or lengthen every load phase (default 1: ~2 minutes)",
    )
    p.add_argument("--no-progress", action="store_true", help="no live progress display")


def run(args: argparse.Namespace) -> int:
    from harness.errors import ConfigError
    from harness.mainjob import run_main_job

    if not 0.1 <= args.scale <= 10:
        raise ConfigError("--scale must be between 0.1 and 10")
    console = Console(soft_wrap=True, highlight=False)
    outcome = run_main_job(
        args.out,
        args.reports,
        scale=args.scale,
        progress=not args.no_progress,
        on_stage=lambda text: console.print(f"[bold cyan]==>[/] {escape(text)}"),
    )
    console.rule("summary")
    for line in outcome.summary_lines:
        console.print(escape(line))
    return outcome.exit_code

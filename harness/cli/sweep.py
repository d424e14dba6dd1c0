"""`harness sweep SCENARIO.yaml`: the highest load that meets the SLO, in few steps.

Parses, calls the sweep driver (`harness.sweep.run_sweep`: one ordinary run per step under
`<sweep-run>/steps/`, sweep.parquet + sweep.json, USL on closed loops) and prints the step
table and the fits. Exit 0 when a passing load was found, 1 when even the starting load
misses the SLO.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.analysis.capacity.sweep_search import SearchResult
from harness.cli.scenario_args import add_scenario_arguments
from harness.config import load_scenario
from harness.config.durations import parse_duration
from harness.errors import ConfigError
from harness.sweep import UNMEASURED_NOTE, run_sweep, sweep_settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="find the highest load meeting the SLO (grow + bisect)")
    add_scenario_arguments(p, "scenario YAML (open or closed load)")
    p.add_argument("--start", type=float, help="first load (default: the scenario's users/rate)")
    p.add_argument(
        "--resolution",
        type=float,
        help="stop bisecting at this load gap "
        "(default: 1 user / 5 %% of the start rate, at least 1 req/s)",
    )
    p.add_argument("--growth", type=float, default=2.0, help="geometric factor (default 2)")
    p.add_argument("--max-load", type=float, help="never step above this load")
    p.add_argument("--max-steps", type=int, default=16, help="step budget (default 16)")
    p.add_argument(
        "--step-duration", help="duration of each step, e.g. 30s (default: the scenario's duration)"
    )
    p.add_argument(
        "--max-step-duration",
        help="re-run a step that was unstable or short of data at twice the duration up to "
        "this cap, e.g. 2m (default: no re-runs)",
    )
    p.add_argument(
        "--max-workers",
        type=int,
        help="when the load generator is the limit, re-run the step with more Locust workers "
        "up to this many (default: half the machine's cores, at least the scenario's workers)",
    )
    p.add_argument("--slo-p99-ms", type=float, help="p99 SLO (default: the scenario's slo)")
    p.add_argument("--max-error-rate", type=float, help="default: scenario slo or 0.01")
    p.add_argument(
        "--min-throughput-ratio",
        type=float,
        default=0.95,
        help="open loop: achieved/offered at least this (default 0.95)",
    )
    p.add_argument(
        "--allow-unstable",
        action="store_true",
        help="judge a step by its numbers even if it never became stable (exploration only)",
    )
    p.add_argument("--no-progress", action="store_true", help="no live progress display")


def run(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario, overrides=args.overrides)
    try:
        duration = parse_duration(args.step_duration) if args.step_duration else None
        max_duration = parse_duration(args.max_step_duration) if args.max_step_duration else None
    except ValueError as exc:
        raise ConfigError(f"--step-duration/--max-step-duration: {exc}") from exc
    settings = sweep_settings(
        scenario,
        start=args.start,
        resolution=args.resolution,
        growth=args.growth,
        max_load=args.max_load,
        max_steps=args.max_steps,
        slo_p99_ms=args.slo_p99_ms,
        max_error_rate=args.max_error_rate,
        min_throughput_ratio=args.min_throughput_ratio,
        allow_unstable=args.allow_unstable,
        step_duration_s=duration,
        max_step_duration_s=max_duration,
        max_workers=args.max_workers,
    )
    outcome = run_sweep(scenario, args.out, settings, progress=not args.no_progress)
    console = Console()
    if not console.is_terminal:  # piped / CI logs: do not squeeze the table into 80 columns
        console = Console(width=120)
    print_result(console, outcome.run_dir, outcome.result, outcome.mode)
    print_curves(console, outcome.meta)
    for note in outcome.meta.get("notes", []):
        console.print(f"note: {note}", highlight=False)
    if outcome.unmeasured_loads:
        loads = ", ".join(f"{x:g}" for x in outcome.unmeasured_loads)
        console.print(f"[yellow]warning:[/] {UNMEASURED_NOTE.format(loads=loads)}")
    return outcome.exit_code


def _num(x: float, digits: int) -> str:
    return f"{x:.{digits}f}" if math.isfinite(x) else "-"  # "-": nothing measured


VERDICT_STYLE = {
    "pass": "[green]pass[/]",
    "fail": "[red]fail[/]",
    "unmeasured": "[yellow]unmeasured[/]",
}


def print_result(console: Console, run_dir: Path, result: SearchResult, mode: str) -> None:
    """The step table (a failed step says why, an unmeasured one too), then one verdict
    line that agrees with it and with sweep.json, and the advice that follows."""
    unit = "users" if mode == "closed" else "req/s offered"
    table = Table(title=f"sweep ({mode} loop) — {run_dir}")
    columns = ("step", f"load ({unit})", "workers", "throughput rps", "in flight", "p99 ms",
               "errors", "stable", "verdict")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="right")
    whys = []
    for i, (s, verdict) in enumerate(zip(result.steps, result.verdicts, strict=True)):
        table.add_row(
            str(i),
            f"{s.load:g}",
            "-" if not s.workers else str(s.workers),
            _num(s.throughput, 1),
            "-" if s.concurrency is None else _num(s.concurrency, 2),
            _num(s.p99_ms, 2),
            f"{s.error_rate:.2%}",
            "yes" if s.stable else "no",
            VERDICT_STYLE[verdict],
        )
        if verdict == "unmeasured":
            whys.append(f"step {i} unmeasured: {s.unmeasured}")
    console.print(table)
    for why in whys:
        console.print(why, highlight=False, markup=False)
    best = "none" if result.best is None else f"{result.best.load:g} {unit}"
    console.print(
        f"highest passing load: [bold]{best}[/] ({result.reason}); "
        f"{result.n_steps} steps vs {result.linear_steps} for a linear sweep at "
        f"resolution {result.resolution:g}",
        highlight=False,
    )
    if result.advice:
        console.print(f"advice: {result.advice}", highlight=False)


def print_curves(console: Console, meta: dict[str, Any]) -> None:
    """The fits in one or two lines each, with a warning when they do not fit."""
    usl = meta.get("usl")
    if usl and "error" not in usl:
        n_star = usl["n_star"]
        peak = "unbounded" if n_star is None or n_star > 1e6 else f"{n_star:.1f}"
        sources = meta.get("concurrency_from") or []
        by = "its own counter" if sources == ["server counter"] else "X x mean latency"
        n_is = (
            f"N = requests in flight at the server ({by})"
            if meta.get("concurrency") == "server"
            else "N = users"
        )
        console.print(
            f"USL ({n_is}): lambda {usl['lambda']['value']:.1f} req/s, sigma "
            f"{usl['sigma']['value']:.4f}, kappa {usl['kappa']['value']:.2e}, R^2 "
            f"{usl['r2']:.3f}; N* = {peak}",
            highlight=False,
        )
        if usl["r2"] < 0.9:
            console.print(
                "[yellow]warning:[/] the USL does not fit these steps (noisy host or "
                "steps too short): do not plan from them without a re-run"
            )
    elif usl:
        console.print(f"USL: not fitted ({usl['error']})")
    lat = meta.get("latency")
    if lat and "error" not in lat and lat["max_under_slo"]["throughput"] is not None:
        m = lat["max_under_slo"]
        console.print(
            f"max throughput meeting the SLO (measured and fitted p99): "
            f"{m['throughput']:.1f} req/s at load {m['load']:g}; p99 knee at "
            f"{lat['knee']['throughput']:.1f} req/s"
        )

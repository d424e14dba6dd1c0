"""`harness compare RUN_A [RUN_B]`: is B better, worse or equivalent to A?

One run directory: the arms are two endpoints of one split run (concurrent, the preferred
design). Two run directories: the arms are one endpoint of each run, compared as
independent samples (time effects confounded; the output warns). Prints a table of every
metric with estimates, intervals, Holm-adjusted p-values and verdicts, then the overall
verdict in a sentence. The result is also recorded in `history.duckdb` next to run B (a
row of kind "compare" in its comparisons table; `--no-history` skips it). Exit codes: 0 no
regression, 1 B is worse on a gating metric, 2 usage error (bad options, unknown endpoint,
missing run directory), 3 an unreadable run directory (unknown schema version, no
windows.parquet).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from harness.analysis.ab.abconfig import CompareConfig
from harness.analysis.ab.compare import Comparison, compare_arms
from harness.analysis.ab.histdata import ArmWindows
from harness.analysis.ab.metrics_ab import MetricResult
from harness.compare import pick_arms, read_arms
from harness.errors import ConfigError, StoreError
from harness.files import atomic_write_json
from harness.results.history import ComparisonRow, record_comparison
from harness.results.store import load_run

log = logging.getLogger(__name__)

_COLOURS = {
    "worse": "bold red",
    "better": "bold green",
    "equivalent": "green",
    "inconclusive": "yellow",
    "no significant difference": "cyan",
}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compare",
        help="A/B significance between two arms or runs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_a", metavar="RUN_A", help="run directory (A, or both arms)")
    p.add_argument("run_b", metavar="RUN_B", nargs="?", help="second run directory (B)")
    p.add_argument(
        "--arm",
        action="append",
        default=[],
        metavar="ENDPOINT",
        help="endpoint of A, then of B (e.g. --arm digits/1 --arm digits/2)",
    )
    p.add_argument(
        "--margin", default="5%", help="latency equivalence margin: '5%%', '2ms' or 'none' (5%%)"
    )
    p.add_argument(
        "--error-margin",
        type=float,
        default=0.1,
        metavar="PP",
        help="error-rate equivalence margin in percentage points (0.1)",
    )
    p.add_argument(
        "--accuracy-margin",
        type=float,
        default=1.0,
        metavar="PP",
        help="accuracy equivalence margin in percentage points (1)",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (0.05)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates (1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")
    p.add_argument(
        "--include-warmup",
        action="store_true",
        help="keep the seconds before the measured span (summary.json's warm-up, or a "
        "warmup_end event)",
    )
    p.add_argument(
        "--uncorrected",
        action="store_true",
        help="latency from the actual send (hdr_uncorrected) instead of the intended start",
    )
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the result as JSON")
    p.add_argument(
        "--no-history", action="store_true", help="do not record the result in history.duckdb"
    )
    return p


def _config(args: argparse.Namespace) -> CompareConfig:
    try:
        return CompareConfig(
            margin=args.margin,
            alpha=args.alpha,
            n_boot=args.n_boot,
            seed=args.seed,
            error_margin=args.error_margin / 100,
            accuracy_margin=args.accuracy_margin / 100,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "options"
        raise ConfigError(f"compare: {where}: {first['msg']}") from exc


def _load(args: argparse.Namespace) -> tuple[ArmWindows, ArmWindows, str]:
    for path in filter(None, (args.run_a, args.run_b)):
        if not Path(path).is_dir():
            raise ConfigError(f"compare: {path}: not a run directory")
    (run_a, ep_a), (run_b, ep_b) = pick_arms(args.run_a, args.run_b, args.arm)
    opts = {"skip_warmup": not args.include_warmup, "uncorrected": args.uncorrected}
    try:
        if run_a is run_b:
            arm_a, arm_b = read_arms(run_a, [ep_a, ep_b], **opts)
            return arm_a, arm_b, "split"
        (arm_a,) = read_arms(run_a, [ep_a], **opts)
        (arm_b,) = read_arms(run_b, [ep_b], **opts)
        return arm_a, arm_b, "two-runs"
    except StoreError as exc:
        if "no endpoint" in str(exc):  # a wrong --arm is a usage error
            raise ConfigError(str(exc)) from exc
        raise


def run(args: argparse.Namespace) -> int:
    config = _config(args)
    arm_a, arm_b, design = _load(args)
    result = compare_arms(arm_a, arm_b, config, design=design)
    _print(result, _console())
    if args.json:
        _write_json(args.json, result)
    if not args.no_history:
        _record(args, result)
    return 1 if result.regression else 0


def _record(args: argparse.Namespace, result: Comparison) -> None:
    """The comparison's row (kind "compare") in the history next to run B."""
    run_b = Path(args.run_b or args.run_a)
    run_a = Path(args.run_a)
    meta = load_run(run_b).meta
    row = ComparisonRow(
        compare_id=f"compare:{run_a.name}/{result.arm_a}:{run_b.name}/{result.arm_b}",
        kind="compare",
        created_at=datetime.now(UTC).replace(tzinfo=None),
        scenario=meta.get("scenario"),
        run_a=str(load_run(run_a).run_id),
        arm_a=result.arm_a,
        run_b=str(meta.get("run_id", run_b.name)),
        arm_b=result.arm_b,
        design=result.design,
        verdict=result.verdict,
        regression=result.regression,
        margin=str(result.details.get("margin", "")),
        summary=result.summary,
        metrics_json=json.dumps(result.to_dict()["metrics"], default=str),
    )
    record_comparison(run_b.resolve().parent, row)


def _console() -> Console:
    """The terminal's width in a terminal; piped (CI logs, cron mail), wide enough for the
    eight-column table instead of rich's 80-column default that elides the verdicts."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=160)
    return console


def _fmt(x: float | None, unit: str) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x * 100:.3g}%" if unit == "%" else f"{x:.4g}"


def _interval(ci: tuple[float, float] | None, unit: str) -> str:
    return "" if ci is None else f" [{_fmt(ci[0], unit)}, {_fmt(ci[1], unit)}]"


def _row(m: MetricResult) -> list[str]:
    unit = "%" if m.metric in ("error_rate", "accuracy") else "ms"
    diff = (
        _fmt(m.difference, unit) + _interval(m.ci, unit)
        if m.difference is not None
        else (f"stat {m.statistic:.3g}" if m.statistic is not None else "–")
    )
    rel = _fmt(m.relative, "%") + _interval(m.relative_ci, "%") if m.relative is not None else ""
    p = "–" if m.p_value is None else f"{m.p_value:.3g}"
    if m.p_adjusted is not None:
        p += f" ({m.p_adjusted:.3g})"
    colour = _COLOURS.get(m.verdict, "")
    verdict = f"[{colour}]{m.verdict}[/]" + ("" if m.gating else " [dim](info)[/]")
    if m.requests_needed:
        verdict += f"\n[dim]~{m.requests_needed:,} requests[/]"
    return [m.metric, _fmt(m.a, unit), _fmt(m.b, unit), diff, rel, p, m.margin or "", verdict]


def _print(result: Comparison, console: Console) -> None:
    table = Table(
        title=f"A = {result.arm_a}   B = {result.arm_b}   ({result.design}; latency in ms)"
    )
    for col in ("metric", "A", "B", "B − A [CI]", "relative [CI]", "p (Holm)", "margin", "verdict"):
        table.add_column(col)
    for m in result.metrics:
        table.add_row(*_row(m))
    console.print(table)
    colour = _COLOURS.get(result.verdict, "")
    console.print(f"[{colour}]{result.summary}[/]", highlight=False)
    details = ", ".join(f"{k}={v}" for k, v in result.details.items())
    console.print(f"[dim]{details}[/]", highlight=False)
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)


def _write_json(path: Path, result: Comparison) -> None:
    atomic_write_json(path, result.to_dict(), default=str, allow_nan=True)

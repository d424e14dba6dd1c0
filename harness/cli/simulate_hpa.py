"""`harness simulate-hpa --plan DIR/plan.json`: HPA settings side by side on real traffic.

Replays the real Azure LLM trace (rescaled so its peak equals the planned peak) or a
synthetic diurnal day through `harness.analysis.capacity.hpa_sim`, once per HPA setting named with
`--compare` (presets of `harness.analysis.capacity.hpa_models`), predicting latency from the plan's
fitted curve. Prints minutes over the SLO and replica-hours per setting, and writes
`hpa_sim.json` (summary + settings) and `hpa_sim.csv` (replicas/ready/p99 per time step)
through `harness.plan.simulate_plan`, the code `harness capacity` uses.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from harness.analysis.capacity.hpa_models import PRESETS
from harness.analysis.capacity.hpa_sim import SimResult, diurnal_series
from harness.plan import load_plan, simulate_plan, trace_traffic
from harness.traces import shipped_trace_path

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate-hpa", help="replay traffic through HPA settings side by side")
    p.add_argument("--plan", type=Path, required=True, help="plan.json (or its directory)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--trace", type=Path, help="arrival trace CSV (default: the shipped one)")
    src.add_argument("--diurnal", action="store_true", help="a synthetic cosine day instead")
    p.add_argument("--peak-qps", type=float, help="rescale to this peak (default: the plan's)")
    p.add_argument("--trough-share", type=float, default=0.2, help="diurnal trough/peak")
    p.add_argument("--hours", type=float, default=24.0, help="diurnal day length (hours)")
    p.add_argument("--bin-s", type=float, default=1.0, help="trace rate bin (s)")
    p.add_argument(
        "--compare",
        nargs="+",
        default=["plan", "k8s-default"],
        metavar="SETTING",
        help=f"PRESET[:key=value,...]; presets: {', '.join(PRESETS)}; e.g. "
        "plan:scale_down.stabilization_window_s=60,metric_window_s=60",
    )
    p.add_argument("--slo-p99-ms", type=float, help="default: the plan's SLO")
    p.add_argument("--pod-startup-s", type=int, help="default: the plan's pod_ready_s")
    p.add_argument(
        "--start-at",
        choices=["min", "peak"],
        default="min",
        help="initial replicas: minReplicas or the peak count",
    )
    p.add_argument(
        "--out", type=Path, help="directory for hpa_sim.json/.csv (default: the plan's directory)"
    )


def traffic_series(args: argparse.Namespace, peak: float) -> tuple[np.ndarray, str]:
    if args.diurnal:
        # The whole day compressed into --hours (peak at 14:00 of it), so any length reaches
        # the planned peak; cutting a 24 h day after the first hour only ever showed the trough.
        n = int(args.hours * 3600)
        trough = peak * args.trough_share
        traffic = diurnal_series(peak, trough, duration_s=n, period_s=n, peak_at_s=n * 14 // 24)
        return traffic, "diurnal"
    path = args.trace or shipped_trace_path()
    return trace_traffic(peak, path, args.bin_s), str(path)


def run(args: argparse.Namespace) -> int:
    plan, plan_dir = load_plan(args.plan)
    traffic, source = traffic_series(args, args.peak_qps or plan.peak_qps)
    sim = simulate_plan(
        plan,
        args.out or plan_dir,
        traffic=traffic,
        source=source,
        compare=tuple(args.compare),
        slo_p99_ms=args.slo_p99_ms,
        pod_startup_s=args.pod_startup_s,
        start_at_peak=args.start_at == "peak",
    )
    print_table(Console(), list(sim.results), source, sim.results[0].slo_ms)
    return 0


def print_table(console: Console, results: list[SimResult], source: str, slo: float) -> None:
    t = Table(title=f"HPA simulation: {source} ({results[0].traffic.size} s, SLO p99 {slo:g} ms)")
    t.add_column("setting", overflow="fold")
    for col in ("min>SLO", "replica-h", "max pods", "mean pods", "scalings"):
        t.add_column(col, justify="right", no_wrap=True)
    for r in results:
        s = r.summary()
        t.add_row(
            r.name,
            f"{s['minutes_over_slo']:.2f}",
            f"{s['replica_hours']:.2f}",
            str(s["max_replicas"]),
            f"{s['mean_replicas']:.1f}",
            str(s["scale_events"]),
        )
    console.print(t)
    console.print(
        "min>SLO: minutes with predicted p99 over the SLO; replica-h: pod-hours "
        "(starting pods included); scalings: HPA scale events"
    )

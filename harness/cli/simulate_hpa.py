"""`harness simulate-hpa --plan DIR/plan.json`: HPA settings side by side on real traffic.

Replays the real Azure LLM trace (rescaled so its peak equals the planned peak) or a
synthetic diurnal day through `harness.analysis.capacity.hpa_sim`, once per HPA setting named with
`--compare` (presets of `harness.analysis.capacity.hpa_models`), predicting latency from the plan's
fitted curve. Prints minutes over the SLO and replica-hours per setting, and writes
`hpa_sim.json` (summary + settings) and `hpa_sim.csv` (replicas/ready/p99 per time step).
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from harness.analysis.capacity.hpa_models import (
    PRESETS,
    model_from_plan,
    setting_from_spec,
    settings_from_plan,
)
from harness.analysis.capacity.hpa_sim import SimResult, compare_settings, diurnal_series
from harness.analysis.capacity.planner import CapacityPlan
from harness.errors import ConfigError
from harness.results.store import atomic_write_bytes, atomic_write_json, read_json
from harness.traces import load_arrivals, rate_series, scale_to_peak, shipped_trace_path

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


def load_plan(path: Path) -> tuple[CapacityPlan, Path]:
    file = path / "plan.json" if path.is_dir() else path
    if not file.is_file():  # a user's typo: usage, not exit 3
        raise ConfigError(f"--plan {path}: no plan.json there (write one with `harness plan`)")
    data = read_json(file)
    try:
        return CapacityPlan.from_dict(
            {k: v for k, v in data.items() if k in CapacityPlan.__slots__ or k == "schema_version"}
        ), file.parent
    except (TypeError, KeyError) as exc:
        raise ConfigError(f"{file}: not a plan written by `harness plan` ({exc})") from exc


def traffic_series(args: argparse.Namespace, peak: float) -> tuple[np.ndarray, str]:
    if args.diurnal:
        # The whole day compressed into --hours (peak at 14:00 of it), so any length reaches
        # the planned peak; cutting a 24 h day after the first hour only ever showed the trough.
        n = int(args.hours * 3600)
        trough = peak * args.trough_share
        traffic = diurnal_series(peak, trough, duration_s=n, period_s=n, peak_at_s=n * 14 // 24)
        return traffic, "diurnal"
    path = args.trace or shipped_trace_path()
    if args.bin_s < 1 or args.bin_s != int(args.bin_s):
        raise ConfigError("--bin-s must be a whole number of seconds >= 1")
    rates = rate_series(load_arrivals(path), args.bin_s)
    per_second = np.repeat(rates, max(1, round(args.bin_s)))
    return scale_to_peak(per_second, peak), str(path)


def run(args: argparse.Namespace) -> int:
    plan, plan_dir = load_plan(args.plan)
    slo = args.slo_p99_ms or plan.inputs.get("slo_p99_ms")
    if slo is None:
        raise ConfigError("the plan has no p99 SLO; give --slo-p99-ms")
    traffic, source = traffic_series(args, args.peak_qps or plan.peak_qps)
    base = settings_from_plan(plan, args.pod_startup_s)
    if args.start_at == "peak":
        base = base.model_copy(update={"initial_replicas": plan.replicas})
    try:
        settings = {spec: setting_from_spec(base, spec) for spec in args.compare}
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    results = compare_settings(traffic, settings, model_from_plan(plan), float(slo))
    out = args.out or plan_dir
    write_results(out, results, settings, source, plan)
    print_table(Console(), results, source, float(slo))
    return 0


def write_results(
    out: Path, results: list[SimResult], settings: dict, source: str, plan: CapacityPlan
) -> None:
    doc: dict[str, Any] = {
        "schema_version": 1,
        "traffic": source,
        "peak_qps": float(results[0].traffic.max()),
        "seconds": int(results[0].traffic.size),
        "slo_p99_ms": results[0].slo_ms,
        "planned_replicas": plan.replicas,
        "results": [r.summary() for r in results],
        "settings": {k: s.model_dump(mode="json") for k, s in settings.items()},
    }
    for row in doc["results"]:
        if not np.isfinite(row["worst_p99_ms"]):
            row["worst_p99_ms"] = None
    atomic_write_json(out / "hpa_sim.json", doc)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["setting", "t_s", "traffic_rps", "replicas", "ready", "p99_ms"])
    for r in results:
        step = 15 if r.t.size > 7200 else 1  # keep a day's CSV small: every 15 s
        for i in range(0, r.t.size, step):
            p99 = r.p99_ms[i]
            w.writerow(
                [
                    r.name,
                    int(r.t[i]),
                    f"{r.traffic[i]:.3f}",
                    int(r.replicas[i]),
                    int(r.ready[i]),
                    f"{p99:.3f}" if np.isfinite(p99) else "inf",
                ]
            )
    atomic_write_bytes(out / "hpa_sim.csv", buf.getvalue().encode())


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

"""`harness plan`: instance count, HPA and manifests for a peak rate, with the arithmetic.

    harness plan --peak-qps 10000 --latency-ms 50 --concurrency 1          # 500, by hand
    harness plan --peak-qps 2000 --from results/<sweep-run> --gpu --out plan/

Writes DIR/plan.json (every input and intermediate number; `CapacityPlan.to_dict()`) and the
Kubernetes manifests as YAML in DIR (validated strictly for `--k8s-version`), then prints the
recommendation and its arithmetic. The numbers come from `harness.analysis.capacity.planner`; this
module only gathers inputs and writes/prints.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from harness.analysis.capacity.manifests import (
    DEFAULT_K8S_VERSION,
    DeploymentOptions,
    build_manifests,
)
from harness.analysis.capacity.planner import (
    CapacityInputs,
    CapacityPlan,
    OperatingPoint,
    operating_point_closed_loop,
    operating_point_manual,
    operating_point_open_loop,
    plan_capacity,
    with_concurrency,
)
from harness.config.loader import format_validation_error
from harness.errors import ConfigError
from harness.plan import write_manifests
from harness.results.store import atomic_write_json

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="replicas, HPA and manifests for a peak rate")
    p.add_argument("--peak-qps", type=float, required=True, help="peak requests/s to serve")
    src = p.add_argument_group("operating point (a sweep, or by hand)")
    src.add_argument("--from", dest="sweep", type=Path, metavar="SWEEP_RUN_DIR")
    src.add_argument("--latency-ms", type=float, help="MEAN time in system per request")
    src.add_argument(
        "--concurrency",
        type=float,
        help="requests in flight per instance (with --from: overrides the sweep's c_op)",
    )
    src.add_argument("--p99-ms", type=float, help="measured p99 at that concurrency")
    q = p.add_argument_group("targets and margins")
    q.add_argument("--slo-p99-ms", type=float, help="p99 SLO (default: the sweep's)")
    q.add_argument("--headroom", type=float, default=0.0, help="extra capacity share, 0.2=20%%")
    q.add_argument("--redundancy", type=int, default=0, help="pods that may be lost (N+R)")
    q.add_argument("--failure-domains", type=int, help="zones; survive losing one (f = 1/Z)")
    q.add_argument("--failure-share", type=float, help="capacity share one failure takes")
    q.add_argument("--target-utilisation", type=float, help="rho_t by hand (0..1]")
    q.add_argument("--growth-rate", type=float, help="load growth per second, 0.002=12%%/min")
    q.add_argument("--pod-ready-s", type=float, default=60.0, help="pod start-up time (s)")
    q.add_argument("--min-qps", type=float, help="trough rate (sets min_replicas)")
    q.add_argument("--min-replicas", type=int)
    q.add_argument("--max-replicas", type=int)
    k = p.add_argument_group("manifests")
    k.add_argument("--k8s-version", default=DEFAULT_K8S_VERSION)
    k.add_argument("--gpu", action="store_true", help="nvidia.com/gpu limits, --device cuda")
    k.add_argument("--image", default=DeploymentOptions().image)
    k.add_argument("--name", default=DeploymentOptions().name)
    k.add_argument("--namespace", default="default")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("results/plan"),
        help="output directory (default results/plan)",
    )


def operating_point(args: argparse.Namespace) -> tuple[OperatingPoint, float | None]:
    """The operating point and the SLO to plan for (from the sweep unless given)."""
    if args.sweep is not None and args.latency_ms is not None:
        raise ConfigError("--from and --latency-ms exclude each other")
    if args.sweep is None:
        if args.latency_ms is None or args.concurrency is None:
            raise ConfigError("give --from SWEEP_RUN_DIR, or --latency-ms and --concurrency")
        return operating_point_manual(args.latency_ms, args.concurrency, args.p99_ms), (
            args.slo_p99_ms
        )
    from harness.results.sweeps import read_sweep
    from harness.sweep import UNMEASURED_NOTE

    if not (Path(args.sweep) / "sweep.json").is_file():  # a user's typo: usage, not exit 3
        raise ConfigError(f"--from {args.sweep}: not a sweep run directory (no sweep.json)")
    sw = read_sweep(args.sweep)
    slo = args.slo_p99_ms or sw.slo_p99_ms
    if slo is None:
        raise ConfigError(f"{args.sweep}: no p99 SLO in the sweep; give --slo-p99-ms")
    measured = sw.columns["verdict"] != "unmeasured"  # those steps measured nothing
    c = {name: column[measured] for name, column in sw.columns.items()}
    if sw.mode == "closed":
        # N as the sweep's fits took it: the server's in-flight requests when every step
        # measured them (users with think time are not the server's concurrency)
        at_server = sw.meta.get("concurrency") == "server" and bool(
            np.all(np.isfinite(c["concurrency"]))
        )
        op = operating_point_closed_loop(
            c["concurrency"] if at_server else c["load"],
            c["throughput_rps"],
            c["p99_ms"],
            slo,
            c["error_rate"],
            mean_ms=c["mean_ms"],
            at_server=at_server,
        )
        if args.concurrency is not None:  # c_op by hand, X_op from the fit
            op = with_concurrency(op, args.concurrency)
    else:
        op = operating_point_open_loop(
            c["load"], c["throughput_rps"], c["p99_ms"], c["mean_ms"], slo, c["error_rate"]
        )
    if sw.meta.get("unmeasured_loads"):
        loads = ", ".join(f"{x:g}" for x in sw.meta["unmeasured_loads"])
        note = "sweep: " + UNMEASURED_NOTE.format(loads=loads) + "; this plan is conservative"
        op = dataclasses.replace(op, notes=(*op.notes, note))
    return op, slo


def capacity_inputs(args: argparse.Namespace, slo: float | None) -> CapacityInputs:
    share = args.failure_share or 0.0
    if args.failure_domains:
        if args.failure_domains < 2:
            raise ConfigError("--failure-domains must be >= 2")
        share = 1.0 / args.failure_domains
    try:
        return CapacityInputs(
            peak_qps=args.peak_qps,
            slo_p99_ms=slo,
            headroom=args.headroom,
            redundancy=args.redundancy,
            failure_share=share,
            target_utilisation=args.target_utilisation,
            growth_rate_per_s=args.growth_rate,
            pod_ready_s=args.pod_ready_s,
            min_qps=args.min_qps,
            min_replicas=args.min_replicas,
            max_replicas=args.max_replicas,
        )
    except ValidationError as exc:
        raise ConfigError(f"plan options: {format_validation_error(exc)}") from exc


def run(args: argparse.Namespace) -> int:
    op, slo = operating_point(args)
    plan = plan_capacity(capacity_inputs(args, slo), op)
    options = DeploymentOptions(
        name=args.name,
        namespace=args.namespace,
        image=args.image,
        gpu=args.gpu,
        zone_spread=bool(args.failure_domains),
    )
    paths = write_manifests(build_manifests(plan, options), args.out, args.k8s_version)
    doc: dict[str, Any] = {
        **plan.to_dict(),
        "source": str(args.sweep) if args.sweep else "manual",
        "k8s_version": args.k8s_version,
        "deployment": options.model_dump(),
        "manifests": [p.name for p in paths],
    }
    atomic_write_json(args.out / "plan.json", doc)
    print_plan(Console(), plan, args.out)
    return 0


def print_plan(console: Console, plan: CapacityPlan, out: Path) -> None:
    head = Table(title=f"capacity plan for {plan.peak_qps:g} req/s at peak", show_header=False)
    head.add_column(style="bold")
    head.add_column(justify="right")
    for label, value in (
        ("replicas at peak", plan.replicas),
        ("HPA minReplicas", plan.min_replicas),
        ("HPA maxReplicas", plan.max_replicas),
        ("utilisation target rho_t", f"{plan.rho_target:.3f}"),
        ("HPA in-flight target / pod", f"{plan.hpa_inflight_target:.3f}"),
        ("HPA requests/s guard / pod", f"{plan.hpa_rps_target:.2f}"),
    ):
        head.add_row(label, str(value))
    console.print(head)
    steps = Table(title="arithmetic", show_lines=False)
    steps.add_column("#", justify="right")
    steps.add_column("step")
    for i, line in enumerate(plan.arithmetic, 1):
        steps.add_row(str(i), line)
    console.print(steps)
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"wrote {out / 'plan.json'} and manifests in {out}")

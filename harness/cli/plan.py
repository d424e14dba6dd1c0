"""`harness plan`: instance count, HPA and manifests for a peak rate, with the arithmetic.

    harness plan --peak-qps 10000 --latency-ms 50 --concurrency 1          # 500, by hand
    harness plan --peak-qps 2000 --from results/<sweep-run> --gpu --out plan/

Writes DIR/plan.json (every input and intermediate number; `CapacityPlan.to_dict()`) and the
Kubernetes manifests as YAML in DIR (validated strictly for `--k8s-version`), then prints the
recommendation and its arithmetic. The numbers come from `harness.analysis.capacity.planner`,
the reading and writing from `harness.plan` (shared with `harness capacity`); this module only
parses and prints.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from harness.analysis.capacity.manifests import DEFAULT_K8S_VERSION, DeploymentOptions
from harness.analysis.capacity.planner import (
    CapacityPlan,
    OperatingPoint,
    operating_point_manual,
    plan_capacity,
)
from harness.config.loader import format_validation_error
from harness.errors import ConfigError
from harness.plan import PlanOptions, capacity_inputs, sweep_operating_point, write_plan

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
    add_plan_options(p)
    p.add_argument(
        "--out",
        type=Path,
        default=Path("results/plan"),
        help="output directory (default results/plan)",
    )


def add_plan_options(p: argparse.ArgumentParser) -> None:
    """Targets, margins and manifest options (shared with `harness capacity`)."""
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


def plan_options(args: argparse.Namespace) -> PlanOptions:
    """The plan options as given on the command line (shared with `harness capacity`)."""
    try:
        return PlanOptions(
            slo_p99_ms=args.slo_p99_ms,
            concurrency=args.concurrency,
            headroom=args.headroom,
            redundancy=args.redundancy,
            failure_domains=args.failure_domains,
            failure_share=args.failure_share,
            target_utilisation=args.target_utilisation,
            growth_rate_per_s=args.growth_rate,
            pod_ready_s=args.pod_ready_s,
            min_qps=args.min_qps,
            min_replicas=args.min_replicas,
            max_replicas=args.max_replicas,
            k8s_version=args.k8s_version,
            deployment=DeploymentOptions(
                name=args.name,
                namespace=args.namespace,
                image=args.image,
                gpu=args.gpu,
                zone_spread=bool(args.failure_domains),
            ),
        )
    except ValidationError as exc:
        raise ConfigError(f"plan options: {format_validation_error(exc)}") from exc


def operating_point(
    args: argparse.Namespace, o: PlanOptions
) -> tuple[OperatingPoint, float | None]:
    """The operating point and the SLO to plan for (from the sweep unless given)."""
    if args.sweep is not None and args.latency_ms is not None:
        raise ConfigError("--from and --latency-ms exclude each other")
    if args.sweep is None:
        if args.latency_ms is None or args.concurrency is None:
            raise ConfigError("give --from SWEEP_RUN_DIR, or --latency-ms and --concurrency")
        return operating_point_manual(args.latency_ms, args.concurrency, args.p99_ms), (
            args.slo_p99_ms
        )
    from harness.sweep import UNMEASURED_NOTE

    return sweep_operating_point(args.sweep, o, UNMEASURED_NOTE)


def run(args: argparse.Namespace) -> int:
    o = plan_options(args)
    op, slo = operating_point(args, o)
    plan = plan_capacity(capacity_inputs(args.peak_qps, slo, o), op)
    write_plan(plan, args.out, str(args.sweep) if args.sweep else "manual", o)
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

"""The plan side of capacity planning: gather a plan's inputs, write what the planner computed.

    options = PlanOptions(headroom=0.2, redundancy=1)
    plan, doc = plan_from_sweep(Path("results/<sweep>"), 2000, options, Path("results/plan"))
    sim = simulate_plan(plan, out_dir)                    # the HPA over the shipped trace

`harness plan`, `harness simulate-hpa` and `harness capacity` all come through here, so a
plan made by hand, from a sweep, or inside a capacity report is the same plan. The analysis
(`harness.analysis.capacity`) builds and validates in memory (pure); this module reads sweep
runs and writes plan.json, the manifests (validated first, each written atomically, nothing
written if one fails) and hpa_sim.json/.csv.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.analysis.capacity.hpa_models import (
    model_from_plan,
    setting_from_spec,
    settings_from_plan,
)
from harness.analysis.capacity.hpa_sim import HPASettings, SimResult, compare_settings
from harness.analysis.capacity.manifests import (
    DEFAULT_K8S_VERSION,
    DeploymentOptions,
    build_manifests,
    to_yaml,
    validate_manifest,
)
from harness.analysis.capacity.planner import (
    CapacityInputs,
    CapacityPlan,
    OperatingPoint,
    operating_point_closed_loop,
    operating_point_open_loop,
    plan_capacity,
    with_concurrency,
)
from harness.config.loader import format_validation_error
from harness.errors import ConfigError
from harness.files import atomic_write_text
from harness.results.store import atomic_write_bytes, atomic_write_json, read_json
from harness.traces import load_arrivals, rate_series, scale_to_peak, shipped_trace_path

__all__ = [
    "DEFAULT_COMPARE",
    "PlanOptions",
    "SimulationOutcome",
    "capacity_inputs",
    "load_plan",
    "plan_from_sweep",
    "simulate_plan",
    "sweep_operating_point",
    "trace_traffic",
    "write_manifests",
    "write_plan",
]

log = logging.getLogger(__name__)

DEFAULT_COMPARE = ("plan", "k8s-default")


class PlanOptions(BaseModel):
    """Everything `harness plan` takes besides the peak and the operating point."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slo_p99_ms: float | None = None  # None: the sweep's SLO
    concurrency: float | None = None  # c_op by hand (a closed-loop sweep's X_op from its fit)
    headroom: float = 0.0
    redundancy: int = 0
    failure_domains: int | None = None
    failure_share: float | None = None
    target_utilisation: float | None = None
    growth_rate_per_s: float | None = None
    pod_ready_s: float = 60.0
    min_qps: float | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    k8s_version: str = DEFAULT_K8S_VERSION
    deployment: DeploymentOptions = Field(default_factory=DeploymentOptions)


def capacity_inputs(peak_qps: float, slo: float | None, o: PlanOptions) -> CapacityInputs:
    share = o.failure_share or 0.0
    if o.failure_domains:
        if o.failure_domains < 2:
            raise ConfigError("--failure-domains must be >= 2")
        share = 1.0 / o.failure_domains
    try:
        return CapacityInputs(
            peak_qps=peak_qps,
            slo_p99_ms=slo,
            headroom=o.headroom,
            redundancy=o.redundancy,
            failure_share=share,
            target_utilisation=o.target_utilisation,
            growth_rate_per_s=o.growth_rate_per_s,
            pod_ready_s=o.pod_ready_s,
            min_qps=o.min_qps,
            min_replicas=o.min_replicas,
            max_replicas=o.max_replicas,
        )
    except ValidationError as exc:
        raise ConfigError(f"plan options: {format_validation_error(exc)}") from exc


def sweep_operating_point(
    sweep_dir: Path, o: PlanOptions, unmeasured_note: str = "{loads}"
) -> tuple[OperatingPoint, float]:
    """The operating point of a sweep run and the SLO to plan for (the sweep's unless given).

    `unmeasured_note` (`harness.sweep.UNMEASURED_NOTE`) says what unmeasured steps mean.
    """
    from harness.results.sweeps import read_sweep

    if not (Path(sweep_dir) / "sweep.json").is_file():  # a user's typo: usage, not exit 3
        raise ConfigError(f"--from {sweep_dir}: not a sweep run directory (no sweep.json)")
    sw = read_sweep(sweep_dir)
    slo = o.slo_p99_ms or sw.slo_p99_ms
    if slo is None:
        raise ConfigError(f"{sweep_dir}: no p99 SLO in the sweep; give --slo-p99-ms")
    measured = sw.columns["verdict"] != "unmeasured"  # those steps measured nothing
    levels = len(set(sw.columns["load"][measured].tolist()))
    if sw.mode == "closed" and levels < 4:
        left_out = int((~measured).sum())
        raise ConfigError(
            f"{sweep_dir}: {levels} measured load levels; the USL fit behind a closed-loop "
            "plan needs 4"
            + (f" ({left_out} step(s) unmeasured, see sweep.json)" if left_out else "")
            + ": sweep more levels (--max-steps), or give --latency-ms and --concurrency"
        )
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
        if o.concurrency is not None:  # c_op by hand, X_op from the fit
            op = with_concurrency(op, o.concurrency)
    else:
        op = operating_point_open_loop(
            c["load"], c["throughput_rps"], c["p99_ms"], c["mean_ms"], slo, c["error_rate"]
        )
    if sw.meta.get("unmeasured_loads"):
        loads = ", ".join(f"{x:g}" for x in sw.meta["unmeasured_loads"])
        note = "sweep: " + unmeasured_note.format(loads=loads) + "; this plan is conservative"
        op = dataclasses.replace(op, notes=(*op.notes, note))
    return op, float(slo)


def write_manifests(
    docs: dict[str, dict[str, Any]], out_dir: Path, k8s_version: str = DEFAULT_K8S_VERSION
) -> list[Path]:
    """Validate every document, then write `<stem>.yaml` each; nothing written if one fails."""
    for doc in docs.values():
        validate_manifest(doc, k8s_version)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, doc in docs.items():
        path = out_dir / f"{stem}.yaml"
        atomic_write_text(path, to_yaml(doc))
        paths.append(path)
    log.info(
        "wrote %d manifests (validated for Kubernetes %s) to %s", len(paths), k8s_version, out_dir
    )
    return paths


def write_plan(plan: CapacityPlan, out: Path, source: str, o: PlanOptions) -> dict[str, Any]:
    """The manifests and plan.json (every input and intermediate number) into `out`."""
    paths = write_manifests(build_manifests(plan, o.deployment), out, o.k8s_version)
    doc: dict[str, Any] = {
        **plan.to_dict(),
        "source": source,
        "k8s_version": o.k8s_version,
        "deployment": o.deployment.model_dump(),
        "manifests": [p.name for p in paths],
    }
    atomic_write_json(out / "plan.json", doc)
    return doc


def plan_from_sweep(
    sweep_dir: Path, peak_qps: float, o: PlanOptions, out: Path, unmeasured_note: str = "{loads}"
) -> tuple[CapacityPlan, dict[str, Any]]:
    """`harness plan --from SWEEP`: the plan and the plan.json document written into `out`."""
    op, slo = sweep_operating_point(sweep_dir, o, unmeasured_note)
    plan = plan_capacity(capacity_inputs(peak_qps, slo, o), op)
    return plan, write_plan(plan, out, str(sweep_dir), o)


# --- the HPA simulation of a plan --------------------------------------------------------


def load_plan(path: Path) -> tuple[CapacityPlan, Path]:
    """A plan.json (or its directory) and the directory it is in."""
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


def trace_traffic(peak: float, path: Path | None = None, bin_s: float = 1.0) -> np.ndarray:
    """Requests/s per second of an arrival trace (default: the shipped one), peak rescaled."""
    if bin_s < 1 or bin_s != int(bin_s):
        raise ConfigError("--bin-s must be a whole number of seconds >= 1")
    rates = rate_series(load_arrivals(path or shipped_trace_path()), bin_s)
    per_second = np.repeat(rates, max(1, round(bin_s)))
    return scale_to_peak(per_second, peak)


@dataclass(frozen=True, slots=True)
class SimulationOutcome:
    results: tuple[SimResult, ...]
    settings: dict[str, HPASettings]
    source: str
    doc: dict[str, Any]  # what hpa_sim.json holds


def simulate_plan(
    plan: CapacityPlan,
    out: Path,
    *,
    traffic: np.ndarray | None = None,
    source: str | None = None,
    compare: tuple[str, ...] = DEFAULT_COMPARE,
    slo_p99_ms: float | None = None,
    pod_startup_s: int | None = None,
    start_at_peak: bool = False,
) -> SimulationOutcome:
    """Replay `traffic` (default: the shipped trace at the planned peak) through the plan's
    HPA and its variations (`compare`: presets of `hpa_models`); write hpa_sim.json/.csv."""
    slo = slo_p99_ms or plan.inputs.get("slo_p99_ms")
    if slo is None:
        raise ConfigError("the plan has no p99 SLO; give --slo-p99-ms")
    if traffic is None:
        traffic, source = trace_traffic(plan.peak_qps), str(shipped_trace_path())
    base = settings_from_plan(plan, pod_startup_s)
    if start_at_peak:
        base = base.model_copy(update={"initial_replicas": plan.replicas})
    try:
        settings = {spec: setting_from_spec(base, spec) for spec in compare}
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    results = compare_settings(traffic, settings, model_from_plan(plan), float(slo))
    doc = write_simulation(out, results, settings, source or "traffic", plan)
    return SimulationOutcome(tuple(results), settings, source or "traffic", doc)


def write_simulation(
    out: Path, results: list[SimResult], settings: dict, source: str, plan: CapacityPlan
) -> dict[str, Any]:
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
    return doc

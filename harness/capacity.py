"""`harness capacity`: sweep, fit, plan, simulate the HPA, and one report for a planning review.

    outcome = run_capacity(scenario, Path("results"), peak_qps=2000,
                           sweep=sweep_settings(scenario), options=PlanOptions(headroom=0.2))
    outcome.recommendation.sentence, outcome.report_html

Every step is the code of its own command: the sweep is `harness.sweep.run_sweep`, the plan is
`harness.plan.plan_from_sweep` (`harness plan --from`), the simulation is
`harness.plan.simulate_plan` (`harness simulate-hpa`). Everything lands in the sweep's run
directory (sweep.json, plan.json, manifests, hpa_sim.json, recommendation.json), so
`harness report` rebuilds the same report from it at any time (measuring and reporting split,
as in model_analyzer). The recommendation is read from the plan, never recomputed: its
replicas and HPA settings are plan.json's.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.analysis.capacity.hpa_models import model_from_plan, settings_from_plan
from harness.analysis.capacity.hpa_sim import simulate_hpa
from harness.analysis.capacity.manifests import supported_k8s_versions
from harness.analysis.capacity.planner import CapacityPlan
from harness.config import Scenario
from harness.errors import ConfigError, HarnessError
from harness.plan import (
    PlanOptions,
    SimulationOutcome,
    capacity_inputs,
    plan_from_sweep,
    simulate_plan,
)
from harness.report.build import build_report
from harness.report.render import write_report
from harness.results.store import atomic_write_json
from harness.sweep import UNMEASURED_NOTE, RunStep, SweepOutcome, SweepSettings, run_sweep

__all__ = [
    "CapacityOutcome",
    "NoPassingLoad",
    "Recommendation",
    "recommend",
    "run_capacity",
    "settle_at_peak",
]

log = logging.getLogger(__name__)

SETTLE_S = 1800  # how long a constant peak is held in the settle check


class NoPassingLoad(HarnessError):
    """Even the sweep's first load missed the SLO: there is nothing to plan from (exit 1)."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class Settle:
    """The plan's HPA under a constant peak: from the planned count, and from minReplicas."""

    from_plan: int  # where it rests when started at the planned count
    from_min: int  # where it rests after a step from minReplicas
    overshoot: int  # the most pods on the way up from minReplicas


def settle_at_peak(plan: CapacityPlan, seconds: int = SETTLE_S) -> Settle:
    """Hold the planned peak for `seconds` through the plan's HPA (its own pod model)."""
    traffic = np.full(seconds, plan.peak_qps)
    settings = settings_from_plan(plan)
    model = model_from_plan(plan)
    slo = float(plan.inputs.get("slo_p99_ms") or np.inf)
    at_plan = settings.model_copy(update={"initial_replicas": plan.replicas})
    held = simulate_hpa(traffic, at_plan, model, slo)
    step = simulate_hpa(np.full(2 * seconds, plan.peak_qps), settings, model, slo)
    return Settle(int(held.replicas[-1]), int(step.replicas[-1]), step.max_replicas_used)


@dataclass(frozen=True, slots=True)
class Recommendation:
    """What a planning review takes away; every count and target is plan.json's."""

    sentence: str
    model: str
    peak_qps: float
    slo_p99_ms: float
    max_error_rate: float
    replicas: int
    min_replicas: int
    max_replicas: int
    hpa_inflight_target: float
    hpa_rps_target: float
    expected_p99_ms: float | None  # the plan's pod model at peak / replicas
    replica_hours: float  # the plan's HPA over the simulated traffic
    minutes_over_slo: float
    traffic: str
    traffic_hours: float
    settle_from_plan: int
    settle_from_min: int
    settle_overshoot: int
    measurements: int  # sweep steps that measured the target
    settings: int  # distinct loads among them
    assumptions: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["assumptions"] = list(self.assumptions)
        d["schema_version"] = 1
        return d


def _expected_p99(plan: CapacityPlan) -> float | None:
    p99 = float(model_from_plan(plan).p99_ms(np.array([plan.peak_qps / plan.replicas]))[0])
    return p99 if np.isfinite(p99) else None


def _assumptions(
    plan: CapacityPlan, scenario: Scenario, sim: SimulationOutcome, settle: Settle
) -> tuple[str, ...]:
    op, inputs = plan.operating_point, plan.inputs
    stack = scenario.stack
    unit = (
        f"the swept target: {stack.replicas} reference-server replica(s)"
        + (" behind nginx" if stack.replicas > 1 else "")
        + " on this host"
        if stack is not None and stack.local
        else f"the swept target {scenario.target.url}"
    )
    lines = [
        f"one replica = {unit}; its operating point ({op.source}) is "
        f"{op.throughput:.1f} req/s at {op.concurrency:.2f} in flight, mean "
        f"{op.mean_latency_s * 1000:.2f} ms",
        f"latency measured from the intended send time (open loop: no coordinated omission); "
        f"p99 SLO {inputs.get('slo_p99_ms'):g} ms",
        f"headroom {inputs.get('headroom'):g}, redundancy N+{inputs.get('redundancy')}, "
        f"utilisation target {plan.rho_target:.3f}, pods ready in {inputs.get('pod_ready_s'):g} s",
        "a pod between measurements behaves as M/M/c with the measured mean (the HPA "
        "simulation's pod model); expected p99 from the fitted latency curve when there is one",
        f"traffic: {sim.source}, rescaled to the {plan.peak_qps:g} req/s peak",
    ]
    if settle.from_min != plan.replicas:
        lines.append(
            f"a step from minReplicas straight to the peak overshoots to {settle.overshoot} "
            f"pods and rests at {settle.from_min}: the HPA leaves a count within its 10 % "
            f"tolerance alone; from the planned {plan.replicas} (or a gradual rise) it holds "
            f"{settle.from_plan}"
        )
    return tuple(lines)


def recommend(
    plan: CapacityPlan,
    sim: SimulationOutcome,
    sweep: SweepOutcome,
    scenario: Scenario,
    settle: Settle,
) -> Recommendation:
    """The recommendation, in model_analyzer's summary sentence, with its assumptions."""
    steps = [s for s in sweep.result.steps if s.measured]
    loads = {round(s.load, 6) for s in steps}
    row = sim.doc["results"][0]  # the plan's own setting
    slo = float(plan.inputs["slo_p99_ms"])
    max_err = float(sweep.meta["criteria"]["max_error_rate"])
    p99 = _expected_p99(plan)
    model = scenario.target.model
    expected = "" if p99 is None else f" (expected p99 {p99:.1f} ms"
    expected += "" if p99 is None else f" at {plan.peak_qps / plan.replicas:.1f} req/s each)"
    hours = sim.results[0].t.size / 3600
    sentence = (
        f"In {len(steps)} measurements across {len(loads)} load levels, {plan.replicas} "
        f"replicas of {model} meet the constraints at a peak of {plan.peak_qps:g} req/s: "
        f"p99 <= {slo:g} ms{expected}, errors <= {max_err:.1%}. HPA {plan.min_replicas}.."
        f"{plan.max_replicas} replicas, targets {plan.hpa_inflight_target:.3f} in flight and "
        f"{plan.hpa_rps_target:.2f} req/s per pod; over {hours:.1f} h of traffic it uses "
        f"{row['replica_hours']:.1f} replica-hours with {row['minutes_over_slo']:.1f} minutes "
        f"over the SLO, and at a constant peak it holds {settle.from_plan} replicas."
    )
    return Recommendation(
        sentence=sentence,
        model=model,
        peak_qps=plan.peak_qps,
        slo_p99_ms=slo,
        max_error_rate=max_err,
        replicas=plan.replicas,
        min_replicas=plan.min_replicas,
        max_replicas=plan.max_replicas,
        hpa_inflight_target=plan.hpa_inflight_target,
        hpa_rps_target=plan.hpa_rps_target,
        expected_p99_ms=p99,
        replica_hours=float(row["replica_hours"]),
        minutes_over_slo=float(row["minutes_over_slo"]),
        traffic=sim.source,
        traffic_hours=hours,
        settle_from_plan=settle.from_plan,
        settle_from_min=settle.from_min,
        settle_overshoot=settle.overshoot,
        measurements=len(steps),
        settings=len(loads),
        assumptions=_assumptions(plan, scenario, sim, settle),
    )


@dataclass(frozen=True, slots=True)
class CapacityOutcome:
    run_dir: Path  # the sweep's run directory, now holding the plan and the simulation too
    sweep: SweepOutcome
    plan: CapacityPlan
    recommendation: Recommendation
    report_html: Path
    report_md: Path


def plan_sweep(
    outcome: SweepOutcome, scenario: Scenario, peak_qps: float, options: PlanOptions
) -> tuple[CapacityPlan, Recommendation]:
    """Plan from a finished sweep, simulate its HPA, write recommendation.json beside them."""
    run_dir = outcome.run_dir
    plan, _ = plan_from_sweep(run_dir, peak_qps, options, run_dir, UNMEASURED_NOTE)
    sim = simulate_plan(plan, run_dir)
    rec = recommend(plan, sim, outcome, scenario, settle_at_peak(plan))
    atomic_write_json(run_dir / "recommendation.json", rec.to_dict())
    return plan, rec


def check_options(peak_qps: float, sweep: SweepSettings, options: PlanOptions) -> None:
    """Refuse bad plan options before any load runs (ConfigError, exit 2)."""
    capacity_inputs(peak_qps, options.slo_p99_ms or sweep.criteria.p99_ms, options)
    if options.k8s_version not in supported_k8s_versions():
        raise ConfigError(
            f"--k8s-version {options.k8s_version}: not supported by kubernetes-validate "
            f"(known: {', '.join(supported_k8s_versions())})"
        )


def run_capacity(
    scenario: Scenario,
    out_dir: Path,
    peak_qps: float,
    sweep: SweepSettings,
    options: PlanOptions,
    *,
    reports_dir: Path = Path("reports"),
    progress: bool = True,
    run_step: RunStep | None = None,
) -> CapacityOutcome:
    """Sweep `scenario`, plan for `peak_qps`, simulate the HPA, write the report."""
    check_options(peak_qps, sweep, options)
    outcome = run_sweep(scenario, out_dir, sweep, progress=progress, run_step=run_step)
    if outcome.result.best is None:
        raise NoPassingLoad(
            f"no swept load met the SLO ({outcome.result.reason}); nothing to plan from: "
            f"see {outcome.run_dir}"
        )
    plan, rec = plan_sweep(outcome, scenario, peak_qps, options)
    report = build_report(outcome.run_dir)
    html, md, _ = write_report(report, reports_dir / report.report_id)
    log.info("capacity report: %s", html)
    return CapacityOutcome(outcome.run_dir, outcome, plan, rec, html, md)

"""The main job (`make run`, `harness quickstart`): everything the harness does, in two minutes.

    outcome = run_main_job(Path("results"), Path("reports"))
    outcome.report_html, outcome.exit_code, outcome.summary_lines

On the embedded default -- the local reference stack, two replicas behind nginx, `digits`
split 90/10 between versions 1 and 2, CPU -- it runs

1. the A/B run: open-loop Poisson load, answers checked against the digits test set;
2. its A/B verdict: the split's two arms judged by `harness.compare.compare_runs`;
3. a short sweep of the same stack, a capacity plan for a peak of `PEAK_FACTOR` x the run's
   rate and the plan's HPA over the shipped trace (`harness.capacity`: the code of `harness
   capacity`);
4. one report: the recommendation, the plan, the sweep, then the run and its A/B.

Exit code (the README's): 0 when every step completed and the run met its SLO, 1 when the SLO
failed; errors map as everywhere (2 config, 3 infrastructure). `scale` shortens every load
phase (the integration test runs at 0.5); stages are announced through `on_stage`, the load
engine shows its own live progress.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.analysis.ab.compare import Comparison
from harness.analysis.capacity.planner import CapacityPlan
from harness.capacity import Recommendation, plan_sweep
from harness.compare import compare_runs
from harness.config import Scenario
from harness.config.loader import validate_scenario
from harness.load.api import run_scenario
from harness.plan import PlanOptions
from harness.report.build import build_report, with_sections
from harness.report.render import write_report
from harness.sweep import run_sweep, sweep_settings

__all__ = ["MainJobOutcome", "default_scenario", "run_main_job"]

log = logging.getLogger(__name__)

RATE = 100.0  # req/s of the A/B run
PEAK_FACTOR = 10.0  # the plan is for a peak of 10x the run's rate
RUN_S = 30.0
STEP_S = 8.0
SWEEP_LOADS = (100.0, 200.0, 400.0, 800.0)  # grown x2 up to a cap: 4 steps, ~1 minute


def default_scenario(scale: float = 1.0) -> Scenario:
    """The embedded default: digits v1/v2 90/10 on two local replicas behind nginx."""
    duration = max(10.0, RUN_S * scale)
    data: dict[str, Any] = {
        "name": "quickstart-main",
        "description": "the main job: digits v1/v2 90/10, two replicas behind nginx, CPU",
        "target": {
            "url": "http://127.0.0.1:8000",
            "protocol": "kserve-http",
            "model": "digits",
            "inputs": {"source": "dataset", "dataset": "digits"},
        },
        "stack": {"local": True, "replicas": 2, "device": "cpu"},
        "load": {"mode": "open", "arrival": "poisson", "rate": RATE, "duration": f"{duration:g}s"},
        "split": [
            {"model": "digits", "version": 1, "weight": 90},
            {"model": "digits", "version": 2, "weight": 10},
        ],
        "slo": {"p99_ms": 250, "error_rate": 0.01},
        "workers": 1,
        "validity": {"min_duration_s": min(10.0, duration), "min_requests": int(duration * 30)},
    }
    return validate_scenario(data, "the main job's default scenario")


def sweep_scenario(scenario: Scenario, step_s: float) -> Scenario:
    """The same stack and traffic, with validity rules a short step can meet."""
    data = scenario.model_dump(mode="json")
    data["name"] = "quickstart-sweep"
    data["load"]["duration"] = f"{step_s:g}s"
    data["load"]["warmup"] = "1s"
    # a demo sweep on a small machine that also runs the stack: the generator's limits are
    # loosened (50 ms lag, 95 % CPU) so one noisy second does not leave a step unmeasured
    data["loadgen"] = {"max_lag_p99_ms": 50, "late_ms": 50, "max_cpu_percent": 95, "drain": "3s"}
    data["validity"] = {
        "min_duration_s": max(2.0, step_s - 3),
        "min_requests": int(SWEEP_LOADS[0] * (step_s - 3) * 0.5),
        "stability": {"windows": 2, "window_s": "2s", "tolerance": 0.25},
    }
    return validate_scenario(data, "the main job's sweep scenario")


@dataclass(frozen=True, slots=True)
class MainJobOutcome:
    run_dir: Path
    sweep_dir: Path
    report_html: Path
    report_md: Path
    run_summary: dict[str, Any]
    verdict: Comparison
    plan: CapacityPlan
    recommendation: Recommendation
    exit_code: int
    wall_s: float
    summary_lines: tuple[str, ...]


def _stage(on_stage: Callable[[str], None] | None, text: str) -> None:
    log.info("%s", text)
    if on_stage is not None:
        on_stage(text)


def run_main_job(
    out: Path = Path("results"),
    reports: Path = Path("reports"),
    *,
    scale: float = 1.0,
    progress: bool = True,
    on_stage: Callable[[str], None] | None = None,
) -> MainJobOutcome:
    """Run the A/B run, its verdict, the sweep, the plan and the report (see the module)."""
    started = time.monotonic()
    scenario = default_scenario(scale)
    _stage(on_stage, f"1/4 A/B run: {RATE:g} req/s for {scenario.load.duration:g} s, "
           "digits v1/v2 90/10 on two replicas behind nginx")  # fmt: skip
    run = run_scenario(scenario, out, show_progress=progress)
    _stage(on_stage, "2/4 A/B verdict: digits/1 vs digits/2")
    verdict = compare_runs(run.run_dir)
    step_s = max(5.0, STEP_S * scale)
    loads = ", ".join(f"{x:g}" for x in SWEEP_LOADS)
    _stage(on_stage, f"3/4 sweep: {loads} req/s, {step_s:g} s each; plan for "
           f"{RATE * PEAK_FACTOR:g} req/s at peak; HPA simulation")  # fmt: skip
    swept = sweep_scenario(scenario, step_s)
    settings = sweep_settings(
        swept,
        start=SWEEP_LOADS[0],
        max_load=SWEEP_LOADS[-1],
        max_steps=len(SWEEP_LOADS) + 2,
        step_duration_s=step_s,
        max_step_duration_s=2 * step_s,  # an unsettled step is re-run once, twice as long
    )
    sweep = run_sweep(swept, out, settings, progress=progress)
    plan, rec = plan_sweep(sweep, swept, RATE * PEAK_FACTOR, PlanOptions(headroom=0.2))
    _stage(on_stage, "4/4 report")
    report = with_sections(
        build_report(sweep.run_dir),
        *build_report(run.run_dir, compare=compare_runs).sections,
    )
    report = dataclasses.replace(
        report,
        report_id=f"main-{run.run_dir.name}",
        title=f"Serving Harness main job: {run.run_dir.name}",
    )
    html, md, _ = write_report(report, reports / report.report_id)
    summary = dict(run.summary)
    slo_ok = bool(summary["slo"]["passed"])
    exit_code = run.exit_code if run.exit_code != 0 else (0 if slo_ok else 1)
    wall = time.monotonic() - started
    lines = _summary_lines(summary, verdict, sweep.meta, rec, html, wall)
    return MainJobOutcome(
        run.run_dir, sweep.run_dir, html, md, summary, verdict, plan, rec, exit_code, wall, lines
    )


def _summary_lines(
    summary: dict[str, Any],
    verdict: Comparison,
    sweep_meta: dict[str, Any],
    rec: Recommendation,
    html: Path,
    wall_s: float,
) -> tuple[str, ...]:
    from harness.report.runs import headline

    arms = []
    for name, ep in sorted(summary["endpoints"].items()):
        acc = ep.get("accuracy")
        acc_s = "" if acc is None else f", accuracy {acc:.3f}"
        arms.append(f"{name}: p99 {ep['latency_ms']['p99']:.2f} ms{acc_s}")
    best = sweep_meta.get("best_throughput_rps")
    best_s = "none" if best is None else f"{best:.0f} req/s"
    return (
        f"run: {headline(summary)}",
        f"arms: {'; '.join(arms)}",
        f"A/B ({verdict.arm_b} vs {verdict.arm_a}): {verdict.verdict}. {verdict.summary}",
        f"sweep: highest load meeting the SLO {best_s} ({sweep_meta['search']['reason']})",
        f"plan: {rec.sentence}",
        f"report: {html}",
        f"done in {wall_s:.0f} s",
    )

"""The sweep driver: step a scenario's load, one ordinary run per step, find the highest load
that meets the SLO, write the sweep run directory.

Steps the load — users for a closed loop, the arrival rate for an open one — with
`harness.analysis.capacity.sweep_search` (grow geometrically, then bisect). Each step is a complete
run under `<sweep-run>/steps/`, made by a run function (the load engine's `run_scenario` by
default; anything with its signature, e.g. a stub in tests). The local stack, when the
scenario asks for one, is started once and kept warm across steps. Writes

    <out>/<run-id>/run.json      kind "sweep", status, the resolved scenario
                   events.jsonl  "sweep_step" / "sweep_step_end" per step
                   sweep.parquet, sweep.json   (harness.results.sweeps)

and fits the curves over the measured steps. The CLI parses and prints.

A step is judged on the target only when it was measured (`harness.sweep.steps`: one step,
run, read back and classified). `classify` says when it was not:
the run did not complete, the load generator was the limit (unhealthy: CPU, schedule lag),
or the step gathered too little data for the validity rules. Too little data or no stable
stretch: the step is run again at twice the length, up to `--max-step-duration` (as
perf_analyzer extends its windows). The generator as the limit: the step is run again with
more Locust workers, up to `--max-workers`; past that the sweep stops and says so.
A step length the validity rules can never accept is refused before anything starts.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.analysis.capacity.sweep_search import (
    SearchResult,
    SweepCriteria,
    analyse_sweep,
    search_max_load,
)
from harness.config import Scenario, validate_scenario
from harness.errors import ConfigError
from harness.load.api import RunOutcome
from harness.results.store import RunWriter
from harness.results.sweeps import write_sweep
from harness.sweep.steps import RunStep, StepRunner, SweepInterrupted, step_scenario

__all__ = [
    "UNMEASURED_NOTE",
    "RunStep",
    "SweepInterrupted",
    "SweepOutcome",
    "SweepSettings",
    "run_sweep",
    "step_scenario",
    "sweep_settings",
]

log = logging.getLogger(__name__)

UNMEASURED_NOTE = (
    "the target was not measured at load {loads} (see the step table for why): the highest "
    "passing load is a floor set by the measurement, not the target's limit; re-run with more "
    "workers (--max-workers), longer steps (--max-step-duration) or on a quieter host"
)


@dataclass(frozen=True, slots=True)
class SweepSettings:
    """How to search: criteria, first load, resolution, growth, budget, step length."""

    criteria: SweepCriteria
    start: float
    resolution: float
    growth: float = 2.0
    max_load: float | None = None
    max_steps: int = 16
    integer: bool = False  # closed loop: whole users
    step_duration_s: float | None = None  # None: the scenario's own duration
    max_step_duration_s: float | None = None  # re-run unstable/short steps longer, up to this
    max_workers: int = 1  # add Locust workers when the generator is the limit, up to this

    def search_options(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "resolution": self.resolution,
            "growth": self.growth,
            "max_load": self.max_load,
            "max_steps": self.max_steps,
            "integer": self.integer,
        }


def sweep_settings(
    scenario: Scenario,
    *,
    start: float | None = None,
    resolution: float | None = None,
    growth: float = 2.0,
    max_load: float | None = None,
    max_steps: int = 16,
    slo_p99_ms: float | None = None,
    max_error_rate: float | None = None,
    min_throughput_ratio: float = 0.95,
    allow_unstable: bool = False,
    step_duration_s: float | None = None,
    max_step_duration_s: float | None = None,
    max_workers: int | None = None,
) -> SweepSettings:
    """Settings with the defaults a user expects: the scenario's SLO and level, 1 user or
    5 % of the start rate (at least 1 req/s) as resolution, up to half the machine's cores
    as Locust workers (the other half for a local target). Raises ConfigError, also for a
    step length the validity rules could never accept."""
    p99 = slo_p99_ms or scenario.slo.p99_ms
    if p99 is None:
        raise ConfigError(
            f"{scenario.name}: a sweep needs a p99 SLO (slo.p99_ms or --slo-p99-ms)"
        )
    if max_error_rate is None:
        max_error_rate = scenario.slo.error_rate if scenario.slo.error_rate is not None else 0.01
    closed = scenario.load.mode == "closed"
    criteria = SweepCriteria(
        p99_ms=p99,
        max_error_rate=max_error_rate,
        min_throughput_ratio=None if closed else min_throughput_ratio,
        require_stable=not allow_unstable,
    )
    level = scenario.load.level()
    start = start or float(level or (1.0 if closed else 10.0))
    resolution = resolution or (1.0 if closed else max(1.0, 0.05 * start))
    if growth <= 1 or start <= 0 or resolution <= 0:
        raise ConfigError("--growth must be > 1, --start and --resolution > 0")
    step_s = step_duration_s or scenario.total_duration_s()
    check_step_length(scenario, step_s, start, allow_unstable)
    if max_workers is None:
        max_workers = max(scenario.workers, (os.cpu_count() or 2) // 2)
    if max_workers < scenario.workers:
        raise ConfigError(
            f"--max-workers {max_workers} is below the scenario's workers: {scenario.workers}"
        )
    return SweepSettings(
        criteria=criteria,
        start=start,
        resolution=resolution,
        growth=growth,
        max_load=max_load,
        max_steps=max_steps,
        integer=closed,
        step_duration_s=step_duration_s,
        max_step_duration_s=max_step_duration_s,
        max_workers=max_workers,
    )


def check_step_length(
    scenario: Scenario, step_s: float, start: float, allow_unstable: bool
) -> None:
    """Refuse, with the arithmetic, a step length the validity rules can never accept."""
    validity, load = scenario.validity, scenario.load
    stability = validity.stability
    window_s = max(1, round(stability.window_s))
    auto = load.warmup == "auto"
    warmup_s = float(window_s if auto else load.warmup)  # auto: allow one window for it
    after = "after warm-up (auto-detected: allow one window)" if auto else (
        f"after the {warmup_s:g} s warm-up"
    )
    stable_s = 0.0 if allow_unstable else float(stability.windows * window_s)
    need_s = max(stable_s, validity.min_duration_s)
    if step_s < warmup_s + need_s:
        what = (
            f"stability needs {stability.windows} x {window_s} s"
            if stable_s >= validity.min_duration_s
            else f"min_duration_s needs {validity.min_duration_s:g} s"
        )
        hint = "" if allow_unstable or stable_s < validity.min_duration_s else (
            " or --allow-unstable"
        )
        raise ConfigError(
            f"a {step_s:g} s step can never be valid: {what} {after}: use --step-duration "
            f">= {math.ceil(warmup_s + need_s)}s{hint}"
        )
    if load.mode == "open" and validity.min_requests > 0:
        request_s = validity.min_requests / start
        if step_s < warmup_s + request_s:
            raise ConfigError(
                f"a {step_s:g} s step at the start rate {start:g} req/s can never be valid: "
                f"min_requests {validity.min_requests} needs {request_s:g} s {after}: use "
                f"--step-duration >= {math.ceil(warmup_s + request_s)}s or a higher --start"
            )


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    run_dir: Path
    mode: str  # "closed" | "open"
    result: SearchResult
    meta: dict[str, Any]  # what sweep.json holds
    unmeasured_loads: tuple[float, ...] = field(default=())

    @property
    def exit_code(self) -> int:
        """0 when a passing load was found, 1 when even the starting load missed the SLO."""
        return 0 if self.result.best is not None else 1


@contextlib.contextmanager
def shared_stack(scenario: Scenario, run_dir: Path) -> Iterator[Scenario]:
    """Start the scenario's local stack once for the whole sweep (warm across steps).

    Yields the scenario the steps run: without `stack`, aimed at the running stack.
    """
    if scenario.stack is None or not scenario.stack.local:
        yield scenario
        return
    from harness.load.runner import target_for

    with target_for(scenario, run_dir) as target:
        data = scenario.model_dump(mode="json")
        data["stack"] = None
        data["target"]["url"] = target.url
        inputs = data["target"].get("inputs") or {}
        name = str(inputs.get("dataset") or "")
        repo = target.model_repository
        if repo is not None and inputs.get("source") == "dataset" and not name.endswith(".npz"):
            inputs["dataset"] = str(repo / name / "test_set.npz")  # the stack's own test set
        log.info("sweep: local stack up at %s for every step", target.url)
        yield validate_scenario(data, f"{scenario.name} (sweep on the shared stack)")


def engine_step(progress: bool) -> RunStep:
    """The default run function: the load engine (Locust in child processes)."""

    def run(scenario: Scenario, steps_dir: Path, run_id: str) -> RunOutcome:
        from harness.load.api import run_scenario

        return run_scenario(scenario, steps_dir, run_id=run_id, show_progress=progress)

    return run


def run_sweep(
    scenario: Scenario,
    out_dir: Path,
    settings: SweepSettings,
    *,
    progress: bool = True,
    run_step: RunStep | None = None,
) -> SweepOutcome:
    """Search the highest load meeting `settings.criteria`; write and return the sweep run.

    Interrupted (KeyboardInterrupt, SweepInterrupted): the run is marked incomplete, the
    steps so far stay under steps/, and the interrupt propagates.
    """
    mode = scenario.load.mode
    writer = RunWriter(
        out_dir, scenario.name, kind="sweep", scenario_config=scenario.model_dump(mode="json")
    )
    writer.start()
    try:
        with shared_stack(scenario, writer.run_dir) as base:
            measure = StepRunner(
                base,
                writer,
                run_step or engine_step(progress),
                settings.criteria,
                step_s=settings.step_duration_s,
                max_step_s=settings.max_step_duration_s,
                max_workers=settings.max_workers,
            )
            result = search_max_load(
                measure, criteria=settings.criteria, **settings.search_options()
            )
    except KeyboardInterrupt as exc:
        reason = str(exc) or "interrupted"
        writer.finish("incomplete", reason=f"{reason}; the steps so far are in steps/")
        raise
    except BaseException as exc:
        writer.finish("failed", reason=f"{type(exc).__name__}: {exc}")
        raise
    meta = sweep_meta(writer.run_id, result, mode, settings, measure.unmeasured, scenario)
    write_sweep(writer.run_dir, step_rows(result, mode), meta)
    writer.finish("complete", reason=result.reason)
    return SweepOutcome(writer.run_dir, mode, result, meta, tuple(measure.unmeasured))


def step_rows(result: SearchResult, mode: str) -> list[dict[str, Any]]:
    """One row of sweep.parquet per step, in the order the steps ran."""
    return [
        {
            "step": i,
            "mode": mode,
            "load": s.load,
            "throughput_rps": s.throughput,
            "p50_ms": s.p50_ms,
            "p99_ms": s.p99_ms,
            "mean_ms": s.mean_ms,
            "error_rate": s.error_rate,
            "stable": s.stable,
            "passed": ok,
            "run_id": s.run_id or "",
            "verdict": verdict,
            "unmeasured_reason": s.unmeasured or "",
            "concurrency": s.concurrency if s.concurrency is not None else math.nan,
            "workers": s.workers if s.workers is not None else 0,
            "concurrency_from": s.concurrency_from if s.concurrency is not None else "",
        }
        for i, (s, ok, verdict) in enumerate(
            zip(result.steps, result.passed, result.verdicts, strict=True)
        )
    ]


def sweep_meta(
    run_id: str,
    result: SearchResult,
    mode: str,
    settings: SweepSettings,
    unmeasured_loads: list[float],
    scenario: Scenario | None = None,
) -> dict[str, Any]:
    """What sweep.json holds: criteria, the search, its outcome and the curve fits."""
    criteria = settings.criteria
    analysis = analyse_sweep(result.steps, mode, criteria)
    notes = []
    if scenario is not None and scenario.load.thinks():
        notes.append(
            "closed loop with think time: users are not the server's concurrency; the curves "
            "use the requests in flight at the server (throughput x mean latency, Little's law)"
            if analysis["concurrency"] == "server"
            else "closed loop with think time, and the server's concurrency is unknown: the "
            "USL below is in users, which says little about how the server scales"
        )
    return {
        "schema_version": 1,
        "run_id": run_id,
        "mode": mode,
        "criteria": {
            "p99_ms": criteria.p99_ms,
            "max_error_rate": criteria.max_error_rate,
            "min_throughput_ratio": criteria.min_throughput_ratio,
            "require_stable": criteria.require_stable,
        },
        "search": {
            **settings.search_options(),
            "max_workers": settings.max_workers,
            "steps": result.n_steps,
            "linear_steps": result.linear_steps,
            "reason": result.reason,
            "advice": result.advice,
        },
        "best_load": result.best_load,
        "best_throughput_rps": None if result.best is None else result.best.throughput,
        "first_failing_load": None if result.first_failure is None else result.first_failure.load,
        "unmeasured_loads": list(unmeasured_loads),
        "unmeasured": [
            {"load": s.load, "run_id": s.run_id, "reason": s.unmeasured}
            for s in result.steps
            if not s.measured
        ],
        "notes": notes,
        **analysis,
    }


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

and fits the Universal Scalability Law on closed-loop sweeps. The CLI parses and prints.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.analysis.capacity.sweep_search import (
    SearchResult,
    StepResult,
    SweepCriteria,
    analyse_sweep,
    search_max_load,
)
from harness.config import Scenario, validate_scenario
from harness.errors import ConfigError
from harness.load.api import RunOutcome
from harness.results.schema import Summary
from harness.results.store import RunWriter
from harness.results.sweeps import write_sweep

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

RunStep = Callable[[Scenario, Path, str], RunOutcome]
"""run(step scenario, steps directory, run id) -> the step's outcome (`run_scenario`'s)."""

EXIT_INTERRUPTED = 130  # what the load engine's run_scenario returns when interrupted

UNMEASURED_NOTE = (
    "the load generator was unhealthy in every second at load {loads} (schedule lag / CPU), "
    "so those steps measured nothing and counted as failures: the highest passing load is a "
    "floor set by the generator, not the target's limit; re-run with more workers "
    "(`workers: N`) or on a quieter host"
)


class SweepInterrupted(KeyboardInterrupt):
    """A step was interrupted by a signal: stop the sweep (the CLI exits 130)."""


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
    max_step_duration_s: float | None = None  # re-run unstable steps longer, up to this

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
) -> SweepSettings:
    """Settings with the defaults a user expects: the scenario's SLO and level, 1 user or
    5 % of the start rate (at least 1 req/s) as resolution. Raises ConfigError."""
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


def step_scenario(scenario: Scenario, load: float, duration_s: float | None) -> Scenario:
    """The scenario held at one load level (stages dropped), validated like a file."""
    if scenario.load.is_trace():
        raise ConfigError(
            f"{scenario.name}: sweep a constant/poisson or closed load, not a trace replay"
        )
    held = scenario.load.held_at(load, duration_s or scenario.total_duration_s())
    data = scenario.model_dump(mode="json")
    data["load"] = held.model_dump(mode="json")
    return validate_scenario(data, f"{scenario.name} (sweep step at load {load:g})")


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


def step_from_summary(load: float, summary: Summary, run_id: str) -> StepResult:
    lat = summary["latency_ms"]
    requests, failures = summary["requests"], summary["failures"]
    stable = summary["validity"]["stable"] and summary["status"] == "complete"

    def num(v: float | None) -> float:
        return float(v) if v is not None else float("nan")

    return StepResult(
        load=load,
        throughput=num(summary["throughput_rps"]),
        p99_ms=num(lat["p99"]),
        error_rate=failures / requests if requests else 1.0,
        stable=stable,
        mean_ms=num(lat["mean"]),
        p50_ms=num(lat["p50"]),
        run_id=run_id,
    )


def unmeasured(summary: Summary) -> bool:
    """Requests were sent but no second was measured: the load generator, not the target,
    failed (CPU-starved, behind its schedule). Such a step says nothing about the SLO."""
    loadgen = summary.get("loadgen")  # only runs of the load engine have this section
    return (
        summary["requests"] > 0
        and summary["validity"]["measured_s"] == 0
        and loadgen is not None
        and bool(loadgen["unhealthy_seconds"])
    )


class StepRunner:
    """`measure(load)` for the search: one run per step, under `<sweep>/steps/`.

    An unstable step is re-run at twice the duration until it is stable or the next run
    would exceed the cap on time per step.
    """

    def __init__(
        self, scenario: Scenario, writer: RunWriter, settings: SweepSettings, run_step: RunStep
    ) -> None:
        self.scenario = scenario
        self.writer = writer
        self.run_step = run_step
        self.base_s = settings.step_duration_s or scenario.total_duration_s()
        self.cap_s = settings.max_step_duration_s or self.base_s
        self.count = 0
        self.t0 = time.monotonic()
        self.unmeasured: list[float] = []
        """Loads at which the load generator was unhealthy in every second (nothing measured)."""
        self._last_unmeasured = False

    def __call__(self, load: float) -> StepResult:
        seconds = self.base_s
        step = self._attempt(load, seconds)
        while not step.stable and seconds * 2 <= self.cap_s:
            seconds *= 2
            log.info("step at load %g not stable: again for %gs", load, seconds)
            step = self._attempt(load, seconds)
        if self._last_unmeasured:  # judged on no data: say so (sweep.json, plan notes)
            self.unmeasured.append(load)
            log.warning("load %g: the load generator was unhealthy in every second", load)
        return step

    def _attempt(self, load: float, seconds: float) -> StepResult:
        k, self.count = self.count, self.count + 1
        run_id = f"step{k:02d}-load{load:g}"
        self._event("sweep_step", index=k, load=load, run_id=run_id, duration_s=seconds)
        outcome = self.run_step(
            step_scenario(self.scenario, load, seconds), self.writer.run_dir / "steps", run_id
        )
        if outcome.exit_code == EXIT_INTERRUPTED:
            # Ctrl-C/SIGTERM reached the step's load engine, which kept what it measured and
            # returned: the user asked the sweep to stop, not to judge a truncated step.
            raise SweepInterrupted(f"interrupted during step {k} (load {load:g}, {run_id})")
        step = step_from_summary(load, outcome.summary, run_id)
        self._last_unmeasured = unmeasured(outcome.summary)
        self._event(
            "sweep_step_end",
            index=k,
            load=load,
            p99_ms=step.p99_ms,
            throughput_rps=step.throughput,
            stable=step.stable,
        )
        return step

    def _event(self, kind: str, **fields: Any) -> None:
        self.writer.event(kind, ts=time.monotonic() - self.t0, **fields)


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
            measure = StepRunner(base, writer, settings, run_step or engine_step(progress))
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
    meta = sweep_meta(writer.run_id, result, mode, settings, measure.unmeasured)
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
        }
        for i, (s, ok) in enumerate(zip(result.steps, result.passed, strict=True))
    ]


def sweep_meta(
    run_id: str,
    result: SearchResult,
    mode: str,
    settings: SweepSettings,
    unmeasured_loads: list[float],
) -> dict[str, Any]:
    """What sweep.json holds: criteria, the search, its outcome and the curve fits."""
    criteria = settings.criteria
    return {
        "schema_version": 1,
        "run_id": run_id,
        "mode": mode,
        "criteria": {
            "p99_ms": criteria.p99_ms,
            "max_error_rate": criteria.max_error_rate,
            "min_throughput_ratio": criteria.min_throughput_ratio,
        },
        "search": {
            **settings.search_options(),
            "steps": result.n_steps,
            "linear_steps": result.linear_steps,
            "reason": result.reason,
        },
        "best_load": result.best_load,
        "best_throughput_rps": None if result.best is None else result.best.throughput,
        "first_failing_load": None if result.first_failure is None else result.first_failure.load,
        "unmeasured_loads": list(unmeasured_loads),
        **analyse_sweep(result.steps, mode, criteria),
    }

"""`harness sweep SCENARIO.yaml`: the highest load that meets the SLO, in few steps.

Steps the scenario's load — users for a closed loop, the arrival rate for an open one — with
`harness.analysis.sweep_search` (grow geometrically, then bisect), running each step as an
ordinary run through the load engine (`harness.load.api.run_scenario`), so every step has
its own complete run directory under `<sweep-run>/steps/`. Writes

    <out>/<run-id>/run.json      kind "sweep", status, the resolved scenario
                   events.jsonl  one "sweep_step" event per step
                   sweep.parquet one row per step (SWEEP_COLUMNS)
                   sweep.json    criteria, search outcome, steps vs a linear sweep, USL fit

and fits the Universal Scalability Law on closed-loop sweeps. `harness plan --from` reads
the directory back with `read_sweep`. Exit 0 when a passing load was found, 1 when even the
starting load misses the SLO.
The file format and the printed tables live in `harness.cli.sweep_files`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console

from harness.analysis.sweep_search import (
    SearchResult,
    StepResult,
    SweepCriteria,
    analyse_sweep,
    search_max_load,
)
from harness.cli.scenario_args import add_scenario_arguments
from harness.cli.sweep_files import (
    UNMEASURED_NOTE,
    print_curves,
    print_result,
    sweep_table,
)
from harness.config import load_scenario, validate_scenario
from harness.config.durations import parse_duration
from harness.config.scenario import ClosedLoad, Scenario
from harness.errors import ConfigError
from harness.results.store import (
    RunWriter,
    atomic_write_json,
    atomic_write_table,
    read_json,
)

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="find the highest load meeting the SLO (grow + bisect)")
    add_scenario_arguments(p, "scenario YAML (open or closed load)")
    p.add_argument("--start", type=float, help="first load (default: the scenario's users/rate)")
    p.add_argument(
        "--resolution",
        type=float,
        help="stop bisecting at this load gap "
        "(default: 1 user / 5 %% of the start rate, at least 1 req/s)",
    )
    p.add_argument("--growth", type=float, default=2.0, help="geometric factor (default 2)")
    p.add_argument("--max-load", type=float, help="never step above this load")
    p.add_argument("--max-steps", type=int, default=16, help="step budget (default 16)")
    p.add_argument(
        "--step-duration", help="duration of each step, e.g. 30s (default: the scenario's duration)"
    )
    p.add_argument(
        "--max-step-duration",
        help="re-run an unstable step at twice the duration up to this cap, e.g. 2m "
        "(default: no re-runs)",
    )
    p.add_argument("--slo-p99-ms", type=float, help="p99 SLO (default: the scenario's slo)")
    p.add_argument("--max-error-rate", type=float, help="default: scenario slo or 0.01")
    p.add_argument(
        "--min-throughput-ratio",
        type=float,
        default=0.95,
        help="open loop: achieved/offered at least this (default 0.95)",
    )
    p.add_argument(
        "--allow-unstable",
        action="store_true",
        help="judge a step by its numbers even if it never became stable (exploration only)",
    )
    p.add_argument("--no-progress", action="store_true", help="no live progress display")


def step_scenario(scenario: Scenario, load: float, duration_s: float | None) -> Scenario:
    """The scenario held at one load level (stages dropped), validated like a file."""
    data = scenario.model_dump(mode="json")
    ld = data["load"]
    ld["stages"] = []
    ld["duration"] = duration_s if duration_s is not None else scenario.total_duration_s()
    if isinstance(scenario.load, ClosedLoad):
        ld["users"] = int(load)
        ld["spawn_rate"] = max(float(load), float(ld.get("spawn_rate") or 0.0))
    else:
        if scenario.load.arrival == "trace":
            raise ConfigError(
                f"{scenario.name}: sweep a constant/poisson or closed load, not a trace replay"
            )
        ld["rate"] = float(load)
    return validate_scenario(data, f"{scenario.name} (sweep step at load {load:g})")


@contextlib.contextmanager
def shared_stack(scenario: Scenario, run_dir: Path) -> Iterator[Scenario]:
    """Start the scenario's local stack once for the whole sweep (warm across steps).

    Yields the scenario the steps run: without `stack`, aimed at the running stack's URL.
    """
    cfg = scenario.stack
    if cfg is None or not cfg.local:
        yield scenario
        return
    from harness.stack.local import LocalStack

    repo = Path(cfg.model_repository) if cfg.model_repository else None
    stack = LocalStack(
        replicas=cfg.replicas, model_repository=repo, device=cfg.device, workdir=run_dir / "stack"
    )
    with stack:
        grpc = scenario.target.protocol == "kserve-grpc"
        data = scenario.model_dump(mode="json")
        data["stack"] = None
        data["target"]["url"] = stack.grpc_url if grpc else stack.url
        inputs = data["target"].get("inputs") or {}
        name = str(inputs.get("dataset") or "")
        if repo is not None and inputs.get("source") == "dataset" and not name.endswith(".npz"):
            inputs["dataset"] = str(repo / name / "test_set.npz")  # the stack's own test set
        log.info("sweep: local stack up at %s for every step", data["target"]["url"])
        yield validate_scenario(data, f"{scenario.name} (sweep on the shared stack)")


def step_from_summary(load: float, summary: dict[str, Any], run_id: str) -> StepResult:
    lat = summary.get("latency_ms") or {}
    requests = int(summary.get("requests") or 0)
    failures = int(summary.get("failures") or 0)
    stable = bool((summary.get("validity") or {}).get("stable", False))
    stable = stable and summary.get("status") == "complete"

    def num(v: Any) -> float:
        return float(v) if v is not None else float("nan")

    return StepResult(
        load=load,
        throughput=num(summary.get("throughput_rps")),
        p99_ms=num(lat.get("p99")),
        error_rate=failures / requests if requests else 1.0,
        stable=stable,
        mean_ms=num(lat.get("mean")),
        p50_ms=num(lat.get("p50")),
        run_id=run_id,
    )


EXIT_INTERRUPTED = 130  # what the load engine's run_scenario returns when interrupted


class SweepInterrupted(KeyboardInterrupt):
    """A step was interrupted by a signal: stop the sweep (the CLI exits 130)."""


class StepRunner:
    """`measure(load)` for the search: one ordinary run per step, under `<sweep>/steps/`.

    An unstable step is re-run at twice the duration until it is stable or the next run
    would exceed `max_duration_s` (the cap on time per step).
    """

    def __init__(
        self,
        scenario: Scenario,
        writer: RunWriter,
        duration_s: float | None,
        max_duration_s: float | None,
        progress: bool,
    ) -> None:
        self.scenario = scenario
        self.writer = writer
        self.base_s = duration_s if duration_s is not None else scenario.total_duration_s()
        self.cap_s = max_duration_s if max_duration_s is not None else self.base_s
        self.progress = progress
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
        from harness.load.api import run_scenario  # the load engine (Locust in subprocesses)

        k, self.count = self.count, self.count + 1
        run_id = f"step{k:02d}-load{load:g}"
        steps_dir = self.writer.run_dir / "steps"
        self._event("sweep_step", index=k, load=load, run_id=run_id, duration_s=seconds)
        outcome = run_scenario(
            step_scenario(self.scenario, load, seconds),
            steps_dir,
            run_id=run_id,
            show_progress=self.progress,
        )
        if getattr(outcome, "exit_code", 0) == EXIT_INTERRUPTED:
            # Ctrl-C/SIGTERM reached the step's load engine, which kept what it measured and
            # returned: the user asked the sweep to stop, not to judge a truncated step.
            raise SweepInterrupted(f"interrupted during step {k} (load {load:g}, {run_id})")
        run_dir = Path(getattr(outcome, "run_dir", None) or steps_dir / run_id)
        summary = read_json(run_dir / "summary.json")
        step = step_from_summary(load, summary, run_id)
        self._last_unmeasured = unmeasured(summary)
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


def unmeasured(summary: dict[str, Any]) -> bool:
    """Requests were sent but no second was measured: the load generator, not the target,
    failed (CPU-starved, behind its schedule). Such a step says nothing about the SLO."""
    validity = summary.get("validity") or {}
    loadgen = summary.get("loadgen") or {}
    return (
        int(summary.get("requests") or 0) > 0
        and validity.get("measured_s") == 0
        and bool(loadgen.get("unhealthy_seconds"))
    )


def criteria_from(args: argparse.Namespace, scenario: Scenario) -> SweepCriteria:
    p99 = args.slo_p99_ms or scenario.slo.p99_ms
    if p99 is None:
        raise ConfigError(f"{args.scenario}: a sweep needs a p99 SLO (slo.p99_ms or --slo-p99-ms)")
    err = args.max_error_rate
    if err is None:
        err = scenario.slo.error_rate if scenario.slo.error_rate is not None else 0.01
    closed = isinstance(scenario.load, ClosedLoad)
    return SweepCriteria(
        p99_ms=p99,
        max_error_rate=err,
        min_throughput_ratio=None if closed else args.min_throughput_ratio,
        require_stable=not args.allow_unstable,
    )


def search_options(args: argparse.Namespace, scenario: Scenario) -> dict[str, Any]:
    """--start defaults to the scenario's own level (users / rate), else 1 user / 10 req/s."""
    closed = isinstance(scenario.load, ClosedLoad)
    level = scenario.load.users if closed else getattr(scenario.load, "rate", None)
    start = args.start or float(level or (1.0 if closed else 10.0))
    resolution = args.resolution or (1.0 if closed else max(1.0, 0.05 * start))
    if args.growth <= 1 or start <= 0 or resolution <= 0:
        raise ConfigError("--growth must be > 1, --start and --resolution > 0")
    return {
        "start": start,
        "resolution": resolution,
        "growth": args.growth,
        "max_load": args.max_load,
        "max_steps": args.max_steps,
        "integer": closed,
    }


def run(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario, overrides=args.overrides)
    closed = isinstance(scenario.load, ClosedLoad)
    mode = "closed" if closed else "open"
    criteria = criteria_from(args, scenario)
    opts = search_options(args, scenario)
    try:
        duration = parse_duration(args.step_duration) if args.step_duration else None
        max_duration = parse_duration(args.max_step_duration) if args.max_step_duration else None
    except ValueError as exc:
        raise ConfigError(f"--step-duration/--max-step-duration: {exc}") from exc
    writer = RunWriter(
        args.out, scenario.name, kind="sweep", scenario_config=scenario.model_dump(mode="json")
    )
    writer.start()
    try:
        with shared_stack(scenario, writer.run_dir) as base:
            measure = StepRunner(base, writer, duration, max_duration, not args.no_progress)
            result = search_max_load(measure, criteria=criteria, **opts)
    except KeyboardInterrupt as exc:
        reason = str(exc) or "interrupted"
        writer.finish("incomplete", reason=f"{reason}; the steps so far are in steps/")
        raise
    except BaseException as exc:
        writer.finish("failed", reason=f"{type(exc).__name__}: {exc}")
        raise
    meta = write_results(writer, result, mode, criteria, opts, measure.unmeasured)
    console = Console()
    print_result(console, writer.run_dir, result, mode)
    print_curves(console, meta)
    if measure.unmeasured:
        loads = ", ".join(f"{x:g}" for x in measure.unmeasured)
        console.print(f"[yellow]warning:[/] {UNMEASURED_NOTE.format(loads=loads)}")
    return 0 if result.best is not None else 1


def write_results(
    writer: RunWriter,
    result: SearchResult,
    mode: str,
    criteria: SweepCriteria,
    opts: dict[str, Any],
    unmeasured_loads: list[float] | None = None,
) -> dict[str, Any]:
    atomic_write_table(writer.run_dir / "sweep.parquet", sweep_table(result, mode))
    meta = {
        "schema_version": 1,
        "run_id": writer.run_id,
        "mode": mode,
        "criteria": {
            "p99_ms": criteria.p99_ms,
            "max_error_rate": criteria.max_error_rate,
            "min_throughput_ratio": criteria.min_throughput_ratio,
        },
        "search": {
            **opts,
            "steps": result.n_steps,
            "linear_steps": result.linear_steps,
            "reason": result.reason,
        },
        "best_load": result.best_load,
        "best_throughput_rps": None if result.best is None else result.best.throughput,
        "first_failing_load": None if result.first_failure is None else result.first_failure.load,
        "unmeasured_loads": list(unmeasured_loads or []),
        **analyse_sweep(result.steps, mode, criteria),
    }
    atomic_write_json(writer.run_dir / "sweep.json", meta)
    writer.finish("complete", reason=result.reason)
    return meta

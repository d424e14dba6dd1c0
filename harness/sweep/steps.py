"""One sweep step: the scenario held at a load, run, read back and classified.

`StepRunner` is the search's `measure(load)`: it runs a step (through the run function the
driver was given), turns its summary into a `StepResult` with the server's concurrency
(Little's law), and says whether the target was measured there at all (`classify`). A step
the generator limited is re-run with more Locust workers; an unstable-within-the-SLO or
short-of-data one at twice the length, within the caps the driver passes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from harness.analysis.capacity.sweep_search import StepResult, SweepCriteria
from harness.config import Scenario, validate_scenario
from harness.errors import ConfigError, StoreError
from harness.load.api import RunOutcome
from harness.results.schema import Summary
from harness.results.store import RunWriter, load_run

__all__ = [
    "GENERATOR",
    "RunStep",
    "StepRunner",
    "SweepInterrupted",
    "classify",
    "step_from_summary",
    "step_scenario",
]

log = logging.getLogger(__name__)

RunStep = Callable[[Scenario, Path, str], RunOutcome]
"""run(step scenario, steps directory, run id) -> the step's outcome (`run_scenario`'s)."""

EXIT_INTERRUPTED = 130  # what the load engine's run_scenario returns when interrupted

GENERATOR = "the load generator"  # how an unmeasured reason blaming the generator begins



class SweepInterrupted(KeyboardInterrupt):
    """A step was interrupted by a signal: stop the sweep (the CLI exits 130)."""


def step_scenario(
    scenario: Scenario, load: float, duration_s: float | None, workers: int | None = None
) -> Scenario:
    """The scenario held at one load level (stages dropped), validated like a file."""
    if scenario.load.is_trace():
        raise ConfigError(
            f"{scenario.name}: sweep a constant/poisson or closed load, not a trace replay"
        )
    held = scenario.load.held_at(load, duration_s or scenario.total_duration_s())
    data = scenario.model_dump(mode="json")
    data["load"] = held.model_dump(mode="json")
    if workers is not None:
        data["workers"] = workers
    return validate_scenario(data, f"{scenario.name} (sweep step at load {load:g})")


def step_from_summary(
    load: float, summary: Summary, run_id: str, workers: int | None = None
) -> StepResult:
    """The step's numbers; `concurrency` is the server's in-flight requests by Little's law:
    throughput x mean latency from the actual send (what the server saw, without the
    generator's own lateness)."""
    lat = summary["latency_ms"]
    requests, failures = summary["requests"], summary["failures"]
    stable = summary["validity"]["stable"] and summary["status"] == "complete"

    def num(v: float | None) -> float:
        return float(v) if v is not None else float("nan")

    sent_mean = summary["latency_uncorrected_ms"]["mean"]
    x = summary["throughput_rps"]
    return StepResult(
        load=load,
        throughput=num(x),
        p99_ms=num(lat["p99"]),
        error_rate=failures / requests if requests else 1.0,
        stable=stable,
        mean_ms=num(lat["mean"]),
        p50_ms=num(lat["p50"]),
        run_id=run_id,
        concurrency=None if x is None or sent_mean is None else x * sent_mean / 1000.0,
        workers=workers,
        measured_s=float(summary["validity"]["measured_s"]),
    )


INFLIGHT_SECONDS = "reference_server_inflight_seconds_total"
"""The server's own integral of its in-flight count: rate() of it is what the HPA's adapter
rule reads (deploy/k8s/monitoring/prometheus-adapter-rules.yaml)."""


def server_inflight(run_dir: Path, from_s: float, to_s: float) -> float | None:
    """Average requests in flight at the server over [from_s, to_s] (seconds of the run's
    clock), from its in-flight-seconds counter scraped during the step, summed over replicas:
    (counter at the last scrape in the span - at the first) / the time between them. None
    when the target does not export the counter or the span holds under 2 s of scrapes."""
    table = load_run(run_dir).server_metrics
    if table is None:
        return None
    rows = table.filter(pc.equal(table.column("metric"), INFLIGHT_SECONDS)).to_pydict()
    totals: dict[float, float] = {}
    for ts, value in zip(rows["ts"], rows["value"], strict=True):
        if from_s <= ts <= to_s:
            totals[ts] = totals.get(ts, 0.0) + value  # replicas of one tick share its ts
    if len(totals) < 2:
        return None
    first, last = min(totals), max(totals)
    if last - first < 2.0:
        return None
    return (totals[last] - totals[first]) / (last - first)


SHORT_OF_DATA = ("< min_duration_s", "< min_requests", "p99 unbounded", "blocks measured")


def classify(summary: Summary, step: StepResult, criteria: SweepCriteria) -> str | None:
    """Why this step says nothing about the target (None: it was measured).

    The generator is to blame when it was unhealthy in most seconds, or in some and the
    step fails only on what a starved generator causes by itself -- falling behind the
    offered rate, or no stable stretch (its unhealthy seconds cut the blocks apart). A p99
    or error rate over the SLO in the healthy seconds is the target's, whatever else
    happened. Too little data: the validity rules could not judge (too short, too few
    requests, too few stability blocks)."""
    if summary["status"] != "complete":
        return f"the run is {summary['status']}"
    loadgen = summary.get("loadgen")  # only runs of the load engine have this section
    unhealthy = len(loadgen["unhealthy_seconds"]) if loadgen is not None else 0
    if unhealthy:
        total = unhealthy + summary["validity"]["measured_s"]
        why = "; ".join(loadgen["unhealthy_reasons"][:2]) if loadgen else ""
        target_failed = any(f.startswith(("p99", "error rate")) for f in criteria.failures(step))
        if 2 * unhealthy >= total or (not criteria.passes(step) and not target_failed):
            return f"{GENERATOR} was unhealthy in {unhealthy} of {total} s ({why})"
    short = [r for r in summary["validity"]["reasons"] if any(k in r for k in SHORT_OF_DATA)]
    if not criteria.require_stable:  # --allow-unstable: too few stability blocks is no bar
        short = [r for r in short if "blocks measured" not in r]
    if short:
        return "too little data: " + "; ".join(short)
    return None


class StepRunner:
    """`measure(load)` for the search: one run per step, under `<sweep>/steps/`.

    A step whose generator was the limit is re-run with twice the workers (up to
    `max_workers`), and later steps keep that many. An unstable, short-of-data or (with
    no worker left to add) generator-limited step is re-run at twice the duration while
    that stays within the cap on time per step.
    """

    def __init__(
        self,
        scenario: Scenario,
        writer: RunWriter,
        run_step: RunStep,
        criteria: SweepCriteria,
        *,
        step_s: float | None = None,
        max_step_s: float | None = None,
        max_workers: int = 1,
    ) -> None:
        """`step_s`: each step's length (None: the scenario's); `max_step_s`: the cap for
        re-runs at twice the length (None: no re-runs); `max_workers`: the bound on Locust
        workers when the generator is the limit."""
        self.scenario = scenario
        self.writer = writer
        self.run_step = run_step
        self.criteria = criteria
        self.base_s = step_s or scenario.total_duration_s()
        self.cap_s = max_step_s or self.base_s
        self.workers = scenario.workers
        self.max_workers = max(max_workers, scenario.workers)
        self.count = 0
        self.t0 = time.monotonic()
        self.unmeasured: list[float] = []
        """Loads at which the target was not measured (the step table says why)."""

    def __call__(self, load: float) -> StepResult:
        seconds = self.base_s
        step = self._attempt(load, seconds)
        while True:
            if self._generator_limited(step) and self.workers < self.max_workers:
                self.workers = min(self.max_workers, 2 * self.workers)
                log.info("load %g: the generator was the limit; again with %d workers",
                         load, self.workers)
            elif self._worth_longer(step) and seconds * 2 <= self.cap_s:
                # also when the generator was the limit and no worker can be added: a
                # passing hiccup on a busy host leaves enough healthy seconds in a longer step
                seconds *= 2
                log.info("step at load %g not judged (%s): again for %gs",
                         load, step.unmeasured or "not stable", seconds)
            else:
                break
            step = self._attempt(load, seconds)
        if not step.measured:
            self.unmeasured.append(load)
            log.warning("load %g: not measured: %s", load, step.unmeasured)
        return step

    def _worth_longer(self, step: StepResult) -> bool:
        """Unmeasured, or unstable while meeting the SLO on p99 and errors. A step already
        over the SLO stays over it however long it runs (at overload the queue only grows),
        so it is not re-run just to settle."""
        if not step.measured:
            return True
        failures = self.criteria.failures(step)
        return not step.stable and not any(f.startswith(("p99", "error")) for f in failures)

    @staticmethod
    def _generator_limited(step: StepResult) -> bool:
        return step.unmeasured is not None and step.unmeasured.startswith(GENERATOR)

    def _attempt(self, load: float, seconds: float) -> StepResult:
        k, self.count = self.count, self.count + 1
        run_id = f"step{k:02d}-load{load:g}"
        self._event("sweep_step", index=k, load=load, run_id=run_id, duration_s=seconds,
                    workers=self.workers)
        scenario = step_scenario(self.scenario, load, seconds, self.workers)
        outcome = self.run_step(scenario, self.writer.run_dir / "steps", run_id)
        if outcome.exit_code == EXIT_INTERRUPTED:
            # Ctrl-C/SIGTERM reached the step's load engine, which kept what it measured and
            # returned: the user asked the sweep to stop, not to judge a truncated step.
            raise SweepInterrupted(f"interrupted during step {k} (load {load:g}, {run_id})")
        step = step_from_summary(load, outcome.summary, run_id, self.workers)
        step = self._with_server_inflight(step, outcome, seconds)
        why = classify(outcome.summary, step, self.criteria)
        if why is not None and why.startswith(GENERATOR) and self.workers >= self.max_workers:
            achieved = "nothing" if math.isnan(step.throughput) else (
                f"{step.throughput:.0f} req/s"
            )
            why += (
                f": it saturated at load {load:g} ({achieved} achieved) with {self.workers} "
                f"worker{'s' if self.workers > 1 else ''}: add workers (--max-workers, "
                "within the machine's cores) or generate load from more machines"
            )
        step = replace(step, unmeasured=why)
        self._event(
            "sweep_step_end",
            index=k,
            load=load,
            p99_ms=step.p99_ms,
            throughput_rps=step.throughput,
            stable=step.stable,
            unmeasured=why,
        )
        return step

    @staticmethod
    def _with_server_inflight(step: StepResult, outcome: RunOutcome, seconds: float) -> StepResult:
        """The server's own in-flight average over the measured part of the step, when it
        exports one (else Little's law on the latency from the send, as `step_from_summary`
        estimated it): then the fits and the plan count what the HPA's metric counts."""
        validity = outcome.summary["validity"]
        start = float(validity["analysed_from_s"]) + float(validity["warmup_s"] or 0)
        try:
            measured = server_inflight(Path(outcome.run_dir), start, seconds)
        except (StoreError, OSError) as exc:
            log.info("%s: no server in-flight counter read (%s)", outcome.run_dir, exc)
            measured = None
        if measured is None:
            return step
        return replace(step, concurrency=measured, concurrency_from="server counter")

    def _event(self, kind: str, **fields: Any) -> None:
        self.writer.event(kind, ts=time.monotonic() - self.t0, **fields)

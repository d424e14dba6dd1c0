"""From a validated scenario to what the generator does over time: schedules and user counts.

Why separate from `schedule` (pure arrays) and from the Locust plugins: this is the one place
that reads the scenario's load section and turns it into (a) a worker's open-loop arrival
schedule and (b) the closed-loop user count and spawn rate at time t, plus the stage index
for "stage" events. No Locust, no I/O except reading the trace file, so it is tested directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from harness.config import ClosedLoad, OpenLoad, Scenario
from harness.config.shapes import Level, stage_index_at
from harness.loadgen.schedule import (
    RateProfile,
    constant_arrivals,
    constant_profile,
    poisson_arrivals,
    stages_profile,
    trace_arrivals,
)
from harness.traces import load_arrivals

__all__ = ["closed_tick", "offered_total", "rate_profile", "stage_at", "worker_schedule"]


def _open(scenario: Scenario, caller: str) -> OpenLoad:
    """The scenario's load, which `caller` needs to be open (a precondition, not a switch:
    what differs between load kinds is asked of the load itself -- level, is_trace, held_at)."""
    if not isinstance(scenario.load, OpenLoad):
        raise TypeError(f"{caller} needs an open load, not {scenario.load.mode!r}")
    return scenario.load


def _closed(scenario: Scenario, caller: str) -> ClosedLoad:
    if not isinstance(scenario.load, ClosedLoad):
        raise TypeError(f"{caller} needs a closed load, not {scenario.load.mode!r}")
    return scenario.load


def rate_profile(load: OpenLoad) -> RateProfile:
    """The open load's rate over time (stages ramp from the previous level, 0 before the first)."""
    if load.stages:
        return stages_profile([(s.duration, float(s.rate or 0.0), s.ramp) for s in load.stages])
    assert load.rate is not None and load.duration is not None  # validated
    return constant_profile(load.rate, load.duration)


def trace_offsets(load: OpenLoad, trace_path: str | Path) -> np.ndarray:
    """The trace's arrivals, sped up and cut at `load.duration` (scaled time) when given."""
    assert load.trace is not None
    offsets = load_arrivals(trace_path, load.trace.column) / load.trace.speedup
    if load.duration is not None:
        offsets = offsets[offsets < load.duration]
    return offsets


def worker_schedule(
    scenario: Scenario,
    worker: int,
    n_workers: int,
    seed: int,
    trace_path: str | Path | None = None,
) -> Iterator[np.ndarray]:
    """This worker's arrival times (s since the run origin), in sorted chunks."""
    load = _open(scenario, "worker_schedule")
    if load.is_trace():
        if trace_path is None:
            raise ValueError("trace arrival needs the trace path")
        return trace_arrivals(trace_offsets(load, trace_path), 1.0, worker, n_workers)
    profile = rate_profile(load)
    if load.arrival == "poisson":
        return poisson_arrivals(profile, seed, worker, n_workers)
    return constant_arrivals(profile, worker, n_workers)


def offered_total(scenario: Scenario, trace_path: str | Path | None = None) -> float:
    """Requests the schedule asks for over the whole run (expected value for Poisson)."""
    load = _open(scenario, "offered_total")
    if load.is_trace():
        assert trace_path is not None
        return float(trace_offsets(load, trace_path).size)
    return rate_profile(load).total


def run_length_s(scenario: Scenario, trace_path: str | Path | None = None) -> float:
    """Planned length of the load: the duration/stages, or the (scaled) trace's span."""
    if scenario.load.is_trace() and scenario.load.duration is None:
        assert trace_path is not None
        offsets = trace_offsets(_open(scenario, "run_length_s"), trace_path)
        return float(offsets[-1]) + 1e-6 if offsets.size else 0.0
    return scenario.total_duration_s()


def closed_tick(scenario: Scenario, elapsed_s: float) -> tuple[int, float] | None:
    """Closed loop: (users, spawn rate) at `elapsed_s`; None once the load is over."""
    load = _closed(scenario, "closed_tick")
    users = scenario.users_at(max(elapsed_s, 0.0))
    if users is None:
        return None
    spawn = load.spawn_rate
    index = stage_at(scenario, elapsed_s)
    if index is not None and load.stages[index].spawn_rate is not None:
        spawn = load.stages[index].spawn_rate
    return users, float(spawn or max(users, 1))


def stage_at(scenario: Scenario, elapsed_s: float) -> int | None:
    """Index of the stage running at `elapsed_s` (None without stages or outside them)."""
    stages = scenario.load.stages
    if not stages:
        return None
    levels = [Level(s.duration, 0.0, s.ramp) for s in stages]
    return stage_index_at(levels, elapsed_s)


def stages_entered(
    scenario: Scenario, last_noted: int | None, elapsed_s: float
) -> list[tuple[int, float]]:
    """(index, planned start in s) of every stage begun after stage `last_noted` (None: none
    noted yet) up to the one running at `elapsed_s`, in order -- so a stage shorter than the
    interval between two looks is still reported."""
    stage = stage_at(scenario, elapsed_s)
    first = 0 if last_noted is None else last_noted + 1
    if stage is None or stage < first:
        return []
    starts = [0.0]
    for step in scenario.load.stages[:stage]:
        starts.append(starts[-1] + float(step.duration))
    return [(index, starts[index]) for index in range(first, stage + 1)]

"""Search for the highest load that meets the SLO: grow geometrically, then bisect.

Why: every sweep step costs a full measurement (warm-up plus enough windows to be stable), so
a linear sweep at the resolution a planning review wants (say 5 users or 10 requests/s) is
slow. Growing the load geometrically until a step fails brackets the limit in O(log) steps;
bisecting the bracket reaches the resolution in O(log) more. The search reports how many
steps a linear sweep of the same resolution would have needed.

Pure: the caller supplies `measure(load) -> StepResult` (the CLI runs a real load step; tests
use a synthetic system). A step passes when it is stable, its p99 and error rate meet the
SLO and, optionally, the achieved throughput keeps up with the offered load (open loop).

A step can also be *unmeasured*: the caller could not measure the target there (the load
generator was the limit, or the step gathered too little data to judge). Such a step is
neither a pass nor a failure: the search stops on it and says why, and no fit uses it.

The curves are fitted against the server's concurrency (requests in flight at the server,
X x mean latency by Little's law, when the caller measured it), not the user count: with
think time, users are not what the server sees.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.analysis.capacity.curves import (
    LatencyModel,
    USLModel,
    find_knee,
    max_throughput_under_slo,
)
from harness.errors import AnalysisError

__all__ = ["SearchResult", "StepResult", "SweepCriteria", "analyse_sweep", "search_max_load"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StepResult:
    load: float  # users (closed loop) or offered requests/s (open loop)
    throughput: float  # achieved requests/s
    p99_ms: float
    error_rate: float
    stable: bool
    mean_ms: float | None = None
    p50_ms: float | None = None
    run_id: str | None = None
    unmeasured: str | None = None  # why the target was not measured here (None: measured)
    concurrency: float | None = None  # requests in flight at the server (average)
    concurrency_from: str = "little's law"  # or "server counter" (its in-flight seconds)
    workers: int | None = None  # load-generator processes that ran the step
    measured_s: float | None = None  # seconds the step's numbers are over

    @property
    def measured(self) -> bool:
        return self.unmeasured is None

    @property
    def server_concurrency(self) -> float:
        """N for the fits: the server's in-flight requests when known, else the load."""
        c = self.concurrency
        return float(c) if c is not None and math.isfinite(c) and c > 0 else self.load


@dataclass(frozen=True, slots=True)
class SweepCriteria:
    p99_ms: float
    max_error_rate: float = 0.01
    require_stable: bool = True
    min_throughput_ratio: float | None = None  # open loop: achieved / offered at least this

    def failures(self, step: StepResult) -> list[str]:
        why = []
        if not step.p99_ms <= self.p99_ms:
            why.append(f"p99 {step.p99_ms:.2f} ms > {self.p99_ms:g} ms")
        if not step.error_rate <= self.max_error_rate:
            why.append(f"error rate {step.error_rate:.4f} > {self.max_error_rate:g}")
        if self.require_stable and not step.stable:
            why.append("not stable")
        if self.min_throughput_ratio is not None and step.load > 0:
            ratio = step.throughput / step.load
            if ratio < self.min_throughput_ratio - self.sampling_slack(step):
                why.append(f"throughput {ratio:.1%} of offered < {self.min_throughput_ratio:.0%}")
        return why

    @staticmethod
    def sampling_slack(step: StepResult) -> float:
        """How far below the offered rate a step may fall by chance: 3 standard deviations of
        a Poisson count of load x measured seconds (3 s at 100 req/s: 17 %; 15 s at 400: 4 %).
        Without it a short Poisson step "falls behind" in ~5 % of steps on arrivals alone."""
        if not step.measured_s:
            return 0.0
        return 3.0 / math.sqrt(step.load * step.measured_s)

    def passes(self, step: StepResult) -> bool:
        return step.measured and not self.failures(step)

    def verdict(self, step: StepResult) -> str:
        """"pass", "fail" or "unmeasured" (neither: nothing was learnt about the target)."""
        if not step.measured:
            return "unmeasured"
        return "pass" if self.passes(step) else "fail"


@dataclass(frozen=True, slots=True)
class SearchResult:
    best: StepResult | None  # highest passing step (None: even the start failed)
    first_failure: StepResult | None  # lowest failing load above best (None: never failed)
    steps: tuple[StepResult, ...]  # in the order measured
    passed: tuple[bool, ...]
    resolution: float
    linear_steps: int  # steps a linear sweep from `start` at `resolution` would take
    reason: str
    verdicts: tuple[str, ...] = ()  # "pass" | "fail" | "unmeasured", one per step
    advice: str | None = None  # what to do next, from the reason the search stopped

    @property
    def best_load(self) -> float | None:
        return None if self.best is None else self.best.load

    @property
    def n_steps(self) -> int:
        return len(self.steps)


def _snap(load: float, integer: bool) -> float:
    return float(math.floor(load)) if integer else load


def _grow(
    record: Callable[[float], StepResult],
    criteria: SweepCriteria,
    start: float,
    growth: float,
    max_load: float | None,
    max_steps: int,
    integer: bool,
    n_done: Callable[[], int],
) -> tuple[StepResult | None, StepResult | None]:
    """Geometric phase: returns (last passing step or None, first failing step or None)."""
    lo: StepResult | None = None
    load = start
    while n_done() < max_steps:
        step = record(load)
        if not step.measured:
            return lo, None  # nothing learnt here: the search stops (the caller says why)
        if not criteria.passes(step):
            return lo, step
        lo = step
        if max_load is not None and load >= max_load:
            return lo, None
        nxt = _snap(load * growth, integer)
        nxt = max(nxt, load + (1 if integer else 0))
        load = min(nxt, max_load) if max_load is not None else nxt
    return lo, None


def search_max_load(
    measure: Callable[[float], StepResult],
    start: float,
    criteria: SweepCriteria,
    resolution: float,
    growth: float = 2.0,
    max_load: float | None = None,
    max_steps: int = 40,
    integer: bool = False,
) -> SearchResult:
    """Highest load (to within `resolution`) whose step meets `criteria`."""
    if start <= 0 or resolution <= 0 or growth <= 1:
        raise ValueError("start and resolution must be > 0 and growth > 1")
    steps: list[StepResult] = []
    passed: list[bool] = []

    def record(load: float) -> StepResult:
        step = measure(load)
        ok = criteria.passes(step)
        steps.append(step)
        passed.append(ok)
        why = step.unmeasured or "; ".join(criteria.failures(step))
        log.info("sweep step %d: load %g -> %s", len(steps), load, "pass" if ok else why)
        return step

    lo, hi = _grow(
        record, criteria, start, growth, max_load, max_steps, integer, lambda: len(steps)
    )
    while lo is not None and hi is not None and hi.load - lo.load > resolution:
        if len(steps) >= max_steps:
            break
        mid = _snap((lo.load + hi.load) / 2, integer)
        if mid <= lo.load or mid >= hi.load:
            break
        step = record(mid)
        if not step.measured:
            break
        lo, hi = (step, hi) if criteria.passes(step) else (lo, step)
    return _finish(steps, passed, lo, hi, start, resolution, max_steps, max_load, criteria)


def _finish(
    steps: list[StepResult],
    passed: list[bool],
    lo: StepResult | None,
    hi: StepResult | None,
    start: float,
    resolution: float,
    max_steps: int,
    max_load: float | None,
    criteria: SweepCriteria,
) -> SearchResult:
    reason, advice = _stop_reason(steps, lo, hi, resolution, max_steps, max_load, criteria)
    edge = hi.load if hi is not None else (lo.load if lo is not None else start)
    linear = math.ceil(round((edge - start) / resolution, 9)) + 1
    return SearchResult(
        best=lo,
        first_failure=hi,
        steps=tuple(steps),
        passed=tuple(passed),
        resolution=resolution,
        linear_steps=max(linear, 1),
        reason=reason,
        verdicts=tuple(criteria.verdict(s) for s in steps),
        advice=advice,
    )


def _stop_reason(
    steps: list[StepResult],
    lo: StepResult | None,
    hi: StepResult | None,
    resolution: float,
    max_steps: int,
    max_load: float | None,
    criteria: SweepCriteria,
) -> tuple[str, str | None]:
    """Why the search stopped, and the advice that follows from the real reason."""
    if not steps:
        return "no step was run (the step budget is 0)", "allow at least one step"
    last = steps[-1]
    if not last.measured:
        return f"stopped unmeasured at load {last.load:g}: {last.unmeasured}", None
    if lo is None:
        return _start_fails(steps[0], criteria)
    if hi is None:
        if max_load is not None and lo.load >= max_load:
            return "never failed up to the maximum load", None
        return "step budget exhausted while growing", "raise --max-steps or --start"
    if hi.load - lo.load > resolution:
        if len(steps) >= max_steps:
            return "step budget exhausted before reaching the resolution", "raise --max-steps"
        return f"no integer load between {lo.load:g} and {hi.load:g} to try", None
    return f"bracketed within {hi.load - lo.load:g} <= resolution {resolution:g}", None


def _start_fails(first: StepResult, criteria: SweepCriteria) -> tuple[str, str | None]:
    """The starting load failed: on the target's numbers (start lower), or only because it
    never settled (longer steps, not a lower load)."""
    why = criteria.failures(first)
    reason = f"the starting load {first.load:g} already fails: {'; '.join(why)}"
    if why == ["not stable"]:
        return reason, (
            "its p99 and errors meet the SLO but it never became stable: use longer steps "
            "(--step-duration / --max-step-duration) or --allow-unstable"
        )
    return reason, "start lower (--start)"


def _finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _usl(n: np.ndarray, x: np.ndarray) -> dict[str, Any]:
    f = USLModel().fit(n, x).result_
    out: dict[str, Any] = {
        k: {"value": e.value, "lo": e.lo, "hi": e.hi}
        for k, e in (("lambda", f.lambda_), ("sigma", f.sigma), ("kappa", f.kappa))
    }
    out.update(r2=f.r2, n_star=_finite_or_none(f.n_star), x_max=_finite_or_none(f.x_max))
    return out


def _latency(
    load: np.ndarray,
    x: np.ndarray,
    p99: np.ndarray,
    err: np.ndarray,
    passed: np.ndarray,
    criteria: SweepCriteria,
) -> dict[str, Any]:
    model = LatencyModel().fit(x, p99)
    grid = np.linspace(float(x.min()), float(x.max()), 200)
    knee = find_knee(grid, model.predict(grid), curve="convex")
    # a step that failed the sweep's criteria (unstable, fell behind the offered rate) counts
    # as failing here too, so this line can never name a load the step table calls a failure
    err_judged = np.where(passed, err, np.inf)
    best = max_throughput_under_slo(
        load, x, p99, criteria.p99_ms, model, err_judged, criteria.max_error_rate
    )
    return {
        "fit": {
            "a_ms": model.a_ms_,
            "b_ms": model.b_ms_,
            "saturation": model.saturation_,
            "r2": model.r2_,
        },
        "knee": {"throughput": knee.x, "p99_ms": knee.y},
        "max_under_slo": {
            "throughput": best.throughput,
            "load": best.load,
            "p99_measured_ms": best.p99_measured_ms,
            "p99_fitted_ms": best.p99_fitted_ms,
            "fitted_crossing": _finite_or_none(best.fitted_crossing),
        },
    }


def analyse_sweep(
    steps: tuple[StepResult, ...] | list[StepResult], mode: str, criteria: SweepCriteria
) -> dict[str, Any]:
    """Curve fits over the MEASURED steps (an unmeasured step never enters a fit): the USL
    of throughput against the server's concurrency (`StepResult.server_concurrency`), the
    p99-vs-throughput fit, its knee and the highest throughput whose fitted AND measured
    p99 meet the SLO among the steps that passed. A fit that cannot be made (too few
    distinct levels) is reported as {"error": ...}. The USL is fitted for open loops too
    when every step knows its server concurrency."""
    measured = [s for s in steps if s.measured]
    load = np.array([s.load for s in measured], dtype=np.float64)
    n = np.array([s.server_concurrency for s in measured], dtype=np.float64)
    x = np.array([s.throughput for s in measured], dtype=np.float64)
    p99 = np.array([s.p99_ms for s in measured], dtype=np.float64)
    err = np.array([s.error_rate for s in measured], dtype=np.float64)
    passed = np.array([criteria.passes(s) for s in measured], dtype=bool)
    known = all(s.concurrency is not None and math.isfinite(s.concurrency) for s in measured)
    out: dict[str, Any] = {
        "usl": None,
        "latency": None,
        "concurrency": "server" if known and measured else "load",
        "concurrency_from": sorted({s.concurrency_from for s in measured}) if known else [],
        "fitted_steps": [s.run_id for s in measured],
    }
    keep = np.ones(load.size, dtype=bool)
    if mode == "closed" or (known and measured):
        try:
            out["usl"] = _usl(n, x)
        except AnalysisError as exc:
            out["usl"] = {"error": str(exc)}
        n_star = (out["usl"] or {}).get("n_star")
        if n_star is not None and n.size:  # past N* throughput falls: p99 vs X is not a function
            # ... unless the steps say otherwise: up to the measured peak, throughput rose
            keep = n <= max(n_star, float(n[np.argmax(x)]))
    try:
        out["latency"] = _latency(
            load[keep], x[keep], p99[keep], err[keep], passed[keep], criteria
        )
    except AnalysisError as exc:
        out["latency"] = {"error": str(exc)}
    return out

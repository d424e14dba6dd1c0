"""Search for the highest load that meets the SLO: grow geometrically, then bisect.

Why: every sweep step costs a full measurement (warm-up plus enough windows to be stable), so
a linear sweep at the resolution a planning review wants (say 5 users or 10 requests/s) is
slow. Growing the load geometrically until a step fails brackets the limit in O(log) steps;
bisecting the bracket reaches the resolution in O(log) more. The search reports how many
steps a linear sweep of the same resolution would have needed.

Pure: the caller supplies `measure(load) -> StepResult` (the CLI runs a real load step; tests
use a synthetic system). A step passes when it is stable, its p99 and error rate meet the
SLO and, optionally, the achieved throughput keeps up with the offered load (open loop).
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
            if ratio < self.min_throughput_ratio:
                why.append(f"throughput {ratio:.1%} of offered < {self.min_throughput_ratio:.0%}")
        return why

    def passes(self, step: StepResult) -> bool:
        return not self.failures(step)


@dataclass(frozen=True, slots=True)
class SearchResult:
    best: StepResult | None  # highest passing step (None: even the start failed)
    first_failure: StepResult | None  # lowest failing load above best (None: never failed)
    steps: tuple[StepResult, ...]  # in the order measured
    passed: tuple[bool, ...]
    resolution: float
    linear_steps: int  # steps a linear sweep from `start` at `resolution` would take
    reason: str

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
        log.info(
            "sweep step %d: load %g -> %s",
            len(steps),
            load,
            "pass" if ok else "; ".join(criteria.failures(step)),
        )
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
        lo, hi = (step, hi) if criteria.passes(step) else (lo, step)
    return _finish(steps, passed, lo, hi, start, resolution, max_steps, max_load)


def _finish(
    steps: list[StepResult],
    passed: list[bool],
    lo: StepResult | None,
    hi: StepResult | None,
    start: float,
    resolution: float,
    max_steps: int,
    max_load: float | None,
) -> SearchResult:
    if lo is None:
        reason = "the starting load already fails the SLO; start lower"
    elif hi is None:
        reason = (
            "never failed up to the maximum load"
            if max_load is not None and lo.load >= max_load
            else "step budget exhausted while growing"
        )
    elif hi.load - lo.load > resolution:
        reason = (
            "step budget exhausted before reaching the resolution"
            if len(steps) >= max_steps
            else f"no integer load between {lo.load:g} and {hi.load:g} to try"
        )
    else:
        reason = f"bracketed within {hi.load - lo.load:g} <= resolution {resolution:g}"
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
    )


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
    load: np.ndarray, x: np.ndarray, p99: np.ndarray, err: np.ndarray, criteria: SweepCriteria
) -> dict[str, Any]:
    model = LatencyModel().fit(x, p99)
    grid = np.linspace(float(x.min()), float(x.max()), 200)
    knee = find_knee(grid, model.predict(grid), curve="convex")
    best = max_throughput_under_slo(
        load, x, p99, criteria.p99_ms, model, err, criteria.max_error_rate
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
    """Curve fits over every measured step: the USL (closed loop), the p99-vs-throughput fit,
    its knee and the highest throughput whose fitted AND measured p99 meet the SLO. A fit that
    cannot be made (too few distinct loads) is reported as {"error": ...}."""
    load = np.array([s.load for s in steps], dtype=np.float64)
    x = np.array([s.throughput for s in steps], dtype=np.float64)
    p99 = np.array([s.p99_ms for s in steps], dtype=np.float64)
    err = np.array([s.error_rate for s in steps], dtype=np.float64)
    out: dict[str, Any] = {"usl": None, "latency": None}
    keep = np.ones(load.size, dtype=bool)
    if mode == "closed":
        try:
            out["usl"] = _usl(load, x)
        except AnalysisError as exc:
            out["usl"] = {"error": str(exc)}
        n_star = (out["usl"] or {}).get("n_star")
        if n_star is not None:  # past N* throughput falls: p99 vs X is not a function
            keep = load <= max(n_star, float(load.min()))
    try:
        out["latency"] = _latency(load[keep], x[keep], p99[keep], err[keep], criteria)
    except AnalysisError as exc:
        out["latency"] = {"error": str(exc)}
    return out

"""A fault's impact and the recovery, from the per-second windows of the load that ran
through it. Pure: windows and a timeline in, a frozen `Impact` out.

Definitions (window `s` holds the requests intended in [s, s + 1); F = fault start,
R = fault end, i.e. the rollback; times in seconds on the load's clock):

- baseline: every window with baseline_from <= s and s + 1 <= F (whole windows before F);
- before / during / after: the baseline; the windows overlapping [F, R) (the window holding
  F when the fault lasted no time); the whole windows from R on (s >= ceil(R));
- over the SLO: a window with requests whose error rate exceeds the SLO's, or whose p99
  exceeds the SLO's p99;
- a second where the load generator was unhealthy (CPU lag, drops: `healthy` false) is no
  evidence either way: never "over the SLO", and transparent to a recovery run (it neither
  counts nor breaks it; a missing second breaks it);
- within tolerance: see `RecoveryTolerance` (relative to the baseline, not to the SLO);
- recovered_at_s: the first s >= ceil(R) that opens `k` consecutive windows within tolerance;
  time_to_recover_s = recovered_at_s - R (window precision: 1 s; 0 <= it < 1 when the
  system was already back when the fault was removed); None when it never happens;
- impact period: windows floor(F) .. recovered_at_s - 1 (or the last window when never
  recovered);
- time_to_detect_s: (s + 1) - F for the first window of the impact period over the SLO,
  i.e. when that window closed, the earliest a per-second monitor could know; None if none;
- failed_requests: failures in the impact period; slowed_requests: its successful requests
  slower than the SLO's p99 bound (a request's value is its histogram slot's highest
  equivalent value, as for percentiles: 3 significant digits);
- excess_latency_s: sum over the impact period's successful requests of (latency - baseline
  mean latency) = sum over windows of n_w x (mean_w - mean_baseline), in seconds, means from
  the histograms (slot midpoints, relative error < 0.1 %); signed, so noise cancels instead
  of piling up;
- error budget: the SLO allows error_rate x (every request of the run) failures; burned is
  failed_requests over that. Latency budget likewise with (1 - quantile) x requests slow ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from harness.analysis.impact.records import (
    FaultTimeline,
    Impact,
    PhaseStats,
    RecoveryTolerance,
    SecondLike,
    Slo,
)
from harness.latency.sparse import SparseHist, merge, slot_values

__all__ = ["analyse_impact", "phase_stats", "slow_count"]


def analyse_impact(
    seconds: Sequence[SecondLike],
    timeline: FaultTimeline,
    slo: Slo,
    tolerance: RecoveryTolerance | None = None,
) -> Impact:
    """The impact of the fault in `timeline` on the load in `seconds` (see the module doc)."""
    tolerance = tolerance or RecoveryTolerance()
    ordered = sorted(seconds, key=lambda w: w.second)
    f, r = timeline.fault_start_s, timeline.fault_end_s
    base = [w for w in ordered if timeline.baseline_from_s <= w.second and w.second + 1 <= f]
    during = [w for w in ordered if _overlaps(w.second, f, r)]
    after = [w for w in ordered if w.second >= math.ceil(r)]
    baseline = phase_stats(base)
    notes: list[str] = []
    if baseline.requests == 0:
        notes.append("no baseline window before the fault: recovery and excess latency unknown")
    recovered_at = _recovery(after, baseline, tolerance) if baseline.requests else None
    last = recovered_at - 1 if recovered_at is not None else (ordered[-1].second if ordered else 0)
    impact = [w for w in ordered if math.floor(f) <= w.second <= last]
    if recovered_at is None and baseline.requests:
        notes.append(f"never back within tolerance for {tolerance.k} consecutive windows")
    return Impact(
        time_to_detect_s=_detect(impact, f, slo),
        time_to_recover_s=None if recovered_at is None else recovered_at - r,
        recovered_at_s=recovered_at,
        failed_requests=sum(w.failures for w in impact),
        slowed_requests=sum(slow_count(w.hist, slo.p99_ms) for w in impact),
        excess_latency_s=_excess(impact, baseline) if baseline.requests else None,
        impact_seconds=(math.floor(f), last),
        before=baseline,
        during=phase_stats(during),
        after=phase_stats(after),
        error_budget=_budget(sum(w.failures for w in impact), slo.error_rate, ordered),
        latency_budget=_budget(
            sum(slow_count(w.hist, slo.p99_ms) for w in impact), 1 - slo.quantile, ordered
        ),
        notes=tuple(notes),
    )


def _overlaps(second: int, start: float, end: float) -> bool:
    if end == start:
        return second <= start < second + 1
    return second < end and second + 1 > start


def phase_stats(windows: Sequence[SecondLike]) -> PhaseStats:
    """Requests, failures, error rate, merged p99 and mean (ms) of `windows`."""
    requests = sum(w.requests for w in windows)
    failures = sum(w.failures for w in windows)
    hist = merge(w.hist for w in windows)
    p99, mean = hist.percentile(99), hist.mean()
    return PhaseStats(
        seconds=len(windows),
        requests=requests,
        failures=failures,
        error_rate=failures / requests if requests else None,
        p99_ms=None if p99 is None else p99 / 1000,
        mean_ms=None if mean is None else mean / 1000,
    )


def slow_count(hist: SparseHist, bound_ms: float) -> int:
    """Requests of `hist` whose value (slot's highest equivalent) exceeds `bound_ms`."""
    over = slot_values().high[hist.slots] > bound_ms * 1000
    return int(hist.counts[over].sum())


def _over_slo(w: SecondLike, slo: Slo) -> bool:
    if w.requests == 0 or not w.healthy:
        return False  # nothing measured in that second: no evidence either way
    if w.failures / w.requests > slo.error_rate:
        return True
    p99 = w.hist.percentile(slo.quantile * 100)
    return p99 is not None and p99 > slo.p99_ms * 1000


def _detect(impact: Sequence[SecondLike], fault_start: float, slo: Slo) -> float | None:
    for w in impact:
        if _over_slo(w, slo):
            return max(0.0, w.second + 1 - fault_start)
    return None


def _within(w: SecondLike, base: PhaseStats, tol: RecoveryTolerance) -> bool:
    p99 = w.hist.percentile(99)
    if w.requests == 0 or p99 is None or base.p99_ms is None:
        return False
    error_ok = w.failures / w.requests <= (base.error_rate or 0.0) + tol.error_rate_slack
    return error_ok and p99 / 1000 <= base.p99_ms * tol.p99_factor + tol.p99_slack_ms


def _recovery(after: Sequence[SecondLike], base: PhaseStats, tol: RecoveryTolerance) -> int | None:
    """First second opening `k` windows within tolerance, with no second missing between
    them (unhealthy seconds skipped)."""
    run_start, run_len, previous = None, 0, None
    for w in after:
        if previous is not None and w.second != previous + 1:
            run_start, run_len = None, 0  # a missing second breaks a run
        previous = w.second
        if not w.healthy:
            continue
        if not _within(w, base, tol):
            run_start, run_len = None, 0
            continue
        run_start = w.second if run_len == 0 else run_start
        run_len += 1
        if run_len >= tol.k:
            return run_start
    return None


def _excess(impact: Sequence[SecondLike], base: PhaseStats) -> float:
    base_mean_us = (base.mean_ms or 0.0) * 1000
    total_us = 0.0
    for w in impact:
        mean = w.hist.mean()
        if mean is not None:
            total_us += w.hist.total * (mean - base_mean_us)
    return total_us / 1e6


def _budget(spent: int, share: float, windows: Sequence[SecondLike]) -> dict:
    allowed = share * sum(w.requests for w in windows)
    return {
        "allowed": allowed,
        "spent": spent,
        "burned": spent / allowed if allowed > 0 else None,
    }

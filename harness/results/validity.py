"""Is a measurement worth believing? Warm-up, stability, self-health, sample size — pure.

Rules (all on the per-second success histograms of `windows.per_second`):

- **Self-health.** Seconds in which the load generator flagged itself unhealthy (CPU
  saturated, schedule lag) are excluded from every verdict and reported.
- **Warm-up (detected, a change-point rule).** On the per-second series of log throughput
  and log p99, the robust (L1) single change point is searched in the first half: the split
  minimising the absolute deviations of both sides from their medians. It counts when the
  two medians differ by more than the tolerance and by more than 5 standard errors (noise
  from the series' first differences, at least Poisson for throughput); the search repeats on
  the rest (binary segmentation from the front), so a gradual warm-up is cut whole, while isolated
  spikes later in the run move no medians. Warm-up = the later cut of the two series. An
  explicit `warmup: 10s` replaces detection.
- **Stability (perf_analyzer's rule).** After warm-up, the run is cut into complete, healthy
  blocks of `window_s` seconds; it is stable when `windows` consecutive blocks have
  throughput and p99 within `tolerance` of those blocks' mean (throughput: or within Poisson
  noise, 3 sqrt(n); p99: or the mean inside the block's own 95% order-statistic interval, so
  that few-sample tails are not called different).
  Stability applies only to loads that hold one level (constant or Poisson open loops,
  steady closed loops, the last stage of a staged load when it holds): a trace replay or a
  last stage that ramps is non-stationary by design, so `assess(..., unsteady=reason)`
  does not judge it and says why (`stability_note`) instead of calling it unstable.
- **Enough data.** At least `min_duration_s` measured seconds and `min_requests` requests.
- **Percentile intervals** use the distribution-free order-statistic (binomial) method on the
  merged histogram: ranks l, u with P(l <= B < u) >= confidence for B ~ Binomial(n, q); the
  bounds are the low/high ends of the slots holding those ranks (conservative). When the
  upper rank exceeds n there is no bound: `requests_needed(q)` = ceil(ln(alpha/2) / ln q)
  requests are needed before the q-quantile can be bounded at all (MLPerf LoadGen's
  early-stopping idea: report how many more requests would make the number mean something).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from harness.config.scenario import ValidityConfig
from harness.latency.sparse import SparseHist, merge
from harness.results.windows import SecondStats


@dataclass(frozen=True, slots=True)
class PercentileCI:
    percentile: float
    n: int
    estimate_us: float | None
    low_us: float | None
    high_us: float | None
    """None when the sample is too small for an upper bound (see `requests_needed`)."""
    confidence: float


def percentile_ci(hist: SparseHist, percentile: float, confidence: float = 0.95) -> PercentileCI:
    """Order-statistic confidence interval for `percentile` (0..100) of `hist`."""
    n = hist.total
    if n == 0:
        return PercentileCI(percentile, 0, None, None, None, confidence)
    q, alpha = percentile / 100, 1 - confidence
    low_rank = int(stats.binom.ppf(alpha / 2, n, q))
    high_rank = int(stats.binom.ppf(1 - alpha / 2, n, q)) + 1
    low = hist.value_at_rank(low_rank, upper=False) if low_rank >= 1 else 0.0
    high = hist.value_at_rank(high_rank, upper=True) if high_rank <= n else None
    return PercentileCI(percentile, n, hist.percentile(percentile), low, high, confidence)


def requests_needed(percentile: float, confidence: float = 0.95) -> int:
    """Fewest requests for which the order-statistic interval has an upper bound."""
    q, alpha = percentile / 100, 1 - confidence
    if q >= 1:
        raise ValueError("the maximum has no distribution-free upper bound")
    return max(1, math.ceil(math.log(alpha / 2) / math.log(q)))


def more_requests_needed(n: int, percentile: float, confidence: float = 0.95) -> int:
    return max(0, requests_needed(percentile, confidence) - n)


def _p99_agrees(hist: SparseHist, reference_us: float | None, tolerance: float) -> bool:
    estimate = hist.percentile(99)
    if estimate is None or reference_us is None:
        return estimate is None and reference_us is None
    if abs(estimate - reference_us) <= tolerance * reference_us:
        return True
    ci = percentile_ci(hist, 99)
    return ci.low_us is not None and ci.low_us <= reference_us <= (ci.high_us or math.inf)


def _rate_agrees(rate: float, reference: float, tolerance: float, seconds: float) -> bool:
    noise = 3 * math.sqrt(max(reference * seconds, 1)) / seconds
    return abs(rate - reference) <= max(tolerance * reference, noise)


@dataclass(frozen=True, slots=True)
class Block:
    start: int
    seconds: int
    requests: int
    hist: SparseHist

    @property
    def throughput(self) -> float:
        return self.hist.total / self.seconds


def make_block(stats_: Sequence[SecondStats]) -> Block:
    return Block(
        start=stats_[0].second,
        seconds=len(stats_),
        requests=sum(s.requests for s in stats_),
        hist=merge(s.hist for s in stats_),
    )


def detect_warmup(seconds: Sequence[SecondStats], window_s: int, tolerance: float) -> int | None:
    """Seconds of warm-up at the start of `seconds` (healthy ones, in order); 0 when none.

    Robust change points (see the module docstring) on per-second log throughput and log
    p99; the warm-up is the later of the two. None only when there is no data at all.
    """
    if not seconds:
        return None
    if len(seconds) < 2 * window_s:
        return 0
    limit = len(seconds) // 2
    rate = np.log1p([s.hist.total for s in seconds])
    p99 = [s.hist.percentile(99) for s in seconds]
    has_p99 = np.array([v is not None for v in p99])
    log_p99 = np.log([v for v in p99 if v is not None])
    positions = np.flatnonzero(has_p99)
    poisson = 1 / math.sqrt(max(float(np.median([s.hist.total for s in seconds])), 1.0))
    # Only a worse head is a warm-up (lower throughput, higher p99): a run that gets slower
    # later is drifting, which the stability rule must see, not a warm-up to cut away.
    cut_rate = front_change_point(rate, tolerance, limit, floor=poisson, worse=-1)
    cut_p99 = front_change_point(
        log_p99, tolerance, int(np.searchsorted(positions, limit)), worse=1
    )
    cut_p99_pos = int(positions[cut_p99]) if cut_p99 < len(positions) else len(seconds)
    cut = min(max(cut_rate, cut_p99_pos if cut_p99 else 0), limit)
    return seconds[cut].second - seconds[0].second if cut else 0


def _l1_split(x: np.ndarray, limit: int) -> int:
    """Split point 1..limit minimising the summed absolute deviations from each side's median."""
    best, best_cost = 0, math.inf
    for cut in range(1, min(limit, len(x) - 1) + 1):
        head, tail = x[:cut], x[cut:]
        cost = np.abs(head - np.median(head)).sum() + np.abs(tail - np.median(tail)).sum()
        if cost < best_cost:
            best, best_cost = cut, cost
    return best


def front_change_point(
    x: np.ndarray, tolerance: float, limit: int, floor: float = 0.0, worse: int = 0
) -> int:
    """How many leading values differ from the rest (0: none), by repeated L1 splits.

    `worse`: +1 counts only a head above the rest, -1 only a head below it, 0 either.

    A split counts when the medians of both sides differ by more than log(1 + tolerance) and
    by more than 5 standard errors, sigma * sqrt(1/len(head) + 1/len(rest)), where sigma is
    the series' noise from its first differences (1.4826 MAD(diff) / sqrt 2, immune to level
    shifts), at least `floor`. 5 rather than 2-3: medians, and the best of many splits.
    """
    if len(x) < 3:
        return 0
    diffs = np.diff(x)
    sigma = max(1.4826 * float(np.median(np.abs(diffs - np.median(diffs)))) / math.sqrt(2), floor)
    start = 0
    while start < limit and len(x) - start > 2:
        cut = _l1_split(x[start:], limit - start)
        head, tail = x[start : start + cut], x[start + cut :]
        if cut == 0 or len(tail) == 0:
            break
        signed = float(np.median(head) - np.median(tail))
        if worse and signed * worse <= 0:
            break
        gap = abs(signed)
        if gap <= max(math.log1p(tolerance), 5 * sigma * math.sqrt(1 / cut + 1 / len(tail))):
            break
        start += cut
    return start


@dataclass(frozen=True, slots=True)
class Stability:
    stable: bool
    start: int | None
    """First second of the stable blocks (None when unstable)."""
    blocks: int
    reason: str


def find_stable(blocks: Sequence[Block], windows: int, tolerance: float) -> Stability:
    """Latest run of `windows` consecutive blocks agreeing within `tolerance` of their mean."""
    if len(blocks) < windows:
        return Stability(False, None, len(blocks), f"{len(blocks)} of {windows} blocks measured")
    worst = ""
    for end in range(len(blocks), windows - 1, -1):
        run = blocks[end - windows : end]
        if any(b.start + b.seconds != n.start for b, n in itertools.pairwise(run)):
            worst = worst or "blocks not consecutive (unhealthy seconds between them)"
            continue
        rate = sum(b.throughput for b in run) / windows
        p99 = merge(b.hist for b in run).percentile(99)
        bad_rate = [b for b in run if not _rate_agrees(b.throughput, rate, tolerance, b.seconds)]
        bad_p99 = [b for b in run if not _p99_agrees(b.hist, p99, tolerance)]
        if not bad_rate and not bad_p99:
            return Stability(True, run[0].start, len(blocks), "stable")
        if not worst:
            what = "throughput" if bad_rate else "p99"
            worst = f"{what} of the last {windows} blocks differs by more than {tolerance:.0%}"
    return Stability(False, None, len(blocks), worst)


def blocks_after(seconds: Sequence[SecondStats], start: int, window_s: int) -> list[Block]:
    """Complete blocks of `window_s` healthy seconds from `start` (an unhealthy second drops
    its block)."""
    by_second = {s.second: s for s in seconds}
    last = max(by_second) if by_second else start - 1
    blocks = []
    for first in range(start, last - window_s + 2, window_s):
        chunk = [by_second.get(t) for t in range(first, first + window_s)]
        if all(c is not None and c.healthy for c in chunk):
            blocks.append(make_block([c for c in chunk if c is not None]))
    return blocks


@dataclass(frozen=True, slots=True)
class Validity:
    valid: bool
    stable: bool
    reasons: tuple[str, ...]
    """Why the measurement is not valid (empty when valid)."""
    warmup_s: int
    warmup_detected: bool
    analysed_from: int
    """First second analysed (0, or the last stage's start for staged loads)."""
    measured_seconds: tuple[int, ...]
    """Seconds the verdicts use: after warm-up, healthy."""
    excluded_windows: tuple[int, ...]
    """Seconds dropped because the load generator was unhealthy."""
    stable_from: int | None
    requests: int
    more_requests_needed_for_p99: int
    more_requests_needed_for_p999: int
    stability_note: str | None = None
    """None when stability was judged; else why it was not (the load never holds a level)."""

    def to_dict(self) -> dict[str, object]:
        return {
            "stable": self.stable,
            "reasons": list(self.reasons),
            "warmup_s": self.warmup_s,
            "warmup_detected": self.warmup_detected,
            "analysed_from_s": self.analysed_from,
            "measured_s": len(self.measured_seconds),
            "excluded_windows": len(self.excluded_windows),
            "excluded_seconds": list(self.excluded_windows),
            "stable_from_s": self.stable_from,
            "more_requests_needed_for_p99": self.more_requests_needed_for_p99,
            "more_requests_needed_for_p999": self.more_requests_needed_for_p999,
            "stability_note": self.stability_note,
        }


def _measurement_start(
    span: Sequence[SecondStats], origin: int, warmup_s: float | None, window_s: int, tol: float
) -> int:
    """First measured second: after the explicit warm-up (counted from the run's start), or
    after the detected one."""
    if warmup_s is not None:
        return max(origin, math.ceil(warmup_s))
    healthy = [s for s in span if s.healthy]
    detected = detect_warmup(healthy, window_s, tol) or 0
    return (healthy[0].second if healthy else origin) + detected


def _sample_reasons(measured: Sequence[SecondStats], config: ValidityConfig) -> list[str]:
    reasons = []
    requests = sum(s.requests for s in measured)
    if len(measured) < config.min_duration_s:
        reasons.append(f"measured {len(measured)} s < min_duration_s {config.min_duration_s:g}")
    if requests < config.min_requests:
        reasons.append(f"measured {requests} requests < min_requests {config.min_requests}")
    need99 = more_requests_needed(sum(s.hist.total for s in measured), 99)
    if need99:
        reasons.append(f"p99 unbounded: {need99} more requests needed")
    return reasons


def assess(
    seconds: Sequence[SecondStats],
    config: ValidityConfig,
    *,
    warmup_s: float | None = None,
    start: int = 0,
    unsteady: str | None = None,
) -> Validity:
    """Judge the per-second series from second `start` on (e.g. the last stage of a shape).

    `warmup_s`: an explicit warm-up from the run's start (skips detection); None detects it
    within the analysed span. `Validity.warmup_s` is what was cut from the span's start.
    `unsteady`: why the load never holds one level (a trace replay, a ramp): stability is
    then not judged (not a reason against validity), and `stability_note` says why.
    """
    window_s = max(1, round(config.stability.window_s))
    tolerance = config.stability.tolerance
    span = [s for s in seconds if s.second >= start]
    origin = span[0].second if span else start
    first = _measurement_start(span, origin, warmup_s, window_s, tolerance)
    measured = [s for s in span if s.healthy and s.second >= first]
    reasons = []
    if unsteady is None:
        stability = find_stable(
            blocks_after(span, first, window_s), config.stability.windows, tolerance
        )
        if not stability.stable:
            reasons.append(f"not stable: {stability.reason}")
    else:
        stability = Stability(False, None, 0, unsteady)
    reasons += _sample_reasons(measured, config)
    successes = sum(s.hist.total for s in measured)
    return Validity(
        valid=not reasons,
        stable=stability.stable,
        reasons=tuple(reasons),
        warmup_s=first - origin,
        warmup_detected=warmup_s is None,
        analysed_from=origin,
        measured_seconds=tuple(s.second for s in measured),
        excluded_windows=tuple(s.second for s in span if not s.healthy),
        stable_from=stability.start,
        requests=sum(s.requests for s in measured),
        more_requests_needed_for_p99=more_requests_needed(successes, 99),
        more_requests_needed_for_p999=more_requests_needed(successes, 99.9),
        stability_note=None if unsteady is None else f"stability not judged: {unsteady}",
    )

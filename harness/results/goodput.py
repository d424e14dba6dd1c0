"""Goodput: answers within the SLO latency per second, beside throughput (pure, no I/O).

Why: past capacity, throughput alone flatters a server that queues without limit (every
request answered, seconds late) and a server that sheds load looks worse than it is. Goodput
counts only what a user could use. It is read from the stored HDR windows, exactly: a
request is *good* when it succeeded and the histogram slot it was recorded in has a highest
equivalent value at or below the threshold (the same rule by which `p99 <= threshold` is
judged: conservative, a value within 0.1 % below the threshold may be left out, none above
it counts).

For a staged load (a spike), each stage gets its offered rate, throughput and goodput, which
is the goodput-vs-offered curve of the run; see `GoodputSummary` in schema.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.config.scenario import Scenario
from harness.latency.sparse import SparseHist, slot_values
from harness.results.schema import GoodputStage, GoodputSummary
from harness.results.windows import SecondStats, Window, latency_hist, per_second

__all__ = ["count_within", "goodput_section"]


def count_within(hist: SparseHist, threshold_us: float) -> int:
    """Requests of `hist` recorded in slots whose highest value is <= `threshold_us`."""
    if not len(hist.slots):
        return 0
    within = slot_values().high[hist.slots] <= threshold_us
    return int(hist.counts[within].sum())


def _rate(count: int, seconds: int) -> float | None:
    return round(count / seconds, 3) if seconds else None


def _offered(scenario: Scenario, seconds: Sequence[SecondStats]) -> float | None:
    """Open loop: what the schedule asked for; otherwise the requests recorded."""
    if not seconds:
        return None
    load = scenario.load
    if load.mode == "open" and not load.is_trace():
        rates = [scenario.rate_at(s.second + 0.5) for s in seconds]
        known = [r for r in rates if r is not None]
        if known:
            return round(sum(known) / len(known), 3)
    return _rate(sum(s.requests for s in seconds), len(seconds))


def _stages(
    scenario: Scenario, windows: Sequence[Window], threshold_us: float
) -> list[GoodputStage]:
    """Per stage: its healthy seconds' offered rate, throughput and goodput."""
    last = max((w.second for w in windows), default=-1)
    by_second = per_second(windows, range(0, last + 1))
    stages: list[GoodputStage] = []
    start = 0.0
    for stage in scenario.load.stages:
        end = start + stage.duration
        seconds = [s for s in by_second if start <= s.second + 0.5 < end and s.healthy]
        answered = sum(s.hist.total for s in seconds)
        good = sum(count_within(s.hist, threshold_us) for s in seconds)
        stages.append(
            {
                "from_s": start,
                "to_s": end,
                "seconds": len(seconds),
                "offered_rps": _offered(scenario, seconds),
                "throughput_rps": _rate(answered, len(seconds)),
                "goodput_rps": _rate(good, len(seconds)),
            }
        )
        start = end
    return stages


def goodput_section(
    scenario: Scenario | None,
    threshold_ms: float | None,
    windows: Sequence[Window],
    measured: Sequence[Window],
    n_seconds: int,
) -> GoodputSummary | None:
    """The summary's `goodput` section; None without a latency threshold (`slo.p99_ms`).

    `measured`: the windows of the measured seconds (`n_seconds` of them), the same ones
    `throughput_rps` is computed over; `windows`: all of the run's, for the stages.
    """
    if threshold_ms is None:
        return None
    threshold_us = threshold_ms * 1000
    hist = latency_hist(measured)
    good = count_within(hist, threshold_us)
    return {
        "threshold_ms": threshold_ms,
        "goodput_rps": _rate(good, n_seconds),
        "good_share": round(good / hist.total, 6) if hist.total else None,
        "stages": _stages(scenario, windows, threshold_us) if scenario is not None else [],
    }

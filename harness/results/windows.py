"""Decoded windows.parquet rows: select by second, endpoint and outcome; merge into one
`SparseHist` (exact); per-second statistics and the timeline of a run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.latency.sparse import SparseHist, merge
from harness.latency.windows import SUCCESS, WindowRecord


@dataclass(frozen=True, slots=True)
class Window:
    """A decoded windows.parquet row."""

    second: int
    endpoint: str
    outcome: str
    count: int
    checked: int
    correct: int
    rejected: int
    healthy: bool
    hist: SparseHist
    hist_uncorrected: SparseHist

    @property
    def ok(self) -> bool:
        return self.outcome == SUCCESS

    @classmethod
    def from_record(cls, record: WindowRecord) -> Window:
        return cls(
            second=record.second,
            endpoint=record.endpoint,
            outcome=record.outcome,
            count=record.count,
            checked=record.checked,
            correct=record.correct,
            rejected=record.rejected,
            healthy=record.healthy,
            hist=SparseHist.from_blob(record.hdr),
            hist_uncorrected=SparseHist.from_blob(record.hdr_uncorrected),
        )


def decode_windows(records: Iterable[WindowRecord]) -> list[Window]:
    return [Window.from_record(r) for r in records]


def select(
    windows: Sequence[Window],
    *,
    seconds: Iterable[int] | None = None,
    endpoint: str | None = None,
    outcome: str | None = None,
) -> list[Window]:
    wanted = None if seconds is None else set(seconds)
    return [
        w
        for w in windows
        if (wanted is None or w.second in wanted)
        and (endpoint is None or w.endpoint == endpoint)
        and (outcome is None or w.outcome == outcome)
    ]


def latency_hist(windows: Iterable[Window], corrected: bool = True) -> SparseHist:
    """Merged latency of the *successful* requests among `windows`."""
    return merge(w.hist if corrected else w.hist_uncorrected for w in windows if w.ok)


@dataclass(frozen=True, slots=True)
class SecondStats:
    second: int
    requests: int
    failures: int
    healthy: bool
    hist: SparseHist


def per_second(windows: Sequence[Window], span: range | None = None) -> list[SecondStats]:
    """One entry per second of `span` (default: first..last second seen), empty ones included."""
    if span is None:
        seen = [w.second for w in windows]
        span = range(min(seen), max(seen) + 1) if seen else range(0)
    by_second: dict[int, list[Window]] = {s: [] for s in span}
    for w in windows:
        if w.second in by_second:
            by_second[w.second].append(w)
    return [
        SecondStats(
            second=s,
            requests=sum(w.count for w in ws),
            failures=sum(w.count for w in ws if not w.ok),
            healthy=all(w.healthy for w in ws),
            hist=latency_hist(ws),
        )
        for s, ws in by_second.items()
    ]


def timeline(windows: Sequence[Window]) -> list[dict[str, object]]:
    """Per-second rows for plots and notebooks: requests, failures, achieved rate, p50/p99 (ms)
    of the successful requests, and the generator's health flag."""
    rows = []
    for stats in per_second(windows):
        p50, p99 = stats.hist.percentile(50), stats.hist.percentile(99)
        rows.append(
            {
                "second": stats.second,
                "requests": stats.requests,
                "failures": stats.failures,
                "throughput_rps": stats.hist.total,
                "p50_ms": None if p50 is None else p50 / 1000,
                "p99_ms": None if p99 is None else p99 / 1000,
                "healthy": stats.healthy,
            }
        )
    return rows

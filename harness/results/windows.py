"""Window tables as sparse histograms: merge any selection exactly, read percentiles fast.

A decoded HdrHistogram (1 us..60 s, 3 digits) is a 17,408-slot count array (~140 KiB); a
one-hour run has thousands of windows. Here each window's counts are kept sparse (the
non-zero slots only) and merged with `numpy.bincount`, which is exact integer addition —
the same as `HdrHistogram.add` — so a percentile read from any merged selection equals the
one a single histogram holding all those requests would give. Percentile semantics follow
HdrHistogram's `get_value_at_percentile` (highest equivalent value of the slot holding the
rank `max(1, round(p/100 * n))`), so numbers match the library's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from hdrh.histogram import HdrHistogram

from harness.load.hdr import (
    HIGHEST_US,
    HdrLayout,
    SUCCESS,
    WindowRecord,
    decode_histogram,
    new_histogram,
)


@dataclass(frozen=True, slots=True)
class SlotValues:
    """Per-slot value range (microseconds) of the project's histogram layout."""

    low: np.ndarray
    high: np.ndarray
    mid: np.ndarray


@lru_cache(maxsize=1)
def _template() -> HdrHistogram:
    return new_histogram()


@lru_cache(maxsize=1)
def slot_values() -> SlotValues:
    template = _template()
    low = np.array([template.get_value_from_index(i) for i in range(template.counts_len)])
    high = np.array([template.get_highest_equivalent_value(v) for v in low])
    return SlotValues(low=low, high=high, mid=low + (high - low + 1) // 2)


@dataclass(frozen=True, slots=True)
class SparseHist:
    """Non-zero slots (sorted, unique) and their counts."""

    slots: np.ndarray
    counts: np.ndarray

    @classmethod
    def empty(cls) -> SparseHist:
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))

    @classmethod
    def from_blob(cls, blob: bytes) -> SparseHist:
        return cls.from_histogram(decode_histogram(blob))

    @classmethod
    def from_histogram(cls, histogram: HdrHistogram) -> SparseHist:
        dense = np.ctypeslib.as_array(histogram.counts)
        slots = np.flatnonzero(dense)
        return cls(slots.astype(np.int64), dense[slots].astype(np.int64))

    @classmethod
    def from_values(cls, values_us: np.ndarray) -> SparseHist:
        """Vectorised `record_value` for many integer microsecond values (same slots as
        HdrHistogram; values outside 0..60 s raise, as nothing may be clamped silently)."""
        values = np.asarray(values_us, dtype=np.int64)
        if values.size and (values.min() < 0 or values.max() > HIGHEST_US):
            raise ValueError("values outside 0..60 s cannot be recorded")
        slots, counts = np.unique(HdrLayout().index_of(values), return_counts=True)
        return cls(slots.astype(np.int64), counts.astype(np.int64))

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def value_at_rank(self, rank: int, upper: bool = True) -> float:
        """Value (us) of the `rank`-th smallest request (1-based): slot's high or low end."""
        if not 1 <= rank <= self.total:
            raise ValueError(f"rank {rank} outside 1..{self.total}")
        slot = self.slots[int(np.searchsorted(np.cumsum(self.counts), rank))]
        values = slot_values()
        return float(values.high[slot] if upper else values.low[slot])

    def percentile(self, p: float) -> float | None:
        """HdrHistogram's value at percentile `p` (0..100), microseconds; None if empty."""
        total = self.total
        if total == 0:
            return None
        rank = max(int(min(p, 100.0) * total / 100 + 0.5), 1)
        return self.value_at_rank(rank, upper=p > 0)

    def mean(self) -> float | None:
        total = self.total
        if total == 0:
            return None
        return float((slot_values().mid[self.slots] * self.counts).sum() / total)

    def max(self) -> float | None:
        return float(slot_values().high[self.slots[-1]]) if self.total else None

    def min(self) -> float | None:
        return float(slot_values().low[self.slots[0]]) if self.total else None


def merge(hists: Iterable[SparseHist]) -> SparseHist:
    """Exact sum of sparse histograms."""
    parts = [h for h in hists if len(h.slots)]
    if not parts:
        return SparseHist.empty()
    slots = np.concatenate([h.slots for h in parts])
    counts = np.concatenate([h.counts for h in parts])
    unique, inverse = np.unique(slots, return_inverse=True)
    summed = np.zeros(len(unique), dtype=np.int64)
    np.add.at(summed, inverse, counts)
    return SparseHist(unique, summed)


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

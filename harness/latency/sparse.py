"""Window tables as sparse histograms: merge any selection exactly, read percentiles fast.

A decoded HdrHistogram (1 us..60 s, 3 digits) is a 17,408-slot count array (~140 KiB); a
one-hour run has thousands of windows. Here each window's counts are kept sparse (the
non-zero slots only) and merged with `numpy.bincount`, which is exact integer addition --
the same as `HdrHistogram.add` -- so a percentile read from any merged selection equals the
one a single histogram holding all those requests would give. Percentile semantics follow
HdrHistogram's `get_value_at_percentile` (highest equivalent value of the slot holding the
rank `max(1, round(p/100 * n))`), so numbers match the library's own.

This is the project's ONE histogram value type: the summary, the validity rules, the SLO
checks and the A/B statistics all read it. One convention everywhere, HdrHistogram's:
a slot's *value* (percentiles, `values`, rank statistics) is its highest equivalent value,
its *mean* contribution is its median equivalent value (`get_mean_value`), and an empty
histogram has no percentile, mean, min or max (`None`, never NaN or 0).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from hdrh.histogram import HdrHistogram

from harness.latency.hdr import HIGHEST_US, HdrLayout, decode_histogram, new_histogram

__all__ = ["SlotValues", "SparseHist", "merge", "slot_values"]


@dataclass(frozen=True, slots=True)
class SlotValues:
    """Per-slot value range (microseconds) of the project's histogram layout."""

    low: np.ndarray
    high: np.ndarray
    mid: np.ndarray


@lru_cache(maxsize=1)
def slot_values() -> SlotValues:
    """Every slot's range, vectorised over the layout (cross-checked against hdrh in tests)."""
    layout = HdrLayout()
    index = np.arange(new_histogram().counts_len)
    low = layout.lowest_of(index)
    high = layout.value_of(index).astype(np.int64)
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
    def from_dense(cls, dense: np.ndarray) -> SparseHist:
        """The non-zero slots of a dense count array in the project's layout."""
        counts = np.asarray(dense)
        slots = np.flatnonzero(counts)
        return cls(slots.astype(np.int64), counts[slots].astype(np.int64))

    @classmethod
    def from_blob(cls, blob: bytes) -> SparseHist:
        return cls.from_histogram(decode_histogram(blob))

    @classmethod
    def from_histogram(cls, histogram: HdrHistogram) -> SparseHist:
        if histogram.counts_len != slot_values().high.size:
            raise ValueError(
                "histogram layout differs from the project's (1 us..60 s, 3 digits): "
                f"{histogram.counts_len} slots"
            )
        return cls.from_dense(np.ctypeslib.as_array(histogram.counts))

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

    @property
    def values(self) -> np.ndarray:
        """Each non-zero slot's value (us, float64, ascending): its highest equivalent value,
        what rank statistics and percentiles see."""
        return slot_values().high[self.slots].astype(np.float64)

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

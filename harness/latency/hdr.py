"""The project's HDR histogram layout: 1 us .. 60 s, 3 significant digits, in microseconds.

One layout for every histogram the harness records, ships, merges and reads: workers record
into it, the master merges it, results and the A/B analysis read percentiles from it.
`HdrLayout` is the index arithmetic, vectorised (the one place outside hdrh that maps values
to slots); `record_values` and `clear_histogram` are fast paths over hdrh's own counts.
Values outside the range are refused by the recorders and counted, never clamped.
"""

from __future__ import annotations

import ctypes
import math
import sys
from dataclasses import dataclass

import numpy as np
from hdrh.histogram import HdrHistogram

__all__ = [
    "HIGHEST_US",
    "LOWEST_US",
    "SIGNIFICANT_DIGITS",
    "HdrLayout",
    "clear_histogram",
    "decode_histogram",
    "new_histogram",
    "record_values",
    "to_us",
]

LOWEST_US = 1
HIGHEST_US = 60_000_000
SIGNIFICANT_DIGITS = 3
SUCCESS, FAILURE = "success", "failure"

@dataclass(frozen=True, slots=True)
class HdrLayout:
    """Index arithmetic of an HdrHistogram, vectorised (the project's 1 us .. 60 s, 3
    significant digits by default): the one place outside hdrh that maps values to slots."""

    lowest: int = LOWEST_US
    highest: int = HIGHEST_US
    significant_figures: int = SIGNIFICANT_DIGITS

    @property
    def unit_magnitude(self) -> int:
        return math.floor(math.log2(self.lowest))

    @property
    def sub_bucket_half_count_magnitude(self) -> int:
        mag = math.ceil(math.log2(2 * 10**self.significant_figures))
        return mag - 1 if mag > 1 else 0

    def index_of(self, values: np.ndarray) -> np.ndarray:
        """HDR counts-array index of each integer value (vectorised `_counts_index_for`)."""
        v = np.asarray(values, dtype=np.int64)
        shm = self.sub_bucket_half_count_magnitude
        mask = ((1 << (shm + 1)) - 1) << self.unit_magnitude
        bit_length = np.frexp((v | mask).astype(np.float64))[1].astype(np.int64)
        bucket = bit_length - self.unit_magnitude - (shm + 1)
        sub_bucket = v >> (bucket + self.unit_magnitude)
        return ((bucket + 1) << shm) + sub_bucket - (1 << shm)

    def lowest_of(self, index: np.ndarray) -> np.ndarray:
        """Lowest value (us) each counts-array index holds (hdrh's `get_value_from_index`)."""
        idx = np.asarray(index, dtype=np.int64)
        shm = self.sub_bucket_half_count_magnitude
        half = 1 << shm
        bucket = (idx >> shm) - 1
        sub = (idx & (half - 1)) + half
        low = bucket < 0
        sub = np.where(low, sub - half, sub)
        bucket = np.where(low, 0, bucket)
        return sub << (bucket + self.unit_magnitude)

    def value_of(self, index: np.ndarray) -> np.ndarray:
        """Highest equivalent value (us) of each counts-array index."""
        idx = np.asarray(index, dtype=np.int64)
        shm = self.sub_bucket_half_count_magnitude
        bucket = np.maximum((idx >> shm) - 1, 0)
        lowest = self.lowest_of(idx)
        return (lowest + (1 << (bucket + self.unit_magnitude)) - 1).astype(np.float64)


_LAYOUT = HdrLayout()  # the layout of `new_histogram()`


def new_histogram() -> HdrHistogram:
    """An empty histogram with the project's fixed range and precision."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def clear_histogram(histogram: HdrHistogram) -> None:
    """Empty `histogram` for reuse. hdrh's own `reset()` zeroes its ~16 k counts one by one
    in Python (~1 ms); its counts are a ctypes array, so one memset does the same."""
    counts = histogram.counts
    if not isinstance(counts, ctypes.Array):  # another hdrh layout: the slow, sure way
        histogram.reset()
        return
    ctypes.memset(ctypes.addressof(counts), 0, ctypes.sizeof(counts))
    histogram.total_count = 0
    histogram.min_value = sys.maxsize
    histogram.max_value = 0
    histogram.start_time_stamp_msec = sys.maxsize
    histogram.end_time_stamp_msec = 0


def record_values(histogram: HdrHistogram, values_us: list[int] | np.ndarray) -> None:
    """`record_value` for many values at once (each within 0 .. HIGHEST_US): one numpy pass
    instead of ~2 us of Python per value. Same slots, totals, min and max as hdrh."""
    values = np.asarray(values_us, dtype=np.int64)
    if values.size == 0:
        return
    counts = histogram.counts
    if not isinstance(counts, ctypes.Array):  # another hdrh layout: the slow, sure way
        for value in values.tolist():
            histogram.record_value(value)
        return
    view = np.asarray(memoryview(counts))  # hdrh's own counts, no copy
    view += np.bincount(_LAYOUT.index_of(values), minlength=view.size).astype(view.dtype)
    histogram.total_count += int(values.size)
    histogram.min_value = min(histogram.min_value, int(values.min()))
    histogram.max_value = max(histogram.max_value, int(values.max()))


def decode_histogram(blob: bytes) -> HdrHistogram:
    return HdrHistogram.decode(blob)


def to_us(seconds: float) -> int:
    """Seconds -> whole microseconds, rounded to nearest (negative stays negative)."""
    return math.floor(seconds * 1_000_000 + 0.5)

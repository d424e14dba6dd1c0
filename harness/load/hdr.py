"""Per-second HDR latency windows: recorded on each worker, merged exactly on the master.

Why not Locust's own stats: they round response times to about two significant digits and
measure from the actual send, so a stalled server hides behind the generator's own waiting
(coordinated omission). Here every request goes into the HdrHistogram of its
(second, endpoint, outcome) window twice:

- `hdr`: latency from the *intended* start (open loop: the schedule; closed loop: the send),
- `hdr_uncorrected`: latency from the actual send,

in microseconds, range 1 us .. 60 s, 3 significant digits. Values outside that range are
counted in `rejected` (HdrHistogram's `record_value` returns False for them; nothing is
clamped). Workers `flush()` finished windows every second as `WindowRecord`s (picklable,
and `to_dict()` is msgpack-able for Locust's worker -> master messages); the master's
`WindowStore` adds histograms and counters, which is exact: the merged histogram equals
the histogram of all the requests. Percentiles are only ever read from merged histograms.

Not thread-safe by design: Locust users run in gevent greenlets of one thread per process.
"""

from __future__ import annotations

import ctypes
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 60_000_000
SIGNIFICANT_DIGITS = 3
SUCCESS, FAILURE = "success", "failure"

WindowKey = tuple[int, str, str]


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

    def value_of(self, index: np.ndarray) -> np.ndarray:
        """Highest equivalent value (us) of each counts-array index."""
        idx = np.asarray(index, dtype=np.int64)
        shm = self.sub_bucket_half_count_magnitude
        half = 1 << shm
        bucket = (idx >> shm) - 1
        sub = (idx & (half - 1)) + half
        low = bucket < 0
        sub = np.where(low, sub - half, sub)
        bucket = np.where(low, 0, bucket)
        lowest = sub << (bucket + self.unit_magnitude)
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


@dataclass(frozen=True, slots=True)
class WindowRecord:
    """One (second, endpoint, outcome) window: the row format of windows.parquet."""

    second: int
    endpoint: str
    outcome: str
    count: int
    hdr: bytes
    hdr_uncorrected: bytes
    checked: int = 0
    correct: int = 0
    rejected: int = 0
    healthy: bool = True

    @property
    def key(self) -> WindowKey:
        return (self.second, self.endpoint, self.outcome)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (msgpack/JSON-friendly apart from the two bytes fields)."""
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowRecord:
        return cls(**{name: data[name] for name in cls.__slots__ if name in data})


@dataclass(slots=True)
class _Window:
    corrected: HdrHistogram = field(default_factory=new_histogram)
    uncorrected: HdrHistogram = field(default_factory=new_histogram)
    count: int = 0
    checked: int = 0
    correct: int = 0
    rejected: int = 0
    healthy: bool = True
    # values (us) not yet in the histograms: appending is ~20x cheaper than hdrh's
    # pure-Python record_value, and they go in all at once, vectorised, at `to_record`
    pending: list[int] = field(default_factory=list)
    pending_uncorrected: list[int] = field(default_factory=list)

    def to_record(self, key: WindowKey) -> WindowRecord:
        record_values(self.corrected, self.pending)
        record_values(self.uncorrected, self.pending_uncorrected)
        self.pending, self.pending_uncorrected = [], []
        return WindowRecord(
            second=key[0],
            endpoint=key[1],
            outcome=key[2],
            count=self.count,
            hdr=self.corrected.encode(),
            hdr_uncorrected=self.uncorrected.encode(),
            checked=self.checked,
            correct=self.correct,
            rejected=self.rejected,
            healthy=self.healthy,
        )

    def merge(self, record: WindowRecord) -> None:
        self.corrected.add(decode_histogram(record.hdr))
        self.uncorrected.add(decode_histogram(record.hdr_uncorrected))
        self.count += record.count
        self.checked += record.checked
        self.correct += record.correct
        self.rejected += record.rejected
        self.healthy = self.healthy and record.healthy


class LatencyRecorder:
    """Worker side: records requests into per-second windows; `flush` ships finished ones.

    Times are seconds on one clock; `origin_s` is the run start on that clock, so the window
    of a request is `floor(intended_s - origin_s)` (closed loop: pass intended_s = sent_s).
    """

    # Finished windows' histograms are cleared and reused rather than dropped: each is
    # ~130 KiB, and hdrh's histogram and its encoder reference each other, so a dropped one
    # waits for a full cyclic collection -- the worker's memory grew with the run's length.
    MAX_SPARE_HISTOGRAMS = 32

    def __init__(self, origin_s: float = 0.0) -> None:
        self.origin_s = origin_s
        self._windows: dict[WindowKey, _Window] = {}
        self._spare: list[HdrHistogram] = []
        self._unhealthy: set[int] = set()
        self.recorded = 0
        self.rejected = 0

    def record(
        self,
        endpoint: str,
        ok: bool,
        intended_s: float,
        sent_s: float,
        done_s: float,
        checked: int = 0,
        correct: int = 0,
    ) -> None:
        key = (math.floor(intended_s - self.origin_s), endpoint, SUCCESS if ok else FAILURE)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(
                self._histogram(), self._histogram(), healthy=key[0] not in self._unhealthy
            )
        window.count += 1
        window.checked += checked
        window.correct += correct
        corrected, uncorrected = to_us(done_s - intended_s), to_us(done_s - sent_s)
        # HdrHistogram's buckets reach ~68 s; the contract's range ends at 60 s, so enforce it
        # (and, like hdrh's record_value, refuse negative values).
        accepted = True
        if 0 <= corrected <= HIGHEST_US:
            window.pending.append(corrected)
        else:
            accepted = False
        if 0 <= uncorrected <= HIGHEST_US:
            window.pending_uncorrected.append(uncorrected)
        else:
            accepted = False
        if not accepted:
            window.rejected += 1
            self.rejected += 1
        self.recorded += 1

    def mark_unhealthy(self, second: int) -> None:
        """Flag a second in which this generator was unhealthy (CPU saturated, lagging)."""
        self._unhealthy.add(second)
        for key, window in self._windows.items():
            if key[0] == second:
                window.healthy = False

    def flush(
        self, before_second: int | None = None, pause: Callable[[], None] | None = None
    ) -> list[WindowRecord]:
        """Pop and encode windows with second < `before_second` (None: all of them).
        `pause` is called before each window (a worker yields there, so that encoding a
        busy second's windows never holds up its event loop for long in one piece)."""
        done = [k for k in self._windows if before_second is None or k[0] < before_second]
        records = []
        for key in sorted(done):
            if pause is not None:
                pause()
            window = self._windows.pop(key)
            records.append(window.to_record(key))
            self._recycle(window.corrected)
            self._recycle(window.uncorrected)
        if before_second is None:
            self._unhealthy.clear()
        else:
            self._unhealthy = {s for s in self._unhealthy if s >= before_second}
        return records

    def _histogram(self) -> HdrHistogram:
        return self._spare.pop() if self._spare else new_histogram()

    def _recycle(self, histogram: HdrHistogram) -> None:
        if len(self._spare) < self.MAX_SPARE_HISTOGRAMS:
            clear_histogram(histogram)
            self._spare.append(histogram)

    @property
    def open_windows(self) -> int:
        return len(self._windows)


class WindowStore:
    """Master side: exact merge of `WindowRecord`s from any number of workers.

    Windows are kept encoded (a few KiB each instead of two ~140 KiB count arrays), so a
    one-hour run stays small; a record for a key already held is merged by decode + add +
    encode, which is exact.
    """

    def __init__(self) -> None:
        self._records: dict[WindowKey, WindowRecord] = {}

    def add(self, record: WindowRecord) -> None:
        held = self._records.get(record.key)
        self._records[record.key] = record if held is None else merge_records(held, record)

    def add_all(self, records: Iterable[WindowRecord]) -> None:
        for record in records:
            self.add(record)

    def mark_unhealthy(self, second: int) -> None:
        """Master-side health flag (e.g. a worker was lost during this second)."""
        for key, record in self._records.items():
            if key[0] == second and record.healthy:
                self._records[key] = replace(record, healthy=False)

    def records(self, before_second: int | None = None) -> list[WindowRecord]:
        """Merged windows, sorted by (second, endpoint, outcome)."""
        keys = sorted(k for k in self._records if before_second is None or k[0] < before_second)
        return [self._records[key] for key in keys]

    def histogram(
        self,
        *,
        seconds: range | None = None,
        endpoint: str | None = None,
        outcome: str | None = SUCCESS,
        corrected: bool = True,
    ) -> HdrHistogram:
        """One histogram merging the selected windows (for live progress and summaries)."""
        merged = new_histogram()
        for (second, name, kind), record in self._records.items():
            if seconds is not None and second not in seconds:
                continue
            if (endpoint is not None and name != endpoint) or (outcome and kind != outcome):
                continue
            merged.add(decode_histogram(record.hdr if corrected else record.hdr_uncorrected))
        return merged

    def seconds(self) -> list[int]:
        return sorted({key[0] for key in self._records})

    def __len__(self) -> int:
        return len(self._records)


def merge_records(a: WindowRecord, b: WindowRecord) -> WindowRecord:
    """Exact sum of two records of the same key."""
    if a.key != b.key:
        raise ValueError(f"cannot merge windows {a.key} and {b.key}")
    window = _Window(healthy=a.healthy)
    window.merge(a)
    window.merge(b)
    return window.to_record(a.key)

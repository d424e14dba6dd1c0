"""The worker's latency recorder: every request into its per-second window, shipped by `flush`.

Not thread-safe by design: Locust users run in gevent greenlets of one thread per process.
Appending a value costs ~1 us; values enter the histograms vectorised when a window is
flushed (hdrh's pure-Python `record_value` costs ~2 us each).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from harness.latency.hdr import HIGHEST_US, clear_histogram, new_histogram, record_values, to_us
from harness.latency.windows import FAILURE, SUCCESS, WindowKey, WindowRecord

__all__ = ["LatencyRecorder"]


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

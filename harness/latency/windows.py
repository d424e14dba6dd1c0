"""Per-second latency windows: the wire format workers ship and the exact merge of them.

Every request goes into the HdrHistogram of its (second, endpoint, outcome) window twice:
`hdr` from the *intended* start (open loop: the schedule; closed loop: the send) and
`hdr_uncorrected` from the actual send. A `WindowRecord` is one such window, encoded: the row
format of windows.parquet and of the workers' messages to the master (picklable; `to_dict()`
is msgpack-able for Locust's transport). `WindowStore` adds records of the same key, which is
exact: the merged histogram equals the histogram of all the requests. Percentiles are only
ever read from merged histograms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from hdrh.histogram import HdrHistogram

from harness.latency.hdr import decode_histogram, new_histogram

__all__ = ["FAILURE", "SUCCESS", "WindowKey", "WindowRecord", "WindowStore", "merge_records"]

SUCCESS, FAILURE = "success", "failure"

WindowKey = tuple[int, str, str]


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
    corrected, uncorrected = decode_histogram(a.hdr), decode_histogram(a.hdr_uncorrected)
    corrected.add(decode_histogram(b.hdr))
    uncorrected.add(decode_histogram(b.hdr_uncorrected))
    return replace(
        a,
        count=a.count + b.count,
        hdr=corrected.encode(),
        hdr_uncorrected=uncorrected.encode(),
        checked=a.checked + b.checked,
        correct=a.correct + b.correct,
        rejected=a.rejected + b.rejected,
        healthy=a.healthy and b.healthy,
    )

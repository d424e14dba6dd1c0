"""Latency histograms as arrays: the data model the A/B statistics work on.

Why: a one-hour run at 2,000 req/s is 7.2 M requests, stored as one HDR histogram per
(second, endpoint, outcome). The statistics must never expand those into samples. Two views
of an arm are kept, both with memory bounded by the latency *range*, not the request count:

* `SparseHist` (the project's one histogram type, `harness.latency.sparse`) — the exact
  merged histogram at HDR resolution (3 significant digits). Point estimates (percentiles,
  Mann-Whitney U, Hodges-Lehmann) come from it, so they agree with `summary.json`.
* `ArmWindows` — one row per second on a shared logarithmic grid of relative width
  `resolution` (default 0.5 %: bin j holds values in [r**j, r**(j+1)), r = 1 + resolution).
  The resampling statistics (moving-block bootstrap, the autocorrelation-robust variance of
  the rank test) work on this dense ``(windows x bins)`` float32 matrix with one BLAS product
  per batch of replicates. Binning moves a value by at most half a bin (0.25 %), far below
  the sampling noise of any percentile it feeds.

Values are microseconds. HDR buckets are represented by their *highest equivalent value*
(`SparseHist.values`), the convention of `HdrHistogram.get_value_at_percentile`, so
percentiles match the load engine's summary. Everything here is pure: arrays in, frozen records out.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from harness.errors import AnalysisError
from harness.latency.hdr import HdrLayout
from harness.latency.sparse import SparseHist

__all__ = [
    "DEFAULT_RESOLUTION",
    "ArmWindows",
    "HdrLayout",
    "SparseHist",
    "arm_from_samples",
    "bin_ids_for",
    "bin_values",
]

log = logging.getLogger(__name__)

DEFAULT_RESOLUTION = 0.005


def bin_ids_for(values: np.ndarray, resolution: float = DEFAULT_RESOLUTION) -> np.ndarray:
    """Log-grid bin id of each value (us): floor(log(v) / log(1 + resolution))."""
    v = np.maximum(np.asarray(values, dtype=np.float64), 1.0)
    return np.floor(np.log(v) / math.log1p(resolution)).astype(np.int64)


def bin_values(bin_ids: np.ndarray, resolution: float = DEFAULT_RESOLUTION) -> np.ndarray:
    """Representative value (geometric centre, us) of each log-grid bin."""
    return np.exp((np.asarray(bin_ids, dtype=np.float64) + 0.5) * math.log1p(resolution))


@dataclass(frozen=True, slots=True)
class ArmWindows:
    """One arm (endpoint) of a comparison: per-second counts on the log grid plus totals.

    `counts[t, k]` is the number of successful requests of second `seconds[t]` whose latency
    falls in log-grid bin `bin_ids[k]`. `requests`/`failures` are per second (all outcomes);
    `checked`/`correct` are totals of answers compared with labels (0/0 when unchecked).
    """

    name: str
    seconds: np.ndarray
    bin_ids: np.ndarray
    counts: np.ndarray
    merged: SparseHist
    requests: np.ndarray
    failures: np.ndarray
    checked: int = 0
    correct: int = 0
    rejected: int = 0
    resolution: float = DEFAULT_RESOLUTION
    excluded_windows: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        n = self.seconds.shape[0]
        if self.counts.shape != (n, self.bin_ids.shape[0]):
            raise AnalysisError(
                f"arm {self.name!r}: counts shape {self.counts.shape} does not match "
                f"{n} windows x {self.bin_ids.shape[0]} bins"
            )
        if self.requests.shape != (n,) or self.failures.shape != (n,):
            raise AnalysisError(f"arm {self.name!r}: requests/failures need one value per window")

    @property
    def n_windows(self) -> int:
        return int(self.seconds.shape[0])

    @property
    def n_success(self) -> int:
        return self.merged.total

    @property
    def n_requests(self) -> int:
        return int(self.requests.sum())

    @property
    def n_failures(self) -> int:
        return int(self.failures.sum())


def arm_from_samples(
    name: str,
    seconds: np.ndarray,
    latencies_us: np.ndarray,
    failed: np.ndarray | None = None,
    resolution: float = DEFAULT_RESOLUTION,
) -> ArmWindows:
    """Build an arm from raw per-request samples (tests, synthetic data), as the engine would.

    Latencies are rounded to whole microseconds and quantised to HDR resolution exactly like
    `HdrHistogram.record_value`; failed requests count as requests but carry no latency.
    """
    sec = np.asarray(seconds, dtype=np.int64)
    lat = np.clip(np.rint(np.asarray(latencies_us, dtype=np.float64)), 1, HdrLayout().highest)
    bad = np.zeros(sec.shape, dtype=bool) if failed is None else np.asarray(failed, dtype=bool)
    uniq_sec, row = np.unique(sec, return_inverse=True)
    requests = np.bincount(row, minlength=uniq_sec.size).astype(np.int64)
    failures = np.bincount(row, weights=bad, minlength=uniq_sec.size).astype(np.int64)
    ok = ~bad
    merged = SparseHist.from_values(lat[ok].astype(np.int64))
    values = HdrLayout().value_of(HdrLayout().index_of(lat[ok].astype(np.int64)))
    ids = bin_ids_for(values, resolution)
    bin_ids, col = np.unique(ids, return_inverse=True)
    flat = np.bincount(row[ok] * bin_ids.size + col, minlength=uniq_sec.size * bin_ids.size)
    counts = flat.reshape(uniq_sec.size, bin_ids.size).astype(np.float32)
    return ArmWindows(
        name=name,
        seconds=uniq_sec,
        bin_ids=bin_ids,
        counts=counts,
        merged=merged,
        requests=requests,
        failures=failures,
        resolution=resolution,
    )

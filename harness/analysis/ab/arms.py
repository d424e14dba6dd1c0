"""A/B arms from a run's window table: the exact merged histogram plus the per-second
log-grid matrix the statistics work on. Pure: a pyarrow table in, `ArmWindows` out.

The table has windows.parquet's columns (`second`, `endpoint`, `outcome`, `count`, `hdr`,
`checked`, `correct`, `rejected`, `healthy`; `hdr` may hold the uncorrected histogram).
Each HDR window is decoded once; memory is bounded by windows x grid bins, whatever the
request rate. Excluded from latency and counts, and reported: seconds before
`measured_from_s` (the end of warm-up) and seconds in which the load generator was not
healthy (its latency there measures itself). Latency statistics use successful requests
only; failures count towards the error rate. An arm with no failure rows has zero failures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hdrh.histogram import HdrHistogram

from harness.analysis.ab.histdata import (
    DEFAULT_RESOLUTION,
    ArmWindows,
    bin_ids_for,
)
from harness.errors import StoreError
from harness.latency.sparse import SparseHist, slot_values

__all__ = ["ARM_COLUMNS", "arms_from_table", "endpoints_of"]

ARM_COLUMNS = (
    "second", "endpoint", "outcome", "count", "hdr", "checked", "correct", "rejected", "healthy",
)


def endpoints_of(table: pa.Table) -> tuple[str, ...]:
    return tuple(sorted(str(e) for e in pc.unique(table.column("endpoint")).to_pylist()))


def arms_from_table(
    table: pa.Table,
    endpoints: Sequence[str],
    *,
    measured_from_s: float | None = None,
    resolution: float = DEFAULT_RESOLUTION,
    notes: tuple[str, ...] = (),
    source: str = "run",
) -> list[ArmWindows]:
    """One `ArmWindows` per endpoint of `table` (StoreError naming what is there if one
    is missing)."""
    present = endpoints_of(table)
    missing = [e for e in endpoints if e not in present]
    if missing:
        raise StoreError(f"{source}: no endpoint {missing}; it has {list(present)}")
    out = []
    for endpoint in endpoints:
        sub = table.filter(pc.equal(table.column("endpoint"), endpoint))
        arm = _arm_from_table(endpoint, sub, measured_from_s, resolution)
        out.append(replace(arm, notes=notes) if notes else arm)
    return out


class _Decoder:
    """Decodes HDR windows into (log-grid bin ids, counts) and sums them exactly per slot."""

    def __init__(self, resolution: float) -> None:
        values = slot_values().high
        self._bins = bin_ids_for(values, resolution)
        self.merged = np.zeros(values.size, dtype=np.int64)

    def decode(self, blob: bytes) -> tuple[np.ndarray, np.ndarray]:
        h = HdrHistogram.decode(blob)
        if h.counts_len != self.merged.size:
            layout = (h.lowest_trackable_value, h.highest_trackable_value, h.significant_figures)
            raise StoreError(
                f"a window's histogram has layout {layout}, not the project's "
                "(1 us..60 s, 3 digits): it was not written by this harness"
            )
        counts = np.ctypeslib.as_array(h.counts)
        nz = np.flatnonzero(counts)
        self.merged[nz] += counts[nz].astype(np.int64)
        bins = self._bins[nz]  # non-decreasing: sum the HDR slots of each grid bin
        starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
        summed = np.add.reduceat(counts[nz], starts) if nz.size else counts[:0]
        return bins[starts].astype(np.int32), summed.astype(np.float32)

    def merged_histogram(self) -> SparseHist:
        return SparseHist.from_dense(self.merged)


def _kept_seconds(table: pa.Table, warmup_end: float | None) -> tuple[np.ndarray, int]:
    seconds = table.column("second").to_numpy()
    healthy = table.column("healthy").to_numpy(zero_copy_only=False).astype(bool)
    all_s = np.unique(seconds)
    keep = ~np.isin(all_s, seconds[~healthy])
    if warmup_end is not None:
        keep &= all_s >= math.ceil(warmup_end)
    return all_s[keep], int((~keep).sum())


def _arm_from_table(
    name: str, table: pa.Table, warmup_end: float | None, resolution: float
) -> ArmWindows:
    seconds, excluded = _kept_seconds(table, warmup_end)
    sec = table.column("second").to_numpy()
    rows = np.flatnonzero(np.isin(sec, seconds))
    row_of = np.searchsorted(seconds, sec[rows])
    count = table.column("count").to_numpy()[rows]
    fail = table.column("outcome").to_numpy(zero_copy_only=False)[rows] != "success"
    requests = np.bincount(row_of, weights=count, minlength=seconds.size).astype(np.int64)
    failures = np.bincount(row_of[fail], weights=count[fail], minlength=seconds.size)
    decoder = _Decoder(resolution)
    blobs = table.column("hdr").to_pylist()
    r_idx, b_idx, c_val = [], [], []
    for i in np.flatnonzero(~fail):
        bins, counts = decoder.decode(blobs[rows[i]])
        r_idx.append(np.full(bins.size, row_of[i], dtype=np.int32))
        b_idx.append(bins)
        c_val.append(counts)
    matrix, bin_ids = _dense(seconds.size, r_idx, b_idx, c_val)
    total = {
        c: int(table.column(c).to_numpy()[rows].sum()) for c in ("checked", "correct", "rejected")
    }
    return ArmWindows(
        name=name,
        seconds=seconds,
        bin_ids=bin_ids,
        counts=matrix,
        merged=decoder.merged_histogram(),
        requests=requests,
        failures=failures.astype(np.int64),
        checked=total["checked"],
        correct=total["correct"],
        rejected=total["rejected"],
        resolution=resolution,
        excluded_windows=excluded,
    )


def _dense(n_rows, r_idx, b_idx, c_val) -> tuple[np.ndarray, np.ndarray]:
    if not r_idx:
        return np.zeros((n_rows, 0), dtype=np.float32), np.zeros(0, dtype=np.int64)
    rows, bins, vals = (np.concatenate(x) for x in (r_idx, b_idx, c_val))
    del r_idx[:], b_idx[:], c_val[:]
    bin_ids, col = np.unique(bins, return_inverse=True)
    matrix = np.zeros((n_rows, bin_ids.size), dtype=np.float32)
    np.add.at(matrix, (rows, col), vals)  # add, not assign: duplicate rows would sum
    return matrix, bin_ids.astype(np.int64)



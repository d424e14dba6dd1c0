"""Arms from a window table: the merged histogram is the one histogram type, exactly the
sum of the windows, and a window from a foreign histogram layout is refused by name."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hdrh.histogram import HdrHistogram

from harness.analysis.ab.arms import arms_from_table
from harness.analysis.ab.synthetic import window_rows
from harness.errors import StoreError
from harness.latency.sparse import SparseHist


def _table(latency_us: np.ndarray) -> pa.Table:
    seconds = np.repeat(np.arange(latency_us.size // 10), 10)
    return pa.Table.from_pylist(window_rows("a", seconds, latency_us, np.zeros(seconds.size)))


def test_merged_histogram_equals_one_histogram_of_every_request():
    rng = np.random.default_rng(1)
    latency = np.rint(rng.lognormal(np.log(4000), 0.6, 500)).astype(np.int64)
    (arm,) = arms_from_table(_table(latency), ["a"])
    whole = SparseHist.from_values(latency)
    assert isinstance(arm.merged, SparseHist)
    np.testing.assert_array_equal(arm.merged.slots, whole.slots)
    np.testing.assert_array_equal(arm.merged.counts, whole.counts)
    assert arm.merged.percentile(99) == whole.percentile(99)


def test_a_window_in_a_foreign_layout_is_refused():
    table = _table(np.full(20, 1000))
    foreign = HdrHistogram(1, 1_000_000, 2)
    foreign.record_value(1000)
    rows = table.to_pylist()
    rows[0]["hdr"] = foreign.encode()
    with pytest.raises(StoreError, match=r"layout \(1, 1000000, 2\).*not written by this"):
        arms_from_table(pa.Table.from_pylist(rows), ["a"])

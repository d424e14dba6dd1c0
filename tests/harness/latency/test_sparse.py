"""The vectorised slot table equals hdrh's own, slot by slot."""

from __future__ import annotations

import numpy as np
import pytest

from harness.latency.hdr import HdrLayout, new_histogram
from harness.latency.sparse import SparseHist, slot_values


def test_slot_values_equal_hdrh_for_every_slot():
    template = new_histogram()
    low = np.array([template.get_value_from_index(i) for i in range(template.counts_len)])
    high = np.array([template.get_highest_equivalent_value(v) for v in low])
    table = slot_values()
    np.testing.assert_array_equal(table.low, low)
    np.testing.assert_array_equal(table.high, high)
    assert (table.low <= table.mid).all() and (table.mid <= table.high).all()


def test_lowest_of_is_the_inverse_of_index_of():
    layout = HdrLayout()
    index = np.arange(new_histogram().counts_len)
    np.testing.assert_array_equal(layout.index_of(layout.lowest_of(index)), index)


def test_percentiles_read_the_slot_ends():
    # 1000 us sits in a slot of width 1 (3 digits below 2048 us): exact
    hist = SparseHist.from_values(np.array([1000, 1000, 3000]))
    assert hist.percentile(50) == 1000.0 and hist.min() == 1000.0
    assert hist.max() == slot_values().high[HdrLayout().index_of(np.array([3000]))[0]]


# --- the one convention (the A/B statistics and the summary read the same type) ------------


def test_from_values_sorts_merges_and_counts():
    h = SparseHist.from_values(np.array([3, 1, 3, 2, 3, 1]))
    np.testing.assert_array_equal(h.values, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(h.counts, [2, 1, 3])
    assert h.values.dtype == np.float64 and h.counts.dtype == np.int64
    assert h.total == 6


def test_from_dense_keeps_only_non_zero_slots():
    dense = np.zeros(slot_values().high.size, dtype=np.int64)
    dense[[5, 40]] = [2, 7]
    h = SparseHist.from_dense(dense)
    np.testing.assert_array_equal(h.slots, [5, 40])
    np.testing.assert_array_equal(h.counts, [2, 7])


def test_values_are_highest_equivalent_and_mean_is_median_equivalent_like_hdrh():
    # above 2048 us slots are wider than 1 us: a slot's value is hdrh's highest equivalent
    # value, and its share of the mean is hdrh's median equivalent value (get_mean_value)
    template = new_histogram()
    values = [1000, 4321, 4321, 70_000, 1_234_567]
    for v in values:
        template.record_value(v)
    h = SparseHist.from_values(np.array(values))
    expect = sorted({template.get_highest_equivalent_value(v) for v in values})
    np.testing.assert_array_equal(h.values, expect)
    assert h.mean() == template.get_mean_value()


def test_empty_histogram_has_no_percentile_mean_min_or_max():
    h = SparseHist.empty()
    assert h.total == 0 and h.values.size == 0
    assert h.percentile(50.0) is None and h.mean() is None
    assert h.min() is None and h.max() is None


@pytest.mark.parametrize("pct", [0.0, 10.0, 25.0, 50.0, 62.4, 62.5, 75.0, 99.0, 100.0, 150.0])
def test_percentile_rounds_like_hdrhistogram(pct):
    # 10, 20, 30, 30, 40 us (recorded exactly): request number max(int(pct/100 x 5 + 0.5), 1);
    # above 100 % HdrHistogram reads 100 %
    hdr = new_histogram()
    for v in (10, 20, 30, 30, 40):
        hdr.record_value(v)
    h = SparseHist.from_values(np.array([10, 20, 30, 30, 40]))
    assert h.percentile(pct) == hdr.get_value_at_percentile(min(pct, 100.0))


def test_percentile_by_hand():
    h = SparseHist.from_values(np.array([10, 20, 30, 40]))
    # 4 requests: 50 % -> int(2.5) = request 2; 62.4 % -> int(2.996) = 2; 62.5 % -> 3;
    # 150 % reads as 100 %: request 4, never request 6 (out of range)
    assert [h.percentile(p) for p in (0.0, 50.0, 62.4, 62.5, 100.0, 150.0)] == [
        10.0, 20.0, 20.0, 30.0, 40.0, 40.0,
    ]


def test_a_foreign_layout_is_refused():
    from hdrh.histogram import HdrHistogram

    with pytest.raises(ValueError, match="layout differs"):
        SparseHist.from_histogram(HdrHistogram(1, 1_000_000, 2))

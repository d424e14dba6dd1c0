"""The vectorised slot table equals hdrh's own, slot by slot."""

from __future__ import annotations

import numpy as np

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

"""The A/B data model: the log grid and arms from samples.

The histogram type itself is harness.latency.sparse.SparseHist (tests/harness/latency).
"""

from __future__ import annotations

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from harness.analysis.ab.histdata import (
    DEFAULT_RESOLUTION,
    ArmWindows,
    arm_from_samples,
    bin_ids_for,
    bin_values,
)
from harness.errors import AnalysisError
from harness.latency.sparse import SparseHist


def test_log_grid_by_hand() -> None:
    # resolution 0.5: bin j holds [1.5^j, 1.5^(j+1)); log(v) / log(1.5):
    # 1 -> 0, 2 -> 1.71, 3 -> 2.71, 10 -> 5.68; below 1 counts as 1
    ids = bin_ids_for(np.array([0.0, 0.5, 1.0, 2.0, 3.0, 10.0]), resolution=0.5)
    np.testing.assert_array_equal(ids, [0, 0, 0, 1, 2, 5])
    assert ids.dtype == np.int64
    # geometric centres 1.5^(j + 1/2)
    np.testing.assert_allclose(
        bin_values(np.array([0, 2, 5]), resolution=0.5), [1.224745, 2.755676, 9.300406], rtol=1e-6
    )
    # the default 0.5 % grid: log(5000) / log(1.005) = 8.517193 / 0.00498754 = 1707.70
    assert DEFAULT_RESOLUTION == 0.005
    assert bin_ids_for(np.array([5000.0]))[0] == 1707
    assert bin_values(np.array([1707]))[0] == pytest.approx(1.005**1707.5)


def test_arm_from_samples_quantises_like_hdr_and_counts_per_second() -> None:
    seconds = np.array([5, 5, 7, 7, 7, 9])
    latencies = np.array([2500.4, 999.0, 3.2, 0.2, 4321.0, 70e6])
    failed = np.array([False, True, False, False, False, False])
    arm = arm_from_samples("A", seconds, latencies, failed)
    # whole us, clipped to 1 us .. 60 s, then HDR's highest equivalent value:
    # 2500 -> 2501, 3 -> 3, 0 -> 1, 4321 -> 4323, 60,000,000 -> 60,030,975 (hdrh's own)
    hdr = HdrHistogram(1, 60_000_000, 3)
    assert [hdr.get_highest_equivalent_value(v) for v in (2500, 4321, 60_000_000)] == [
        2501, 4323, 60_030_975,
    ]
    np.testing.assert_array_equal(arm.merged.values, [1, 3, 2501, 4323, 60_030_975])
    np.testing.assert_array_equal(arm.merged.counts, [1, 1, 1, 1, 1])
    np.testing.assert_array_equal(arm.seconds, [5, 7, 9])
    np.testing.assert_array_equal(arm.requests, [2, 3, 1])  # the failed request counts here
    np.testing.assert_array_equal(arm.failures, [1, 0, 0])
    # log-grid bins: log(v) / log(1.005) = 0, 220.27, 1568.80, 1678.52, 3591.02
    np.testing.assert_array_equal(arm.bin_ids, [0, 220, 1568, 1678, 3591])
    np.testing.assert_array_equal(
        arm.counts, [[0, 0, 1, 0, 0], [1, 1, 0, 1, 0], [0, 0, 0, 0, 1]]
    )
    assert arm.counts.dtype == np.float32
    assert (arm.n_windows, arm.n_success, arm.n_requests, arm.n_failures) == (3, 5, 6, 1)
    assert (arm.name, arm.resolution, arm.rejected, arm.checked) == ("A", 0.005, 0, 0)


def test_arm_from_samples_accepts_plain_lists_and_float_seconds() -> None:
    # seconds as floats, failure flags as 0/1 integers: the arm still has integer seconds,
    # and a flag of 1 marks a failure (not a bitwise complement of an int)
    arm = arm_from_samples("A", [0.0, 0.0, 1.0], [3, 10, 3], failed=[0, 1, 0])
    assert arm.seconds.dtype == np.int64
    np.testing.assert_array_equal(arm.seconds, [0, 1])
    np.testing.assert_array_equal(arm.failures, [1, 0])
    np.testing.assert_array_equal(arm.merged.values, [3.0])
    np.testing.assert_array_equal(arm.merged.counts, [2])
    assert arm.requests.dtype == np.int64 and arm.failures.dtype == np.int64


def test_arm_from_samples_without_failures_and_on_a_coarser_grid() -> None:
    arm = arm_from_samples("B", np.array([0, 0, 1]), np.array([3.0, 10.0, 3.0]), resolution=0.5)
    np.testing.assert_array_equal(arm.failures, [0, 0])
    np.testing.assert_array_equal(arm.bin_ids, [2, 5])  # 3 -> 2.71, 10 -> 5.68 (see above)
    np.testing.assert_array_equal(arm.counts, [[1, 1], [1, 0]])
    assert arm.resolution == 0.5


def _arm(counts: np.ndarray, requests: np.ndarray, failures: int = 2) -> ArmWindows:
    return ArmWindows(
        name="A",
        seconds=np.arange(2),
        bin_ids=np.array([1, 2]),
        counts=counts,
        merged=SparseHist.from_values(np.array([1])),
        requests=requests,
        failures=np.zeros(failures, dtype=np.int64),
    )


def test_arm_shapes_are_checked() -> None:
    _arm(np.zeros((2, 2)), np.ones(2))  # consistent
    with pytest.raises(AnalysisError) as err:
        _arm(np.zeros((2, 3)), np.ones(2))
    assert str(err.value) == "arm 'A': counts shape (2, 3) does not match 2 windows x 2 bins"
    with pytest.raises(AnalysisError) as err:
        _arm(np.zeros((3, 2)), np.ones(2))
    assert str(err.value) == "arm 'A': counts shape (3, 2) does not match 2 windows x 2 bins"
    with pytest.raises(AnalysisError) as err:
        _arm(np.zeros((2, 2)), np.ones(3))
    assert str(err.value) == "arm 'A': requests/failures need one value per window"
    with pytest.raises(AnalysisError) as err:
        _arm(np.zeros((2, 2)), np.ones(2), failures=1)
    assert str(err.value) == "arm 'A': requests/failures need one value per window"

"""The moving-block bootstrap's parts against hand-computed values.

Why here as well as in test_calibration.py: the calibration runs judge the intervals as a
whole, and `latency_ab` widens the bootstrap by the variance a block of the chosen length
misses (`inflation`), which hides a wrong block length there. These pin each part alone.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.bootstrap import (
    block_length,
    bootstrap_p_value,
    circular_block_weights,
    percentile_interval,
)


@pytest.mark.parametrize(
    ("n", "rho", "expected"),
    [
        # b = max(n^(1/3), (6 rho^2 / (1 - rho^2)^2)^(1/3) n^(1/3)), ceiled, at most n // 8
        (1, 0.7, 1),  # one window: nothing to block
        (120, 0.0, 5),  # 120^(1/3) = 4.932 -> 5 (the textbook rate alone)
        (120, -0.4, 5),  # negative rho counts as 0
        # 6 * 0.49 / 0.51^2 = 11.3033, cube root 2.2442; x 4.9324 = 11.07 -> 12 (cap 15)
        (120, 0.7, 12),
        (3600, 0.7, 35),  # 2.2442 x 3600^(1/3) = 2.2442 x 15.326 = 34.40 -> 35 (cap 450)
        # 6 * 0.81 / 0.19^2 = 134.6, cube root 5.125; x 40^(1/3) = 3.42 -> 17.5, cap 40 // 8 = 5
        (40, 0.9, 5),
    ],
)
def test_block_length_by_hand(n: int, rho: float, expected: int) -> None:
    assert block_length(n, rho) == expected


def _changes(row: np.ndarray) -> int:
    """How often the weight changes between circularly adjacent windows."""
    return int(np.count_nonzero(row != np.roll(row, 1)))


def test_circular_blocks_are_runs_of_consecutive_seconds() -> None:
    rng = np.random.default_rng(0)
    whole = circular_block_weights(12, 12, 50, rng)
    # one block as long as the run: a rotation of the whole series, each second once
    np.testing.assert_array_equal(whole, np.ones((50, 12), dtype=np.float32))
    halves = circular_block_weights(12, 6, 200, rng)
    assert halves.dtype == np.float32 and halves.shape == (200, 12)
    np.testing.assert_array_equal(halves.sum(axis=1), np.full(200, 12.0))
    # two circular runs of 6 change the weight at <= 4 places; single draws would not
    assert max(_changes(row) for row in halves) <= 4
    singles = circular_block_weights(12, 1, 200, rng)
    np.testing.assert_array_equal(singles.sum(axis=1), np.full(200, 12.0))
    assert np.mean([_changes(row) for row in singles]) > 6


def test_percentile_interval_by_hand() -> None:
    replicates = np.arange(1001.0)[::-1]  # 0 .. 1000, any order
    # linear interpolation: position 1000 q -> q = 0.025 is 25, 0.975 is 975
    assert percentile_interval(replicates, 0.95) == pytest.approx((25.0, 975.0), abs=1e-9)
    assert percentile_interval(replicates, 0.90) == pytest.approx((50.0, 950.0), abs=1e-9)


def test_bootstrap_p_value_by_hand() -> None:
    # 2 below 0, 1 at 0, 7 above: tail = min(2 + 1/2, 7 + 1/2) = 2.5 -> p = 2 x 2.5 / 10
    assert bootstrap_p_value(np.array([-2, -1, 0, 1, 2, 3, 4, 5, 6, 7.0])) == 0.5
    # none on the far side of 0: floored at 1 / (R + 1)
    assert bootstrap_p_value(np.arange(1, 101.0)) == pytest.approx(1 / 101)
    assert bootstrap_p_value(np.array([-1.0, 1.0])) == 1.0

"""The moving-block bootstrap's parts against hand-computed values.

Why here as well as in test_calibration.py: the calibration runs judge the intervals as a
whole, and `latency_ab` widens the bootstrap by the variance a block of the chosen length
misses (`inflation`), which hides a wrong block length there. These pin each part alone.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.ab.bootstrap import (
    block_length,
    bootstrap_p_value,
    circular_block_weights,
    percentile_interval,
    quantile_rows,
    replicate_chunks,
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
        # 6 * 0.25 / 0.75^2 = 2.6667, cube root 1.3867; x 15.326 = 21.25 -> 22
        (3600, 0.5, 22),
        # rho above 0.95 counts as 0.95: 6 * 0.9025 / 0.0975^2 = 569.6, cube root 8.2894;
        # x 15.326 = 127.05 -> 128
        (3600, 0.99, 128),
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


def test_quantile_rows_use_hdr_rounding_by_hand() -> None:
    values = np.array([10.0, 20.0, 30.0, 40.0])
    hists = np.array([[1, 1, 1, 1], [0, 3, 0, 1], [0, 0, 0, 0]], dtype=np.float32)
    pcts = np.array([0.1, 25.0, 50.0, 62.4, 62.5, 75.0, 99.0, 100.0])
    # HdrHistogram: the value holding request number max(floor(pct / 100 x total + 0.5), 1).
    # row 1 (total 4): 0.1 -> 0.504 -> 1st; 25 -> 1.5 -> 1st; 50 -> 2.5 -> 2nd;
    #   62.4 -> 2.996 -> 2nd; 62.5 -> 3.0 -> 3rd; 75 -> 3.5 -> 3rd; 99 -> 4.46 -> 4th; 100 -> 4th
    # row 2 (20, 20, 20, 40): 1st-3rd requests are 20, the 4th 40
    # row 3 (empty): the last value, never an index error
    expected = [
        [10, 10, 20, 20, 30, 30, 40, 40],
        [20, 20, 20, 20, 20, 20, 40, 40],
        [40, 40, 40, 40, 40, 40, 40, 40],
    ]
    np.testing.assert_array_equal(quantile_rows(hists, values, pcts), expected)


def test_quantile_rows_count_in_double_precision() -> None:
    # float32 holds integers exactly only up to 2^24: summed in float32, 2^24 + 1 + 1 would
    # stay 2^24 and p100 would land on the first value
    hists = np.array([[2.0**24, 1.0, 1.0]], dtype=np.float32)
    out = quantile_rows(hists, np.array([1.0, 2.0, 3.0]), np.array([100.0]))
    assert out[0, 0] == 3.0


def test_replicate_chunks_sizes_and_pairing() -> None:
    n = 12
    eye = np.eye(n, dtype=np.float32)  # one window per bin: a replicate row is its weights
    rng = np.random.default_rng(0)
    chunks = list(replicate_chunks(eye, eye, paired=True, n_boot=600, block=3, rng=rng))
    assert [ha.shape for ha, _ in chunks] == [(250, n), (250, n), (100, n)]
    for ha, hb in chunks:
        np.testing.assert_array_equal(ha, hb)  # the same seconds in both arms
        np.testing.assert_array_equal(ha.sum(axis=1), np.full(ha.shape[0], float(n)))
    small = list(replicate_chunks(eye, eye, paired=False, n_boot=120, block=3, rng=rng, chunk=50))
    assert [ha.shape[0] for ha, _ in small] == [50, 50, 20]
    assert all(not np.array_equal(ha, hb) for ha, hb in small)  # drawn apart
    # unpaired arms may differ in length
    other = np.eye(8, dtype=np.float32)
    ((ha, hb),) = replicate_chunks(eye, other, paired=False, n_boot=100, block=2, rng=rng)
    assert ha.shape == (100, n) and hb.shape == (100, 8)


def test_paired_resampling_needs_the_same_windows() -> None:
    with pytest.raises(ValueError) as err:
        next(
            replicate_chunks(
                np.ones((5, 2)), np.ones((6, 2)), paired=True, n_boot=100, block=2,
                rng=np.random.default_rng(0),
            )
        )
    assert str(err.value) == "paired resampling needs the same windows in both arms"


def test_circular_blocks_with_a_partial_last_block() -> None:
    # 10 windows in blocks of 3: ceil(10 / 3) = 4 blocks, the last cut to 1 window
    rng = np.random.default_rng(3)
    w = circular_block_weights(10, 3, 400, rng)
    np.testing.assert_array_equal(w.sum(axis=1), np.full(400, 10.0))
    # every window is drawn about equally often: 400 x 10 draws over 10 windows
    assert np.all(np.abs(w.sum(axis=0) / 400 - 1.0) < 0.15)
    # 4 runs change the weight at <= 8 places
    assert max(_changes(row) for row in w) <= 8


def test_block_length_without_rho_is_the_textbook_rate() -> None:
    assert block_length(120) == 5  # ceil(120^(1/3) = 4.93)


def test_bootstrap_p_value_with_ties_at_zero_on_the_short_side() -> None:
    # 3 below, 2 at 0, 1 above: tail = min(3 + 1, 1 + 1) = 2 -> p = 2 x 2 / 6
    assert bootstrap_p_value(np.array([-3.0, -2, -1, 0, 0, 1])) == pytest.approx(2 / 3)
    # mirrored
    assert bootstrap_p_value(np.array([3.0, 2, 1, 0, 0, -1])) == pytest.approx(2 / 3)

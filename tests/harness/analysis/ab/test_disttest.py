"""Anderson-Darling from histograms: against SciPy for k samples and large N, and the
two-sample form the bootstrap uses, by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from harness.analysis.ab.disttest import TwoSampleAD, anderson_ksamp_hist
from harness.latency.sparse import SparseHist


def _hist(x: np.ndarray) -> SparseHist:
    """Whole-microsecond samples as the one histogram type (exact below 2048 us)."""
    return SparseHist.from_values(np.asarray(x, dtype=np.int64))


def _scipy(samples: list[np.ndarray]) -> float:
    with warnings.catch_warnings():  # its table p-value is capped and says so; not used
        warnings.simplefilter("ignore")
        return float(stats.anderson_ksamp(samples, variant="midrank").statistic)


@pytest.mark.parametrize("seed", range(3))
def test_three_samples_equal_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    samples = [rng.integers(1, 30 + 5 * i, rng.integers(20, 200)).astype(float) for i in range(3)]
    ours = anderson_ksamp_hist([_hist(x) for x in samples])
    assert ours.statistic == pytest.approx(_scipy(samples), rel=1e-9)


def test_large_samples_use_the_asymptotic_constants() -> None:
    """N > 200,000: h = log(N - 1) + Euler's gamma + 1 / (2 (N - 1)) and g = pi^2 / 6
    instead of the exact sums; the standardised statistic stays within 0.1 % of SciPy's
    exact one (the error of g, ~1e-4, is amplified a few times by the variance formula)."""
    rng = np.random.default_rng(0)
    x = rng.integers(1, 60, 120_000).astype(float)
    y = rng.integers(1, 62, 90_000).astype(float)
    ours = anderson_ksamp_hist([_hist(x), _hist(y)])
    assert ours.statistic == pytest.approx(_scipy([x, y]), rel=1e-3)


def test_by_hand() -> None:
    # A = {1, 1, 2}, B = {2, 3}: N = 5, tie counts l = 2, 2, 1, midrank positions
    # B_j = cumsum(l) - l / 2 = 1, 3, 4.5; denominators B_j (N - B_j) - N l_j / 4 =
    # 1.5, 3.5, 1.0; midrank counts of A: 1, 2.5, 3 and of B: 0, 0.5, 1.5.
    # A2akN = (N - 1) / N sum_i 1/n_i sum_j (l_j / N) (N M_ij - B_j n_i)^2 / denom_j
    #   A: (0.4 (5 - 3)^2 / 1.5 + 0.4 (12.5 - 9)^2 / 3.5 + 0.2 (15 - 13.5)^2 / 1) / 3
    #      = (1.066667 + 1.4 + 0.45) / 3 = 0.972222
    #   B: (0.4 (0 - 2)^2 / 1.5 + 0.4 (2.5 - 6)^2 / 3.5 + 0.2 (7.5 - 9)^2 / 1) / 2
    #      = (1.066667 + 1.4 + 0.45) / 2 = 1.458333
    #   -> 0.8 x 2.430556 = 1.944444
    a, b = _hist(np.array([1.0, 1.0, 2.0])), _hist(np.array([2.0, 3.0]))
    ours = anderson_ksamp_hist([a, b])
    assert ours.a2akn == pytest.approx(1.944444, abs=1e-6)
    assert ours.statistic == pytest.approx(_scipy([np.array([1.0, 1, 2]), np.array([2.0, 3])]))
    assert ours.statistic == pytest.approx((ours.a2akn - 1) / ours.sigma)
    # the two-sample form: weights (l_j / N) / denom_j = 0.266667, 0.114286, 0.2;
    # midrank CDFs F_A = 1/3, 2.5/3, 1 and F_B = 0, 0.25, 0.75; scale (N - 1) n_A n_B = 24:
    # 24 (0.266667 x 0.111111 + 0.114286 x 0.340278 + 0.2 x 0.0625) = 1.944444 again
    two = TwoSampleAD.from_totals(np.array([2.0, 1.0, 0.0]), np.array([0.0, 1.0, 1.0]))
    np.testing.assert_allclose(two.weights, [0.4 / 1.5, 0.4 / 3.5, 0.2])
    np.testing.assert_allclose(two.diff, [1 / 3, 2.5 / 3 - 0.25, 0.25])
    assert two.scale == 24.0
    assert two.statistic() == pytest.approx(1.944444, abs=1e-6)
    # upper half: B_j / N = 0.2, 0.6, 0.9 >= 0.5 -> bins 2 and 3, pooled mass 0.4 and 0.2:
    # (0.583333 x 0.4 + 0.25 x 0.2) / 0.6 = 0.472222 > 0: B is slower
    np.testing.assert_array_equal(two.upper, [False, True, True])
    np.testing.assert_allclose(two.mass, [0.4, 0.4, 0.2])
    assert two.upper_tail_shift() == pytest.approx(0.472222, abs=1e-6)
    flipped = TwoSampleAD.from_totals(np.array([0.0, 1.0, 1.0]), np.array([2.0, 1.0, 0.0]))
    assert flipped.upper_tail_shift() == pytest.approx(-0.472222, abs=1e-6)


def test_centred_replicates_by_hand() -> None:
    # A = {1}, B = {2} on two bins: l = 1, 1; B_j = 0.5, 1.5; denominators 0.75 - 0.5 = 0.25
    # each; weights 0.5 / 0.25 = 2; F_A = 0.5, 1 and F_B = 0, 0.5: diff 0.5, 0.5; scale 1
    two = TwoSampleAD.from_totals(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    assert two.statistic() == pytest.approx(2 * 0.25 + 2 * 0.25)
    rows_a = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    rows_b = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    # row 1 is the observation: 0. Row 2 swapped: F*_A - F*_B = -0.5, -0.5, minus the
    # observed 0.5 -> -1, -1: 2 + 2 = 4. Row 3 has an empty A (F = 0): 0 - 0 - 0.5 and
    # 0 - 0.5 - 0.5 -> 2 x 0.25 + 2 x 1 = 2.5
    np.testing.assert_allclose(two.centred(rows_a, rows_b), [0.0, 4.0, 2.5])


def test_a_single_value_everywhere_has_no_weight_and_no_nan() -> None:
    # one bin: B_j = N / 2, denominator N^2 / 4 - N^2 / 4 = 0 -> weight 0
    two = TwoSampleAD.from_totals(np.array([3.0]), np.array([2.0]))
    assert two.weights.tolist() == [0.0]
    assert two.statistic() == 0.0
    assert two.centred(np.array([[1.0]]), np.array([[4.0]])).tolist() == [0.0]
    # (N >= 4: the variance formula divides by (N - 1)(N - 2)(N - 3); compare_arms needs
    # at least min_requests >= 2 requests per arm)
    ours = anderson_ksamp_hist([_hist(np.array([5.0, 5.0])), _hist(np.array([5.0, 5.0]))])
    assert ours.a2akn == 0.0


def test_the_upper_half_includes_the_bin_at_the_pooled_median() -> None:
    # A = {1, 2}, B = {2, 3}: l = 1, 2, 1, N = 4, B_j / N = 0.125, 0.5, 0.875: the middle
    # bin is on the median and counts as upper. F_A = 0.25, 0.75, 1; F_B = 0, 0.25, 0.75;
    # diff 0.25, 0.5, 0.25 with masses 0.25, 0.5, 0.25 -> (0.5 x 0.5 + 0.25 x 0.25) / 0.75
    two = TwoSampleAD.from_totals(np.array([1.0, 1.0, 0.0]), np.array([0.0, 1.0, 1.0]))
    np.testing.assert_array_equal(two.upper, [False, True, True])
    assert two.upper_tail_shift() == pytest.approx(0.3125 / 0.75)


def test_too_few_requests_give_no_statistic_instead_of_dividing_by_zero() -> None:
    """Three requests in all (or an empty arm): the standardisation divides by (N-1)(N-2)(N-3)
    and by each n_i, so there is no statistic -- NaN, never a ZeroDivisionError."""
    import math

    for samples in ([_hist(np.array([1, 2])), _hist(np.array([3]))],
                    [_hist(np.array([1, 2, 3, 4])), _hist(np.array([], dtype=np.int64))]):
        result = anderson_ksamp_hist(samples)
        assert math.isnan(result.statistic) and math.isnan(result.a2akn)
    four = anderson_ksamp_hist([_hist(np.array([1, 2])), _hist(np.array([3, 4]))])
    assert math.isfinite(four.statistic)  # from four requests on it is defined

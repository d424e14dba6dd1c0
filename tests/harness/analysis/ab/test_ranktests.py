"""Rank statistics from histograms agree with SciPy / brute force on expanded samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram
from scipy import stats

from harness.analysis.ab.disttest import anderson_ksamp_hist
from harness.analysis.ab.histdata import HdrLayout
from harness.analysis.ab.ranktests import (
    _arma11,
    _newey_west_prewhitened,
    effective_size,
    hodges_lehmann,
    lag1_autocorrelation,
    long_run_variance,
    mann_whitney,
    placement_deviations,
    short_run_variance,
)
from harness.latency.sparse import SparseHist


def _hist(x: np.ndarray) -> SparseHist:
    """Whole-microsecond samples as the one histogram type (exact below 2048 us)."""
    return SparseHist.from_values(np.asarray(x, dtype=np.int64))


def _samples(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # integer values -> many ties, like HDR buckets
    a = rng.integers(1, 40, rng.integers(5, 300)).astype(float)
    b = rng.integers(3, 45, rng.integers(5, 300)).astype(float)
    return a, b


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("continuity", [True, False])
def test_mann_whitney_equals_scipy_on_expanded_samples(seed: int, continuity: bool) -> None:
    a, b = _samples(seed)
    mw = mann_whitney(_hist(a), _hist(b), continuity=continuity)
    ref = stats.mannwhitneyu(b, a, method="asymptotic", use_continuity=continuity)
    assert mw.u_b == pytest.approx(ref.statistic, abs=1e-9)
    assert mw.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)
    greater = (b[:, None] > a[None, :]).mean()
    less = (b[:, None] < a[None, :]).mean()
    assert mw.cliffs_delta == pytest.approx(greater - less)
    assert mw.cles == pytest.approx(greater + (1 - greater - less) / 2)


@pytest.mark.parametrize("seed", range(6))
def test_hodges_lehmann_is_the_median_pairwise_difference(seed: int) -> None:
    a, b = _samples(seed)
    hl = hodges_lehmann(_hist(a), _hist(b))
    diffs = (b[:, None] - a[None, :]).ravel()
    assert hl.shift == pytest.approx(np.quantile(diffs, 0.5, method="inverted_cdf"), abs=1e-2)
    assert hl.lo <= hl.shift <= hl.hi


def test_hodges_lehmann_interval_covers_a_known_shift() -> None:
    rng = np.random.default_rng(11)
    a = np.rint(rng.lognormal(np.log(5000), 0.4, 4000))
    b = np.rint(rng.lognormal(np.log(5000), 0.4, 4000)) + 300
    hl = hodges_lehmann(_hist(a), _hist(b))
    assert hl.lo < 300 < hl.hi
    assert hl.lo > 0  # and the shift is resolved


@pytest.mark.parametrize("seed", range(5))
def test_anderson_darling_equals_scipy_midrank(seed: int) -> None:
    a, b = _samples(seed)
    ours = anderson_ksamp_hist([_hist(a), _hist(b)])
    ref = stats.anderson_ksamp([a, b], variant="midrank", method=stats.PermutationMethod(1))
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-9)


def test_hdr_layout_matches_hdrhistogram() -> None:
    h = HdrHistogram(1, 60_000_000, 3)
    layout = HdrLayout()
    rng = np.random.default_rng(2)
    values = np.unique(np.concatenate([np.arange(1, 4200), rng.integers(1, 60_000_000, 3000)]))
    idx = layout.index_of(values)
    assert list(idx) == [h._counts_index_for(int(v)) for v in values]
    expect = [h.get_highest_equivalent_value(h.get_value_from_index(int(i))) for i in idx]
    assert list(layout.value_of(idx)) == expect


def test_percentile_matches_hdrhistogram() -> None:
    rng = np.random.default_rng(3)
    lat = np.rint(rng.lognormal(np.log(5000), 0.7, 5000)).astype(int)
    h = HdrHistogram(1, 60_000_000, 3)
    for v in lat:
        h.record_value(int(v))
    ours = SparseHist.from_values(lat)
    for pct in (50, 90, 99, 99.9):
        assert ours.percentile(pct) == h.get_value_at_percentile(pct)


def test_placement_deviations_sum_to_zero_and_reproduce_cles() -> None:
    rng = np.random.default_rng(4)
    ca = rng.poisson(3.0, (50, 30)).astype(np.float32)
    cb = rng.poisson(3.0, (50, 30)).astype(np.float32)
    d_a, d_b, theta = placement_deviations(ca, cb)
    assert abs(d_a.sum()) < 1e-4 and abs(d_b.sum()) < 1e-4
    grid = np.arange(30)  # slots 0..29 hold 0..29 us exactly
    mw = mann_whitney(
        SparseHist(grid, ca.sum(0).astype(np.int64)), SparseHist(grid, cb.sum(0).astype(np.int64))
    )
    assert theta == pytest.approx(mw.cles)


def test_long_run_variance_of_ar1_matches_theory() -> None:
    """Var(sum x) = n * sigma^2 / (1 - phi)^2 for an AR(1) with innovation sd sigma."""
    rng = np.random.default_rng(5)
    phi, n, reps = 0.6, 2000, 30
    est = []
    for _ in range(reps):
        e = rng.standard_normal(n)
        x = np.empty(n)
        x[0] = e[0] / np.sqrt(1 - phi**2)
        for t in range(1, n):
            x[t] = phi * x[t - 1] + e[t]
        est.append(long_run_variance(x))
    theory = n / (1 - phi) ** 2
    assert np.mean(est) == pytest.approx(theory, rel=0.1)


# --- small cases by hand ----------------------------------------------------------------------


def test_mann_whitney_by_hand() -> None:
    # A = {1, 2}, B = {2, 3}: pairs B > A: (2,1), (3,1), (3,2) = 3, tie (2,2) = 1/2 -> U_B 3.5,
    # CLES 3.5 / 4 = 0.875, Cliff's delta 0.75. Tie counts on {1, 2, 3}: 1, 2, 1 ->
    # sum(t^3 - t) = 6, N = 4: var U = 2 x 2 / 12 x (5 - 6 / 12) = 1.5, mean 2;
    # z = (3.5 - 2 - 0.5) / sqrt(1.5) = 0.816497 -> p = 2 x 0.207108 = 0.414216;
    # without the continuity correction z = 1.5 / sqrt(1.5) = 1.224745 -> p = 0.220671
    a, b = _hist(np.array([1.0, 2.0])), _hist(np.array([2.0, 3.0]))
    mw = mann_whitney(a, b)
    assert (mw.u_b, mw.n_a, mw.n_b, mw.cles, mw.cliffs_delta) == (3.5, 2, 2, 0.875, 0.75)
    assert mw.var_u == pytest.approx(1.5)
    assert mw.z == pytest.approx(0.816497, abs=1e-6)
    assert mw.p_value == pytest.approx(0.414216, abs=1e-6)
    raw = mann_whitney(a, b, continuity=False)
    assert raw.z == pytest.approx(1.224745, abs=1e-6)
    assert raw.p_value == pytest.approx(0.220671, abs=1e-6)
    # B below A: U_B = 0.5, the larger U is still 3.5 -> same z and p, CLES 0.125
    rev = mann_whitney(b, a)
    assert (rev.u_b, rev.cles, rev.cliffs_delta) == (0.5, 0.125, -0.75)
    assert rev.p_value == pytest.approx(0.414216, abs=1e-6)


def test_mann_whitney_degenerate_inputs() -> None:
    empty = SparseHist.empty()
    mw = mann_whitney(empty, _hist(np.array([1.0, 2.0])))
    assert (mw.n_a, mw.n_b, mw.z, mw.p_value) == (0, 2, 0.0, 1.0)
    assert math.isnan(mw.u_b) and math.isnan(mw.cles) and math.isnan(mw.var_u)
    assert math.isnan(mw.cliffs_delta)
    assert mann_whitney(_hist(np.array([3.0])), empty).n_a == 1
    # one request each, the same value: all tied, var U = 1/12 x (3 - 6 / 2) = 0
    one = mann_whitney(_hist(np.array([5.0])), _hist(np.array([5.0])))
    assert (one.var_u, one.z, one.p_value, one.cles) == (0.0, 0.0, 1.0, 0.5)
    # identical samples: U = mean exactly, z = -0.5 / sd < 0 -> p capped at 1
    same = mann_whitney(_hist(np.array([1.0, 2, 3])), _hist(np.array([1.0, 2, 3])))
    assert same.u_b == 4.5 and same.p_value == 1.0


def test_placement_deviations_by_hand() -> None:
    # A = {1 (second 0), 2 (second 1)}, B = {2 (second 0), 3 (second 1)} on the grid 1, 2, 3.
    # theta = CLES = 0.875 (see above). Each B request's placement P(A < b) + P(A = b) / 2:
    # b = 2 -> 0.5 + 0.25 = 0.75, b = 3 -> 1; minus theta, over n_B = 2: -0.0625, +0.0625.
    # Each A request's P(B > a) + P(B = a) / 2: a = 1 -> 1, a = 2 -> 0.5 + 0.25 = 0.75;
    # minus theta, over n_A = 2: +0.0625, -0.0625.
    ca = np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32)
    cb = np.array([[0, 1, 0], [0, 0, 1]], dtype=np.float32)
    d_a, d_b, theta = placement_deviations(ca, cb)
    assert theta == 0.875
    assert d_a.dtype == np.float64 and d_b.dtype == np.float64
    np.testing.assert_allclose(d_a, [0.0625, -0.0625], atol=1e-7)
    np.testing.assert_allclose(d_b, [-0.0625, 0.0625], atol=1e-7)
    # unequal arms: A = {1, 1} in second 0 and {3} in second 1, B = {2} then {3}.
    # B's placements: b = 2 -> 2/3, b = 3 -> (2 + 1/2) / 3 = 5/6; theta = 3/4.
    # d_B = (2/3 - 3/4) / 2, (5/6 - 3/4) / 2 = -1/24, +1/24.
    # A's placements: a = 1 -> 1, a = 3 -> (1/2) / 2 = 1/4; d_A = 2 (1 - 3/4) / 3 = 1/6 in
    # second 0, (1/4 - 3/4) / 3 = -1/6 in second 1.
    ca = np.array([[2, 0, 0], [0, 0, 1]], dtype=np.float32)
    cb = np.array([[0, 1, 0], [0, 0, 1]], dtype=np.float32)
    d_a, d_b, theta = placement_deviations(ca, cb)
    assert theta == pytest.approx(0.75)
    np.testing.assert_allclose(d_a, [1 / 6, -1 / 6], atol=1e-7)
    np.testing.assert_allclose(d_b, [-1 / 24, 1 / 24], atol=1e-7)


def test_lag1_autocorrelation_by_hand() -> None:
    # 1, 2, 3, 4 centred: -1.5 -0.5 0.5 1.5; sum of squares 5;
    # lag-1 products 0.75 - 0.25 + 0.75 = 1.25 -> 0.25
    assert lag1_autocorrelation(np.array([1.0, 2, 3, 4])) == pytest.approx(0.25)
    # 1, 3, 2 centred: -1, 1, 0; squares 2; products -1 + 0 -> -0.5
    assert lag1_autocorrelation(np.array([1.0, 3, 2])) == pytest.approx(-0.5)
    assert lag1_autocorrelation(np.array([1.0, 2])) == 0.0  # too short
    assert lag1_autocorrelation(np.full(10, 7.0)) == 0.0  # constant


def test_short_run_variance_by_hand() -> None:
    # x = 1, -1, 1, -1 (after centring 2, 0, 2, 0): gamma0 = 4/4 = 1; lag 1 sum -3, lag 2 sum 2
    x = np.array([2.0, 0, 2, 0])
    assert short_run_variance(x, 1) == pytest.approx(4.0)  # no lags: sum of squares
    # block 2: (1 + 2 (1 - 1/2)(-3/4)) x 4 = 0.25 x 4 = 1
    assert short_run_variance(x, 2) == pytest.approx(1.0)
    # block 3: (1 + 2 (2/3)(-3/4) + 2 (1/3)(2/4)) x 4 = (1 - 1 + 1/3) x 4 = 4/3
    assert short_run_variance(x, 3) == pytest.approx(4 / 3)
    # block 10 > n: lags 1..3 with weights 0.9, 0.8, 0.7; lag 3 sum -1:
    # (1 + 1.8 (-0.75) + 1.6 (0.5) + 1.4 (-0.25)) x 4 = (1 - 1.35 + 0.8 - 0.35) x 4 = 0.4
    assert short_run_variance(x, 10) == pytest.approx(0.4)


def test_long_run_variance_of_a_very_short_series_is_its_sum_of_squares() -> None:
    assert long_run_variance(np.array([1.0, -2.0, 1.0])) == 6.0
    assert long_run_variance(np.array([3.0])) == 9.0


def test_hodges_lehmann_interval_by_hand() -> None:
    # A = {0}, B = {1, ..., 100}: the pairwise differences are B itself, P(D <= d) = d / 100.
    # Interval: the quantiles at 0.5 -+ q se; the smallest d with d / 100 >= p.
    a, b = _hist(np.array([0.0])), _hist(np.arange(1.0, 101.0))
    # normal, se 0.1: 1.959964 x 0.1 -> p = 0.304, 0.696 -> 31, 70; median 50
    hl = hodges_lehmann(a, b, se_cles=0.1)
    assert (hl.shift, hl.lo, hl.hi, hl.level) == (50.0, 31.0, 70.0, 0.95)
    # 90 %: 1.644854 x 0.1 -> 0.3355, 0.6645 -> 34, 67
    hl = hodges_lehmann(a, b, se_cles=0.1, level=0.9)
    assert (hl.lo, hl.hi) == (34.0, 67.0)
    # Student-t with 4 df: 2.776445 x 0.1 -> 0.2224, 0.7776 -> 23, 78
    hl = hodges_lehmann(a, b, se_cles=0.1, df=4)
    assert (hl.lo, hl.hi) == (23.0, 78.0)
    # an interval past probability 0 or 1 is the whole range of differences: 1 .. 100
    hl = hodges_lehmann(a, b, se_cles=1.0)
    assert (hl.shift, hl.lo, hl.hi) == (50.0, 1.0, 100.0)


def test_hodges_lehmann_default_se_is_the_textbook_one() -> None:
    # A = {0} (1 request), B = 1..100: var U = 1 x 100 / 12 x 102 = 850 (no ties), se of CLES
    # sqrt(850) / 100 = 0.291548 -> p = 0.5 -+ 0.571426 -> clipped to 0 and 1: 1 .. 100
    a, b = _hist(np.array([0.0])), _hist(np.arange(1.0, 101.0))
    hl = hodges_lehmann(a, b)
    assert (hl.lo, hl.hi) == (1.0, 100.0)
    # 20 requests at 0 in A: var U = 20 x 100 / 12 x (121 - (20^3 - 20) / (120 x 119))
    # = 166.667 x (121 - 0.558824) = 20073.53; se = 141.681 / 2000 = 0.070841;
    # 1.959964 x 0.070841 = 0.138845 -> p = 0.361155, 0.638845 -> 37, 64
    a20 = SparseHist(np.array([0]), np.array([20]))  # slot 0 holds 0 us
    hl = hodges_lehmann(a20, b)
    assert (hl.shift, hl.lo, hl.hi) == (50.0, 37.0, 64.0)


def test_hodges_lehmann_with_ties_at_zero() -> None:
    # A = {0, 0}, B = {0, 1}: differences 0, 0, 1, 1 -> median 0
    hl = hodges_lehmann(SparseHist(np.array([0]), np.array([2])), _hist(np.array([0, 1])))
    assert hl.shift == 0.0


# --- the two long-run variance estimates, by hand --------------------------------------------
# Both start from the lag-k autocorrelations r_k of the (mean-zero) series and the
# Kendall-corrected r1k = r1 + (1 + 3 r1) / n.


def test_arma11_long_run_variance_by_hand() -> None:
    # 1, -1, -1, 1: sum of squares 4, r1 = -1/4, r1k = -0.25 + 0.25 / 4 = -0.1875, phi = 0
    # (r1 is not above 2 / sqrt(4)): 4 x (1 + 2 x -0.1875) = 2.5
    assert _arma11(np.array([1.0, -1.0, -1.0, 1.0])) == pytest.approx(2.5)
    # alternating, n = 8: r1 = -7/8, r1k = -1.078125, 1 + 2 r1k < 0.05 -> 8 x 0.05
    assert _arma11(np.array([1.0, -1.0] * 4)) == pytest.approx(0.4)
    # n = 16, sum of squares 74, lag sums 39 and 31: r1 = 39/74 > 2 / sqrt(16), so
    # phi = max(r2 / r1, r1k) = max(31/39, 815/1184) = 31/39;
    # 74 (1 + 2 (815/1184) / (8/39)) = 74 + 496.640625 = 570.640625
    x16 = np.array([2.0, 1, 3, -1, -1, -2, -3, -2, -3, -1, -2, 2, 3, 2, 3, -1])
    assert _arma11(x16) == pytest.approx(570.640625)
    # n = 9, sum of squares 22, r1 = 15/22, r1k = 202/198 > 0.95: phi capped at 0.95;
    # 22 (1 + 2 (202/198) / 0.05) = 919.777778
    x9 = np.array([-2.0, -2, -2, 0, 0, 1, 1, 2, 2])
    assert _arma11(x9) == pytest.approx(919.777778, abs=1e-6)


def test_prewhitened_newey_west_by_hand() -> None:
    # -3, 0, 2, 1, -3, 3, -2, 1, 1 (n = 9): sum of squares 38, lag-1 sum -17, r1 = -0.447368;
    # rho = r1 + (1 + 3 r1) / 9 = -0.485380; residuals e_t = x_t - rho x_(t-1), centred:
    # -1.770468, 1.685673, 1.656433, -2.828947, 1.229532, -0.858187, -0.285088, 1.171053;
    # their lag-1 autocorrelation -0.465188 -> alpha1 = 4 r^2 / ((1 - r)^2 (1 + r)^2)
    # = 1.409705, bandwidth int(1.1447 (1.409705 x 8)^(1/3)) = int(2.567) = 2;
    # gamma0 2.552954, Bartlett terms 2 (2/3) gamma1 = -1.583472, 2 (1/3) gamma2 = -0.382704
    # -> 0.586779; recoloured: 0.586779 x 9 / (1 + 0.485380)^2 = 2.393546
    x = np.array([-3.0, 0, 2, 1, -3, 3, -2, 1, 1])
    assert _newey_west_prewhitened(x) == pytest.approx(2.393546, abs=1e-6)
    assert _arma11(x) == pytest.approx(1.9)  # 38 x (1 + 2 x -0.485380) = 1.9
    assert long_run_variance(x) == pytest.approx(2.393546, abs=1e-6)  # the larger
    assert effective_size(x) == pytest.approx(9 * 38 / 2.393546, rel=1e-6)
    # -2, -3, -3, 0, 1, 2, 2, 3: r1 = 27/40, rho = 0.675 + 3.025 / 8 > 0.95 -> 0.95;
    # residuals centred -1.792857, -0.842857, 2.157143, 0.307143, 0.357143, -0.592857,
    # 0.407143 (lag-1 autocorrelation 0.0013: bandwidth 0): gamma0 = 1.331020;
    # 1.331020 x 8 / 0.05^2 = 4259.265306
    trend = np.array([-2.0, -3, -3, 0, 1, 2, 2, 3])
    assert _newey_west_prewhitened(trend) == pytest.approx(4259.265306, abs=1e-5)
    # alternating, n = 8: r1 = -7/8, rho = -1.078 -> -0.9; residuals x_t + 0.9 x_(t-1)
    # = -0.1 x_(t-1), centred -0.085714 (x4) and 0.114286 (x3), lag-1 autocorrelation
    # -6/7; alpha1 = 41.75, bandwidth min(int(1.1447 x 292.3^(1/3)) = 7, 7 - 1) = 6;
    # gamma0 0.009796 and the six Bartlett terms sum to 0.000933; x 8 / 1.9^2 = 0.002067
    alt = np.array([1.0, -1.0] * 4)
    assert _newey_west_prewhitened(alt) == pytest.approx(0.0020675, abs=1e-7)


def test_long_run_variance_takes_the_larger_estimate() -> None:
    x16 = np.array([2.0, 1, 3, -1, -1, -2, -3, -2, -3, -1, -2, 2, 3, 2, 3, -1])
    assert _newey_west_prewhitened(x16) < 570.640625
    assert long_run_variance(x16) == pytest.approx(570.640625)
    assert effective_size(x16) == pytest.approx(16 * 74 / 570.640625)
    assert long_run_variance(np.array([1.0, -1.0, -1.0, 1.0])) == pytest.approx(2.5)
    assert effective_size(np.array([1.0, -1.0, -1.0, 1.0])) == pytest.approx(6.4)
    # nothing varies: no variance, and the series counts at face value
    assert long_run_variance(np.zeros(6)) == 0.0
    assert effective_size(np.zeros(6)) == 6.0


def test_mann_whitney_with_a_variance_below_one() -> None:
    # A = {1}, B = {2, 3}: U_B = 2, mean 1, var U = 1 x 2 / 12 x 4 = 2/3 (no ties);
    # z = (2 - 1 - 0.5) / sqrt(2/3) = 0.612372 -> p = 0.540291 (SciPy agrees)
    mw = mann_whitney(_hist(np.array([1.0])), _hist(np.array([2.0, 3.0])))
    assert mw.var_u == pytest.approx(2 / 3)
    assert mw.z == pytest.approx(0.612372, abs=1e-6)
    ref = stats.mannwhitneyu([2.0, 3.0], [1.0], method="asymptotic")
    assert mw.p_value == pytest.approx(ref.pvalue)
    assert mw.p_value == pytest.approx(0.540291, abs=1e-6)


def test_long_run_variance_scales_with_the_square_of_the_series() -> None:
    # both estimates are scale-free in their autocorrelations: a tenth of the series has
    # a hundredth of the variance (and sums of squares below 1 change nothing)
    x16 = np.array([2.0, 1, 3, -1, -1, -2, -3, -2, -3, -1, -2, 2, 3, 2, 3, -1])
    assert _arma11(x16 / 10) == pytest.approx(5.70640625)
    x = np.array([-3.0, 0, 2, 1, -3, 3, -2, 1, 1])
    assert _newey_west_prewhitened(x / 10) == pytest.approx(0.02393546, abs=1e-8)
    # alternating, n = 8: 0.4 (the 0.05 floor of the ARMA fit) < 1 -> 8 x 8 / 0.4
    assert effective_size(np.array([1.0, -1.0] * 4)) == pytest.approx(160.0)


def test_long_run_variance_clips_by_hand() -> None:
    # 2, 2, 0, -2, -2: sum of squares 16, r1 = 8/16 = 0.5 (below 2 / sqrt(5)), r1k = 0.5 +
    # 2.5 / 5 = 1.0 -> phi capped at 0.95: 16 (1 + 2 x 1.0 / 0.05) = 656
    assert _arma11(np.array([2.0, 2, 0, -2, -2])) == pytest.approx(656.0)
    # the ramp 1..100 centred: sum of squares n (n^2 - 1) / 12 = 83325, lag sums 80825.25
    # and 78326.5: r1 = 0.97, r2 = 0.940012 > 2 / sqrt(100); r2 / r1 = 0.969085 and
    # r1k = 0.97 + 3.91 / 100 = 1.0091 -> phi capped at 0.95: 83325 x (1 + 2.0182 / 0.05)
    ramp = np.arange(1.0, 101.0) - 50.5
    assert _arma11(ramp) == pytest.approx(83325 * (1 + 2 * 1.0091 / 0.05))
    # Newey-West on the ramp: rho = 0.97 + 3.91 / 100 -> 0.95; the residuals 0.05 t + c are
    # a ramp again (lag-1 autocorrelation 0.969697 -> capped at 0.9): alpha1 = 4 x 0.81 /
    # (0.01 x 3.61) = 89.7507, bandwidth int(1.1447 (89.7507 x 99)^(1/3)) = int(23.71) = 23;
    # gamma0 = 2.041667 and the 23 Bartlett terms (3.794613, 3.516250, 3.248283, ...) sum to
    # 37.280261; x 100 / 0.05^2 = 1491210.44
    assert _newey_west_prewhitened(ramp) == pytest.approx(1491210.44, abs=0.01)
    # alternating, n = 40: rho -0.975 - 1.925 / 40 -> -0.9; residual lag-1 -0.974359 ->
    # capped at -0.9: alpha1 89.7507, bandwidth int(1.1447 (89.7507 x 39)^(1/3)) = 17;
    # gamma0 0.009993 and the Bartlett sum 0.000238 -> x 40 / 1.9^2 = 0.00264
    alt = np.array([1.0, -1.0] * 20)
    assert _newey_west_prewhitened(alt) == pytest.approx(0.0026400, abs=1e-7)
    # 3, 2, 1, 0, -1, -2, -3, -2, -1, 0, 1, 2: r1 = 26/38, rho = 0.938596; residual lag-1
    # 0.718120 -> alpha1 = 8.794611, bandwidth int(1.1447 (8.794611 x 11)^(1/3)) = 5;
    # gamma0 0.911921 + (1.091447 + 0.530569 + 0.142125 - 0.074339 - 0.120649) = 2.481073;
    # x 12 / 0.061404^2 = 7896.4959
    wave = np.array([3.0, 2, 1, 0, -1, -2, -3, -2, -1, 0, 1, 2])
    assert _newey_west_prewhitened(wave) == pytest.approx(7896.4959, abs=1e-3)
    assert long_run_variance(wave) == pytest.approx(7896.4959, abs=1e-3)  # ARMA: 1199.71


def test_hodges_lehmann_bisection_off_the_first_guess() -> None:
    # A = {1}, B = {2, 6, 9} us: differences 1, 5, 8; the median (the smallest d with
    # P(D <= d) >= 1/2) is 5. The bisection starts at lo = 2 - 1 - 1 = 0, hi = 9 - 1 = 8 and
    # tries 4 first (P = 1/3: too low), then 6 (2/3), then 5 (2/3): it ends on 5, not 4 or 6
    hl = hodges_lehmann(_hist(np.array([1])), _hist(np.array([2, 6, 9])))
    assert hl.shift == 5.0

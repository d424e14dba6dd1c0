"""Latency statistics of one pair: the robust rank test, the arms' alignment, the percentile
intervals and the bootstrap widening, by hand on tiny arms; then known answers on arms where
B is A shifted by 100 us or identical to A."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from harness.analysis.ab.bootstrap import block_length
from harness.analysis.ab.disttest import TwoSampleAD
from harness.analysis.ab.histdata import arm_from_samples, bin_ids_for, bin_values
from harness.analysis.ab.latency_ab import (
    SHAPE_PERCENTILES,
    _bootstrap,
    _inflation,
    _percentile_diffs,
    align_arms,
    latency_stats,
    robust_rank_test,
)
from harness.analysis.ab.ranktests import (
    effective_size,
    hodges_lehmann,
    long_run_variance,
    placement_deviations,
)
from harness.analysis.ab.synthetic import ArmSpec, simulate_pair

# --- robust rank test on three seconds, by hand --------------------------------------------
# A = 1, 2, 3 us and B = 2, 3, 4 us, one request per second. CLES = 7/9 (pairs B > A: 1.5 for
# b = 2, 2.5 for b = 3, 3 for b = 4). Placement deviations per second (see test_ranktests):
#   B: (1/2 - 7/9) / 3, (5/6 - 7/9) / 3, (1 - 7/9) / 3 = -0.0925926, 0.0185185, 0.0740741
#   A: (1 - 7/9) / 3, (5/6 - 7/9) / 3, (1/2 - 7/9) / 3 = 0.0740741, 0.0185185, -0.0925926
# Fewer than 4 seconds: the long-run variance is the plain sum of squares.
#   paired (one series A + B): -0.0185185, 0.0370370, -0.0185185 -> 0.00205761, se 0.0453609
#   two runs (two series): 2 x 0.0144033 = 0.0288066, se 0.169725
# z = (7/9 - 1/2) / se; effective size 3 -> df = max(3 - 1, 4) = 4.
# Textbook: values 1, 2, 2, 3, 3, 4: ties 2, 2 -> var U = 9/12 (7 - 12/30) = 4.95,
# se = sqrt(4.95) / 9 = 0.247207; design effect = (se / 0.247207)^2.
# Lag-1 of each arm's series: (0.0740741 x 0.0185185 - 0.0185185 x 0.0925926) / 0.0144033
# = -0.0238095 (both arms); block = ceil(3^(1/3)) = 2, capped at max(1, 3 // 8) = 1.


@pytest.fixture(scope="module")
def tiny():
    seconds = np.array([0, 1, 2])
    a = arm_from_samples("A", seconds, np.array([1.0, 2.0, 3.0]))
    b = arm_from_samples("B", seconds, np.array([2.0, 3.0, 4.0]))
    return a, b


@pytest.mark.parametrize(
    ("paired", "se", "design_effect"),
    [(True, 0.0453609, 0.0336700), (False, 0.169725, 0.471380)],
)
def test_robust_rank_test_by_hand(tiny, paired: bool, se: float, design_effect: float) -> None:
    a, b = tiny
    rt = robust_rank_test(a, b, paired=paired)
    assert rt.mw.cles == pytest.approx(7 / 9)
    assert rt.se_cles == pytest.approx(se, abs=1e-6)
    assert rt.df == 4.0
    t = (7 / 9 - 0.5) / se
    assert rt.p_value == pytest.approx(2 * stats.t.sf(t, 4), rel=1e-4)
    assert rt.design_effect == pytest.approx(design_effect, rel=1e-5)
    assert rt.rho == pytest.approx(-0.0238095, abs=1e-6)
    assert rt.block == 1
    # block 1 sees the plain sum of squares too: nothing to widen
    assert rt.inflation == pytest.approx(1.0)
    assert robust_rank_test(a, b, paired=paired, block=3).block == 3


def test_paired_seconds_are_matched_by_time_not_by_position() -> None:
    # B one second later than A: seconds 0..3, A in 0-2 and B in 1-3. Per second, the
    # paired series is A's deviation plus B's (0 where an arm has no request):
    # 0.0740741 + 0, 0.0185185 - 0.0925926, -0.0925926 + 0.0185185, 0 + 0.0740741
    # = 0.0740741 x (1, -1, -1, 1), whose long-run variance is 0.0740741^2 x 2.5
    # (test_ranktests: 1, -1, -1, 1 -> 2.5) = 0.0137174 -> se 0.117121.
    # Matched by position instead, it would be the three-second series above (se 0.045).
    a = arm_from_samples("A", np.array([0, 1, 2]), np.array([1.0, 2.0, 3.0]))
    b = arm_from_samples("B", np.array([1, 2, 3]), np.array([2.0, 3.0, 4.0]))
    rt = robust_rank_test(a, b, paired=True)
    assert rt.se_cles == pytest.approx(0.117121, abs=1e-6)
    s = latency_stats(
        a, b, paired=True, alpha=0.05, pcts=(50.0,), n_boot=100, rng=np.random.default_rng(0)
    )
    assert s.se_cles == pytest.approx(0.117121, abs=1e-6)


def test_robust_rank_test_p_value_is_two_sided(tiny) -> None:
    a, b = tiny
    forward = robust_rank_test(a, b, paired=True)
    backward = robust_rank_test(b, a, paired=True)
    assert backward.mw.cles == pytest.approx(2 / 9)
    assert backward.p_value == pytest.approx(forward.p_value)


def test_robust_rank_test_without_spread_is_not_significant() -> None:
    seconds = np.arange(5)
    a = arm_from_samples("A", seconds, np.full(5, 7.0))
    rt = robust_rank_test(a, arm_from_samples("B", seconds, np.full(5, 7.0)), paired=True)
    assert rt.se_cles == 0.0 and rt.p_value == 1.0
    assert math.isnan(rt.design_effect)  # the textbook variance is 0 too
    assert rt.inflation == 1.0


def test_align_arms_by_hand() -> None:
    # A: seconds 0, 1 with values in bins of 1 and 4 us; B: seconds 1, 2 with 2 and 4 us
    a = arm_from_samples("A", np.array([0, 1]), np.array([1.0, 4.0]))
    b = arm_from_samples("B", np.array([1, 2, 2]), np.array([2.0, 4.0, 4.0]))
    ids = bin_ids_for(np.array([1.0, 2.0, 4.0]))  # 0, 138, 277 on the 0.5 % grid
    ca, cb, values = align_arms(a, b, paired=True)
    # paired: rows are seconds 0, 1, 2 for both arms; columns the union of the bins
    np.testing.assert_array_equal(ca, [[1, 0, 0], [0, 0, 1], [0, 0, 0]])
    np.testing.assert_array_equal(cb, [[0, 0, 0], [0, 1, 0], [0, 0, 2]])
    np.testing.assert_allclose(values, bin_values(ids))
    assert ca.dtype == np.float32 and cb.dtype == np.float32
    # two runs: each arm keeps its own seconds
    ca, cb, _ = align_arms(a, b, paired=False)
    np.testing.assert_array_equal(ca, [[1, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(cb, [[0, 1, 0], [0, 0, 2]])
    assert ca.dtype == np.float32 and cb.dtype == np.float32
    # bin values on the arms' own grid: resolution 0.5 -> 1.5^(j + 1/2) for j = 0, 1, 3
    a = arm_from_samples("A", np.array([0]), np.array([1.0]), resolution=0.5)
    b = arm_from_samples("B", np.array([0, 0]), np.array([2.0, 4.0]), resolution=0.5)
    np.testing.assert_allclose(align_arms(a, b, True)[2], 1.5 ** np.array([0.5, 1.5, 3.5]))


def test_arms_on_different_grids_are_refused() -> None:
    a = arm_from_samples("A", np.array([0]), np.array([5.0]))
    b = arm_from_samples("B", np.array([0]), np.array([5.0]), resolution=0.01)
    with pytest.raises(ValueError) as err:
        align_arms(a, b, paired=True)
    assert str(err.value) == "arms were binned with different grid resolutions"


def test_inflation_is_the_missing_variance_between_1_and_4() -> None:
    # x = 1, -1, 1, -1: a block of 2 sees (1 + 2 x 1/2 x (-3/4)) x 4 = 1 (test_ranktests)
    x = np.array([1.0, -1.0, 1.0, -1.0])
    assert _inflation([x], 3.0, 2) == pytest.approx(3.0)
    assert _inflation([x], 10.0, 2) == 4.0
    assert _inflation([x], 0.5, 2) == 1.0
    assert _inflation([x, x], 3.0, 2) == pytest.approx(1.5)  # two series: seen 1 + 1
    assert _inflation([x], 3.0, 1) == pytest.approx(1.0)  # block 1 sees 4: not less than 3
    assert _inflation([np.zeros(4)], 3.0, 2) == 1.0  # nothing seen: nothing to widen


def test_percentile_intervals_by_hand() -> None:
    # p50 of A is 100 us, of B 110 us. Four replicates on the grid: A 100 each time,
    # B 105, 110, 115, 120; the grid's own p50 of the observation: A 98, B 109.
    a = arm_from_samples("A", np.zeros(3, int), np.full(3, 100.0))
    b = arm_from_samples("B", np.zeros(3, int), np.full(3, 110.0))
    q_a = np.full((4, 1), 100.0)
    q_b = np.array([[105.0], [110.0], [115.0], [120.0]])
    coarse = (np.array([98.0]), np.array([109.0]))
    (pd,) = _percentile_diffs(a, b, q_a, q_b, coarse, (50.0,), 0.05, 4.0)
    assert (pd.pct, pd.a, pd.b, pd.difference) == (50.0, 100.0, 110.0, 10.0)
    assert pd.relative == pytest.approx(0.1)
    # differences re-centred on the exact 10 us and widened by sqrt(4) = 2:
    # 10 + 2 x (q_b - q_a - (109 - 98)) = 10 + 2 x (-6, -1, 4, 9) = -2, 8, 18, 28.
    # np.quantile (linear): 2.5 % at position 0.075 -> -2 + 0.75 = -1.25; 97.5 % at 2.925
    # -> 18 + 9.25 = 27.25; 5 % at 0.15 -> -0.5; 95 % at 2.85 -> 26.5
    assert pd.ci == pytest.approx((-1.25, 27.25))
    assert pd.ci_equivalence == pytest.approx((-0.5, 26.5))
    # one of four below 0: p = 2 x 1 / 4
    assert pd.p_value == 0.5
    # ratios: (q_b / q_a) / (109 / 98) - 1 = 98 q_b / (109 x 100) - 1
    #   = -0.0559633, -0.0110092, 0.0339450, 0.0788991; 0.1 + 2 x 1.1 x that
    #   = -0.0231193, 0.0757798, 0.1746789, 0.2735780
    r = [-0.0231193, 0.0757798, 0.1746789, 0.2735780]
    lo95, hi95 = r[0] + 0.075 * (r[1] - r[0]), r[2] + 0.925 * (r[3] - r[2])
    lo90, hi90 = r[0] + 0.15 * (r[1] - r[0]), r[2] + 0.85 * (r[3] - r[2])
    assert pd.relative_ci == pytest.approx((lo95, hi95), abs=1e-6)
    assert pd.relative_ci_equivalence == pytest.approx((lo90, hi90), abs=1e-6)


# --- whole statistics on arms with known answers -------------------------------------------


def _shifted_arms(shift: float):
    rng = np.random.default_rng(7)
    seconds = np.repeat(np.arange(40), 50)
    lat = rng.integers(1000, 1900, seconds.size).astype(float)
    return arm_from_samples("A", seconds, lat), arm_from_samples("B", seconds, lat + shift)


def _stats(a, b, paired=True, **kw):
    kw = {"alpha": 0.05, "pcts": (50.0, 99.0), "n_boot": 200, **kw}
    return latency_stats(a, b, paired=paired, rng=np.random.default_rng(0), **kw)


def test_identical_arms_show_no_difference_anywhere() -> None:
    a, b = _shifted_arms(0.0)
    s = _stats(a, b)
    assert s.shift.shift == 0.0 and s.shift.lo <= 0.0 <= s.shift.hi
    assert s.mw.cles == 0.5 and s.p_shift == 1.0
    assert s.ad.a2akn == 0.0 and s.ad_p == 1.0 and s.ad_upper_tail == 0.0
    for pd in s.percentiles:
        assert pd.ci == (0.0, 0.0) and pd.relative_ci == (0.0, 0.0) and pd.p_value == 1.0
    assert s.shape_absolute == (0.0,) * len(SHAPE_PERCENTILES)


def test_a_100_us_shift_is_measured_exactly() -> None:
    # values below 2,048 us are exact in HDR, so every percentile of B is A's + 100 and the
    # Hodges-Lehmann shift (median of a_j + 100 - a_i) is exactly 100
    a, b = _shifted_arms(100.0)
    s = _stats(a, b)
    assert s.shift.shift == 100.0 and s.shift.level == 0.95
    assert s.shift.lo <= s.shift_equivalence.lo <= 100.0 <= s.shift_equivalence.hi <= s.shift.hi
    assert s.shift_equivalence.level == 0.90
    assert s.median_a == a.merged.percentile(50.0)
    pa = np.array([a.merged.percentile(p) for p in SHAPE_PERCENTILES])
    assert s.shape_absolute == pytest.approx((100.0,) * len(SHAPE_PERCENTILES))
    assert s.shape_relative == pytest.approx(tuple(100.0 / pa))
    assert [pd.pct for pd in s.percentiles] == [50.0, 99.0]
    assert [pd.difference for pd in s.percentiles] == [100.0, 100.0]
    # every replicate shows B above A: 2 x 0 / 200, floored at 1 / (R + 1) = 1 / 201
    assert [pd.p_value for pd in s.percentiles] == pytest.approx([1 / 201, 1 / 201])
    assert s.ad_p == pytest.approx(1 / 201)  # no centred replicate reaches the observation
    assert s.ad_upper_tail > 0  # B holds more mass in the upper half
    assert s.n_boot == 200


def test_bootstrap_widening_combines_the_rank_test_and_student_t() -> None:
    a, b = _shifted_arms(100.0)
    for paired in (True, False):
        s = _stats(a, b, paired=paired)
        rt = robust_rank_test(a, b, paired=paired)
        t_ratio = stats.t.ppf(0.975, rt.df) / stats.norm.ppf(0.975)
        assert s.inflation == pytest.approx(rt.inflation * t_ratio**2)
        assert (s.block, s.rho, s.df, s.se_cles) == (rt.block, rt.rho, rt.df, rt.se_cles)
        assert s.p_shift == rt.p_value and s.design_effect == rt.design_effect
        assert s.mw == rt.mw
        # Student-t degrees of freedom: the fewest independent-equivalent seconds of the
        # influence series (one series when paired, one per arm otherwise) minus one
        ca, cb, _ = align_arms(a, b, paired)
        d_a, d_b, _ = placement_deviations(ca, cb)
        series = [d_a + d_b] if paired else [d_a, d_b]
        assert rt.df == pytest.approx(min(effective_size(x) for x in series) - 1)
        assert rt.df > 20  # well above the floor of 4 here
        # the robust variance sums the series' long-run variances
        assert rt.se_cles**2 == pytest.approx(sum(long_run_variance(x) for x in series))
    # alpha moves the t quantile: at 0.1, t_0.95(df) / z_0.95
    s = _stats(a, b, alpha=0.1)
    rt = robust_rank_test(a, b, paired=True)
    ratio = stats.t.ppf(0.95, rt.df) / stats.norm.ppf(0.95)
    assert s.inflation == pytest.approx(rt.inflation * ratio**2)
    assert s.shift.level == pytest.approx(0.9) and s.shift_equivalence.level == pytest.approx(0.8)
    assert _stats(a, b, block=5).block == 5


@pytest.fixture  # per test: mutmut maps a function only to the tests whose call reaches it
def loaded():
    """A/A, 120 s at 30 req/s per arm, strongly autocorrelated load (AR(1) 0.9, sd 0.3):
    the influence series has lag-1 autocorrelation 0.67 and the bootstrap is widened."""
    rng = np.random.default_rng(1)
    a, b = simulate_pair(ArmSpec(rate=30), ArmSpec(rate=30), 120, rng, load_phi=0.9, load_sd=0.3)
    s = latency_stats(
        a, b, paired=True, alpha=0.05, pcts=(50.0,), n_boot=200, rng=np.random.default_rng(0)
    )
    return a, b, s


def test_block_length_follows_the_influence_autocorrelation(loaded) -> None:
    s = loaded[2]
    assert s.rho == pytest.approx(0.6708, abs=1e-4)
    # test_bootstrap pins block_length by hand; here it must get the 120 windows and rho
    assert s.block == block_length(120, s.rho) == 11
    assert block_length(120) == 5  # what ignoring rho would give


def test_few_bins_do_not_shorten_the_blocks() -> None:
    # 40 seconds but only two latency values per arm (4 bins): blocks follow the seconds
    seconds = np.repeat(np.arange(40), 10)
    lat = np.tile([1000.0, 1500.0], 200)
    a = arm_from_samples("A", seconds, lat)
    b = arm_from_samples("B", seconds, lat + 100.0)
    rt = robust_rank_test(a, b, paired=True)
    assert rt.block == block_length(40, rt.rho) >= 4  # ceil(40^(1/3)) = 4


def test_shift_interval_uses_the_robust_se_and_student_t(loaded) -> None:
    a, b, s = loaded
    rt = robust_rank_test(a, b, paired=True)
    robust_t = hodges_lehmann(a.merged, b.merged, rt.se_cles, 0.95, rt.df)
    assert s.shift == robust_t
    assert s.shift_equivalence == hodges_lehmann(a.merged, b.merged, rt.se_cles, 0.90, rt.df)
    # and the alternatives would have shown here: textbook se, or a normal quantile
    textbook = hodges_lehmann(a.merged, b.merged)
    assert (s.shift.lo, s.shift.hi) != (textbook.lo, textbook.hi)
    normal = hodges_lehmann(a.merged, b.merged, rt.se_cles, 0.95)
    assert (s.shift.lo, s.shift.hi) != (normal.lo, normal.hi)
    normal_eq = hodges_lehmann(a.merged, b.merged, rt.se_cles, 0.90)
    assert (s.shift_equivalence.lo, s.shift_equivalence.hi) != (normal_eq.lo, normal_eq.hi)


def test_distribution_p_value_counts_replicates_widened_by_the_inflation(loaded) -> None:
    """p = (1 + #{inflation x T* >= T}) / (R + 1), with the replicates T* of the same
    bootstrap pass (the same generator seed gives the same replicates)."""
    a, b, s = loaded
    ca, cb, values = align_arms(a, b, True)
    ref = TwoSampleAD.from_totals(ca.sum(0, dtype=np.float64), cb.sum(0, dtype=np.float64))
    _, _, t_star = _bootstrap(
        ca, cb, values, np.array([50.0]), ref, paired=True, n_boot=200, block=s.block,
        rng=np.random.default_rng(0),
    )
    observed = ref.statistic()
    assert s.inflation > 1.3
    assert s.ad_p == (1 + np.count_nonzero(t_star * s.inflation >= observed)) / 201
    assert s.ad_p != (1 + np.count_nonzero(t_star >= observed)) / 201  # it matters here

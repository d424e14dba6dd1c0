"""Each metric's estimate, intervals and margin on one scale, and what the report shows.

The arms here are built so the answers are known without the code: B is A with every
request 100 us slower, in the same second (values below 2,048 us, which HDR records
exactly). The Hodges-Lehmann shift is then exactly 100 us (the pairwise differences
a_j + 100 - a_i are symmetric about 100), and every percentile of B is A's plus 100.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from harness.analysis.ab.abconfig import CompareConfig
from harness.analysis.ab.compare import compare_arms
from harness.analysis.ab.equivalence import Verdict
from harness.analysis.ab.histdata import ArmWindows, arm_from_samples
from harness.analysis.ab.metrics_ab import Candidate, distribution_decision, error_rate_candidate
from harness.analysis.ab.proportions import compare_proportions
from harness.latency.hdr import HdrLayout
from harness.latency.sparse import SparseHist

SLOT_5MS = HdrLayout().index_of(np.array([5000]))  # one slot: every success at 5 ms

SHIFT_US = 100.0


@pytest.fixture(scope="module")
def arms():
    rng = np.random.default_rng(7)
    seconds = np.repeat(np.arange(40), 50)
    lat_a = rng.integers(1000, 1900, seconds.size).astype(float)
    a = arm_from_samples("A", seconds, lat_a)
    b = arm_from_samples("B", seconds, lat_a + SHIFT_US)
    return a, b


def _compare(arms, margin: str):
    # error margin 1 pp: 0 of 2,000 failures in each arm is equivalent, not inconclusive
    return compare_arms(*arms, CompareConfig(n_boot=100, margin=margin, error_margin=0.01))


def test_shift_metric_shows_the_median_and_the_shift_in_ms(arms) -> None:
    a, b = arms
    result = _compare(arms, "5%")
    m = result.metric("shift")
    med = a.merged.percentile(50.0)
    assert m.method == "Mann-Whitney U / Hodges-Lehmann, autocorrelation-robust variance"
    assert (m.a, m.b, m.difference) == pytest.approx((med / 1e3, (med + 100) / 1e3, 0.1))
    assert m.relative == pytest.approx(SHIFT_US / med)
    lo, hi = m.ci
    assert lo < 0.1 < hi and hi - lo < 0.1  # ms, around the true 0.1 ms
    assert m.relative_ci == pytest.approx((lo * 1e3 / med, hi * 1e3 / med))
    assert m.margin == "±5% of A" and m.verdict == "worse"  # 100 / ~1450 = 7 % > 5 %
    assert m.p_value is not None and m.p_value < 1e-10
    assert m.p_adjusted == pytest.approx(min(1.0, 4 * m.p_value))  # smallest of 4: x 4
    # Cliff's delta from the exact histograms: P(B > A) - P(B < A) on the expanded samples
    x = np.repeat(a.merged.values, a.merged.counts)
    y = np.repeat(b.merged.values, b.merged.counts)
    greater = np.mean(y[:, None] > x[None, :])
    less = np.mean(y[:, None] < x[None, :])
    assert m.statistic == pytest.approx(greater - less)
    assert m.note == (
        f"significant after Holm correction; Cliff's delta {greater - less:+.3f}, "
        f"P(B>A) {greater + (1 - greater - less) / 2:.3f}"
    )
    assert m.requests_needed is None


def test_percentile_metrics_show_each_arm_in_ms(arms) -> None:
    a, b = arms
    result = _compare(arms, "5%")
    for pct, name in ((50.0, "p50"), (95.0, "p95"), (99.0, "p99"), (99.9, "p99.9")):
        m = result.metric(name)
        pa = a.merged.percentile(pct)
        assert pa + SHIFT_US == b.merged.percentile(pct)
        assert m.method == "moving-block bootstrap over seconds"
        assert (m.a, m.b, m.difference) == pytest.approx((pa / 1e3, (pa + 100) / 1e3, 0.1))
        assert m.relative == pytest.approx(SHIFT_US / pa)
        assert m.ci[0] <= 0.1 <= m.ci[1]
        # every replicate moves by the same 100 us: a narrow interval at (or next to) it
        lo, hi = m.relative_ci
        assert lo - 1e-12 <= SHIFT_US / pa <= hi + 1e-12 and hi - lo < 0.01
        assert m.margin == "±5% of A" and m.gating == (name == "p99")
        assert m.p_value == pytest.approx(1 / 101)  # every replicate above 0: the floor


def test_relative_and_absolute_margins_judge_on_their_own_scale(arms) -> None:
    # the shift is 100 us, 5-10 % of A's latency. A 200 % margin holds it (relative
    # scale), a 50 us margin does not (absolute scale); swapping the scales would turn
    # both verdicts around. A 1 ms margin holds it too.
    loose, tight, wide = _compare(arms, "200%"), _compare(arms, "50us"), _compare(arms, "1ms")
    for name in ("shift", "p50", "p99"):
        assert loose.metric(name).verdict == "equivalent", name
        assert tight.metric(name).verdict == "worse", name
        assert wide.metric(name).verdict == "equivalent", name
    # the distribution test sees the shift; only the size of the quantile moves decides
    assert loose.metric("distribution").verdict == "equivalent"
    assert tight.metric("distribution").verdict == "worse"
    assert tight.metric("distribution").margin == "±0.05 ms"
    assert tight.verdict == "worse" and loose.verdict == "equivalent"
    # on the absolute scale the estimate is the shift itself: 100 us is beyond +-80 us
    near = _compare(arms, "80us").metric("shift")
    assert near.verdict == "worse"
    assert 0.08 < near.ci[0] <= 0.1 <= near.ci[1] < 0.12  # ms: tight around the 100 us


def test_distribution_metric_shows_the_anderson_darling_statistic(arms) -> None:
    a, b = arms
    m = _compare(arms, "5%").metric("distribution")
    ref = stats.anderson_ksamp(
        [np.repeat(a.merged.values, a.merged.counts), np.repeat(b.merged.values, b.merged.counts)],
        variant="midrank",
        method=stats.PermutationMethod(n_resamples=1),
    )
    assert m.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert m.method == "Anderson-Darling (midrank), block-bootstrap p-value"
    assert m.p_value == pytest.approx(1 / 101) and m.gating
    assert m.margin == "±5% of A"
    assert (m.a, m.b, m.ci) == (None, None, None)


def test_accuracy_is_judged_when_both_arms_checked_answers(arms) -> None:
    a, b = arms
    a = replace(a, checked=1000, correct=950)
    b = replace(b, checked=1000, correct=900)
    m = compare_arms(a, b, CompareConfig(n_boot=100)).metric("accuracy")
    ref = stats.fisher_exact([[900, 100], [950, 50]])
    assert m.p_value == pytest.approx(ref.pvalue)
    assert m.p_value < 1e-4
    assert m.verdict == "worse"  # lower accuracy is worse
    assert (m.label, m.note) == ("accuracy", "significant after Holm correction")
    assert (m.a, m.b, m.difference) == pytest.approx((0.95, 0.90, -0.05))
    assert m.margin == "±1 pp" and m.gating
    assert m.method == "Fisher exact test, Newcombe score interval"
    assert m.ci[0] < -0.05 < m.ci[1] < 0
    better = compare_arms(
        replace(a, correct=900), replace(b, correct=950), CompareConfig(n_boot=100)
    )
    assert better.metric("accuracy").verdict == "better"
    one_side = compare_arms(a, replace(b, checked=0, correct=0), CompareConfig(n_boot=100))
    assert "accuracy" not in [m.metric for m in one_side.metrics]
    not_gating = compare_arms(a, b, CompareConfig(n_boot=100, gating=("shift",)))
    assert not not_gating.metric("accuracy").gating


def test_error_rate_metric_shows_rates_and_an_absolute_margin(arms) -> None:
    a, b = arms
    failures = np.zeros(40, dtype=np.int64)
    failures[1::2] = 1  # 20 failures, one every other second: not bursty
    b = replace(b, failures=failures, requests=b.requests + failures)
    result = compare_arms(a, b, CompareConfig(n_boot=100, error_margin=0.005))
    m = result.metric("error_rate")
    assert (m.a, m.b) == (0.0, 20 / 2020)
    assert m.difference == pytest.approx(20 / 2020)
    assert m.margin == "±0.5 pp" and m.statistic is None
    assert m.p_value == pytest.approx(stats.fisher_exact([[20, 2000], [0, 2000]]).pvalue)
    # 0.99 pp more errors: beyond the 0.5 pp margin, significant even after Holm's x 4
    assert m.verdict == "worse"
    assert m.ci[0] > 0
    assert result.warnings == ()


# --- distribution_decision by hand ----------------------------------------------------------


def _dist(shape, upper_tail=0.2) -> Candidate:
    return Candidate(
        "distribution", "latency distribution", True, "m", 100, shape=shape, upper_tail=upper_tail
    )


CONFIG = CompareConfig()  # alpha 0.05, margin 5 %


def test_distribution_decision_without_a_significant_change() -> None:
    for p in (None, 0.05, 0.3):
        d = distribution_decision(_dist((0.5,)), p, CONFIG)
        assert (d.verdict, d.significant, d.equivalent) == (Verdict.NO_DIFFERENCE, False, False)
        assert d.reason == "shapes agree"


def test_distribution_decision_small_moves_are_equivalent() -> None:
    # the largest finite |move| is 0.049 < 0.05; NaN (A's quantile 0) is skipped
    d = distribution_decision(_dist((0.01, -0.049, math.nan, math.inf)), 0.0499, CONFIG)
    assert (d.verdict, d.significant, d.equivalent) == (Verdict.EQUIVALENT, True, True)
    assert d.reason == "shape differs, but no quantile p5..p99.9 moves beyond ±5% of A"
    assert d.requests_needed is None
    # no quantile at all: nothing moved
    assert distribution_decision(_dist(()), 0.01, CONFIG).verdict is Verdict.EQUIVALENT


def test_distribution_decision_a_move_at_the_margin_counts() -> None:
    d = distribution_decision(_dist((0.01, -0.05)), 0.01, CONFIG)
    assert (d.verdict, d.significant, d.equivalent) == (Verdict.WORSE, True, False)
    assert d.reason == "B has more mass in the upper tail"
    d = distribution_decision(_dist((0.2,), upper_tail=-0.1), 0.01, CONFIG)
    assert (d.verdict, d.reason) == (Verdict.BETTER, "B has less mass in the upper tail")


def test_distribution_decision_without_a_margin_goes_by_the_tail() -> None:
    none = CompareConfig(margin="none")
    assert distribution_decision(_dist((0.001,)), 0.01, none).verdict is Verdict.WORSE


# --- error rate and accuracy details ---------------------------------------------------------


def _failing(failures: list[int], requests: int = 10) -> ArmWindows:
    n = len(failures)
    return ArmWindows(
        name="B",
        seconds=np.arange(n),
        bin_ids=np.array([1000]),
        counts=np.full((n, 1), 1.0, dtype=np.float32),
        merged=SparseHist(SLOT_5MS, np.array([n])),
        requests=np.full(n, requests),
        failures=np.array(failures),
    )


def test_bursty_means_a_dispersion_above_2() -> None:
    clean = _failing([0, 0, 0])
    # 6, 6, 1, 6, 6 of 10: rate 1/2, variance 2.5, chi-square (4 x 1 + 16) / 2.5 = 8 over
    # 4 windows -> exactly 2: not flagged
    assert error_rate_candidate(clean, _failing([6, 6, 1, 6, 6]), CONFIG).note == ""
    # 0, 2, 4 of 10: 2.5 (test_proportions) -> flagged
    note = error_rate_candidate(clean, _failing([0, 2, 4]), CONFIG).note
    assert note == (
        "failures of 'B' are bursty (dispersion 2.5); the exact test assumes independence, "
        "so its p-value is optimistic"
    )
    both = error_rate_candidate(replace(_failing([4, 0, 2]), name="A"), _failing([0, 2, 4]), CONFIG)
    assert both.note == (
        "failures of 'A' are bursty (dispersion 2.5); the exact test assumes independence, "
        "so its p-value is optimistic; failures of 'B' are bursty (dispersion 2.5); the exact "
        "test assumes independence, so its p-value is optimistic"
    )


def test_error_rate_requests_needed_by_hand(arms) -> None:
    # 0 of 2,000 failures in each arm: the 90 % Newcombe interval is +-(Wilson upper of 0/2000)
    # = +-z^2 / (2000 + z^2) with z = 1.644854: 2.705543 / 2002.705543 = 0.00135094;
    # to fit in +-0.1 pp: (0.00135094 / 0.001)^2 = 1.825050 x 4,000 requests = 7300.2 -> 7301
    m = compare_arms(*arms, CompareConfig(n_boot=100)).metric("error_rate")
    assert m.verdict == "inconclusive"
    assert m.requests_needed == 7301


def test_error_rate_when_one_arm_has_no_requests() -> None:
    # A has no requests: its rate counts as 0 with Wilson range (0, 1), the difference is
    # unknown and its estimate 0. Fitting the 90 % interval's lower end -1 into -0.1 pp
    # takes (1 / 0.001)^2 = 10^6 times B's 100 requests.
    empty = arm_from_samples("A", np.array([], dtype=np.int64), np.array([]))
    b = arm_from_samples("B", np.repeat(np.arange(25), 4), np.full(100, 1500.0))
    m = compare_arms(empty, b, CompareConfig(n_boot=100)).metric("error_rate")
    assert math.isnan(m.a) and math.isnan(m.difference)  # to_dict() writes them as null
    assert (m.verdict, m.requests_needed) == ("inconclusive", 100_000_000)


def test_error_rate_and_accuracy_use_the_configured_alpha(arms) -> None:
    a, b = arms
    failures = np.zeros(40, dtype=np.int64)
    failures[::4] = 1
    b = replace(b, failures=failures, requests=b.requests + failures, checked=500, correct=480)
    a = replace(a, checked=400, correct=390)
    result = compare_arms(a, b, CompareConfig(n_boot=100, alpha=0.1))
    # test_proportions pins compare_proportions to Newcombe / Wilson from SciPy
    expected = compare_proportions(0, a.n_requests, 10, b.n_requests, alpha=0.1)
    assert result.metric("error_rate").ci == pytest.approx(expected.ci)
    assert result.metric("accuracy").ci == pytest.approx(
        compare_proportions(390, 400, 480, 500, alpha=0.1).ci
    )


def test_accuracy_needs_at_least_one_checked_answer_in_each_arm(arms) -> None:
    a, b = arms
    config = CompareConfig(n_boot=100)
    one_each = compare_arms(replace(a, checked=1, correct=1), replace(b, checked=1), config)
    assert one_each.metric("accuracy").a == 1.0 and one_each.metric("accuracy").b == 0.0
    without_a = compare_arms(a, replace(b, checked=10, correct=9), config)
    assert "accuracy" not in [m.metric for m in without_a.metrics]

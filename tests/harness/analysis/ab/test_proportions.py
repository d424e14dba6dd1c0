"""Exact tests on error rate / accuracy, including zero events on one side."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from harness.analysis.ab.abconfig import CompareConfig
from harness.analysis.ab.equivalence import Verdict
from harness.analysis.ab.histdata import ArmWindows
from harness.analysis.ab.metrics_ab import error_rate_candidate
from harness.analysis.ab.proportions import compare_proportions, dispersion_index, wilson_interval
from harness.latency.hdr import HdrLayout
from harness.latency.sparse import SparseHist

SLOT_5MS = HdrLayout().index_of(np.array([5000]))  # one slot: every success at 5 ms


def test_zero_failures_in_a_against_some_in_b_is_significant() -> None:
    res = compare_proportions(0, 5000, 12, 5000)
    ref = stats.fisher_exact([[12, 4988], [0, 5000]])
    assert res.p_value == pytest.approx(ref.pvalue)
    assert res.p_value < 0.001
    assert res.ci[0] > 0  # B's higher error rate is resolved
    assert res.rate_a == 0.0


def test_zero_failures_on_both_sides() -> None:
    res = compare_proportions(0, 20_000, 0, 20_000)
    assert res.p_value == 1.0
    assert res.difference == 0.0
    lo, hi = res.ci_equivalence
    assert -0.001 < lo < 0 < hi < 0.001  # rule-of-three-like bound, inside a 0.1 pp margin


def test_one_event_against_zero_is_not_significant() -> None:
    assert compare_proportions(0, 1000, 1, 1000).p_value == pytest.approx(1.0)


def test_wilson_interval_known_value() -> None:
    lo, hi = wilson_interval(0, 100, 0.95)
    assert lo == 0.0
    assert hi == pytest.approx(0.0370, abs=5e-4)  # textbook value


def test_bad_counts_are_rejected() -> None:
    with pytest.raises(ValueError):
        compare_proportions(5, 3, 0, 10)


def test_dispersion_index_flags_bursts() -> None:
    rng = np.random.default_rng(0)
    trials = np.full(200, 100)
    steady = rng.binomial(100, 0.02, 200)
    bursty = np.zeros(200, dtype=int)
    bursty[::20] = 40
    assert dispersion_index(steady, trials) == pytest.approx(1.0, abs=0.35)
    assert dispersion_index(bursty, trials) > 5


def _arm(name: str, failures_per_second: int, seconds: int = 100, rate: int = 100) -> ArmWindows:
    return ArmWindows(
        name=name,
        seconds=np.arange(seconds),
        bin_ids=np.array([1000]),
        counts=np.full((seconds, 1), rate - failures_per_second, dtype=np.float32),
        merged=SparseHist(SLOT_5MS, np.array([seconds * (rate - failures_per_second)])),
        requests=np.full(seconds, rate),
        failures=np.full(seconds, failures_per_second),
    )


def test_error_rate_verdicts_from_arms() -> None:
    config = CompareConfig()
    clean, broken = _arm("A", 0), _arm("B", 1)  # 0 % vs 1 % errors over 10,000 requests each
    cand = error_rate_candidate(clean, broken, config)
    assert cand.p_value < 1e-10
    assert cand.estimate == pytest.approx(0.01)
    same = error_rate_candidate(clean, _arm("B", 0), config)
    assert same.p_value == 1.0
    assert same.equivalence_ci[1] < config.error_margin
    assert Verdict.WORSE.value == "worse"


# --- intervals and edges against published values and SciPy --------------------------------


@pytest.mark.parametrize(
    ("b", "a", "expected"),
    [
        # Newcombe (1998), Stat. Med. 17:873, Table II, method 10 (hybrid score), B - A
        ((56, 70), (48, 80), (0.0524, 0.3339)),
        ((9, 10), (3, 10), (0.1705, 0.8090)),
        ((6, 7), (2, 7), (0.0582, 0.8062)),
        ((5, 56), (0, 29), (-0.0381, 0.1926)),
        ((0, 10), (0, 20), (-0.1611, 0.2775)),
        ((10, 10), (0, 20), (0.6791, 1.0)),
    ],
)
def test_newcombe_interval_equals_the_published_table(b, a, expected) -> None:
    res = compare_proportions(a[0], a[1], b[0], b[1], alpha=0.05)
    assert res.ci == pytest.approx(expected, abs=5e-5)
    assert res.difference == pytest.approx(b[0] / b[1] - a[0] / a[1])
    assert (res.rate_a, res.rate_b) == (a[0] / a[1], b[0] / b[1])
    assert (res.events_a, res.trials_a, res.events_b, res.trials_b) == (*a, *b)


def _newcombe_from_scipy_wilson(b, a, level):
    """Newcombe's method 10 assembled from SciPy's Wilson intervals of each arm."""
    p_b, p_a = b[0] / b[1], a[0] / a[1]
    w_b = stats.binomtest(*b).proportion_ci(level, method="wilson")
    w_a = stats.binomtest(*a).proportion_ci(level, method="wilson")
    d = p_b - p_a
    return (
        d - np.hypot(p_b - w_b.low, w_a.high - p_a),
        d + np.hypot(w_b.high - p_b, p_a - w_a.low),
    )


@pytest.mark.parametrize(
    ("b", "a"), [((56, 70), (48, 80)), ((3, 400), (11, 500)), ((0, 50), (2, 9))]
)
def test_equivalence_interval_is_the_90_percent_one(b, a) -> None:
    res = compare_proportions(a[0], a[1], b[0], b[1], alpha=0.05)
    assert res.ci_equivalence == pytest.approx(_newcombe_from_scipy_wilson(b, a, 0.90), abs=1e-9)
    assert res.ci == pytest.approx(_newcombe_from_scipy_wilson(b, a, 0.95), abs=1e-9)
    ref = stats.fisher_exact([[b[0], b[1] - b[0]], [a[0], a[1] - a[0]]])
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    wide = compare_proportions(a[0], a[1], b[0], b[1], alpha=0.01)  # 99 % and 98 %
    assert wide.ci == pytest.approx(_newcombe_from_scipy_wilson(b, a, 0.99), abs=1e-9)
    assert wide.ci_equivalence == pytest.approx(_newcombe_from_scipy_wilson(b, a, 0.98), abs=1e-9)


@pytest.mark.parametrize(
    ("events", "trials", "level"),
    [(0, 100, 0.95), (3, 10, 0.95), (7, 7, 0.9), (1, 1, 0.95), (40, 1000, 0.99), (9, 10, 0.8)],
)
def test_wilson_interval_equals_scipy(events: int, trials: int, level: float) -> None:
    ref = stats.binomtest(events, trials).proportion_ci(level, method="wilson")
    lo, hi = wilson_interval(events, trials, level)
    assert (lo, hi) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert (lo == 0.0) == (events == 0) and (hi == 1.0) == (events == trials)


def test_wilson_interval_without_trials_is_everything() -> None:
    assert wilson_interval(0, 0, 0.95) == (0.0, 1.0)


def test_an_arm_without_requests_has_no_rate_and_tests_nothing() -> None:
    res = compare_proportions(0, 0, 3, 100)
    assert math.isnan(res.rate_a) and math.isnan(res.difference)
    assert res.rate_b == 0.03 and res.p_value == 1.0
    # A counts as rate 0 with Wilson range (0, 1): lower end 0.03 - hypot(0.03 - l_B, 1 - 0),
    # upper end 0.03 + hypot(u_B - 0.03, 0 - 0) = u_B
    w = stats.binomtest(3, 100).proportion_ci(0.95, method="wilson")
    assert res.ci == pytest.approx((0.03 - math.hypot(0.03 - w.low, 1.0), w.high), abs=1e-12)
    other = compare_proportions(3, 100, 0, 0)
    assert math.isnan(other.rate_b) and other.p_value == 1.0
    assert other.ci == pytest.approx((-res.ci[1], -res.ci[0]), abs=1e-12)  # the mirror image
    both = compare_proportions(0, 0, 0, 0)
    assert both.ci == (-1.0, 1.0) and both.p_value == 1.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((5, 3, 0, 10), "arm A: need 0 <= events (5) <= trials (3)"),
        ((-1, 3, 0, 10), "arm A: need 0 <= events (-1) <= trials (3)"),
        ((0, -3, 0, 10), "arm A: need 0 <= events (0) <= trials (-3)"),
        ((0, 3, 11, 10), "arm B: need 0 <= events (11) <= trials (10)"),
        ((0, 3, -2, 10), "arm B: need 0 <= events (-2) <= trials (10)"),
    ],
)
def test_bad_counts_name_the_arm(args, message: str) -> None:
    with pytest.raises(ValueError) as err:
        compare_proportions(*args)
    assert str(err.value) == message


def test_edge_counts_are_accepted() -> None:
    assert compare_proportions(3, 3, 0, 10).rate_a == 1.0  # events == trials
    assert compare_proportions(0, 3, 10, 10).rate_b == 1.0


def test_dispersion_index_by_hand() -> None:
    # windows with 10 trials each, events 0, 2, 4 (the empty window is left out):
    # rate 6 / 30 = 0.2, binomial variance 10 x 0.2 x 0.8 = 1.6,
    # chi-square (4 + 0 + 4) / 1.6 = 5 over 3 - 1 windows -> 2.5
    assert dispersion_index(np.array([0, 2, 0, 4]), np.array([10, 10, 0, 10])) == 2.5
    # unequal trials 5, 20, 25 with 1, 6, 0 events: rate 7 / 50 = 0.14;
    # (1 - 0.7)^2 / (5 x 0.14 x 0.86) = 0.09 / 0.602 = 0.149502
    # (6 - 2.8)^2 / (20 x 0.14 x 0.86) = 10.24 / 2.408 = 4.252492
    # (0 - 3.5)^2 / (25 x 0.14 x 0.86) = 12.25 / 3.01 = 4.069767 -> 8.471761 / 2
    e, t = np.array([1, 6, 0]), np.array([5, 20, 25])
    assert dispersion_index(e, t) == pytest.approx(8.471761 / 2, abs=1e-6)


def test_dispersion_index_keeps_windows_with_one_trial() -> None:
    # four windows of one trial, events 0, 1, 0, 1: rate 1/2, variance 1/4 each,
    # deviations +-1/2 -> chi-square 4 x (1/4) / (1/4) = 4 over 3 -> 4/3
    assert dispersion_index(np.array([0, 1, 0, 1]), np.ones(4)) == pytest.approx(4 / 3)


def test_dispersion_index_is_undefined_for_few_windows_or_no_events() -> None:
    assert math.isnan(dispersion_index(np.array([1, 2]), np.array([10, 10])))  # 2 windows
    # three windows, but one has no trials
    assert math.isnan(dispersion_index(np.array([1, 2, 0]), np.array([10, 10, 0])))
    assert math.isnan(dispersion_index(np.zeros(5), np.full(5, 10)))  # rate 0
    assert math.isnan(dispersion_index(np.full(5, 10), np.full(5, 10)))  # rate 1
    assert math.isnan(dispersion_index(np.zeros(3), np.zeros(3)))  # no trials at all

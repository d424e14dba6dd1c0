"""Exact tests on error rate / accuracy, including zero events on one side."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from harness.analysis.abconfig import CompareConfig
from harness.analysis.equivalence import Verdict
from harness.analysis.histdata import ArmWindows, Histogram
from harness.analysis.metrics_ab import error_rate_candidate
from harness.analysis.proportions import compare_proportions, dispersion_index, wilson_interval


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
        merged=Histogram(np.array([5000.0]), np.array([seconds * (rate - failures_per_second)])),
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

"""Calibration and power of the A/B judge on seeded heavy-tailed, autocorrelated latency.

The generator (`harness.analysis.synthetic`): lognormal latency (sigma 0.5, median 5 ms)
whose log-median follows a per-second AR(1) load factor (sd 0.15, lag-1 correlation 0.7),
Poisson arrivals. Split runs share the load factor between arms; two runs do not — there a
textbook Mann-Whitney "finds" a difference in a large share of A/A comparisons.

Tolerances are binomial: an observed false-positive rate over R comparisons is accepted
within 3 standard deviations of the nominal 5 %.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.analysis.abconfig import CompareConfig
from harness.analysis.compare import compare_arms
from harness.analysis.latency_ab import robust_rank_test
from harness.analysis.synthetic import ArmSpec, simulate_pair

ALPHA = 0.05


def _tolerance(reps: int, p: float = ALPHA) -> float:
    return 3 * math.sqrt(p * (1 - p) / reps)


@pytest.mark.parametrize("design", ["split", "two-runs"])
def test_rank_test_false_positive_rate_is_nominal(design: str) -> None:
    reps, rejected, rejected_iid = 300, 0, 0
    for r in range(reps):
        rng = np.random.default_rng(10_000 + r)
        a, b = simulate_pair(ArmSpec(rate=50), ArmSpec(rate=50), 120, rng, design=design)
        res = robust_rank_test(a, b, paired=design == "split")
        rejected += res.p_value < ALPHA
        rejected_iid += res.mw.p_value < ALPHA
    rate = rejected / reps
    assert abs(rate - ALPHA) <= _tolerance(reps), f"{design}: false-positive rate {rate:.3f}"
    if design == "two-runs":  # the problem is real: the textbook variance is far too small
        assert rejected_iid / reps > 0.3


@pytest.mark.parametrize("design", ["split", "two-runs"])
def test_full_judge_false_positive_rate(design: str) -> None:
    """Whole pipeline, A/A: 'better' or 'worse' overall, and each gating test alone."""
    reps = 120
    config = CompareConfig(n_boot=200)
    calls = 0
    per_metric = {"shift": 0, "distribution": 0, "p99": 0}
    for r in range(reps):
        rng = np.random.default_rng(20_000 + r)
        a, b = simulate_pair(ArmSpec(rate=60), ArmSpec(rate=60), 120, rng, design=design)
        result = compare_arms(a, b, config, design=design)
        calls += result.verdict in ("better", "worse")
        for name in per_metric:
            per_metric[name] += result.metric(name).p_value < ALPHA
    assert calls / reps <= ALPHA + _tolerance(reps), f"{design}: {calls}/{reps} false calls"
    for name, count in per_metric.items():
        assert count / reps <= ALPHA + _tolerance(reps), f"{design} {name}: {count}/{reps}"


def test_ten_percent_p99_shift_is_detected_at_recommended_size() -> None:
    """Documented: split run, 120 s per arm at 100 req/s per arm -> power >= 80 %."""
    reps, detected = 40, 0
    config = CompareConfig(n_boot=400)
    for r in range(reps):
        rng = np.random.default_rng(30_000 + r)
        a, b = simulate_pair(ArmSpec(rate=100), ArmSpec(rate=100, scale=1.10), 120, rng)
        result = compare_arms(a, b, config)
        detected += result.metric("p99").verdict == "worse" and result.regression
    # nominal power 0.8, minus 2 binomial standard deviations for 40 runs
    assert detected / reps >= 0.8 - 2 * math.sqrt(0.8 * 0.2 / reps), f"{detected}/{reps}"


def test_wider_b_with_the_same_median_is_caught_by_the_distribution_test() -> None:
    rng = np.random.default_rng(40_000)
    a, b = simulate_pair(ArmSpec(rate=100), ArmSpec(rate=100, sigma=0.65), 120, rng)
    result = compare_arms(a, b, CompareConfig(n_boot=400))
    assert result.metric("distribution").verdict == "worse"
    assert result.metric("shift").verdict != "worse"  # the rank test alone would miss it
    assert abs(result.metric("p50").relative) < 0.05
    assert result.regression


def test_bimodal_b_with_the_same_median_is_caught() -> None:
    rng = np.random.default_rng(41_000)
    a, b = simulate_pair(ArmSpec(rate=100), ArmSpec(rate=100, slow_share=0.06), 120, rng)
    result = compare_arms(a, b, CompareConfig(n_boot=400))
    assert abs(result.metric("p50").relative) < 0.03
    dist = result.metric("distribution")
    assert dist.verdict == "worse" and dist.p_adjusted < ALPHA
    assert result.verdict == "worse"


def test_equivalent_when_b_equals_a_within_margin() -> None:
    rng = np.random.default_rng(42_000)
    a, b = simulate_pair(ArmSpec(rate=200), ArmSpec(rate=200), 300, rng)
    result = compare_arms(a, b, CompareConfig(n_boot=400, margin="5%"))
    assert result.verdict == "equivalent", result.summary
    assert result.metric("p99").verdict == "equivalent"
    assert "No regression beyond" in result.summary
    assert not result.regression


def test_inconclusive_with_too_little_data_says_how_much_more() -> None:
    rng = np.random.default_rng(43_000)
    a, b = simulate_pair(ArmSpec(rate=20), ArmSpec(rate=20), 40, rng)
    result = compare_arms(a, b, CompareConfig(n_boot=200))
    assert result.verdict == "inconclusive"
    p99 = result.metric("p99")
    assert p99.verdict == "inconclusive"
    assert p99.requests_needed > a.n_requests + b.n_requests
    assert "requests in total would resolve it" in result.summary


def test_small_real_change_within_margin_is_equivalent_not_a_regression() -> None:
    """B 1.5 % slower, detectable with this much data, but inside a 5 % margin."""
    rng = np.random.default_rng(44_000)
    a, b = simulate_pair(ArmSpec(rate=300), ArmSpec(rate=300, scale=1.015), 600, rng)
    result = compare_arms(a, b, CompareConfig(n_boot=300))
    shift = result.metric("shift")
    assert shift.p_adjusted < ALPHA  # the change is real and detected ...
    assert shift.verdict == "equivalent"  # ... but practically irrelevant
    assert not result.regression


def test_absolute_margin_in_milliseconds() -> None:
    rng = np.random.default_rng(45_000)
    a, b = simulate_pair(ArmSpec(rate=200), ArmSpec(rate=200, scale=1.04), 300, rng)
    strict = compare_arms(a, b, CompareConfig(n_boot=300, margin="0.05ms"))
    loose = compare_arms(a, b, CompareConfig(n_boot=300, margin="2ms"))
    assert strict.metric("p50").verdict == "worse"  # ~0.2 ms slower: beyond 0.05 ms
    assert loose.metric("p50").verdict == "equivalent"
    assert loose.metric("p50").margin == "±2 ms"


def test_without_a_margin_no_difference_is_all_it_can_say() -> None:
    rng = np.random.default_rng(46_000)
    a, b = simulate_pair(ArmSpec(rate=100), ArmSpec(rate=100), 120, rng)
    result = compare_arms(a, b, CompareConfig(n_boot=200, margin="none"))
    assert result.metric("p99").verdict == "no significant difference"
    assert result.metric("shift").verdict == "no significant difference"
    assert result.metric("p99").margin == "none"
    assert not result.regression

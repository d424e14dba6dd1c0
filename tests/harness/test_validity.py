"""Validity statistics: percentile intervals cover the truth, warm-up is found, stability judged."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from harness.config import ValidityConfig
from harness.load.hdr import LatencyRecorder
from harness.results.validity import (
    assess,
    detect_warmup,
    more_requests_needed,
    percentile_ci,
    requests_needed,
)
from harness.results.windows import SparseHist, decode_windows, per_second

MU, SIGMA = math.log(4000.0), 0.6  # lognormal latency in microseconds, median 4 ms


def true_quantile_us(p: float) -> float:
    return math.exp(MU + SIGMA * stats.norm.ppf(p / 100))


def hist_of(values_us: np.ndarray) -> SparseHist:
    return SparseHist.from_values(np.rint(values_us).astype(np.int64))


@pytest.mark.parametrize(("p", "n"), [(50, 400), (90, 400), (99, 2000), (99.9, 5000)])
def test_percentile_ci_covers_truth_at_nominal_rate(p, n):
    rng = np.random.default_rng(20261123 + int(p))
    trials, covered = 300, 0
    truth = true_quantile_us(p)
    for _ in range(trials):
        ci = percentile_ci(hist_of(rng.lognormal(MU, SIGMA, n)), p, confidence=0.95)
        assert ci.low_us is not None and ci.high_us is not None
        assert ci.low_us <= ci.estimate_us <= ci.high_us
        covered += ci.low_us <= truth <= ci.high_us
    coverage = covered / trials
    # order-statistic intervals are exact-or-conservative: >= 95% up to sampling error
    # (3 sd of a binomial share over 300 trials is 0.038), and not trivially wide
    assert 0.91 <= coverage <= 0.995, coverage


def test_small_samples_have_no_p99_upper_bound_and_say_how_many_more():
    assert requests_needed(99) == math.ceil(math.log(0.025) / math.log(0.99)) == 368
    assert requests_needed(99.9) == 3688
    rng = np.random.default_rng(1)
    hist = hist_of(rng.lognormal(MU, SIGMA, 300))
    ci = percentile_ci(hist, 99)
    assert ci.high_us is None and ci.estimate_us is not None
    assert more_requests_needed(300, 99) == 68
    assert percentile_ci(hist_of(rng.lognormal(MU, SIGMA, 368)), 99).high_us is not None


def seconds_of(levels, rate=300, seed=3):
    """Per-second stats from a recorder fed `rate` req/s; levels[s] = (median_ms, rate_factor)."""
    rng = np.random.default_rng(seed)
    recorder = LatencyRecorder()
    for second, (median_ms, factor) in enumerate(levels):
        count = rng.poisson(rate * factor)
        for t in np.sort(rng.uniform(second, second + 1, count)):
            latency = rng.lognormal(math.log(median_ms / 1000), 0.3)
            recorder.record("m", True, t, t, t + latency)
    windows = decode_windows(recorder.flush())
    return per_second(windows, range(len(levels)))


def test_warmup_detected_from_latency_change_point():
    series = seconds_of([(40.0, 1.0)] * 6 + [(5.0, 1.0)] * 30)
    assert detect_warmup(series, window_s=5, tolerance=0.10) == 6


def test_warmup_detected_from_throughput_change_point():
    series = seconds_of([(5.0, 0.5)] * 4 + [(5.0, 1.0)] * 30)
    assert detect_warmup(series, window_s=5, tolerance=0.10) == 4


def test_gradual_warmup_is_cut_whole():
    levels = [(40.0, 1.0), (30.0, 1.0), (20.0, 1.0), (12.0, 1.0), (8.0, 1.0)] + [(5.0, 1.0)] * 30
    assert detect_warmup(seconds_of(levels), window_s=5, tolerance=0.10) == 5


@pytest.mark.parametrize("seed", range(4))
def test_later_spikes_do_not_stretch_the_warmup(seed):
    levels = [(40.0, 1.0)] + [(5.0, 1.0)] * 39
    for second in np.random.default_rng(seed).choice(np.arange(2, 40), 3, replace=False):
        levels[second] = (15.0, 1.0)  # three slow seconds anywhere later
    assert detect_warmup(seconds_of(levels, seed=seed), window_s=5, tolerance=0.10) == 1


@pytest.mark.parametrize("seed", range(3))
def test_a_run_that_gets_slower_later_has_no_warmup(seed):
    # Faster first half, slower second (e.g. a neighbour took CPU): drift, not a warm-up.
    levels = [(4.0, 1.0)] * 10 + [(7.0, 1.0)] * 10
    assert detect_warmup(seconds_of(levels, rate=150, seed=seed), 5, 0.10) == 0
    throughput = [(5.0, 1.0)] * 10 + [(5.0, 0.6)] * 10
    assert detect_warmup(seconds_of(throughput, rate=150, seed=seed), 5, 0.10) == 0


def test_no_warmup_in_steady_runs_even_at_low_rates():
    cuts = [
        detect_warmup(seconds_of([(5.0, 1.0)] * 30, rate=rate, seed=seed), 5, 0.10)
        for rate in (30, 300)
        for seed in range(8)
    ]
    assert cuts == [0] * 16


def test_stability_rule_and_validity_verdict():
    config = ValidityConfig()
    steady = assess(seconds_of([(5.0, 1.0)] * 30), config)
    assert steady.valid and steady.stable and steady.reasons == ()
    assert steady.warmup_s == 0 and len(steady.measured_seconds) == 30
    # p99 doubling every block never settles within 10%
    drifting = [(5.0 * 2 ** (s // 5), 1.0) for s in range(30)]
    unstable = assess(seconds_of(drifting), config, warmup_s=0)
    assert not unstable.stable and not unstable.valid
    assert any("not stable" in r for r in unstable.reasons)
    # throughput swinging +-40% from block to block is not stable either
    swinging = [(5.0, 1.4 if (s // 5) % 2 else 0.6) for s in range(30)]
    assert not assess(seconds_of(swinging), config, warmup_s=0).stable


def test_explicit_warmup_and_minimums():
    config = ValidityConfig(min_duration_s=20, min_requests=100_000)
    verdict = assess(seconds_of([(5.0, 1.0)] * 24), config, warmup_s=6)
    assert verdict.warmup_s == 6 and not verdict.warmup_detected
    assert verdict.measured_seconds[0] == 6
    reasons = " | ".join(verdict.reasons)
    assert "min_duration_s" in reasons and "min_requests" in reasons and not verdict.valid


def test_unhealthy_seconds_are_excluded_and_reported():
    series = seconds_of([(5.0, 1.0)] * 30)
    sick = {12, 13}
    series = [
        s if s.second not in sick else type(s)(s.second, s.requests, s.failures, False, s.hist)
        for s in series
    ]
    verdict = assess(series, ValidityConfig(), warmup_s=0)
    assert verdict.excluded_windows == (12, 13)
    assert not set(verdict.measured_seconds) & sick
    assert verdict.stable  # the blocks after the gap still agree


def test_warmup_after_unhealthy_start_counts_from_the_run_start():
    series = seconds_of([(40.0, 1.0)] * 7 + [(5.0, 1.0)] * 30)
    series = [s if s.second > 2 else type(s)(s.second, s.requests, s.failures, False, s.hist)
              for s in series]  # fmt: skip
    verdict = assess(series, ValidityConfig())
    assert verdict.excluded_windows == (0, 1, 2)
    assert verdict.warmup_s == 7 and verdict.measured_seconds[0] == 7


def test_staged_load_is_judged_on_its_last_stage():
    series = seconds_of([(5.0, (s + 1) / 10) for s in range(10)] + [(5.0, 1.0)] * 20)
    verdict = assess(series, ValidityConfig(), start=10)
    assert verdict.analysed_from == 10 and verdict.warmup_s == 0 and verdict.stable
    explicit = assess(series, ValidityConfig(), start=10, warmup_s=12)
    assert explicit.measured_seconds[0] == 12 and explicit.warmup_s == 2

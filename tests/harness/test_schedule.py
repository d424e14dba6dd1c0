"""Arrival schedules: rates, Poisson-ness, worker splits and trace replay, as pure arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from harness.load.schedule import (
    RateProfile,
    Segment,
    constant_arrivals,
    constant_profile,
    pick_arms,
    poisson_arrivals,
    stages_profile,
    trace_arrivals,
)
from harness.traces import load_arrivals

TRACE = Path(__file__).resolve().parents[2] / "scenarios" / "data" / "azure_llm_conv_2023.csv"


def _all(chunks) -> np.ndarray:
    parts = list(chunks)
    return np.concatenate(parts) if parts else np.empty(0)


def test_constant_rate_is_exact_and_evenly_spaced() -> None:
    times = _all(constant_arrivals(constant_profile(250.0, 8.0), chunk=100))
    assert times.size == 2000
    assert np.allclose(np.diff(times), 1 / 250.0)
    assert times[0] == 0.0 and times[-1] < 8.0


def test_constant_split_across_workers_is_a_round_robin_of_the_global_schedule() -> None:
    profile = constant_profile(100.0, 3.0)
    whole = _all(constant_arrivals(profile))
    parts = [_all(constant_arrivals(profile, w, 3, chunk=7)) for w in range(3)]
    assert sum(p.size for p in parts) == whole.size
    assert np.allclose(np.sort(np.concatenate(parts)), whole)


def test_poisson_interarrivals_pass_ks_and_count_matches_rate() -> None:
    rate, duration = 500.0, 60.0
    times = _all(poisson_arrivals(constant_profile(rate, duration), seed=7))
    gaps = np.diff(times)
    assert stats.kstest(gaps, "expon", args=(0, 1 / rate)).pvalue > 0.01
    # Poisson count: sd = sqrt(30000) ~ 173 -> 4 sd band.
    assert abs(times.size - rate * duration) < 4 * np.sqrt(rate * duration)
    assert np.all(np.diff(times) >= 0) and times[-1] < duration


def test_poisson_superposition_of_workers_is_poisson_at_the_full_rate() -> None:
    rate, duration = 400.0, 40.0
    profile = constant_profile(rate, duration)
    merged = np.sort(_all(_all(poisson_arrivals(profile, 3, w, 4)) for w in range(4)))
    assert stats.kstest(np.diff(merged), "expon", args=(0, 1 / rate)).pvalue > 0.01
    assert abs(merged.size - rate * duration) < 4 * np.sqrt(rate * duration)
    again = np.sort(_all(_all(poisson_arrivals(profile, 3, w, 4)) for w in range(4)))
    assert np.array_equal(merged, again), "seeded schedules must be reproducible"


def test_ramp_profile_counts_follow_the_integral_of_the_rate() -> None:
    profile = stages_profile([(10.0, 100.0, True), (5.0, 100.0, False), (5.0, 20.0, False)])
    times = _all(constant_arrivals(profile))
    assert times.size == pytest.approx(profile.total, abs=1)
    for lo, hi in [(0, 5), (5, 10), (10, 15), (15, 20)]:
        inside = np.count_nonzero((times >= lo) & (times < hi))
        expected = float(profile.cumulative(hi) - profile.cumulative(lo))
        assert abs(inside - expected) <= 1
    assert profile.rate_at(5.0) == pytest.approx(50.0)
    assert profile.rate_at(17.0) == pytest.approx(20.0)


def test_inverse_is_the_inverse_of_cumulative() -> None:
    profile = RateProfile(
        (Segment(2.0, 0.0, 50.0), Segment(1.0, 0.0, 0.0), Segment(3.0, 80.0, 10.0))
    )
    t = np.linspace(0.01, 5.99, 200)
    t = t[(t < 2.0) | (t >= 3.0)]  # the zero-rate gap has no unique inverse
    assert np.allclose(profile.inverse(profile.cumulative(t)), t, atol=1e-9)
    assert np.isnan(profile.inverse(np.array([profile.total + 1]))[0])


def test_trace_replay_reproduces_the_time_scaled_interarrival_distribution() -> None:
    offsets = load_arrivals(TRACE)
    speedup = 4.0
    parts = [_all(trace_arrivals(offsets, speedup, w, 2, duration_s=600.0)) for w in range(2)]
    replayed = np.sort(np.concatenate(parts))
    truth = offsets[offsets / speedup < 600.0] / speedup
    assert np.array_equal(replayed, truth)
    assert abs(parts[0].size - parts[1].size) <= 1
    window = offsets[offsets < 600.0 * speedup]
    result = stats.ks_2samp(np.diff(replayed), np.diff(window) / speedup)
    assert result.pvalue > 0.01


def test_pick_arms_honours_weights_within_sampling_error() -> None:
    rng = np.random.default_rng(1)
    n = 20000
    arms = pick_arms([90, 10], n, rng)
    share = np.mean(arms == 1)
    assert abs(share - 0.1) < 4 * np.sqrt(0.1 * 0.9 / n)
    assert set(np.unique(arms)) == {0, 1}
    with pytest.raises(ValueError):
        pick_arms([0, 0], 3, rng)

"""Arrival schedules: rates, Poisson-ness, worker splits and trace replay, as pure arrays."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from harness.loadgen.schedule import (
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

TRACE = Path(__file__).resolve().parents[3] / "scenarios" / "data" / "azure_llm_conv_2023.csv"


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


@pytest.mark.parametrize(
    ("segment", "shown"),
    [
        (Segment(0.0, 1.0, 1.0), "Segment(duration=0.0, start=1.0, end=1.0)"),
        (Segment(1.0, -1.0, 1.0), "Segment(duration=1.0, start=-1.0, end=1.0)"),
        (Segment(1.0, 1.0, -1.0), "Segment(duration=1.0, start=1.0, end=-1.0)"),
    ],
)
def test_a_profile_rejects_an_empty_segment_or_a_negative_rate(
    segment: Segment, shown: str
) -> None:
    message = f"invalid segment {shown}: need duration > 0, rates >= 0"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        RateProfile((Segment(1.0, 5.0, 5.0), segment))
    RateProfile((Segment(1e-9, 0.0, 0.0),))  # a pause, however short, is a valid segment


def test_rate_and_cumulative_at_and_beyond_the_segment_edges() -> None:
    # r = 100 on [0, 4); then 80 -> 0 on [4, 8): r(4 + tau) = 80 - 20 tau
    profile = RateProfile((Segment(4.0, 100.0, 100.0), Segment(4.0, 80.0, 0.0)))
    assert profile.rate_at(0.0) == 100.0  # t = 0 belongs to the first segment
    assert profile.rate_at(4.0) == 80.0  # a boundary belongs to the segment it starts
    assert profile.rate_at(5.0) == pytest.approx(60.0)  # 80 - 20 * 1
    assert [profile.rate_at(t) for t in (-1.0, 8.0, 100.0)] == [0.0, 0.0, 0.0]
    # L(t) = 100 t on [0, 4]; L(4 + tau) = 400 + 80 tau - 10 tau^2; L(8) = 400 + 160 = 560
    got = profile.cumulative(np.array([-1.0, 0.0, 2.0, 5.0, 8.0, 100.0]))
    assert np.allclose(got, [0.0, 0.0, 200.0, 470.0, 560.0, 560.0], rtol=0, atol=1e-9)
    assert profile.total == 560.0


def test_inverse_starts_a_ramp_from_zero_at_zero_and_is_nan_from_the_end_on() -> None:
    # ramp 0 -> 50 over 2 s: L(t) = 12.5 t^2, so L^-1(12.5) = 1 and L(2) = 50 is the end
    ramp = RateProfile((Segment(2.0, 0.0, 50.0),))
    got = ramp.inverse(np.array([-1.0, 0.0, 12.5, 50.0, 60.0]))
    assert np.array_equal(got[:3], [0.0, 0.0, 1.0])
    assert np.isnan(got[3:]).all()  # u = L(end): that arrival would fall outside [0, duration)
    # a trailing pause: past the end is NaN, with no divide-by-zero warning (warnings are errors)
    paused = RateProfile((Segment(1.0, 10.0, 10.0), Segment(1.0, 0.0, 0.0)))
    assert np.isnan(paused.inverse(np.array([15.0, 25.0]))).all()


def test_constant_arrivals_skip_a_pause_and_start_a_ramp_at_zero() -> None:
    # 10/s for 1 s, nothing for 1 s, 10/s for 1 s: arrivals at 0.0..0.9, then 2.0..2.9
    paused = RateProfile(
        (Segment(1.0, 10.0, 10.0), Segment(1.0, 0.0, 0.0), Segment(1.0, 10.0, 10.0))
    )
    expected = np.concatenate([np.arange(10) / 10, 2.0 + np.arange(10) / 10])
    assert np.allclose(_all(constant_arrivals(paused)), expected, rtol=0, atol=1e-12)
    # ramp 0 -> 100 over 10 s: L(t) = 5 t^2, arrival k at sqrt(k / 5), the first at exactly 0
    ramp = _all(constant_arrivals(stages_profile([(10.0, 100.0, True)])))
    assert ramp[0] == 0.0
    assert np.allclose(ramp, np.sqrt(np.arange(500) / 5), rtol=0, atol=1e-9)


def test_a_ramp_after_a_step_starts_from_the_step_rate() -> None:
    profile = stages_profile([(5.0, 100.0, False), (10.0, 300.0, True)], start_rate=7.0)
    assert profile.rate_at(0.0) == 100.0  # a step ignores start_rate
    assert profile.rate_at(10.0) == pytest.approx(200.0)  # 100 + (300 - 100) * 5/10
    assert profile.total == pytest.approx(100 * 5 + 0.5 * (100 + 300) * 10)  # 2500
    first_ramp = stages_profile([(2.0, 50.0, True)], start_rate=10.0)
    assert first_ramp.rate_at(1.0) == pytest.approx(30.0)  # 10 + (50 - 10) * 1/2


@pytest.mark.parametrize(("worker", "n_workers"), [(3, 3), (-1, 2), (0, 0)])
def test_a_worker_outside_the_split_is_refused(worker: int, n_workers: int) -> None:
    message = f"^worker {worker} out of range for {n_workers} workers$"
    profile = constant_profile(10.0, 1.0)
    for schedule in (
        constant_arrivals(profile, worker, n_workers),
        poisson_arrivals(profile, 1, worker, n_workers),
        trace_arrivals(np.zeros(3), 1.0, worker, n_workers),
    ):
        with pytest.raises(ValueError, match=message):
            next(schedule)


def test_schedules_come_in_full_chunks_and_never_an_empty_one() -> None:
    # 2000 constant arrivals in chunks of 100: exactly 20 chunks of 100
    chunks = list(constant_arrivals(constant_profile(250.0, 8.0), chunk=100))
    assert [c.size for c in chunks] == [100] * 20
    # Poisson, 10000 expected arrivals: 64 Exp(1) gaps sum to ~64 +- 8, far below the total,
    # so every chunk but the last is full
    sizes = [c.size for c in poisson_arrivals(constant_profile(10.0, 1000.0), 5, chunk=64)]
    assert len(sizes) > 100 and set(sizes[:-1]) == {64} and 0 < sizes[-1] <= 64


def test_poisson_first_arrival_is_exponential_from_time_zero() -> None:
    # the first event of a rate-10 Poisson process is Exp(mean 0.1 s): nothing shifts it
    rate = 10.0
    profile = constant_profile(rate, 5.0)
    firsts = [next(poisson_arrivals(profile, seed, chunk=8))[0] for seed in range(300)]
    assert stats.kstest(firsts, "expon", args=(0, 1 / rate)).pvalue > 0.01


def test_trace_replay_defaults_speedup_and_the_cut() -> None:
    offsets = np.array([0.0, 1.0, 2.0, 3.0])
    assert np.array_equal(_all(trace_arrivals(offsets)), offsets)  # 1x, one worker, uncut
    assert np.array_equal(_all(trace_arrivals(offsets, duration_s=2.0)), [0.0, 1.0])
    # 2x faster: [0, 0.5, 1, 1.5], cut before 1.0 (the cut is in scaled time)
    assert np.array_equal(_all(trace_arrivals(offsets, 2.0, duration_s=1.0)), [0.0, 0.5])
    for speedup in (0.0, -1.0):
        with pytest.raises(ValueError, match=r"^speedup must be > 0$"):
            next(trace_arrivals(offsets, speedup))


def test_pick_arms_accepts_zero_and_fractional_weights_and_returns_indices() -> None:
    rng = np.random.default_rng(2)
    one = pick_arms([5.0], 4, rng)
    assert one.dtype == np.int64 and one.tolist() == [0, 0, 0, 0]
    assert pick_arms([0, 1], 200, rng).tolist() == [1] * 200  # a weight-0 arm gets nothing
    assert pick_arms([1, 0], 200, rng).tolist() == [0] * 200
    halves = pick_arms([0.25, 0.25], 20000, rng)  # relative weights: a sum below 1 is fine
    assert halves.dtype == np.int64
    assert abs(np.mean(halves == 1) - 0.5) < 4 * np.sqrt(0.25 / 20000)
    n = 30000
    thirds = np.bincount(pick_arms([1, 1, 1], n, rng), minlength=3) / n
    assert np.all(np.abs(thirds - 1 / 3) < 4 * np.sqrt((1 / 3) * (2 / 3) / n))


@pytest.mark.parametrize("weights", [[0, 0], [-1, 2], [], [float("inf"), 1.0]])
def test_pick_arms_rejects_weights_that_cannot_split_traffic(weights: list[float]) -> None:
    message = f"traffic-split weights must be >= 0 with a positive sum, got {weights}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        pick_arms(weights, 3, np.random.default_rng(0))


class _Draws:
    """A stand-in generator whose uniform draws are chosen by the test."""

    def __init__(self, values: list[float]) -> None:
        self.values = np.array(values)

    def random(self, n: int) -> np.ndarray:
        assert n == self.values.size
        return self.values


def test_pick_arms_gives_arm_i_the_draws_in_its_half_open_interval() -> None:
    # weights 0, 1, 1 -> edges 0, 0.5, 1: arm 1 takes [0, 0.5), arm 2 takes [0.5, 1);
    # a weight-0 arm owns the empty interval [0, 0) and gets nothing, not even a draw of 0.0
    draws = _Draws([0.0, 0.25, 0.5, 0.999])
    assert pick_arms([0, 1, 1], 4, draws).tolist() == [1, 1, 2, 2]  # type: ignore[arg-type]

"""Validity statistics: percentile intervals cover the truth, warm-up is found, stability judged."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from harness.config import ValidityConfig
from harness.latency.hdr import new_histogram
from harness.latency.sparse import SparseHist
from harness.loadgen.recorder import LatencyRecorder
from harness.results.validity import (
    Block,
    PercentileCI,
    Stability,
    Validity,
    assess,
    blocks_after,
    detect_warmup,
    find_stable,
    front_change_point,
    make_block,
    more_requests_needed,
    percentile_ci,
    requests_needed,
)
from harness.results.windows import SecondStats, decode_windows, per_second

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


# --- exact rules on hand-made data (no noise: every expected value follows by hand) ---


def flat(second: int, successes: int, value_us: int = 5000, healthy: bool = True, failures=0):
    """One second: `successes` requests all at `value_us` (plus `failures` untimed)."""
    hist = SparseHist.from_values(np.full(successes, value_us, dtype=np.int64))
    return SecondStats(second, successes + failures, failures, healthy, hist)


def flats(*runs: tuple[int, int, int]) -> list[SecondStats]:
    """Consecutive seconds from 0: each run is (seconds, successes per second, value_us)."""
    out: list[SecondStats] = []
    for length, successes, value_us in runs:
        out += [flat(len(out) + i, successes, value_us) for i in range(length)]
    return out


def test_percentile_ci_of_the_median_of_100_is_the_40th_to_61st_value():
    """The textbook order-statistic interval (e.g. Conover, Practical Nonparametric
    Statistics, table A3): for n = 100 the 95% interval of the median runs from the 40th to
    the 61st smallest value. Values 1001..1100 us sit in one-microsecond slots, so the k-th
    smallest is 1000 + k."""
    ci = percentile_ci(SparseHist.from_values(np.arange(1001, 1101)), 50, confidence=0.95)
    assert ci == PercentileCI(50, 100, 1050, 1040, 1061, 0.95)
    # the defining tails (B ~ Bin(100, 1/2) values below the median): P(B <= 39) <= 2.5% <
    # P(B <= 40), and P(B >= 61) <= 2.5% < P(B >= 60)
    assert stats.binom.cdf(39, 100, 0.5) <= 0.025 < stats.binom.cdf(40, 100, 0.5)
    assert stats.binom.sf(60, 100, 0.5) <= 0.025 < stats.binom.sf(59, 100, 0.5)


def test_percentile_ci_bounds_are_the_outer_ends_of_their_slots():
    values = np.arange(1_001_000, 1_101_000, 1000)  # 100 values in 512-1024 us wide slots
    ci = percentile_ci(SparseHist.from_values(values), 50)
    reference = new_histogram()  # hdrh's own slot ends
    assert ci.low_us == reference.get_lowest_equivalent_value(int(values[40 - 1]))
    assert ci.high_us == reference.get_highest_equivalent_value(int(values[61 - 1]))
    assert ci.estimate_us == reference.get_highest_equivalent_value(int(values[50 - 1]))


def test_percentile_ci_at_the_smallest_samples():
    # n = 5, median: P(B = 0) = 1/32 = 0.031 > 0.025, so no value can be the lower bound (0),
    # and P(B = 5) = 1/32 too, so there is no upper bound (None)
    five = percentile_ci(SparseHist.from_values(np.array([1001, 1002, 1003, 1004, 1005])), 50)
    assert five == PercentileCI(50, 5, 1003, 0.0, None, 0.95)
    # n = 6: P(B = 0) = 1/64 = 0.016 <= 0.025: the interval is (1st, 6th), coverage 62/64
    six = percentile_ci(SparseHist.from_values(np.arange(1001, 1007)), 50)
    assert six == PercentileCI(50, 6, 1003, 1001, 1006, 0.95)
    one = percentile_ci(SparseHist.from_values(np.array([1500])), 50)
    assert one == PercentileCI(50, 1, 1500, 0.0, None, 0.95)
    assert percentile_ci(SparseHist.empty(), 99) == PercentileCI(99, 0, None, None, None, 0.95)
    assert percentile_ci(SparseHist.empty(), 50, 0.9) == PercentileCI(50, 0, None, None, None, 0.9)


def test_requests_needed_by_hand():
    assert requests_needed(50) == 6  # 0.5^5 = 0.031 > 0.025 >= 0.5^6 = 0.016
    assert requests_needed(1) == 1  # 0.01^1 <= 0.025: one request bounds the 1st percentile
    # 99% confidence: 0.99^n <= 0.005, n >= ln 0.005 / ln 0.99 = 5.2983 / 0.010050 = 527.2
    assert more_requests_needed(0, 99, confidence=0.99) == 528
    assert more_requests_needed(500, 99, confidence=0.99) == 28
    assert more_requests_needed(10_000, 99) == 0
    with pytest.raises(ValueError, match=r"^the maximum has no distribution-free upper bound$"):
        requests_needed(100)


def test_warmup_detection_needs_two_windows_of_data():
    # 2 slow seconds (40 ms) then 5 ms, 100 requests/s, window_s = 5: 10 seconds is enough
    # (limit 5, one L1 cut at 2 with nothing else changing), 9 seconds is not (0)
    assert detect_warmup(flats((2, 100, 40_000), (8, 100, 5000)), 5, 0.10) == 2
    assert detect_warmup(flats((2, 100, 40_000), (7, 100, 5000)), 5, 0.10) == 0
    assert detect_warmup([], 5, 0.10) is None


def test_a_warmup_of_up_to_half_the_run_is_cut_whole():
    assert detect_warmup(flats((14, 100, 40_000), (16, 100, 5000)), 5, 0.10) == 14
    assert detect_warmup(flats((15, 100, 40_000), (15, 100, 5000)), 5, 0.10) == 15
    assert detect_warmup(flats((20, 100, 40_000), (10, 100, 5000)), 5, 0.10) == 15  # capped


def test_slow_outliers_above_the_99th_percentile_are_no_warmup():
    # first 6 seconds: 99 requests at 5 ms and one at 200 ms; p99 (the 99th of 100) is 5 ms
    head = [
        SecondStats(s, 100, 0, True, SparseHist.from_values(np.r_[np.full(99, 5000), 200_000]))
        for s in range(6)
    ]
    tail = [flat(s, 100) for s in range(6, 30)]
    assert detect_warmup(head + tail, 5, 0.10) == 0


def test_a_throughput_warmup_must_clear_poisson_noise():
    """Log throughput, 100/s after the head: the noise floor is 1/sqrt(100) = 0.1, and a
    4-second head of 26 + 4 needs a gap above 5 * 0.1 * sqrt(1/4 + 1/26) = 0.2685."""
    # 60/s: gap ln(101/61) = 0.504 > 0.2685: a warm-up
    assert detect_warmup(flats((4, 60, 5000), (26, 100, 5000)), 5, 0.10) == 4
    # 85/s: gap ln(101/86) = 0.161, more than the 10% tolerance (0.095) but within noise
    assert detect_warmup(flats((4, 85, 5000), (26, 100, 5000)), 5, 0.10) == 0


def test_an_empty_first_second_at_one_request_per_second_is_noise():
    # P(no request in a second) at 1/s is e^-1 = 0.37; and no p99 is no evidence of a warm-up
    series = [flat(0, 0)] + [flat(s, 1) for s in range(1, 20)]
    assert detect_warmup(series, 5, 0.10) == 0


def test_slow_seconds_at_the_end_do_not_hide_the_warmup():
    series = flats((3, 100, 40_000), (30, 100, 5000), (3, 100, 40_000))
    assert detect_warmup(series, 5, 0.10) == 3


def test_front_change_point_by_hand():
    # too short to split
    assert front_change_point(np.array([10.0, 0.0]), 0.1, 1) == 0
    # diffs (-10, -10): no noise; cuts 1 and 2 both cost 10 -> the earlier; gap
    # 20 - median(10, 0) = 15; the 2 values left are not split again
    assert front_change_point(np.array([20.0, 10.0, 0.0]), 0.1, 2) == 1
    # worse = 0 (default) counts a head below the rest as well as above
    assert front_change_point(np.array([0.0] * 3 + [10.0] * 10), 0.1, 6) == 3
    # never more than `limit`: 2 cuts (2, then 2) reach limit 4 though 5 values differ
    assert front_change_point(np.array([20.0, 20, 10, 10, 10] + [0.0] * 10), 0.1, 4) == 4
    assert front_change_point(np.array([10.0] * 5 + [0.0] * 10), 0.1, 3) == 3
    # a limit past the end: the last value alone can be the rest
    assert front_change_point(np.array([1.0, 1, 1, 0]), 0.1, 10) == 3
    # ties go to the earliest cut: cut 1 and cut 3 both cost 10, 1 wins; then (0, 10, 0...)
    # has medians equal on both sides of its best cut
    assert front_change_point(np.array([10.0, 0, 10, 0, 0, 0, 0, 0]), 0.1, 4) == 1
    # a steady trend is not noise: diffs (1, 1) spread 0 around their median
    assert front_change_point(np.array([0.0, 1.0, 2.0]), 0.01, 1) == 1


def test_front_change_point_thresholds_are_strict():
    """A split counts when the gap is *more than* log(1 + tolerance) and 5 sigma
    sqrt(1/head + 1/rest)."""
    at = math.log1p(0.25)
    assert front_change_point(np.array([at] * 3 + [0.0] * 7), 0.25, 5) == 0
    assert front_change_point(np.array([at * 1.001] * 3 + [0.0] * 7), 0.25, 5) == 3
    # sigma = floor 0.2 (diffs spread 0): 5 * 0.2 * sqrt(1/4 + 1/12) = 0.577
    assert front_change_point(np.array([0.6] * 4 + [0.0] * 12), 0.01, 8, floor=0.2) == 4
    assert front_change_point(np.array([0.55] * 4 + [0.0] * 12), 0.01, 8, floor=0.2) == 0
    # sigma from diffs: (0,0,0,-g, +1 x6, -1 x5) have median 0 and MAD 1, so
    # sigma = 1.4826 / sqrt 2 = 1.0484; the rest (0,1 x6) has median 0.5; the bar is
    # 5 * 1.0484 * sqrt(1/4 + 1/12) = 3.026: g = 4 (gap 3.5) counts, g = 3.3 (2.8) not
    assert front_change_point(np.array([4.0] * 4 + [0.0, 1.0] * 6), 0.01, 8) == 4
    assert front_change_point(np.array([3.3] * 4 + [0.0, 1.0] * 6), 0.01, 8) == 0


def blk(start: int, values, seconds: int = 1) -> Block:
    values = np.asarray(values, dtype=np.int64)
    return Block(start, seconds, len(values), SparseHist.from_values(values))


def blocks_of(*values, seconds: int = 1) -> list[Block]:
    return [blk(i * seconds, v, seconds) for i, v in enumerate(values)]


def test_stable_needs_the_number_of_blocks_asked_for_and_says_which():
    same = [[5000] * 100] * 3
    assert find_stable(blocks_of(*same), 3, 0.10) == Stability(True, 0, 3, "stable")
    assert find_stable(blocks_of(*same[:2]), 3, 0.10) == Stability(
        False, None, 2, "2 of 3 blocks measured"
    )
    # the latest agreeing run: the 4th block doubles throughput, blocks 0..2 agree
    latest = blocks_of(*same, [5000] * 200)
    assert find_stable(latest, 3, 0.10) == Stability(True, 0, 4, "stable")
    assert find_stable(blocks_of(*same, *same), 3, 0.10) == Stability(True, 3, 6, "stable")


def test_blocks_across_an_unhealthy_gap_are_not_one_run():
    starts = [blk(s, [5000] * 100) for s in (0, 1, 2, 4)]
    assert find_stable(starts, 3, 0.10) == Stability(True, 0, 4, "stable")
    gaps = [blk(s, [5000] * 100) for s in (0, 2, 4)]
    assert find_stable(gaps, 3, 0.10) == Stability(
        False, None, 3, "blocks not consecutive (unhealthy seconds between them)"
    )


def test_unstable_says_what_differs():
    # 100, 100, 200 requests: mean 133.3, allowance max(13.3, 3 sqrt 133.3 = 34.6) < 66.7
    rate = blocks_of([5000] * 100, [5000] * 100, [5000] * 200)
    assert find_stable(rate, 3, 0.10) == Stability(
        False, None, 3, "throughput of the last 3 blocks differs by more than 10%"
    )
    # 1000 requests a block: the 5 ms blocks' p99 intervals end at their 997th value, 5 ms
    p99 = blocks_of([5000] * 1000, [5000] * 1000, [20_000] * 1000)
    assert find_stable(p99, 3, 0.10) == Stability(
        False, None, 3, "p99 of the last 3 blocks differs by more than 10%"
    )


def test_throughput_agreement_boundaries_by_hand():
    """|rate - mean| <= max(tolerance * mean, 3 sqrt(mean * seconds) / seconds), inclusive."""

    def verdict(counts, tolerance=0.10, seconds=1):
        blocks = blocks_of(*[[1000] * c for c in counts], seconds=seconds)
        return find_stable(blocks, len(counts), tolerance).stable

    # tolerance: mean 1000, 0.25 * 1000 = 250 (noise 3 sqrt 1000 = 95): +-250 agrees
    assert verdict([750, 1000, 1250], tolerance=0.25)
    assert not verdict([749, 1000, 1251], tolerance=0.25)
    # Poisson noise over 4-second blocks: mean 100/s, 3 sqrt(400) / 4 = 15/s > 10% of 100
    assert verdict([340, 400, 460], seconds=4)  # 85, 100, 115 per second
    assert not verdict([336, 400, 464], seconds=4)  # 84, 100, 116
    # few requests: mean 1.8 per 1-s block, allowance 3 sqrt 1.8 = 4.025 < 6 - 1.8 = 4.2
    assert not verdict([6, 1, 1, 1, 1, 1, 1, 1, 2, 3])


def test_p99_agreement_boundaries_by_hand():
    """A block's p99 agrees within tolerance of the run's, or when the run's p99 lies
    inside the block's own 95% interval (values below 2048 us: exact one-us slots)."""

    def verdict(*blocks, tolerance=0.10):
        return find_stable(blocks_of(*blocks), len(blocks), tolerance).stable

    # run p99 2000; block at 1000 is exactly 50% off: agrees; its interval (1000, 1000)
    # alone would not contain 2000
    assert verdict([1000] * 1000, [2000] * 1000, [2000] * 1000, tolerance=0.5)
    # run p99 1100; block p99 1000 (its one 30 ms request is its max, not its p99)
    assert verdict([1000] * 999 + [30_000], [1100] * 1000, [1100] * 1000)
    # block p99 1900 is far from the run's 1000, but with 100 requests its interval is
    # (97th value, unbounded) = (1000, inf), which holds 1000
    assert verdict([1000] * 98 + [1900] * 2, [1000] * 100, [1000] * 100)
    # run p99 1500; block p99 1000, interval (983rd, 997th value) = (1000, 1500) holds it
    assert stats.binom.ppf(0.025, 1000, 0.99) == 983 and stats.binom.ppf(0.975, 1000, 0.99) == 996
    assert verdict([1000] * 990 + [1500] * 10, [1500] * 1000, [1500] * 1000)
    assert not verdict([1000] * 997 + [1500] * 3, [1500] * 1000, [1500] * 1000)
    # no successes at all agree with each other; one empty block among busy ones does not
    # (1, 1, 0 requests agree on throughput: allowance 3)
    assert verdict([], [], [])
    assert not verdict([1000], [1000], [])


def test_make_block_and_blocks_after():
    block = make_block([flat(3, 10, failures=2), flat(4, 20)])
    assert (block.start, block.seconds, block.requests, block.hist.total) == (3, 2, 32, 30)
    assert block.throughput == 15
    assert blocks_after([], 0, 5) == []
    # 12 seconds, second 6 unhealthy, 3-second blocks: 6..8 is dropped
    sick = [flat(s, 10, healthy=s != 6) for s in range(12)]
    assert [(b.start, b.seconds, b.requests) for b in blocks_after(sick, 0, 3)] == [
        (0, 3, 30), (3, 3, 30), (9, 3, 30),
    ]  # fmt: skip
    # a missing second drops its block; an incomplete last block is left out
    holed = [flat(s, 10) for s in range(11) if s != 4]
    assert [b.start for b in blocks_after(holed, 0, 3)] == [0, 6]
    assert [b.start for b in blocks_after(holed, 1, 3)] == [1, 7]


def test_validity_record_and_summary_fields_by_hand():
    steady = flats((30, 100, 5000))  # 3000 requests, 5 s blocks: the latest 3 start at 15
    verdict = assess(steady, ValidityConfig())
    assert verdict == Validity(
        valid=True, stable=True, reasons=(), warmup_s=0, warmup_detected=True, analysed_from=0,
        measured_seconds=tuple(range(30)), excluded_windows=(), stable_from=15, requests=3000,
        more_requests_needed_for_p99=0, more_requests_needed_for_p999=3688 - 3000,
    )  # fmt: skip
    assert verdict.to_dict() == {
        "stable": True, "reasons": [], "warmup_s": 0, "warmup_detected": True,
        "analysed_from_s": 0, "measured_s": 30, "excluded_windows": 0, "excluded_seconds": [],
        "stable_from_s": 15, "more_requests_needed_for_p99": 0,
        "more_requests_needed_for_p999": 688,
        "stability_note": None,
    }  # fmt: skip
    one_second_blocks = ValidityConfig(stability={"window_s": 1})
    assert assess(steady, one_second_blocks).stable_from == 27


def test_minimums_are_inclusive_and_reasons_read_whole():
    config = ValidityConfig(min_duration_s=20, min_requests=500)
    exact = assess(flats((20, 25, 5000)), config, warmup_s=0)  # 20 s, 500 requests
    assert exact.valid and exact.reasons == () and exact.requests == 500
    short = assess(flats((19, 25, 5000)), config, warmup_s=0)
    assert short.reasons == (
        "measured 19 s < min_duration_s 20",
        "measured 475 requests < min_requests 500",
    )
    # 300 successes (and 100 failures, which count as requests): p99 needs 368
    few = [flat(s, 15, failures=5) for s in range(20)]
    assert assess(few, config, warmup_s=0).reasons == (
        "measured 400 requests < min_requests 500",
        "p99 unbounded: 68 more requests needed",
    )
    verdict = assess(few, config, warmup_s=0)
    assert (verdict.requests, verdict.more_requests_needed_for_p99) == (400, 68)
    assert verdict.more_requests_needed_for_p999 == 3688 - 300


def test_nothing_to_judge_is_invalid_not_an_error():
    empty = assess([], ValidityConfig(), start=7)
    assert (empty.valid, empty.analysed_from, empty.warmup_s, empty.measured_seconds) == (
        False, 7, 0, (),
    )  # fmt: skip
    assert empty.reasons == (
        "not stable: 0 of 3 blocks measured",
        "measured 0 s < min_duration_s 10",
        "measured 0 requests < min_requests 500",
        "p99 unbounded: 368 more requests needed",
    )
    sick = [flat(s, 100, healthy=False) for s in range(20)]
    verdict = assess(sick, ValidityConfig())
    assert verdict.excluded_windows == tuple(range(20)) and verdict.measured_seconds == ()
    assert verdict.reasons[0] == "not stable: 0 of 3 blocks measured" and not verdict.valid


def test_a_run_whose_first_second_is_late_is_analysed_from_that_second():
    series = [flat(s, 100) for s in range(5, 35)]  # nothing recorded in seconds 0..4
    verdict = assess(series, ValidityConfig())
    assert (verdict.analysed_from, verdict.warmup_s, verdict.measured_seconds[0]) == (5, 0, 5)

"""`compare_arms` wiring: Holm over the gating metrics only, verdict order, summary wording,
warnings, details and the short-data path, on small seeded arms (each comparison < 0.1 s).

Why here as well as in test_calibration.py: the calibration runs judge the statistics over
hundreds of comparisons and never read the summary, the warnings or which metric Holm
adjusted. These read one comparison whole, with every expected value built from the
comparison's own per-metric verdicts or from the arms' counts, not from the code's wording.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import replace

import numpy as np
import pytest

from harness.analysis.ab.abconfig import CompareConfig
from harness.analysis.ab.compare import (
    WARN_ARM_NOTE,
    WARN_BURSTY,
    WARN_EXCLUDED,
    WARN_OUT_OF_RANGE,
    WARN_TWO_RUNS,
    Comparison,
    compare_arms,
)
from harness.analysis.ab.equivalence import holm
from harness.analysis.ab.histdata import ArmWindows, arm_from_samples
from harness.analysis.ab.latency_ab import robust_rank_test
from harness.analysis.ab.proportions import dispersion_index
from harness.analysis.ab.synthetic import ArmSpec, simulate_pair

CONFIG = CompareConfig(n_boot=100)
GATING = ["shift", "distribution", "p99", "error_rate"]  # accuracy: not checked here
LABELS = {
    "shift": "typical latency (shift)",
    "distribution": "latency distribution",
    "p99": "latency p99",
    "error_rate": "error rate",
}


def _pair(spec_b: ArmSpec, seconds: int = 40, sigma: float = 0.3, rate: int = 60, seed: int = 1):
    spec_a = ArmSpec(rate=rate, sigma=sigma)
    return simulate_pair(spec_a, spec_b, seconds, np.random.default_rng(seed), load_sd=0.05)


def _rest(result: Comparison, head_verdict: str | None) -> str:
    """'. Also label: verdict; ...' for the gating metrics the head does not name."""
    rest = [
        f"{LABELS[m]}: {result.metric(m).verdict}"
        for m in GATING
        if result.metric(m).verdict != head_verdict
    ]
    return ". Also " + "; ".join(rest) if rest else ""


def _check_holm(result: Comparison) -> None:
    gating = [result.metric(m) for m in GATING]
    assert [m.p_adjusted for m in gating] == pytest.approx(holm([m.p_value for m in gating]))
    assert [m.metric for m in result.metrics if m.gating] == GATING
    for m in result.metrics:
        if not m.gating:
            assert m.p_adjusted is None, m.metric  # reported, never part of the family


def test_b_faster_is_better_and_holm_covers_the_gating_metrics_only() -> None:
    a, b = _pair(ArmSpec(rate=60, sigma=0.3, scale=0.7))
    result = compare_arms(a, b, CONFIG)
    assert (result.verdict, result.regression) == ("better", False)
    assert [m.metric for m in result.metrics] == [
        "shift", "distribution", "p50", "p95", "p99", "p99.9", "error_rate",
    ]
    _check_holm(result)
    better = [m for m in GATING if result.metric(m).verdict == "better"]
    assert better == ["shift", "distribution", "p99"]
    assert result.summary == (
        "B is better on typical latency (shift), latency distribution, latency p99"
        + _rest(result, "better") + "."
    )
    assert result.summary.endswith(". Also error rate: inconclusive.")
    # a non-gating percentile is judged on its own p-value: 1/101 < 0.05, not Holm's 4/101
    p50 = result.metric("p50")
    assert p50.verdict == "better" and p50.p_value == pytest.approx(1 / 101)
    dist = result.metric("distribution")
    assert dist.note == "B has less mass in the upper tail"
    for name in ("p50", "p95", "p99", "p99.9"):  # intervals (ms and relative) about the estimate
        m = result.metric(name)
        assert m.ci[0] < m.difference < m.ci[1] < 0, name
        assert m.relative_ci[0] < m.relative < m.relative_ci[1] < 0, name
    assert result.metric("shift").note.startswith("significant after Holm correction; ")
    assert result.warnings == ()  # failures: none, so nothing bursty either


def test_b_wider_is_a_regression_named_in_the_summary() -> None:
    a, b = _pair(ArmSpec(rate=100, sigma=0.6), rate=100)
    result = compare_arms(a, b, CONFIG)
    assert (result.verdict, result.regression) == ("worse", True)
    _check_holm(result)
    dist = result.metric("distribution")
    assert (dist.verdict, dist.note) == ("worse", "B has more mass in the upper tail")
    assert dist.p_adjusted < 0.05
    assert result.summary == (
        "REGRESSION: B is worse on latency distribution, latency p99" + _rest(result, "worse")
        + "."
    )


def test_equivalent_summary_names_both_margins() -> None:
    a, b = _pair(ArmSpec(rate=100, sigma=0.05), sigma=0.05, rate=100)
    config = CompareConfig(n_boot=100, error_margin=0.002)
    result = compare_arms(a, b, config)
    assert (result.verdict, result.regression) == ("equivalent", False)
    _check_holm(result)
    assert result.metric("p99").verdict == "equivalent"
    assert result.metric("error_rate").margin == "±0.2 pp"
    verdicts = [result.metric(m).verdict for m in GATING]
    assert verdicts == ["equivalent", "no significant difference", "equivalent", "equivalent"]
    # the head names the error-rate margin, so "error rate" is not repeated after "Also"
    assert result.summary == (
        "No regression beyond the margins (latency ±5% of A, error rate ±0.2 pp): "
        "B is equivalent. Also typical latency (shift): equivalent; latency distribution: "
        "no significant difference; latency p99: equivalent; error rate: equivalent."
    )


def test_without_margins_no_significant_difference_is_the_summary() -> None:
    a, b = _pair(ArmSpec(rate=100, sigma=0.05), sigma=0.05, rate=100)
    config = CompareConfig(n_boot=100, margin="none", gating=("shift", "p99"))
    result = compare_arms(a, b, config)
    assert result.verdict == "no significant difference"
    assert result.summary == (
        "No significant difference (no equivalence margin was tested). Also typical latency "
        "(shift): no significant difference; latency p99: no significant difference."
    )
    assert [m.metric for m in result.metrics if m.gating] == ["shift", "p99"]


def test_inconclusive_summary_gives_requests_and_seconds_at_this_rate() -> None:
    a, b = simulate_pair(ArmSpec(rate=10), ArmSpec(rate=10), 25, np.random.default_rng(1))
    result = compare_arms(a, b, CONFIG)
    assert result.verdict == "inconclusive"
    _check_holm(result)
    unsure = [m for m in GATING if result.metric(m).verdict == "inconclusive"]
    assert unsure == ["shift", "p99", "error_rate"]
    need = max(result.metric(m).requests_needed for m in unsure)
    # requests/s of both arms together: each arm's requests over its windows
    rate = a.n_requests / a.n_windows + b.n_requests / b.n_windows
    assert need > a.n_requests + b.n_requests
    assert result.summary == (
        "Inconclusive: not enough data on typical latency (shift), latency p99, error rate; "
        f"about {need:,} requests in total would resolve it (~{math.ceil(need / rate):,} s at "
        "this rate). Also latency distribution: no significant difference."
    )


def _arm(name: str, windows: int, per_window: int, seed: int = 0) -> ArmWindows:
    rng = np.random.default_rng(seed)
    seconds = np.repeat(np.arange(windows), per_window)
    return arm_from_samples(name, seconds, rng.lognormal(np.log(5000), 0.3, seconds.size))


def test_too_little_data_leaves_latency_inconclusive_and_says_why() -> None:
    config = CompareConfig(n_boot=100, min_windows=20, min_requests=200)
    # A: 19 windows (one short) with plenty of requests; B: fine
    a, b = _arm("A", 19, 20), _arm("B", 20, 10, seed=1)
    result = compare_arms(a, b, config)
    why = "arm 'A' has 380 successful requests in 19 windows; need >= 200 in >= 20"
    for name in ("shift", "distribution", "p50", "p99"):
        m = result.metric(name)
        assert (m.verdict, m.method, m.note) == ("inconclusive", "not computed", why)
        assert m.requests_needed == 2 * 380  # twice the larger arm (and >= 2 x 200)
        assert m.p_value is None and m.p_adjusted is None
    # shown, not judged: the arms' own percentiles in ms
    assert result.metric("p99").a == pytest.approx(a.merged.percentile(99.0) / 1e3)
    assert result.metric("shift").b == pytest.approx(b.merged.percentile(50.0) / 1e3)
    assert result.metric("distribution").a is None
    assert "block_length_s" not in result.details
    # A short of windows, B with the most requests: twice B's 500
    result = compare_arms(_arm("A", 19, 20), _arm("B", 25, 20, seed=1), config)
    assert result.metric("p99").requests_needed == 1000
    # B one request short: 199 < 200
    b_short = arm_from_samples("B", np.repeat(np.arange(20), 10)[:-1], np.full(199, 4000.0))
    result = compare_arms(_arm("A", 20, 20), b_short, config)
    assert result.metric("p99").note == (
        "arm 'B' has 199 successful requests in 20 windows; need >= 200 in >= 20"
    )


def test_exactly_the_minimum_is_enough() -> None:
    config = CompareConfig(n_boot=100, min_windows=20, min_requests=200)
    result = compare_arms(_arm("A", 20, 10), _arm("B", 20, 10, seed=1), config)
    for name in ("shift", "distribution", "p99"):
        assert result.metric(name).method != "not computed", name
    assert result.details["block_length_s"] == 2  # ceil(20^(1/3)) = 3 > 20 // 8 = 2


def test_no_data_at_all_is_inconclusive_without_a_duration() -> None:
    empty = arm_from_samples("A", np.array([], dtype=np.int64), np.array([]))
    result = compare_arms(empty, replace(empty, name="B"))  # default config
    assert result.verdict == "inconclusive"
    # 2 x min_requests; no requests per second to turn it into a duration
    assert result.summary == (
        "Inconclusive: not enough data on typical latency (shift), latency distribution, "
        "latency p99, error rate; about 400 requests in total would resolve it."
    )
    assert result.metric("error_rate").requests_needed is None
    assert result.details["requests_a"] == 0 and result.details["n_boot"] == 1000


def test_warnings_name_the_arm_and_what_was_left_out() -> None:
    a, b = _pair(ArmSpec(rate=60, sigma=0.3))
    a = replace(a, rejected=3, excluded_windows=5, notes=("note from the reader",))
    b = replace(b, rejected=0, excluded_windows=2)
    result = compare_arms(a, b, CONFIG, design="two-runs")
    assert result.design == "two-runs"
    assert result.warnings == (
        "A and B come from two separate runs: anything that changed between them (time "
        "of day, host load, cache state) is confounded with A vs B; prefer a split run.",
        "arm 'A': 3 latencies fell outside the histogram range and are not in the latency "
        "statistics",
        "arm 'A': 5 windows excluded (warm-up or unhealthy load generator)",
        "note from the reader",
        "arm 'B': 2 windows excluded (warm-up or unhealthy load generator)",
    )
    # each warning says what it is about, so a caller can leave some out by kind
    assert result.warning_kinds == (
        WARN_TWO_RUNS, WARN_OUT_OF_RANGE, WARN_EXCLUDED, WARN_ARM_NOTE, WARN_EXCLUDED
    )  # fmt: skip
    assert result.warnings_except(WARN_TWO_RUNS, WARN_EXCLUDED) == result.warnings[1:4:2]


def test_bursty_failures_are_warned_about_once() -> None:
    a, b = _pair(ArmSpec(rate=60, sigma=0.3))
    failures = np.zeros(b.n_windows, dtype=np.int64)
    failures[::10] = 20  # 4 bursts of 20 failures in 40 seconds
    b = replace(b, failures=failures, requests=b.requests + failures)
    result = compare_arms(a, b, CONFIG)
    # dispersion_index is checked by hand in test_proportions.py
    sentence = (
        f"failures of 'B' are bursty (dispersion {dispersion_index(failures, b.requests):.1f}); "
        "the exact test assumes independence, so its p-value is optimistic"
    )
    assert sentence.startswith("failures of 'B' are bursty (dispersion 14.0)")
    note = result.metric("error_rate").note
    assert note == "significant after Holm correction; " + sentence
    # the warning repeats the error-rate note, its verdict reason included
    assert [w for w in result.warnings if "bursty" in w] == [note]
    assert result.warnings == (note,) and result.warning_kinds == (WARN_BURSTY,)


def test_details_report_the_bootstrap_and_the_rank_test() -> None:
    a, b = _pair(ArmSpec(rate=60, sigma=0.3), seed=2)
    config = CompareConfig(n_boot=100, block_length=7, margin="2ms")
    result = compare_arms(a, b, config)
    rt = robust_rank_test(a, b, paired=True)
    assert result.details == {
        "requests_a": a.n_requests,
        "requests_b": b.n_requests,
        "windows_a": 40,
        "windows_b": 40,
        "alpha": 0.05,
        "margin": "±2 ms",
        "n_boot": 100,
        "block_length_s": 7,
        "lag1_autocorrelation": round(rt.rho, 4),
        "rank_test_design_effect": round(rt.design_effect, 3),
    }
    # the rounding is to 4 and 3 digits: one digit more would show here
    assert round(rt.rho, 5) != round(rt.rho, 4)
    assert round(rt.design_effect, 4) != round(rt.design_effect, 3)


def test_design_effect_is_na_when_every_request_ties() -> None:
    seconds = np.repeat(np.arange(25), 10)
    a = arm_from_samples("A", seconds, np.full(250, 5000.0))
    b = arm_from_samples("B", seconds, np.full(250, 5000.0))
    assert compare_arms(a, b, CONFIG).details["rank_test_design_effect"] == "n/a"


def test_same_inputs_same_result_and_the_seed_matters() -> None:
    a, b = _pair(ArmSpec(rate=60, sigma=0.3, scale=1.02))
    first, again = compare_arms(a, b, CONFIG), compare_arms(a, b, CONFIG)
    assert first == again
    other = compare_arms(a, b, CompareConfig(n_boot=100, seed=1))
    assert other.metric("p99").ci != first.metric("p99").ci


def test_logs_the_verdict_at_debug(caplog) -> None:
    a, b = _pair(ArmSpec(rate=60, sigma=0.3, scale=0.7))
    with caplog.at_level(logging.DEBUG, logger="harness.analysis.ab.compare"):
        compare_arms(a, b, CONFIG)
    assert caplog.messages == ["compare A vs B (split): better"]


def test_to_dict_is_json_ready() -> None:
    comparison = Comparison(
        arm_a="A",
        arm_b="B",
        design="split",
        verdict="worse",
        regression=True,
        summary="s",
        metrics=(),
        warnings=("w",),
        details={"n": np.int64(3), "x": np.float32(0.5), "bad": math.nan, "inf": math.inf},
    )
    data = comparison.to_dict()
    assert data["details"] == {"n": 3, "x": 0.5, "bad": None, "inf": None}
    assert type(data["details"]["n"]) is int and data["warnings"] == ["w"]
    json.dumps(data, allow_nan=False)
    with pytest.raises(KeyError) as err:
        comparison.metric("p99")
    assert err.value.args == ("p99",)


def test_holm_decides_a_gating_metric() -> None:
    """B 3 % slower, 30 s at 40 req/s: the shift alone has p = 0.035, the smallest of the
    four gating p-values (0.035, 0.079, 0.94, 1), so Holm multiplies it by 4: 0.140, not
    significant -> inconclusive. The p50, not gating, keeps its own p = 0.04 -> worse."""
    rng = np.random.default_rng(0)
    a, b = simulate_pair(ArmSpec(rate=40), ArmSpec(rate=40, scale=1.03), 30, rng)
    result = compare_arms(a, b, CONFIG)
    shift = result.metric("shift")
    _check_holm(result)
    assert shift.p_value == pytest.approx(0.035, abs=5e-4)
    assert shift.p_adjusted == pytest.approx(4 * shift.p_value)
    assert shift.verdict == "inconclusive"
    p50 = result.metric("p50")
    assert (p50.p_value, p50.p_adjusted, p50.verdict) == (0.04, None, "worse")


def test_requests_needed_comes_from_the_metric_own_interval() -> None:
    """Inconclusive, B 5 % slower: estimate and interval on the margin's (relative) scale;
    to exclude 0 the interval's lower side must shrink by estimate / (estimate - lo), which
    takes ((estimate - lo) / estimate)^2 times the requests (here fewer than fitting the
    5 % margin would)."""
    rng = np.random.default_rng(14)
    a, b = simulate_pair(ArmSpec(rate=40), ArmSpec(rate=40, scale=1.05), 30, rng)
    result = compare_arms(a, b, CONFIG)
    n = a.n_success + b.n_success
    for name in ("shift", "p50", "p99"):
        m = result.metric(name)
        assert m.verdict == "inconclusive" and m.relative > 0 > m.relative_ci[0], name
        factor = ((m.relative - m.relative_ci[0]) / m.relative) ** 2
        assert m.requests_needed == math.ceil(n * factor), name
    # an absolute margin (0.1 ms, below the estimates): the same rule on the difference and
    # its interval in time units (the factor is the same in us or ms)
    result = compare_arms(a, b, CompareConfig(n_boot=100, margin="0.1ms"))
    for name in ("p50", "p99"):
        m = result.metric(name)
        assert m.verdict == "inconclusive" and m.difference > 0.1 > 0 > m.ci[0], name
        factor = ((m.difference - m.ci[0]) / m.difference) ** 2
        assert m.requests_needed == math.ceil(n * factor), name


def test_short_arms_show_their_percentiles_only_when_both_have_some() -> None:
    config = CompareConfig(n_boot=100)
    seconds = np.repeat(np.arange(25), 4)
    # below 2,048 us HDR keeps values exact: 1.5 and 1.8 ms
    one = arm_from_samples("A", seconds, np.full(100, 1500.0), failed=np.arange(100) > 0)
    assert one.n_success == 1
    b = arm_from_samples("B", seconds, np.full(100, 1800.0))
    shown = compare_arms(one, b, config).metric("p99")
    assert (shown.a, shown.b) == (1.5, 1.8)  # ms
    none = arm_from_samples("A", seconds, np.full(100, 1500.0), failed=np.ones(100, bool))
    hidden = compare_arms(none, b, config).metric("p99")
    assert (hidden.a, hidden.b) == (None, None)
    hidden = compare_arms(b, none, config).metric("shift")
    assert (hidden.a, hidden.b) == (None, None)


def test_relative_shift_from_a_one_microsecond_median() -> None:
    # A at 1 us, B at 2 us in every request: shift 1 us, relative to A's median 1 -> 1.0
    seconds = np.repeat(np.arange(25), 10)
    a = arm_from_samples("A", seconds, np.full(250, 1.0))
    b = arm_from_samples("B", seconds, np.full(250, 2.0))
    shift = compare_arms(a, b, CONFIG).metric("shift")
    assert (shift.a, shift.difference, shift.relative) == (0.001, 0.001, 1.0)
    assert shift.relative_ci == pytest.approx((shift.ci[0] / 0.001, shift.ci[1] / 0.001))


def test_inconclusive_summary_at_under_one_request_per_second() -> None:
    """10 requests spread over 40 seconds per arm: 0.25 + 0.25 = 0.5 requests/s together,
    so the largest gating figure takes twice as many seconds as requests."""
    base = arm_from_samples("A", np.arange(10), np.full(10, 1500.0))

    def sparse(name: str) -> ArmWindows:
        return replace(
            base,
            name=name,
            seconds=np.arange(40),
            counts=np.vstack([base.counts, np.zeros((30, base.counts.shape[1]), np.float32)]),
            requests=np.r_[base.requests, np.zeros(30, np.int64)],
            failures=np.zeros(40, np.int64),
        )

    result = compare_arms(sparse("A"), sparse("B"), CONFIG)
    assert result.verdict == "inconclusive"
    need = max(result.metric(m).requests_needed for m in GATING)
    assert need > 400  # the error rate's figure: 0 of 10 failures says little
    assert result.summary == (
        "Inconclusive: not enough data on typical latency (shift), latency distribution, "
        f"latency p99, error rate; about {need:,} requests in total would resolve it "
        f"(~{2 * need:,} s at this rate)."
    )


def test_the_summary_names_every_other_metric_by_its_own_name() -> None:
    """A headline naming "latency p99.9" has not named "latency p99" (a substring of it):
    the p99's own verdict still follows in "Also"."""
    from harness.analysis.ab.compare import _summary
    from harness.analysis.ab.equivalence import Verdict
    from harness.analysis.ab.metrics_ab import MetricResult

    def metric(label: str, verdict: str) -> MetricResult:
        return MetricResult(label.replace(" ", "_"), label, True, "test", verdict)

    gating = [metric("latency p99.9", "worse"), metric("latency p99", "no significant difference")]
    text = _summary(Verdict.WORSE, gating, CompareConfig(), rate=100.0)
    assert text == (
        "REGRESSION: B is worse on latency p99.9. Also latency p99: no significant difference."
    )

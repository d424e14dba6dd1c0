"""SLO checks: each threshold is a check with its observed value; early-stopping conclusiveness."""

from __future__ import annotations

import numpy as np

from harness.config import SloConfig
from harness.latency.hdr import new_histogram
from harness.latency.sparse import SparseHist
from harness.results.slo import evaluate_slo, exceedances, requests_for_conclusive_pass


def hist_ms(values_ms) -> SparseHist:
    histogram = new_histogram()
    for value in values_ms:
        histogram.record_value(round(value * 1000))
    return SparseHist.from_histogram(histogram)


LATENCY = {"p50": 5.0, "p95": 9.0, "p99": 12.0, "p999": 30.0}


def test_every_threshold_is_a_check_and_all_must_pass():
    slo = SloConfig(p50_ms=10, p99_ms=20, error_rate=0.01, min_throughput_rps=100)
    result = evaluate_slo(slo, LATENCY, error_rate=0.001, throughput_rps=150)
    assert result.passed
    assert [(c.name, c.threshold, c.observed) for c in result.checks] == [
        ("p50_ms", 10, 5.0),
        ("p99_ms", 20, 12.0),
        ("error_rate", 0.01, 0.001),
        ("min_throughput_rps", 100, 150),
    ]
    failing = evaluate_slo(slo, {**LATENCY, "p99": 25.0}, error_rate=0.02, throughput_rps=90)
    assert not failing.passed
    assert {c.name: c.passed for c in failing.checks} == {
        "p50_ms": True,
        "p99_ms": False,
        "error_rate": False,
        "min_throughput_rps": False,
    }
    assert failing.to_dict()["checks"][1] == {
        "name": "p99_ms", "threshold": 20, "observed": 25.0, "passed": False, "conclusive": None,
    }  # fmt: skip


def test_nothing_observed_fails_and_no_slo_passes():
    result = evaluate_slo(SloConfig(p99_ms=100), {}, error_rate=None, throughput_rps=None)
    assert not result.passed and result.checks[0].observed is None
    assert evaluate_slo(SloConfig(), LATENCY, 0.0, 1.0).passed
    empty = evaluate_slo(SloConfig(), {}, None, None, requests=0)
    assert not empty.passed and empty.checks[0].name == "measured_requests"


def test_boundary_is_inclusive():
    assert evaluate_slo(SloConfig(p99_ms=12), LATENCY, 0, 1).passed
    assert evaluate_slo(SloConfig(error_rate=0.0), LATENCY, 0.0, 1).passed


def test_latency_verdicts_say_whether_they_are_statistically_settled():
    rng = np.random.default_rng(4)
    slo = SloConfig(p99_ms=20)
    few = hist_ms(rng.lognormal(np.log(5), 0.3, 100))
    many = hist_ms(rng.lognormal(np.log(5), 0.3, 5000))
    assert exceedances(many, 20) == 0
    for hist, settled in ((few, False), (many, True)):
        p99 = hist.percentile(99) / 1000
        (check,) = evaluate_slo(slo, {"p99": p99}, 0, 1, hist=hist).checks
        assert check.passed and check.conclusive is settled
    assert requests_for_conclusive_pass(99) == 299
    # a clear failure: 5% of 2000 requests over the threshold
    values = np.r_[np.full(1900, 5.0), np.full(100, 50.0)]
    hist = hist_ms(values)
    (check,) = evaluate_slo(slo, {"p99": hist.percentile(99) / 1000}, 0, 1, hist=hist).checks
    assert not check.passed and check.conclusive


def test_every_threshold_passes_at_its_boundary_and_fails_just_beyond():
    """README: SLO checks set the exit code, boundary inclusive (observed == threshold passes)."""
    slo = SloConfig(
        p50_ms=5, p95_ms=9, p99_ms=12, p999_ms=30, error_rate=0.01, min_throughput_rps=100
    )
    at = evaluate_slo(slo, LATENCY, error_rate=0.01, throughput_rps=100.0)
    assert at.passed and all(c.passed for c in at.checks)
    assert [c.name for c in at.checks] == [
        "p50_ms", "p95_ms", "p99_ms", "p999_ms", "error_rate", "min_throughput_rps",
    ]  # fmt: skip
    beyond = {"p50": 5.001, "p95": 9.001, "p99": 12.001, "p999": 30.001}
    for name in LATENCY:
        result = evaluate_slo(slo, {**LATENCY, name: beyond[name]}, 0.01, 100.0)
        assert {c.name: c.passed for c in result.checks}[f"{name}_ms"] is False
        assert not result.passed
    assert not evaluate_slo(slo, LATENCY, 0.0101, 100.0).passed
    assert not evaluate_slo(slo, LATENCY, 0.01, 99.99).passed


def test_nothing_measured_is_one_failing_check_with_what_was_measured():
    empty = evaluate_slo(SloConfig(), {}, None, None, requests=0)
    assert [c.to_dict() for c in empty.checks] == [
        {"name": "measured_requests", "threshold": 1, "observed": 0, "passed": False,
         "conclusive": None},
    ]  # fmt: skip
    assert empty.to_dict()["passed"] is False
    assert evaluate_slo(SloConfig(), {}, None, None, requests=1).checks == ()


def test_exceedances_count_only_slots_entirely_above_the_threshold():
    # below 2048 us every slot is one microsecond wide: 2000 us is at the threshold (2 ms),
    # not above it; 2001 and 2002 are above
    hist = SparseHist.from_values(np.array([1999, 2000, 2001, 2002]))
    assert exceedances(hist, 2.0) == 2
    # 1_000_400 us lies in a 512 us-wide slot 999_936..1_000_447 (2^19 <= v < 2^20:
    # 1_000_400 // 512 = 1953, 1953 * 512 = 999_936): a threshold inside the slot (1000 ms)
    # does not count it; one below the slot's low end (999.935 ms) does
    wide = SparseHist.from_values(np.array([1_000_400]))
    assert exceedances(wide, 1000.0) == 0 and exceedances(wide, 999.935) == 1


def _conclusive(name: str, threshold: float, values_us, confidence: float) -> bool | None:
    """The `conclusive` flag of the one latency check `name` (p50 or p99) on `values_us`."""
    hist = SparseHist.from_values(np.array(values_us))
    observed = hist.percentile(float(name.removeprefix("p"))) / 1000
    slo = SloConfig(**{f"{name}_ms": threshold})
    (check,) = evaluate_slo(slo, {name: observed}, 0, 1, hist, confidence).checks
    return check.conclusive


def test_conclusiveness_is_the_binomial_tail_at_most_alpha():
    """Hand binomial tails (MLPerf early stopping). A pass with t of n over the threshold is
    settled when P(X <= t) <= alpha for X ~ Bin(n, 1 - q); a fail when P(X >= t) <= alpha."""
    # p99 pass, nothing over: P(X = 0) = 0.99^n; 0.99^298 = e^(298 ln 0.99) = e^-2.9950 = 0.05004
    # > 0.05, 0.99^299 = e^-3.0050 = 0.04954 <= 0.05: 299 requests are the fewest
    assert _conclusive("p99", 20, [5000] * 298, 0.95) is False
    assert _conclusive("p99", 20, [5000] * 299, 0.95) is True
    # p50, share 1/2: a fail with all 5 of 5 over: P(X >= 5) = 1/32 = 0.031 <= 0.05 settled;
    # 4 of 5 over: P(X >= 4) = 6/32 = 0.19, not settled
    assert _conclusive("p50", 2, [3000] * 5, 0.95) is True
    assert _conclusive("p50", 2, [1000] + [3000] * 4, 0.95) is False
    # the bound is inclusive: one request, p50, alpha = 1/2 exactly:
    # a pass: P(X <= 0) = 1/2 <= 1/2; a fail: P(X >= 1) = 1/2 <= 1/2
    assert _conclusive("p50", 2, [1000], 0.5) is True
    assert _conclusive("p50", 2, [3000], 0.5) is True
    assert _conclusive("p50", 2, [3000], 0.6) is False  # alpha 0.4 < 1/2

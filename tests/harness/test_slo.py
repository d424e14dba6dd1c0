"""SLO checks: each threshold is a check with its observed value; early-stopping conclusiveness."""

from __future__ import annotations

import numpy as np

from harness.config import SloConfig
from harness.load.hdr import new_histogram
from harness.results.slo import evaluate_slo, exceedances, requests_for_conclusive_pass
from harness.results.windows import SparseHist


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

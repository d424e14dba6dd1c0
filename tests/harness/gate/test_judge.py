"""The gate's judge on synthetic runs: asv's rule (ratio beyond the margin AND significant),
its A/A false-positive rate, its power, and the JUnit document it feeds."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import junitparser
import numpy as np
import pytest
from scipy import stats

from harness.analysis.ab.synthetic import ArmSpec, simulate_pair
from harness.gate.judge import (
    GateConfig,
    aa_false_positive_rate,
    judge_arms,
    served_share_test,
    throughput_test,
)
from harness.gate.junit import junit_xml
from harness.gate.runs import GateResult

FAST = GateConfig(n_boot=300)


def _verdicts(a_spec: ArmSpec, b_spec: ArmSpec, seed: int, seconds: int = 60) -> dict[str, str]:
    a, b = simulate_pair(a_spec, b_spec, seconds, np.random.default_rng(seed), design="two-runs")
    metrics, _ = judge_arms(a, b, FAST)
    return {m.metric: m.verdict for m in metrics}


def test_aa_false_positive_rate_is_at_most_alpha() -> None:
    """80 A/A pairs of 60 s at 100 req/s: the README's measurement (400 pairs: 7, i.e.
    1.75 %) says about 1.4 expected. Fail only above the 0.995 binomial quantile at 5 %
    (alpha), so a correct gate fails this test with probability < 0.5 %."""
    fired, pairs = aa_false_positive_rate(80, seconds=60, config=FAST, seed=11)
    limit = int(stats.binom.ppf(0.995, pairs, 0.05))  # 9 of 80
    assert fired <= limit, f"{fired} of {pairs} A/A pairs called a regression (limit {limit})"


def test_a_large_slowdown_is_a_regression_and_a_small_one_within_the_margin_is_not() -> None:
    base = ArmSpec(rate=100)
    slow = _verdicts(base, replace(base, scale=1.5), seed=1)  # +50 % latency everywhere
    assert slow["p50"] == "regressed" and slow["p99"] == "regressed"
    assert slow["throughput"] == "ok"
    # +3 % on a huge sample: detectable, yet inside the 5 % margin -- never a regression
    big = ArmSpec(rate=2000, sigma=0.2)
    a, b = simulate_pair(big, replace(big, scale=1.03), 60, np.random.default_rng(2),
                         design="two-runs", load_sd=0.0)  # fmt: skip
    metrics, _ = judge_arms(a, b, FAST)
    p50 = next(m for m in metrics if m.metric == "p50")
    assert p50.significant and not p50.beyond_margin and p50.verdict == "ok"


def test_a_ratio_beyond_the_margin_without_significance_is_not_a_regression() -> None:
    """8 s per run: too few windows for the comparison (20), latency is inconclusive."""
    verdicts = _verdicts(ArmSpec(rate=100), ArmSpec(rate=100, scale=1.5), seed=3, seconds=8)
    assert verdicts["p50"] == verdicts["p99"] == "inconclusive"


def test_throughput_and_error_rate_regress_in_their_own_direction() -> None:
    base = ArmSpec(rate=200, error_rate=0.001)
    fewer = _verdicts(base, replace(base, rate=150), seed=4)  # 25 % less served
    assert fewer["throughput"] == "regressed"
    more = _verdicts(base, replace(base, rate=260), seed=5)
    assert more["throughput"] == "improved"
    errors = _verdicts(base, replace(base, error_rate=0.02), seed=6)
    assert errors["error_rate"] == "regressed"


def test_throughput_test_by_hand_for_independent_seconds() -> None:
    """Constant per-second counts: the long-run variance is 0 -> equal means give p = 1."""
    a, b = simulate_pair(ArmSpec(rate=100), ArmSpec(rate=100), 30, np.random.default_rng(0))
    flat = replace(a, counts=np.full_like(a.counts, 0.0))
    flat.counts[:, 0] = 100.0
    result = throughput_test(flat, flat)
    assert (result.a, result.b, result.p_value) == (100.0, 100.0, 1.0)
    assert throughput_test(a, b).p_value is not None and 0 <= throughput_test(a, b).p_value <= 1


def test_open_loop_throughput_is_the_served_share_not_the_schedules_noise() -> None:
    """Open loop, both runs served everything: B's schedule happened to offer 8 % less
    (Poisson noise of a short run, or a lower rate) -- judged in req/s that is a regression
    (the CI failure this rule fixes); judged as the share of offered load served, 1.0 -> 1.0."""
    a, b = simulate_pair(ArmSpec(rate=100), ArmSpec(rate=92), 60, np.random.default_rng(7),
                         design="two-runs", load_sd=0.0)  # fmt: skip
    as_rate = {m.metric: m for m in judge_arms(a, b, FAST)[0]}
    assert as_rate["throughput"].verdict == "regressed" and as_rate["throughput"].unit == "req/s"
    served = {m.metric: m for m in judge_arms(a, b, FAST, open_loop_unserved=(0, 0))[0]}[
        "throughput"
    ]
    assert (served.baseline, served.value, served.p_value) == (1.0, 1.0, 1.0)
    assert served.verdict == "ok" and served.unit == "share of offered"


def test_open_loop_a_server_that_cannot_keep_up_regresses_throughput() -> None:
    """B answered everything it answered, but 10 % of its offered requests were dropped at the
    generator's outstanding cap: the served share falls 1.0 -> ~0.9, a regression."""
    a, b = simulate_pair(ArmSpec(rate=100), ArmSpec(rate=100), 60, np.random.default_rng(8),
                         design="two-runs")  # fmt: skip
    lost = int(b.requests.sum()) // 9
    metrics, _ = judge_arms(a, b, FAST, open_loop_unserved=(0, lost))
    tput = {m.metric: m for m in metrics}["throughput"]
    offered = int(b.requests.sum()) + lost
    assert tput.value == pytest.approx(int(b.counts.sum()) / offered)
    assert tput.verdict == "regressed" and tput.ratio < 0.95
    # the p-value is Fisher's on (served, not served) of A and B, computed here by hand
    served_a, served_b = int(a.counts.sum()), int(b.counts.sum())
    table = [[served_a, int(a.requests.sum()) - served_a], [served_b, offered - served_b]]
    assert served_share_test(a, b, (0, lost)).p_value == pytest.approx(
        stats.fisher_exact(table).pvalue
    )
    # a couple of drops in a thousand requests is inside the margin: not a regression
    few = {m.metric: m for m in judge_arms(a, b, FAST, open_loop_unserved=(0, 3))[0]}
    assert few["throughput"].verdict == "ok"


def test_margin_and_alpha_are_checked() -> None:
    with pytest.raises(ValueError, match=re.escape("margin 1.5: must lie between 0 and 1")):
        GateConfig(margin=1.5)
    with pytest.raises(ValueError, match=re.escape("alpha 0.7: must lie between 0 and 0.5")):
        GateConfig(alpha=0.7)


def test_junit_has_one_case_per_slo_check_and_gate_metric(tmp_path) -> None:
    a, b = simulate_pair(ArmSpec(rate=100), ArmSpec(rate=100, scale=2.0), 40,
                         np.random.default_rng(8), design="two-runs")  # fmt: skip
    metrics, _ = judge_arms(a, b, FAST)
    gate = GateResult("run-b", "s", "run-a", "/x", "regression", True, 0.05, 0.05, metrics, "")
    summary = {"run_id": "run-b", "slo": {"checks": [
        {"name": "p99_ms", "threshold": 10.0, "observed": 25.5, "passed": False},
        {"name": "error_rate", "threshold": 0.01, "observed": 0.0, "passed": True},
    ]}}  # fmt: skip
    path = tmp_path / "j.xml"
    path.write_text(junit_xml(summary, gate))
    suites = {s.name: s for s in junitparser.JUnitXml.fromfile(str(path))}
    assert (suites["slo"].tests, suites["slo"].failures) == (2, 1)
    regressed = sum(m.verdict == "regressed" for m in metrics)
    assert regressed >= 2 and (suites["gate"].tests, suites["gate"].failures) == (4, regressed)
    (p99_case,) = [c for c in suites["slo"] if c.name == "p99_ms"]
    assert p99_case.result[0].message == "SLO failed: p99_ms: observed 25.5 vs threshold 10.0"
    assert not math.isnan(metrics[0].baseline)

"""The geometric + bisection search finds a synthetic system's true limit in few steps."""

from __future__ import annotations

import math

import pytest

from harness.analysis.sweep_search import StepResult, SweepCriteria, search_max_load
from tests.harness.analysis.usl_truth import usl_x


def synthetic(load: float) -> StepResult:
    """M/M/1-like: p99 = 10 + 100 u/(1-u) ms, u = load/1000; errors past 90 % utilisation."""
    u = load / 1000.0
    p99 = 10 + 100 * u / (1 - u) if u < 1 else math.inf
    return StepResult(
        load=load,
        throughput=min(load, 1000.0),
        p99_ms=p99,
        error_rate=0.0 if u < 0.9 else 0.2,
        stable=True,
    )


TRUE_MAX = 1000 * 0.4 / 1.4  # p99 = 50 ms at u = 2/7: 285.71


def test_finds_true_max_in_fewer_steps_than_linear() -> None:
    r = search_max_load(synthetic, start=10, criteria=SweepCriteria(p99_ms=50), resolution=5)
    assert r.best is not None and r.first_failure is not None
    assert r.best_load <= TRUE_MAX < r.first_failure.load
    assert TRUE_MAX - r.best_load <= 5
    # growth 10 20 40 80 160 320(fail), then bisection 240 280 300 290 285 -> 11 steps
    assert [s.load for s in r.steps][:6] == [10, 20, 40, 80, 160, 320]
    assert r.n_steps == 11
    assert r.linear_steps == math.ceil((r.first_failure.load - 10) / 5) + 1  # 57
    assert r.n_steps < r.linear_steps / 4
    assert all(p == (s.p99_ms <= 50) for s, p in zip(r.steps, r.passed, strict=True))


def test_integer_loads_for_closed_loop() -> None:
    def users(n: float) -> StepResult:
        assert n == int(n)
        s = synthetic(n * 10)  # 10 req/s per user: limit 28.57 users
        return StepResult(n, s.throughput, s.p99_ms, s.error_rate, s.stable)

    r = search_max_load(
        users, start=1, criteria=SweepCriteria(p99_ms=50), resolution=1, integer=True
    )
    assert r.best_load == 28 and r.first_failure.load == 29


def test_error_rate_stability_and_throughput_criteria() -> None:
    crit = SweepCriteria(p99_ms=1e9, max_error_rate=0.01)
    r = search_max_load(synthetic, start=100, criteria=crit, resolution=10)
    assert r.best_load < 900 <= r.first_failure.load  # errors from u >= 0.9

    def flaky(load: float) -> StepResult:
        s = synthetic(load)
        return StepResult(s.load, s.throughput, s.p99_ms, s.error_rate, stable=load < 150)

    r2 = search_max_load(flaky, start=10, criteria=SweepCriteria(p99_ms=50), resolution=5)
    assert r2.best_load < 150 and "not stable" in " ".join(
        SweepCriteria(p99_ms=50).failures(r2.first_failure)
    )

    def saturating(load: float) -> StepResult:
        return StepResult(load, min(load, 200.0), 1.0, 0.0, True)

    crit3 = SweepCriteria(p99_ms=50, min_throughput_ratio=0.95)
    r3 = search_max_load(saturating, start=50, criteria=crit3, resolution=2)
    assert 200 <= r3.best_load <= 200 / 0.95 and r3.first_failure.load - r3.best_load <= 2


def test_start_fails_and_max_load_cap() -> None:
    r = search_max_load(synthetic, start=500, criteria=SweepCriteria(p99_ms=50), resolution=5)
    assert r.best is None and "start lower" in r.reason and r.n_steps == 1
    capped = search_max_load(
        synthetic,
        start=10,
        criteria=SweepCriteria(p99_ms=1e9, max_error_rate=1.0),
        resolution=5,
        max_load=100,
    )
    assert capped.best_load == 100 and capped.first_failure is None
    with pytest.raises(ValueError):
        search_max_load(synthetic, start=0, criteria=SweepCriteria(p99_ms=1), resolution=1)


def test_analyse_sweep_fits_usl_knee_and_max_under_slo() -> None:
    from harness.analysis.sweep_search import analyse_sweep

    steps = []
    for n in (1, 2, 4, 8, 16, 24, 32, 40, 48, 64):
        x = float(usl_x(n, 100.0, 0.05, 0.0005))
        steps.append(StepResult(n, x, 2.5 * n / x * 1000, 0.0, True))
    out = analyse_sweep(steps, "closed", SweepCriteria(p99_ms=100))
    assert out["usl"]["kappa"]["value"] == pytest.approx(0.0005, rel=0.01)
    assert out["usl"]["n_star"] == pytest.approx(math.sqrt(0.95 / 0.0005), rel=0.01)
    lat = out["latency"]
    # measured p99: N=32 -> 76.2 ms, N=40 -> 93.3 ms, N=48 -> 112 ms (fails): the answer is
    # the throughput at N=40 (points past N* = 43.6 are left out of the latency fit)
    assert lat["max_under_slo"]["load"] == 40
    assert lat["max_under_slo"]["throughput"] == pytest.approx(
        float(usl_x(40, 100.0, 0.05, 0.0005))
    )
    assert "throughput" in lat["knee"]
    few = analyse_sweep(steps[:2], "closed", SweepCriteria(p99_ms=100))
    assert "error" in few["usl"] and "error" in few["latency"]
    assert analyse_sweep(steps, "open", SweepCriteria(p99_ms=100))["usl"] is None

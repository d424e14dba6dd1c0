"""The geometric + bisection search finds a synthetic system's true limit in few steps."""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import pytest

from harness.analysis.capacity.sweep_search import (
    StepResult,
    SweepCriteria,
    analyse_sweep,
    search_max_load,
)
from tests.harness.analysis.capacity.usl_truth import usl_x


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
    assert r.best is None and r.n_steps == 1
    assert r.reason == "the starting load 500 already fails: p99 110.00 ms > 50 ms"
    assert r.advice == "start lower (--start)" and r.verdicts == ("fail",)
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
    from harness.analysis.capacity.sweep_search import analyse_sweep

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


def users_any(n: float) -> StepResult:
    """10 req/s per user on `synthetic`: p99 = 10 + 100 u / (1 - u), u = n / 100; the SLO of
    50 ms holds up to u = 2/7, n = 28.57 (28: 48.89 ms; 29: 50.85 ms)."""
    s = synthetic(n * 10)
    return StepResult(n, s.throughput, s.p99_ms, s.error_rate, s.stable)


def users_int(n: float) -> StepResult:
    assert n == int(n), n
    return users_any(n)


def never_fails(load: float) -> StepResult:
    return StepResult(load, load, 1.0, 0.0, True)


def test_integer_growth_floors_and_always_moves() -> None:
    """growth 1.5 from 1 user: 1.5 floors to 1, so +1 -> 2; then floor(3) 3, floor(4.5) 4, 6, 9,
    floor(13.5) 13, floor(19.5) 19, floor(28.5) 28, 42 (fails); bisect 35, 31, 29 (fail)."""
    r = search_max_load(
        users_int, start=1, criteria=SweepCriteria(p99_ms=50), resolution=1, growth=1.5,
        integer=True,
    )
    assert [s.load for s in r.steps] == [1, 2, 3, 4, 6, 9, 13, 19, 28, 42, 35, 31, 29]
    assert r.reason == "bracketed within 1 <= resolution 1"


def test_integer_bisection_stops_when_no_integer_is_left() -> None:
    """growth 3: 1 3 9 27 81 (fails); bisect floor(54) 54, floor(40.5) 40, floor(33.5) 33,
    30, floor(28.5) 28 (passes), 29 (fails). A resolution of 0.5 cannot be reached with
    integer loads: nothing lies between 28 and 29, so the search stops there (11 steps,
    not the budget of 40)."""
    r = search_max_load(
        users_int, start=1, criteria=SweepCriteria(p99_ms=50), resolution=0.5, growth=3,
        integer=True,
    )
    assert [s.load for s in r.steps] == [1, 3, 9, 27, 81, 54, 40, 33, 30, 28, 29]
    assert (r.best_load, r.first_failure.load) == (28, 29)
    assert r.reason == "no integer load between 28 and 29 to try"


def test_loads_are_not_rounded_by_default() -> None:
    """1 2 4 8 16 32 (fails), then halves: 24 28 30 29 28.5 28.75 28.625 28.5625 (passes):
    the bracket (28.5625, 28.625) is 0.0625 <= 0.1. Linear steps: ceil(27.625 / 0.1) + 1."""
    r = search_max_load(users_any, start=1, criteria=SweepCriteria(p99_ms=50), resolution=0.1)
    assert [s.load for s in r.steps][-4:] == [28.5, 28.75, 28.625, 28.5625]
    assert r.n_steps == 14 and r.best_load == 28.5625
    assert r.reason == "bracketed within 0.0625 <= resolution 0.1"
    assert r.linear_steps == 278


def test_budget_and_maximum_load_reasons() -> None:
    # never failing and no maximum: 40 steps by default, 1 2 4 ... 2^39
    r = search_max_load(never_fails, start=1, criteria=SweepCriteria(p99_ms=50), resolution=1)
    assert r.n_steps == 40 and r.steps[-1].load == 2.0**39
    assert r.reason == "step budget exhausted while growing" and r.first_failure is None
    # a maximum of 100 from 10: 10 20 40 80 100, then stop; linear: ceil(90 / 4) + 1 = 24
    capped = search_max_load(
        never_fails, start=10, criteria=SweepCriteria(p99_ms=50), resolution=4, max_load=100
    )
    assert [s.load for s in capped.steps] == [10, 20, 40, 80, 100]
    assert capped.reason == "never failed up to the maximum load"
    assert capped.linear_steps == 24
    # reaching the maximum with the last step of the budget still reached the maximum
    exact = search_max_load(
        never_fails, start=10, criteria=SweepCriteria(p99_ms=50), resolution=5, max_load=80,
        max_steps=4,
    )
    assert exact.n_steps == 4 and exact.reason == "never failed up to the maximum load"
    assert exact.linear_steps == 15  # ceil(70 / 5) + 1
    # the budget running out mid-bisection says so
    short = search_max_load(
        synthetic, start=10, criteria=SweepCriteria(p99_ms=50), resolution=5, max_steps=7
    )
    assert short.n_steps == 7 and (short.best_load, short.first_failure.load) == (240, 320)
    assert short.reason == "step budget exhausted before reaching the resolution"
    # a failing start: one step, and a linear sweep would have needed just that one
    first = search_max_load(synthetic, start=500, criteria=SweepCriteria(p99_ms=50), resolution=5)
    assert first.linear_steps == 1
    assert first.reason == "the starting load 500 already fails: p99 110.00 ms > 50 ms"


@pytest.mark.parametrize(
    ("start", "resolution", "growth"), [(0, 1, 2), (1, 0, 2), (1, 1, 1), (1, 1, 0.5)]
)
def test_search_arguments_are_checked(start: float, resolution: float, growth: float) -> None:
    with pytest.raises(ValueError) as info:
        search_max_load(never_fails, start, SweepCriteria(p99_ms=1), resolution, growth=growth)
    assert str(info.value) == "start and resolution must be > 0 and growth > 1"


def test_criteria_boundaries_and_messages() -> None:
    crit = SweepCriteria(p99_ms=100, min_throughput_ratio=0.95)
    assert crit.passes(StepResult(100.0, 95.0, 100.0, 0.01, True))  # every limit met exactly
    assert crit.failures(StepResult(100.0, 90.0, 120.5, 0.02, False)) == [
        "p99 120.50 ms > 100 ms",
        "error rate 0.0200 > 0.01",
        "not stable",
        "throughput 90.0% of offered < 95%",
    ]
    assert crit.failures(StepResult(1.0, 0.5, float("nan"), 0.0, True)) == [
        "p99 nan ms > 100 ms",
        "throughput 50.0% of offered < 95%",
    ]
    # the ratio is checked for any offered load above 0, but not at 0 (nothing offered)
    assert not crit.passes(StepResult(0.5, 0.25, 1.0, 0.0, True))
    assert crit.passes(StepResult(0.0, 0.0, 1.0, 0.0, True))
    assert SweepCriteria(p99_ms=100, require_stable=False).passes(
        StepResult(1.0, 1.0, 1.0, 0.0, False)
    )


def test_each_step_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """At 320 req/s: u = 0.32, p99 = 10 + 100 x 0.32 / 0.68 = 57.06 ms."""
    with caplog.at_level(logging.INFO, logger="harness.analysis.capacity.sweep_search"):
        search_max_load(synthetic, start=10, criteria=SweepCriteria(p99_ms=50), resolution=5)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "sweep step 1: load 10 -> pass"
    assert lines[5] == "sweep step 6: load 320 -> p99 57.06 ms > 50 ms"
    # two failures at once (u = 0.95: p99 = 10 + 1900 ms, 20 % errors) are joined by "; "
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="harness.analysis.capacity.sweep_search"):
        search_max_load(synthetic, start=950, criteria=SweepCriteria(p99_ms=50), resolution=5)
    assert [r.getMessage() for r in caplog.records] == [
        "sweep step 1: load 950 -> p99 1910.00 ms > 50 ms; error rate 0.2000 > 0.01"
    ]


def _usl_steps(err: dict[int, float] | None = None) -> list[StepResult]:
    """USL lambda 100, sigma 0.05, kappa 0.0005 with p99 = 5 + 20 u / (1 - u), u = X / 1200,
    up to N* = 43.59, and 500 ms past it."""
    out = []
    for n in (1, 2, 4, 8, 16, 24, 32, 40, 48, 64):
        x = float(usl_x(n, 100.0, 0.05, 0.0005))
        p99 = 5 + 20 * (x / 1200) / (1 - x / 1200) if n < 44 else 500.0
        out.append(StepResult(n, x, p99, (err or {}).get(n, 0.0), True))
    return out


def test_analyse_sweep_by_hand() -> None:
    """USL peak in closed form: X(N*) = 1074.241 (usl_truth.usl_peak). The latency fit recovers
    a 5, b 20, saturation 1200 from the points up to N* (x from 100 to X(40) = 1072.386).
    Its SLO crossing: 5 + 20 u / (1 - u) = 100 -> u = 95 / 115, X = 991.304.
    Knee of the fitted curve on [100, 1072.386]: where its slope 20 / (1200 (1 - u)^2) equals
    the chord's (173.067 - 6.818) / 972.386, i.e. u = 1 - sqrt(20 / (1200 x 0.17097)) =
    0.6878, X = 825.3; the 200-point grid puts it within one step (4.89) of that.
    Highest measured load under 100 ms: N = 24 (98.90 ms; N = 32 is at 145.6 ms)."""
    from tests.harness.analysis.capacity.usl_truth import usl_peak

    out = analyse_sweep(_usl_steps(), "closed", SweepCriteria(p99_ms=100))
    assert out["usl"]["x_max"] == pytest.approx(usl_peak(100.0, 0.05, 0.0005)[1], rel=1e-6)
    lat = out["latency"]
    assert (lat["fit"]["a_ms"], lat["fit"]["b_ms"], lat["fit"]["saturation"]) == pytest.approx(
        (5, 20, 1200), rel=1e-6
    )
    assert lat["max_under_slo"]["fitted_crossing"] == pytest.approx(1200 * 95 / 115, rel=1e-6)
    x_lo, x_hi = 100.0, float(usl_x(40, 100.0, 0.05, 0.0005))
    y = [5 + 20 * (v / 1200) / (1 - v / 1200) for v in (x_lo, x_hi)]
    u_knee = 1 - math.sqrt(20 / (1200 * (y[1] - y[0]) / (x_hi - x_lo)))
    assert abs(lat["knee"]["throughput"] - 1200 * u_knee) <= (x_hi - x_lo) / 199
    assert lat["max_under_slo"]["load"] == 24
    # the record's shape, as sweep.json carries it
    p99_24 = 5 + 20 * (float(usl_x(24, 100.0, 0.05, 0.0005)) / 1200) / (
        1 - float(usl_x(24, 100.0, 0.05, 0.0005)) / 1200
    )
    best = lat["max_under_slo"]
    assert best["p99_measured_ms"] == pytest.approx(p99_24, rel=1e-12)
    assert best["p99_fitted_ms"] == pytest.approx(p99_24, rel=1e-6)
    knee_x = lat["knee"]["throughput"]
    assert lat["knee"]["p99_ms"] == pytest.approx(5 + 20 * knee_x / (1200 - knee_x), rel=1e-6)
    assert lat["fit"]["r2"] == pytest.approx(1.0)
    usl = out["usl"]
    assert usl["r2"] == pytest.approx(1.0)
    for name, truth in (("lambda", 100.0), ("sigma", 0.05), ("kappa", 0.0005)):
        assert set(usl[name]) == {"value", "lo", "hi"}
        assert usl[name]["lo"] <= usl[name]["value"] <= usl[name]["hi"]
        assert usl[name]["value"] == pytest.approx(truth, rel=1e-6)


def test_analyse_sweep_uses_the_error_rate_criterion() -> None:
    """3 % errors at N = 16: within a 5 % limit the answer stays N = 24; with the default 1 %
    the walk stops below 16, at N = 8."""
    steps = _usl_steps(err={16: 0.03})
    loose = analyse_sweep(steps, "closed", SweepCriteria(p99_ms=100, max_error_rate=0.05))
    assert loose["latency"]["max_under_slo"]["load"] == 24
    strict = analyse_sweep(steps, "closed", SweepCriteria(p99_ms=100))
    assert strict["latency"]["max_under_slo"]["load"] == 8


def test_analyse_sweep_errors_are_reported_whole() -> None:
    few = analyse_sweep(_usl_steps()[:2], "closed", SweepCriteria(p99_ms=100))
    assert few == {
        "usl": {"error": "USL fit needs at least 4 distinct load levels, got 2"},
        "latency": {"error": "latency fit needs at least 4 distinct load levels, got 2"},
        "concurrency": "load",  # no step knew its server concurrency: N is the user count
        "concurrency_from": [],
        "fitted_steps": [None, None],
    }
    # every load past the peak (N* = 43.6 < 48): only the lowest is kept for the latency fit
    past = [StepResult(n, float(usl_x(n, 100.0, 0.05, 0.0005)), 50.0, 0.0, True)
            for n in (48, 56, 64, 80)]
    out = analyse_sweep(past, "closed", SweepCriteria(p99_ms=100))
    assert out["usl"]["n_star"] == pytest.approx(43.589, rel=1e-4)
    assert out["latency"] == {"error": "latency fit needs at least 4 distinct load levels, got 1"}


def test_steps_up_to_the_measured_peak_stay_in_the_latency_fit() -> None:
    """The USL puts N* at ~52, but the step at N=150 measured the highest throughput of all:
    throughput had not fallen there, so that step stays in the latency fit and is the
    highest load under the SLO (it is left out only past both N* and the measured peak)."""
    rows = [(1, 100), (2, 195), (4, 370), (8, 560), (16, 520), (150, 600)]
    steps = [StepResult(n, x, 5 + 0.1 * n, 0.0, True) for n, x in rows]
    out = analyse_sweep(steps, "closed", SweepCriteria(p99_ms=100))
    assert out["usl"]["n_star"] < 150
    assert out["latency"]["max_under_slo"]["load"] == 150
    assert out["latency"]["max_under_slo"]["throughput"] == 600


def test_small_non_integer_starts_grow_geometrically() -> None:
    """Non-integer loads are never bumped by a whole unit: 0.25 0.5 1 2 (the maximum)."""
    r = search_max_load(
        never_fails, start=0.25, criteria=SweepCriteria(p99_ms=50), resolution=0.1, max_load=2
    )
    assert [s.load for s in r.steps] == [0.25, 0.5, 1.0, 2.0]


def test_a_budget_of_no_steps_measures_nothing() -> None:
    r = search_max_load(never_fails, 10, SweepCriteria(p99_ms=50), 5, max_steps=0)
    assert (r.steps, r.best, r.first_failure, r.linear_steps) == ((), None, None, 1)


def test_non_finite_values_are_written_as_none() -> None:
    from harness.analysis.capacity.sweep_search import _finite_or_none

    assert [_finite_or_none(v) for v in (math.inf, -math.inf, math.nan, None, 2.5)] == [
        None, None, None, None, 2.5
    ]


# --- unmeasured steps, real reasons, server concurrency (issue 14) --------------------------


def test_an_unmeasured_step_stops_the_search_and_is_neither_pass_nor_fail() -> None:
    """Growing 100 200 400: the generator gives out at 400 (say): the search stops there with
    the step's own reason, 200 stays the answer and nothing counts 400 as the target's limit."""

    def generator_limited(load: float) -> StepResult:
        if load >= 400:
            return StepResult(load, 150.0, 9.0, 0.0, False, unmeasured="generator saturated")
        return synthetic(load)

    r = search_max_load(generator_limited, 100, SweepCriteria(p99_ms=50), resolution=5)
    assert [s.load for s in r.steps] == [100, 200, 400]
    assert r.verdicts == ("pass", "pass", "unmeasured") and r.passed == (True, True, False)
    assert r.best_load == 200 and r.first_failure is None
    assert r.reason == "stopped unmeasured at load 400: generator saturated"


def test_an_unmeasured_step_while_bisecting_stops_there() -> None:
    def flaky(load: float) -> StepResult:
        if load == 300:  # the bisection's first probe, between 200 and 400
            return replace(synthetic(load), unmeasured="too few requests")
        return synthetic(load)

    r = search_max_load(flaky, 100, SweepCriteria(p99_ms=50), resolution=5)
    assert r.verdicts[-1] == "unmeasured" and r.best_load == 200 and r.first_failure.load == 400
    assert r.reason.startswith("stopped unmeasured at load 300: too few requests")


def test_a_start_that_only_never_settled_asks_for_longer_steps_not_a_lower_load() -> None:
    unstable = search_max_load(
        lambda load: replace(synthetic(load), stable=False), 100, SweepCriteria(p99_ms=50), 5
    )
    assert unstable.reason == "the starting load 100 already fails: not stable"
    assert "longer steps" in unstable.advice and "start lower" not in unstable.advice


def test_unmeasured_steps_never_enter_a_fit() -> None:
    """The USL of the measured steps alone; an unmeasured step with absurd numbers (the
    generator's, not the target's) changes nothing and is not listed as fitted."""
    steps = [replace(s, run_id=f"s{i}") for i, s in enumerate(_usl_steps())]
    junk = StepResult(
        128, 5.0, 9999.0, 0.0, False, run_id="junk", unmeasured="generator unhealthy"
    )
    with_junk = analyse_sweep([*steps, junk], "closed", SweepCriteria(p99_ms=100))
    alone = analyse_sweep(steps, "closed", SweepCriteria(p99_ms=100))
    assert with_junk["usl"] == alone["usl"] and with_junk["latency"] == alone["latency"]
    assert "junk" not in with_junk["fitted_steps"] and len(with_junk["fitted_steps"]) == 10


def test_max_under_slo_never_names_a_step_that_failed_the_sweep() -> None:
    """A step can meet p99 and errors but fail the sweep (here: unstable at N = 24): the
    'max throughput meeting the SLO' line must not name it or anything above it."""
    steps = [replace(s, stable=s.load != 24) for s in _usl_steps()]
    out = analyse_sweep(steps, "closed", SweepCriteria(p99_ms=100))
    assert out["latency"]["max_under_slo"]["load"] == 16


def test_usl_is_fitted_against_the_server_concurrency_not_the_users() -> None:
    """Closed loop with think time Z = 0.1 s: users N_u = X (R + Z), the server sees
    X R. The server is a USL system in its own concurrency (lambda 100, sigma .05, kappa
    .0005): fitted on the server's concurrency the parameters come back; on users they
    would not."""
    think_s, steps = 0.1, []
    for c in (0.5, 1, 2, 4, 8, 16, 24, 32, 40):
        x = float(usl_x(c, 100.0, 0.05, 0.0005))
        r_s = c / x  # Little at the server
        users = x * (r_s + think_s)
        steps.append(StepResult(users, x, 5.0 + 1000 * r_s, 0.0, True, concurrency=c))
    out = analyse_sweep(steps, "closed", SweepCriteria(p99_ms=1000))
    assert out["concurrency"] == "server"
    assert out["usl"]["lambda"]["value"] == pytest.approx(100.0, rel=1e-3)
    assert out["usl"]["sigma"]["value"] == pytest.approx(0.05, rel=1e-2)
    assert out["usl"]["n_star"] == pytest.approx(math.sqrt(0.95 / 0.0005), rel=1e-2)
    # the same steps fitted on users give a very different "lambda" (X per user ~ 1/Z)
    by_users = analyse_sweep(
        [replace(s, concurrency=None) for s in steps], "closed", SweepCriteria(p99_ms=1000)
    )
    assert by_users["concurrency"] == "load"
    assert by_users["usl"]["lambda"]["value"] < 20


def test_open_loop_sweeps_get_a_usl_fit_when_the_server_concurrency_is_known() -> None:
    steps = []
    for c in (1, 2, 4, 8, 16, 24, 32):
        x = float(usl_x(c, 100.0, 0.05, 0.0005))
        steps.append(StepResult(x, x, 5.0 + 1000 * c / x, 0.0, True, concurrency=c))
    out = analyse_sweep(steps, "open", SweepCriteria(p99_ms=1000))
    assert out["usl"]["kappa"]["value"] == pytest.approx(0.0005, rel=2e-2)
    without = analyse_sweep([replace(s, concurrency=None) for s in steps], "open",
                            SweepCriteria(p99_ms=1000))
    assert without["usl"] is None  # rates are not a concurrency: no USL


def test_falling_behind_the_offered_rate_allows_for_poisson_sampling() -> None:
    """Achieved / offered < 95 % fails a step only beyond 3 Poisson standard deviations of
    the count: 3 s at 100 req/s (300 expected, sd 17.3): 90 % is -1.7 sd, chance -- passes;
    60 s at 100 req/s (6000, sd 77.5 -> slack 3.9 %): 90 % fails; without a known length no
    slack (the old rule)."""
    criteria = SweepCriteria(p99_ms=50, min_throughput_ratio=0.95)
    short = StepResult(100, 90.0, 10.0, 0.0, True, measured_s=3)
    assert criteria.sampling_slack(short) == pytest.approx(3 / math.sqrt(300))
    assert criteria.passes(short)
    long = replace(short, measured_s=60)
    assert criteria.failures(long) == ["throughput 90.0% of offered < 95%"]
    assert criteria.failures(replace(short, measured_s=None)) == [
        "throughput 90.0% of offered < 95%"
    ]
    assert criteria.passes(replace(long, throughput=92.0))  # -2.6 % within 3.9 %: chance

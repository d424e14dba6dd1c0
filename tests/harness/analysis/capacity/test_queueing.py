"""Erlang C and M/M/c tails against textbook values."""

from __future__ import annotations

import math

import pytest

from harness.analysis.capacity.queueing import (
    erlang_c,
    little_concurrency,
    max_utilisation_for_slo,
    mmc_response_quantile,
    mmc_response_tail,
    mmc_wait_quantile,
)


def test_erlang_c_known_values() -> None:
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = rho
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(10, 8.0) == pytest.approx(0.4092, abs=1e-4)
    assert erlang_c(3, 3.0) == 1.0


def test_mm1_response_is_exponential() -> None:
    # M/M/1: T ~ Exp(mu - lambda); p99 = ln(100) / (mu - lambda)
    q = mmc_response_quantile(1, 0.01, 50.0)
    assert q == pytest.approx(math.log(100) / 50.0, rel=1e-9)
    assert mmc_response_tail(1, 0.01, 50.0, q) == pytest.approx(0.01)


def test_mmc_tail_matches_simulation() -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    c, s, lam, n = 3, 0.01, 180.0, 150_000
    arrivals = np.cumsum(rng.exponential(1 / lam, n))
    service = rng.exponential(s, n)
    free = np.zeros(c)
    resp = np.empty(n)
    for i in range(n):
        k = int(np.argmin(free))
        start = max(arrivals[i], free[k])
        free[k] = start + service[i]
        resp[i] = free[k] - arrivals[i]
    # the share of simulated responses beyond the analytic p99 is 1 %
    beyond = float(np.mean(resp[1000:] > mmc_response_quantile(c, s, lam)))
    assert beyond == pytest.approx(0.01, abs=0.0025)
    assert float(np.mean(resp[1000:] > 0.0)) == 1.0


def test_wait_quantile_zero_when_rarely_waiting() -> None:
    assert mmc_wait_quantile(10, 0.01, 100.0) == 0.0  # rho = 0.1
    assert math.isinf(mmc_wait_quantile(2, 0.01, 250.0))


def test_max_utilisation_for_slo_mm1_closed_form() -> None:
    # M/M/1 p99 = ln(100) s / (1 - rho) <= SLO  ->  rho = 1 - ln(100) s / SLO
    rho = max_utilisation_for_slo(1, 0.01, 0.1)
    assert rho == pytest.approx(1 - math.log(100) * 0.01 / 0.1, abs=1e-6)
    assert max_utilisation_for_slo(1, 0.1, 0.1) == 0.0
    # with a measured service tail the SLO left for waiting shrinks
    assert max_utilisation_for_slo(4, 0.02, 0.05, service_quantile_s=0.045) < (
        max_utilisation_for_slo(4, 0.02, 0.05, service_quantile_s=0.03)
    )


def test_little() -> None:
    assert little_concurrency(10_000, 0.05) == pytest.approx(500)


def test_erlang_b_by_hand_and_edges() -> None:
    """B(c, A) = (A^c / c!) / sum_{k<=c} A^k / k!.

    B(2, 1) = (1/2) / (1 + 1 + 1/2) = 0.2; B(3, 2) = (8/6) / (1 + 2 + 2 + 8/6) = 4/19.
    No servers block everything (B(0, A) = 1); no load blocks nothing (B(c, 0) = 0).
    """
    from harness.analysis.capacity.queueing import erlang_b

    assert erlang_b(2, 1.0) == pytest.approx(0.2, rel=1e-12)
    assert erlang_b(3, 2.0) == pytest.approx(4 / 19, rel=1e-12)
    assert erlang_b(0, 2.0) == 1.0
    assert erlang_b(3, 0.0) == 0.0
    for c, offered in ((-1, 1.0), (1, -1.0)):
        with pytest.raises(ValueError, match=r"^c and offered load must be >= 0$"):
            erlang_b(c, offered)


def test_erlang_c_edges() -> None:
    assert erlang_c(2, 0.0) == 0.0  # no load: nobody waits
    assert erlang_c(1, 0.999) == pytest.approx(0.999)  # c = 1 is allowed: P(wait) = rho
    assert erlang_c(2, 2.5) == 1.0  # past saturation every arrival waits
    with pytest.raises(ValueError, match=r"^c must be >= 1$"):
        erlang_c(0, 0.5)


def test_wait_quantile_closed_forms() -> None:
    """M/M/2, mu = 100/s, lambda = 150/s: rho = 0.75, C = 2 rho^2 / (1 + rho) = 9/14;
    P(W > t) = C exp(-(2 mu - lambda) t), so p99 = ln((9/14) / 0.01) / 50 = 0.083268 s.
    M/M/1 with lambda just below mu (theta = 0.5/s): p99 = ln(0.995 / 0.01) / 0.5."""
    assert mmc_wait_quantile(2, 0.01, 150.0) == pytest.approx(math.log(900 / 14) / 50, rel=1e-12)
    assert mmc_wait_quantile(2, 0.01, 150.0, q=0.9) == pytest.approx(
        math.log(90 / 14) / 50, rel=1e-12
    )
    assert mmc_wait_quantile(1, 0.01, 99.5) == pytest.approx(math.log(99.5) / 0.5, rel=1e-9)
    assert math.isinf(mmc_wait_quantile(2, 0.01, 200.0))  # lambda = c mu exactly: unstable
    with pytest.raises(ValueError, match=r"^service time must be > 0$"):
        mmc_wait_quantile(1, 0.0, 1.0)


def test_response_tail_when_wait_and_service_rates_coincide() -> None:
    """theta = c mu - lambda = mu (c = 2, lambda = mu): a waiting request's time is Erlang-2,
    P(W' + S > t) = (1 + mu t) exp(-mu t); with C(2, 1) = 1/3 (M/M/2, rho = 1/2):
    P(T > t) = (2/3) exp(-mu t) + (1/3) (1 + mu t) exp(-mu t). At mu = 100/s, t = 30 ms:
    exp(-3) (2/3 + 4/3) = 2 exp(-3) = 0.099574. The same holds with theta a hair off mu
    (mu = 10^6/s, theta - mu = 1e-7/s), where the general formula cancels catastrophically."""
    assert mmc_response_tail(2, 0.01, 100.0, 0.03) == pytest.approx(2 * math.exp(-3), rel=1e-12)
    near = mmc_response_tail(2, 1e-6, 1e6 - 1e-7, 3e-6)
    assert near == pytest.approx(2 * math.exp(-3), rel=1e-9)


def test_response_tail_and_quantile_at_and_near_saturation() -> None:
    assert mmc_response_tail(2, 0.01, 250.0, 1.0) == 1.0  # overloaded: always beyond t
    assert mmc_response_tail(2, 0.01, 200.0, 1.0) == 1.0  # lambda = c mu exactly
    assert math.isinf(mmc_response_quantile(2, 0.01, 200.0))
    # M/M/1, theta = mu - lambda = 0.5/s: T ~ Exp(0.5); P(T > 2) = exp(-1), p99 = 2 ln 100
    assert mmc_response_tail(1, 0.01, 99.5, 2.0) == pytest.approx(math.exp(-1), rel=1e-9)
    assert mmc_response_quantile(1, 0.01, 99.5) == pytest.approx(2 * math.log(100), rel=1e-9)


def test_response_quantile_is_exact_at_microsecond_scale() -> None:
    """M/M/1 at mu = 10^6/s, rho = 0.5: p99 = ln(100) / 5e5 = 9.21 us, to 12 digits (the root
    finder's tolerance scales with the bracket, not a fixed 2e-12 s)."""
    # abs=0: approx's default absolute 1e-12 would swallow any error at this scale
    got = mmc_response_quantile(1, 1e-6, 5e5)
    assert got == pytest.approx(math.log(100) / 5e5, rel=1e-12, abs=0)
    assert mmc_response_quantile(1, 1e-6, 5e5, q=0.9) == pytest.approx(
        math.log(10) / 5e5, rel=1e-12, abs=0
    )


def test_max_utilisation_other_quantiles_and_measured_tail() -> None:
    """q = 0.95, M/M/1: ln(20) s / (1 - rho) = SLO -> rho = 1 - ln(20) * 0.01 / 0.1 = 0.70043.
    Measured service p99 30 ms + M/M/1 wait p99 ln(100 rho) / (mu (1 - rho)) = 100 ms, solved by
    SciPy's brentq on that formula: rho = 0.454705 (q = 0.99) and 0.636563 (q = 0.95, with
    ln(20 rho))."""
    assert max_utilisation_for_slo(1, 0.01, 0.1, q=0.95) == pytest.approx(
        1 - math.log(20) * 0.1, abs=1e-6
    )
    assert max_utilisation_for_slo(1, 0.01, 0.1, service_quantile_s=0.03) == pytest.approx(
        0.45470513, abs=1e-6
    )
    assert max_utilisation_for_slo(
        1, 0.01, 0.1, q=0.95, service_quantile_s=0.03
    ) == pytest.approx(0.63656284, abs=1e-6)
    for c, slo in ((0, 0.1), (1, 0.0)):
        with pytest.raises(ValueError, match=r"^c must be >= 1 and slo_s > 0$"):
            max_utilisation_for_slo(c, 0.01, slo)


def test_little_accepts_zero_and_refuses_negatives() -> None:
    assert little_concurrency(0.0, 0.05) == 0.0
    assert little_concurrency(10.0, 0.0) == 0.0
    for rate, w in ((-1.0, 0.05), (10.0, -0.01)):
        with pytest.raises(ValueError, match=r"^rate and time must be >= 0$"):
            little_concurrency(rate, w)

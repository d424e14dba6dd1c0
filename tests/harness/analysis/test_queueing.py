"""Erlang C and M/M/c tails against textbook values."""

from __future__ import annotations

import math

import pytest

from harness.analysis.queueing import (
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

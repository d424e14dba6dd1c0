"""Queueing formulas the capacity plan rests on: Little's law and M/M/c (Erlang C).

Why: an instance that can hold `c` requests in flight behaves, from the outside, like `c`
servers with a shared queue in front. Erlang C gives the chance that an arriving request has
to wait and the tail of that wait, which tells how hot an instance may run before its p99
breaks the SLO — the utilisation target of the plan. Little's law (L = lambda * W) turns a
peak rate and a MEAN time in system into the concurrency needed; a p99 in its place
overstates the need.

All functions are pure and scalar (the plan evaluates them a few dozen times). Rates are per
second, times in seconds.
"""

from __future__ import annotations

import math

from scipy import optimize

__all__ = [
    "erlang_b",
    "erlang_c",
    "little_concurrency",
    "max_utilisation_for_slo",
    "mmc_response_quantile",
    "mmc_response_tail",
    "mmc_wait_quantile",
]


def little_concurrency(rate: float, time_in_system_s: float) -> float:
    """L = lambda * W: requests in flight at `rate` when each spends `time_in_system_s`."""
    if rate < 0 or time_in_system_s < 0:
        raise ValueError("rate and time must be >= 0")
    return rate * time_in_system_s


def erlang_b(c: int, offered: float) -> float:
    """Blocking probability of M/M/c/c with `offered` Erlangs (stable recurrence)."""
    if c < 0 or offered < 0:
        raise ValueError("c and offered load must be >= 0")
    b = 1.0
    for k in range(1, c + 1):
        b = offered * b / (k + offered * b)
    return b


def erlang_c(c: int, offered: float) -> float:
    """Probability that an arrival waits in M/M/c with `offered` = lambda/mu Erlangs.

    1.0 when offered >= c (unstable queue).
    """
    if c < 1:
        raise ValueError("c must be >= 1")
    if offered >= c:
        return 1.0
    if offered <= 0:
        return 0.0
    b = erlang_b(c, offered)
    rho = offered / c
    return b / (1.0 - rho + rho * b)


def _rates(c: int, service_s: float, arrival_rate: float) -> tuple[float, float, float]:
    if service_s <= 0:
        raise ValueError("service time must be > 0")
    mu = 1.0 / service_s
    theta = c * mu - arrival_rate
    return mu, theta, erlang_c(c, arrival_rate / mu)


def mmc_wait_quantile(c: int, service_s: float, arrival_rate: float, q: float = 0.99) -> float:
    """q-quantile of the waiting time in queue: P(W > t) = C * exp(-(c*mu - lambda) t)."""
    _, theta, pw = _rates(c, service_s, arrival_rate)
    if theta <= 0:
        return math.inf
    if pw <= 1.0 - q:
        return 0.0
    return math.log(pw / (1.0 - q)) / theta


def mmc_response_tail(c: int, service_s: float, arrival_rate: float, t: float) -> float:
    """P(T > t) for the M/M/c response time T = W + S (exact, FCFS)."""
    mu, theta, pw = _rates(c, service_s, arrival_rate)
    if theta <= 0:
        return 1.0
    es = math.exp(-mu * t)
    if abs(theta - mu) < 1e-12 * mu:
        hypo = (1.0 + mu * t) * es
    else:
        hypo = (theta * es - mu * math.exp(-theta * t)) / (theta - mu)
    return (1.0 - pw) * es + pw * hypo


def mmc_response_quantile(c: int, service_s: float, arrival_rate: float, q: float = 0.99) -> float:
    """q-quantile of the M/M/c response time (solved numerically from the exact tail)."""
    _, theta, _ = _rates(c, service_s, arrival_rate)
    if theta <= 0:
        return math.inf
    target = 1.0 - q
    hi = service_s
    while mmc_response_tail(c, service_s, arrival_rate, hi) > target:
        hi *= 2.0
    return float(
        optimize.brentq(
            lambda t: mmc_response_tail(c, service_s, arrival_rate, t) - target,
            0.0,
            hi,
            xtol=1e-12 * hi,
        )
    )


def max_utilisation_for_slo(
    c: int,
    service_s: float,
    slo_s: float,
    q: float = 0.99,
    service_quantile_s: float | None = None,
) -> float:
    """Highest utilisation rho = lambda/(c*mu) whose response-time q-quantile meets `slo_s`.

    With `service_quantile_s` (a measured q-quantile of the time in service, e.g. the p99 at
    the operating concurrency), the tail is taken as that plus the Erlang C waiting-time
    quantile — conservative, and it keeps a measured, non-exponential service tail. Without
    it, the exact M/M/c (exponential service) response quantile is used. Returns 0.0 when no
    load meets the SLO.
    """
    if c < 1 or slo_s <= 0:
        raise ValueError("c must be >= 1 and slo_s > 0")

    def tail_s(rho: float) -> float:
        lam = rho * c / service_s
        if service_quantile_s is not None:
            return service_quantile_s + mmc_wait_quantile(c, service_s, lam, q)
        return mmc_response_quantile(c, service_s, lam, q)

    lo, hi = 1e-9, 1.0 - 1e-9
    if tail_s(lo) > slo_s:
        return 0.0
    for _ in range(100):  # bisection: the tail is monotone in rho
        mid = 0.5 * (lo + hi)
        if tail_s(mid) <= slo_s:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-9:
            break
    return lo

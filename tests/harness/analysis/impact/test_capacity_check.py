"""The N-1 capacity prediction, checked by hand with the M/M/1 waiting-time formula."""

from __future__ import annotations

import math

import pytest

from harness.analysis.impact import PhaseStats, Slo, observed_carried, predict_survivors


def _baseline(rps: float = 100.0, mean_ms: float = 5.0, p99_ms: float = 8.0) -> PhaseStats:
    return PhaseStats(
        seconds=20,
        requests=int(rps * 20),
        failures=0,
        error_rate=0.0,
        p99_ms=p99_ms,
        mean_ms=mean_ms,
    )


def test_two_replicas_lose_one_by_hand() -> None:
    # 100 req/s on 1 survivor, S = 5 ms: rho = 0.5; M/M/1 wait tail P(W > t) = rho e^-(mu-lam)t
    # p99 wait = ln(0.5 / 0.01) / (200 - 100) s = 39.12 ms; predicted p99 = 8 + 39.12 ms
    wait_ms = math.log(50) / 100 * 1000
    ok = predict_survivors(_baseline(), replicas=2, slo=Slo(50, 0.01))
    assert ok.applicable and ok.carries is True
    assert ok.per_replica_rps == 100.0 and ok.utilisation == pytest.approx(0.5)
    assert ok.predicted_p99_ms == pytest.approx(8 + wait_ms, rel=1e-9)
    assert ok.reason == (
        "100.0 req/s over 1 replica(s) = 100.0 req/s each; x mean 5.00 ms / 1 in flight = "
        "utilisation 0.500; p99 8.00 + wait 39.12 = 47.12 ms <= SLO 50 ms"
    )
    tight = predict_survivors(_baseline(), replicas=2, slo=Slo(40, 0.01))
    assert tight.carries is False and tight.reason.endswith("47.12 ms exceeds SLO 40 ms")


def test_three_replicas_and_more_in_flight() -> None:
    pred = predict_survivors(
        _baseline(rps=300), replicas=3, slo=Slo(50, 0.01), concurrency_per_replica=2
    )
    assert pred.per_replica_rps == 150.0 and pred.utilisation == pytest.approx(150 * 0.005 / 2)


def test_overload_is_never_carried() -> None:
    pred = predict_survivors(_baseline(rps=250), replicas=2, slo=Slo(10_000, 0.01))
    assert pred.utilisation == pytest.approx(1.25) and pred.carries is False


def test_not_applicable() -> None:
    one = predict_survivors(_baseline(), replicas=1, slo=Slo(50, 0.01))
    assert not one.applicable and one.carries is None
    assert one.reason == "1 replica(s), 1 lost: no survivors"
    empty = PhaseStats(0, 0, 0, None, None, None)
    none = predict_survivors(empty, replicas=2, slo=Slo(50, 0.01))
    assert none.reason == "no baseline latency to predict from" and none.carries is None


def test_observed() -> None:
    slo = Slo(50, 0.01)
    assert observed_carried(PhaseStats(10, 1000, 10, 0.01, 50.0, 5.0), slo) is True
    assert observed_carried(PhaseStats(10, 1000, 11, 0.011, 5.0, 5.0), slo) is False
    assert observed_carried(PhaseStats(10, 1000, 0, 0.0, 50.1, 5.0), slo) is False
    assert observed_carried(PhaseStats(0, 0, 0, None, None, None), slo) is None

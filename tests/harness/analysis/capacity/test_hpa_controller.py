"""The HPA control loop's rules one at a time, each traced by hand.

Kubernetes' replica calculator (pods without metrics, tolerance), its behaviour rules (rate
policies counted from the replica count at the start of each period, stabilisation windows
seeded with the starting count) and the simulator's bookkeeping (idle seconds, SLO boundary,
summary rounding).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.analysis.capacity.hpa_sim import (
    HPASettings,
    ScalingPolicy,
    ScalingRules,
    SimResult,
    _down_limit,
    _metric_ratio,
    _State,
    _up_limit,
    diurnal_series,
    simulate_hpa,
)


class FixedLatencyPod:
    """100 ms per request, no queueing: in flight 0.1 x rate; p99 50 ms up to 10 req/s."""

    def inflight(self, rate: np.ndarray) -> np.ndarray:
        return 0.1 * np.asarray(rate)

    def p99_ms(self, rate: np.ndarray) -> np.ndarray:
        return np.where(np.asarray(rate) <= 10.0, 50.0, 500.0)


class LinearPod(FixedLatencyPod):
    def p99_ms(self, rate: np.ndarray) -> np.ndarray:
        return 10.0 + 0.25 * np.asarray(rate)


@pytest.mark.parametrize(
    ("avg", "target", "ready", "total", "tol", "want"),
    [
        # every pod reports: desired = ceil(total x avg / target) unless within tolerance
        (1.25, 1.0, 4, 4, 0.25, 4),  # |1.25 - 1| = 0.25 <= tolerance: hold
        (1.5, 1.0, 4, 4, 0.25, 6),
        (2.65, 1.0, 2, 2, 0.1, 6),  # ceil(5.3)
        (2.5000000002, 1.0, 2, 2, 0.1, 5),  # 5.0000000004 is float dust: 5, not 6
        (0.5, 1.0, 4, 4, 0.1, 2),
        # 2 of 4 report; scale-down: the missing 2 count as using the target
        (0.4, 0.8, 2, 4, 0.1, 3),  # (0.4 x 2 + 0.8 x 2) / (0.8 x 4) = 0.75 -> ceil(3.0)
        (0.8, 0.8, 2, 6, 0.1, 6),  # ratio exactly 1 is no scale-up: missing at target, hold
        # scale-up: the missing pods count as using 0
        (4.0, 0.8, 2, 6, 0.1, 10),  # 8 / 4.8 = 1.667 -> ceil(10.0)
        (2.92, 0.8, 2, 6, 0.1, 8),  # 5.84 / 4.8 x 6 = 7.3 -> 8
        (3.20000000016, 0.8, 2, 6, 0.1, 8),  # 8.0000000004 is dust: 8
        (2.1, 1.0, 2, 4, 0.1, 4),  # 4.2 / 4 = 1.05: within tolerance once missing count 0
        (2.5, 1.0, 2, 4, 0.25, 4),  # 5 / 4 = 1.25: at the tolerance edge, hold
        (1.5, 1.0, 2, 6, 0.1, 6),  # 3 / 6 = 0.5 flips the direction: hold, never scale down
    ],
)
def test_metric_ratio_by_hand(avg, target, ready, total, tol, want) -> None:
    assert _metric_ratio(avg, target, ready, total, tol) == want


def _events() -> _State:
    """Scale-ups of 3 at t=60 and 2 at t=100, a scale-down of 1 at t=110; now is t=120.
    A policy of period p counts the events with t > 120 - p (the one at exactly 60 is out)."""
    return _State(pods=[], recommendations=[], up_events=[(60.0, 3), (100.0, 2)],
                  down_events=[(110.0, 1)])


def _rules(select: str, *policies: tuple[str, int, int]) -> ScalingRules:
    return ScalingRules(
        policies=tuple(ScalingPolicy(type=t, value=v, period_s=p) for t, v, p in policies),
        select_policy=select,
    )


def test_scale_up_limit_counts_from_the_start_of_each_period() -> None:
    """12 pods now. Pods 4 per 15 s: in (105, 120] only the scale-down -> start 12 + 1 = 13,
    limit 17. Percent 25 per 60 s: in (60, 120] +2 and -1 -> start 11, ceil(11 x 1.25) = 14."""
    policies = (("Pods", 4, 15), ("Percent", 25, 60))
    assert _up_limit(12, _events(), _rules("Max", *policies), 120.0) == 17
    assert _up_limit(12, _events(), _rules("Min", *policies), 120.0) == 14
    assert _up_limit(12, _events(), _rules("Disabled", *policies), 120.0) == 12
    # no recent events, Percent 50 of 101: ceil(151.5) = 152
    quiet = _State(pods=[], recommendations=[], up_events=[], down_events=[])
    assert _up_limit(101, quiet, _rules("Max", ("Percent", 50, 60)), 120.0) == 152


def test_scale_down_limit_counts_from_the_start_of_each_period() -> None:
    """14 pods now. Pods 3 per 15 s: start 14 + 1 = 15, limit 12. Percent 31 per 60 s: start
    14 + 1 - 2 = 13, int(13 x 0.69) = int(8.97) = 8. "Max" is the policy allowing the larger
    change (the lower count), "Min" the smaller."""
    policies = (("Pods", 3, 15), ("Percent", 31, 60))
    assert _down_limit(14, _events(), _rules("Max", *policies), 120.0) == 8
    assert _down_limit(14, _events(), _rules("Min", *policies), 120.0) == 12
    assert _down_limit(14, _events(), _rules("Disabled", *policies), 120.0) == 14


@pytest.mark.parametrize("offset", [0, 1800], ids=["from-start", "after-half-an-hour"])
def test_scale_up_rate_is_counted_from_the_start_of_the_period(offset: int) -> None:
    """Pods 10 per 60 s, 8 req/s per pod target, pods ready at once, max 16.

    t=15: 32 req/s on 2 pods -> want 4 (start 2, limit 12) -> 4.
    t=30: 160 on 4 -> want 20; the +2 at 15 is in the period: start 2, limit 12 -> 12.
    t=45, 60: 160 on 12 -> want 20, start still 2 -> hold 12.
    t=75: the +2 at 15 has left the period: start 12 - 8 = 4, limit 14 -> 14.
    t=90: 160 on 14 -> want 20; start 14 - 2 = 12, limit 22; max 16 -> 16.
    The same half an hour later (events are kept long enough to count).
    """
    traffic = np.full(offset + 120, 160.0)
    traffic[:offset] = 16.0  # 2 pods at exactly the target: hold
    traffic[offset : offset + 15] = 32.0
    up = ScalingRules(policies=(ScalingPolicy(type="Pods", value=10, period_s=60),))
    s = HPASettings(
        min_replicas=2, max_replicas=16, inflight_target=0.8, pod_startup_s=0, scale_up=up
    )
    r = simulate_hpa(traffic, s, FixedLatencyPod(), 100.0).replicas[offset:]
    assert (r[14], r[15], r[29], r[30], r[74], r[75], r[89], r[90]) == (
        2, 4, 4, 12, 12, 14, 14, 16
    )


@pytest.mark.parametrize("offset", [0, 1800], ids=["from-start", "after-half-an-hour"])
def test_scale_down_rate_is_counted_from_the_start_of_the_period(offset: int) -> None:
    """Pods 5 per 60 s down, no down window, 20 pods at 8 req/s each (ratio 1: hold).

    t=15: 136 req/s on 20 (ratio 0.85) -> want 17; limit 20 - 5 = 15 -> 17.
    t=30: 40 on 17 -> want 5; the -3 at 15 is in the period: start 20, limit 15 -> 15.
    t=45, 60: start still 20 -> hold 15.
    t=75: the -3 at 15 has left: start 15 + 2 = 17, limit 12 -> 12.
    t=90: start 12 + 3 = 15, limit 10 -> 10.
    """
    traffic = np.full(offset + 120, 40.0)
    traffic[:offset] = 160.0
    traffic[offset : offset + 15] = 136.0
    down = ScalingRules(
        stabilization_window_s=0, policies=(ScalingPolicy(type="Pods", value=5, period_s=60),)
    )
    s = HPASettings(
        min_replicas=1, max_replicas=50, inflight_target=0.8, pod_startup_s=0,
        initial_replicas=20, scale_down=down,
    )
    r = simulate_hpa(traffic, s, FixedLatencyPod(), 100.0).replicas[offset:]
    assert (r[14], r[15], r[29], r[30], r[74], r[75], r[89], r[90]) == (
        20, 17, 17, 15, 15, 12, 12, 10
    )


def test_bounds_hold_against_the_recommendation() -> None:
    # 8 req/s needs one pod; min 3 keeps three (the 100 % down policy would allow 0)
    s = HPASettings(min_replicas=3, max_replicas=10, inflight_target=0.8, pod_startup_s=0)
    assert set(simulate_hpa(np.full(400, 8.0), s, FixedLatencyPod(), 100.0).replicas) == {3}
    # a starting count above max is brought down to max at once (as the controller does)
    high = s.model_copy(update={"initial_replicas": 30})
    assert simulate_hpa(np.full(30, 80.0), high, FixedLatencyPod(), 100.0).replicas[0] == 10


PERCENT_100 = (ScalingPolicy(type="Percent", value=100, period_s=15),)


def test_up_window_is_seeded_with_the_starting_count() -> None:
    """Kubernetes records the current count as the first recommendation, so a 60 s up window
    holds 2 pods until t=60 even with no down window: 32 req/s asks for 4 from t=15."""
    up = ScalingRules(stabilization_window_s=60, policies=PERCENT_100)
    down = ScalingRules(stabilization_window_s=0, policies=PERCENT_100)
    s = HPASettings(
        min_replicas=2, max_replicas=10, inflight_target=0.8, pod_startup_s=0,
        scale_up=up, scale_down=down,
    )
    r = simulate_hpa(np.full(90, 32.0), s, FixedLatencyPod(), 100.0)
    assert r.replicas[59] == 2 and r.replicas[60] == 4



def test_metric_window_and_sync_period() -> None:
    """The sync at t=15 averages seconds 0..14, second 0 included: 480 req/s in it and none
    after is 32 req/s on average -> 16 per pod -> 4 pods. With a 1 s sync and a 1 s window the
    first decision is at t=1, on second 0 alone."""
    traffic = np.zeros(30)
    traffic[0] = 480.0
    s = HPASettings(min_replicas=2, max_replicas=10, inflight_target=0.8, pod_startup_s=0)
    assert simulate_hpa(traffic, s, FixedLatencyPod(), 100.0).replicas[15] == 4
    fast = s.model_copy(update={"sync_period_s": 1, "metric_window_s": 1})
    assert simulate_hpa(np.full(5, 32.0), fast, FixedLatencyPod(), 100.0).replicas[1] == 4


def test_without_targets_the_hpa_does_nothing() -> None:
    s = HPASettings(min_replicas=2, max_replicas=10)
    assert set(simulate_hpa(np.full(60, 500.0), s, FixedLatencyPod(), 100.0).replicas) == {2}


def test_result_bookkeeping() -> None:
    """One pod; p99 = 10 + 0.25 x rate ms. Idle seconds have no p99 (0); a p99 exactly at the
    SLO meets it; integer traffic is read as float; counts are integers."""
    s = HPASettings(min_replicas=1, max_replicas=1, inflight_target=100.0)
    traffic = [0, 2, 5, 5, 0]  # ints on purpose
    r = simulate_hpa(traffic, s, LinearPod(), slo_ms=11.25)  # p99 at 5 req/s = 11.25
    np.testing.assert_array_equal(r.p99_ms, [0.0, 10.5, 11.25, 11.25, 0.0])
    assert r.seconds_over_slo == 0 and r.slo_ms == 11.25 and r.name == "hpa"
    assert simulate_hpa(traffic, s, LinearPod(), slo_ms=11.0).seconds_over_slo == 2
    assert simulate_hpa([0.5], s, LinearPod(), slo_ms=11.0).p99_ms[0] == 10.125
    assert r.t.dtype == np.float64 and list(r.t) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert r.replicas.dtype.kind == "i" and r.ready.dtype.kind == "i"
    assert r.traffic.dtype == np.float64
    empty = simulate_hpa(np.array([]), s, LinearPod(), slo_ms=11.0)
    assert (empty.max_replicas_used, empty.seconds_over_slo, empty.replica_hours) == (0, 0, 0.0)


def test_summary_rounds_to_three_decimals() -> None:
    """7 s over the SLO = 0.11667 min; replicas 1, 1, 2 -> mean 1.33333 and 4 / 3600 h."""
    r = SimResult(
        name="x", t=np.arange(3.0), traffic=np.ones(3), replicas=np.array([1, 1, 2]),
        ready=np.array([1, 1, 2]), p99_ms=np.array([1.0, 2.5, 3.0]), seconds_over_slo=7,
        replica_hours=4 / 3600, max_replicas_used=2, scale_events=1, slo_ms=2.0,
    )
    assert r.minutes_over_slo == pytest.approx(7 / 60)
    assert r.summary() == {
        "name": "x", "minutes_over_slo": 0.117, "replica_hours": 0.001, "max_replicas": 2,
        "mean_replicas": 1.333, "scale_events": 1, "worst_p99_ms": 3.0,
    }


def test_diurnal_defaults_by_hand() -> None:
    """A day of seconds; at t=0, 14 h before the peak, the phase is -7 pi / 6:
    100 + 900 (1 + cos(7 pi / 6)) / 2 = 100 + 450 (1 - sqrt(3) / 2) = 160.2886."""
    d = diurnal_series(1000, 100)
    assert d.size == 86_400
    assert d[0] == pytest.approx(100 + 450 * (1 - math.sqrt(3) / 2), rel=1e-12)
    assert d[2 * 3600] == pytest.approx(100, rel=1e-12)  # 12 h from the peak

"""The HPA the plan writes settles, at a constant peak, on the plan's replica count.

Found by a user: with headroom 0.2 the plan said 15 replicas at peak, but its HPA targets
(rho_t x c_op in flight, rho_t x X_op requests/s) made the HPA settle on 13 there: the HPA's
rule ceil(peak / target) recomputed the count without headroom. The targets are now one pod's
load at the planned count, so every margin the plan adds stays in the running deployment.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.capacity.hpa_models import model_from_plan, settings_from_plan
from harness.analysis.capacity.hpa_sim import simulate_hpa
from harness.analysis.capacity.planner import (
    CapacityInputs,
    OperatingPoint,
    operating_point_manual,
    plan_capacity,
)

PEAK = 1000.0
HOUR = 3600


class LittlePod:
    """A pod at its measured mean latency at any load: in flight = rate x 10 ms (Little), as
    the user's arithmetic assumes; p99 20 ms up to 100 req/s (its measured capacity)."""

    def inflight(self, rate: np.ndarray) -> np.ndarray:
        return 0.010 * np.asarray(rate, dtype=np.float64)

    def p99_ms(self, rate: np.ndarray) -> np.ndarray:
        return np.where(np.asarray(rate) <= 100.0, 20.0, np.inf)


def users_plan(headroom: float):
    """10 ms per request, one in flight: X_op = 100/s; rho_t 0.813 by hand.
    n = ceil(1000 x (1 + h) / 81.3): h = 0 -> ceil(12.30) = 13; h = 0.2 -> ceil(14.76) = 15."""
    inp = CapacityInputs(
        peak_qps=PEAK, headroom=headroom, target_utilisation=0.813, slo_p99_ms=200
    )
    return plan_capacity(inp, operating_point_manual(10, 1))


@pytest.mark.parametrize(("headroom", "planned"), [(0.0, 13), (0.2, 15)])
def test_constant_peak_from_min_replicas_settles_on_the_plan(
    headroom: float, planned: int
) -> None:
    """A constant peak for an hour, the HPA starting at minReplicas (1): the requests/s metric
    asks ceil(1000 / (1000 / n)) = n at once; the in-flight metric reads 10 ms x 1000 / n per
    pod against its target (>= that), so it never asks for more."""
    plan = users_plan(headroom)
    assert plan.replicas == planned and plan.min_replicas == 1
    r = simulate_hpa(np.full(HOUR, PEAK), settings_from_plan(plan), LittlePod(), 200.0)
    assert r.replicas[-1] == planned
    assert r.replicas[HOUR // 2 :].min() == r.replicas[HOUR // 2 :].max() == planned
    assert r.max_replicas_used == planned  # no overshoot on the way up


def sweep_plan(headroom: float):
    """A sweep's operating point (c_op 4, X_op 200/s, measured p99 40 ms, 3.2 in flight at the
    server) with a p99 SLO, N+1 and the default growth target: the queueing pod model."""
    op = OperatingPoint(
        "sweep-closed", 4.0, 200.0, 0.02, p99_ms=40.0, n_star=43.6, x_max=1234.5,
        server_inflight=3.2,
    )
    inp = CapacityInputs(peak_qps=2000, slo_p99_ms=100, headroom=headroom, redundancy=1)
    return plan_capacity(inp, op)


@pytest.mark.parametrize("plan_of", [users_plan, sweep_plan], ids=["by-hand", "sweep"])
@pytest.mark.parametrize("headroom", [0.0, 0.2])
def test_the_planned_count_is_the_hpas_steady_state_at_peak(plan_of, headroom: float) -> None:
    """Through the plan's own pod model (the one `simulate-hpa` replays), an HPA at the planned
    count under a constant peak stays there for an hour: both metrics read their target
    exactly (ratio 1), so neither asks to move."""
    plan = plan_of(headroom)
    settings = settings_from_plan(plan).model_copy(update={"initial_replicas": plan.replicas})
    r = simulate_hpa(np.full(HOUR, plan.peak_qps), settings, model_from_plan(plan), 100.0)
    assert r.scale_events == 0
    assert r.replicas.min() == r.replicas.max() == plan.replicas


def test_with_headroom_the_plan_pays_for_more_than_without() -> None:
    """Guards the fix from the other side: the headroom plan's HPA holds more pods at peak
    than the plan without headroom (the old targets held both on 13)."""
    low, high = users_plan(0.0), users_plan(0.2)
    runs = [
        simulate_hpa(np.full(HOUR, PEAK), settings_from_plan(p), LittlePod(), 200.0)
        for p in (low, high)
    ]
    assert (runs[0].replicas[-1], runs[1].replicas[-1]) == (13, 15)
    # each pod's requests/s target is its share at the planned count
    assert high.hpa_rps_target == pytest.approx(PEAK / 15)
    assert low.hpa_rps_target == pytest.approx(PEAK / 13)


def test_a_step_to_peak_overshoots_and_rests_within_the_hpas_tolerance() -> None:
    """What the plan cannot promise: from minReplicas, a step to the peak overloads the few
    ready pods while new ones start; the queueing model's in-flight climbs steeply, the HPA
    overshoots, then scales down until both metrics are within its 10 % tolerance, i.e. at a
    count in [n, n / 0.9]. `harness capacity` reports where the simulation rests."""
    plan = sweep_plan(0.2)
    r = simulate_hpa(
        np.full(2 * HOUR, plan.peak_qps), settings_from_plan(plan), model_from_plan(plan), 100.0
    )
    assert r.max_replicas_used > plan.replicas
    assert plan.replicas <= r.replicas[-1] <= plan.replicas / 0.9


def test_an_open_loop_sweeps_fractional_concurrency_keeps_the_measured_capacity() -> None:
    """Measured by the main job: 793.1 req/s at 1.824 in flight (mean 2.30 ms). One slot
    would give the pod 1 / 2.30 ms = 435 req/s, below what it served, and the simulated HPA
    would leave the plan (3 pods for 2 planned); ceil(1.824) = 2 slots give 870 req/s.
    Plan for 1000 req/s, headroom 0.2: n = ceil(1200 / (0.8929 x 793.1)) = ceil(1.69) = 2."""
    op = OperatingPoint("sweep-open", 1.824, 793.143, 0.0022997, p99_ms=16.9)
    plan = plan_capacity(CapacityInputs(peak_qps=1000, slo_p99_ms=250, headroom=0.2), op)
    assert plan.replicas == 2
    model = model_from_plan(plan)
    assert model.c == 2 and model.capacity == pytest.approx(2 / 0.0022997)
    settings = settings_from_plan(plan).model_copy(update={"initial_replicas": 2})
    r = simulate_hpa(np.full(HOUR, 1000.0), settings, model, 250.0)
    assert r.replicas.min() == r.replicas.max() == 2

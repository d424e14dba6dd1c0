"""Capacity arithmetic on worked examples, by hand and from a synthetic sweep."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pydantic import ValidationError

from harness.analysis.capacity import (
    CapacityInputs,
    CapacityPlan,
    operating_point_closed_loop,
    operating_point_manual,
    operating_point_open_loop,
    plan_capacity,
)
from harness.errors import AnalysisError
from tests.harness.analysis.usl_truth import usl_x


def test_worked_example_10k_qps_50ms_is_500() -> None:
    plan = plan_capacity(CapacityInputs(peak_qps=10_000), operating_point_manual(50, 1))
    assert plan.replicas == 500 and plan.n0 == 500 and plan.rho_target == 1.0
    assert any("ceil(500.0000) = 500" in line for line in plan.arithmetic)
    assert "MEAN" in plan.notes[0] and "p99" in plan.notes[0]


def test_worked_example_headroom_and_n_plus_one() -> None:
    op = operating_point_manual(50, 1)
    # headroom 20 %: ceil(10000 * 1.2 * 0.05) = 600; N+1: 601
    assert plan_capacity(CapacityInputs(peak_qps=10_000, headroom=0.2), op).replicas == 600
    p = plan_capacity(CapacityInputs(peak_qps=10_000, headroom=0.2, redundancy=1), op)
    assert (p.n_before_redundancy, p.replicas, p.min_replicas) == (600, 601, 2)
    # three zones, one may fail (f = 1/3): ceil(600 / (2/3)) = 900
    z = plan_capacity(CapacityInputs(peak_qps=10_000, headroom=0.2, failure_share=1 / 3), op)
    assert z.replicas == 900 and z.min_replicas == 3
    # concurrency 4 per instance: ceil(10000 * 0.05 / 4) = 125
    assert plan_capacity(CapacityInputs(peak_qps=10_000), operating_point_manual(50, 4)).n0 == 125


def test_utilisation_target_is_min_of_queue_and_growth() -> None:
    op = operating_point_manual(10, 1)
    inp = CapacityInputs(peak_qps=1000, slo_p99_ms=100, growth_rate_per_s=0.01, pod_ready_s=30)
    p = plan_capacity(inp, op)
    rho_q = 1 - math.log(100) * 0.01 / 0.1  # M/M/1 closed form: 0.5395
    assert p.rho_queue == pytest.approx(rho_q, abs=1e-6)
    assert p.rho_growth == pytest.approx(1 / 1.3)
    assert p.rho_target == pytest.approx(rho_q, abs=1e-6)
    assert p.replicas == math.ceil(1000 / (rho_q * 100))  # 19
    assert p.hpa_inflight_target == pytest.approx(rho_q, abs=1e-6)
    assert p.hpa_rps_target == pytest.approx(rho_q * 100, abs=1e-4)
    forced = plan_capacity(inp.model_copy(update={"target_utilisation": 0.5}), op)
    assert forced.replicas == 20


def test_hpa_rule_agrees_with_plan() -> None:
    """At peak, HPA desired = ceil(n * inflight/target) with inflight = peak*L/n lands on n."""
    op = operating_point_manual(50, 4)
    p = plan_capacity(CapacityInputs(peak_qps=10_000, target_utilisation=0.8), op)
    total_inflight = 10_000 * 0.05
    pods = 7
    desired = math.ceil(round(pods * (total_inflight / pods) / p.hpa_inflight_target, 9))
    assert desired == p.replicas == 157  # ceil(10000 / (0.8 * 80)) = ceil(156.25)


def test_plan_from_closed_loop_sweep() -> None:
    n = np.array([1, 2, 4, 8, 16, 24, 32, 48, 64], dtype=float)
    x = usl_x(n, 100.0, 0.05, 0.0005)
    p99 = n / x * 1000 * 2.5
    # p99 by concurrency: 32 -> 76.15 ms, 48 -> 111.95 ms. SLO 100 ms: interpolated p99
    # reaches 100 at 32 + 16 * (100 - 76.15) / (111.95 - 76.15) = 42.66 -> c_op = 42 (< N*)
    op = operating_point_closed_loop(n, x, p99, slo_p99_ms=100)
    assert op.concurrency == 42.0
    assert op.throughput == pytest.approx(usl_x(op.concurrency, 100, 0.05, 0.0005))
    assert op.n_star == pytest.approx(math.sqrt(0.95 / 0.0005), rel=1e-3)
    # a loose SLO is capped by the USL peak: N* = sqrt(0.95 / 0.0005) = 43.59 -> 43
    assert operating_point_closed_loop(n, x, p99, slo_p99_ms=150).concurrency == 43.0
    plan = plan_capacity(CapacityInputs(peak_qps=5000, slo_p99_ms=100), op)
    assert plan.rho_growth == pytest.approx(1 / 1.12)
    assert plan.replicas == math.ceil(round(5000 / (plan.rho_target * op.throughput), 9))
    with pytest.raises(AnalysisError, match="lowest concurrency"):
        operating_point_closed_loop(n, x, p99, slo_p99_ms=10)


def test_plan_from_open_loop_sweep() -> None:
    rate = np.array([100, 200, 300, 400, 500, 600], dtype=float)
    p99 = np.array([20, 21, 24, 30, 60, 200], dtype=float)
    mean = np.array([8, 8.5, 9, 10, 20, 80], dtype=float)
    op = operating_point_open_loop(rate, rate, p99, mean, slo_p99_ms=50)
    assert op.throughput == 400 and op.concurrency == pytest.approx(4.0)


def test_plan_json_round_trip_and_validation() -> None:
    p = plan_capacity(CapacityInputs(peak_qps=123, headroom=0.1), operating_point_manual(20, 2))
    again = CapacityPlan.from_dict(json.loads(json.dumps(p.to_dict())))
    assert again == p
    with pytest.raises(ValidationError):
        CapacityInputs(peak_qps=-1)
    with pytest.raises(ValidationError):
        CapacityInputs(peak_qps=1, bogus=2)


def test_poor_fits_are_flagged_in_the_plan() -> None:
    n = np.array([1, 2, 4, 8, 16, 32, 48, 64], dtype=float)
    clean = usl_x(n, 100.0, 0.05, 0.0005)
    p99 = n / clean * 1000 * 2.5
    assert operating_point_closed_loop(n, clean, p99, slo_p99_ms=150).notes == ()
    noisy = clean * np.array([1.0, 0.5, 1.4, 0.6, 1.3, 0.7, 1.2, 0.5])  # a busy host
    op = operating_point_closed_loop(n, noisy, p99, slo_p99_ms=150)
    assert any("USL fit is poor" in note for note in op.notes)
    plan = plan_capacity(CapacityInputs(peak_qps=1000, slo_p99_ms=150), op)
    assert any("USL fit is poor" in note for note in plan.notes)


def test_server_side_inflight_when_users_spend_time_in_the_client() -> None:
    """Closed loop: N/X = server time + client time. The HPA reads the server's in-flight
    count, so its target is rho_t x X_op x mean (Little at the server), not rho_t x c_op."""
    n = np.array([1, 2, 4, 8, 16, 32, 48, 64], dtype=float)
    x = usl_x(n, 100.0, 0.05, 0.0005)
    cycle_ms = n / x * 1000
    mean = 0.75 * cycle_ms  # a quarter of each cycle is spent in the load generator
    op = operating_point_closed_loop(n, x, 2.5 * cycle_ms, slo_p99_ms=150, mean_ms=mean)
    assert op.server_inflight == pytest.approx(0.75 * op.concurrency, rel=0.02)
    assert any("load generator" in note for note in op.notes)
    plan = plan_capacity(CapacityInputs(peak_qps=5000, target_utilisation=0.8), op)
    assert plan.hpa_inflight_target == pytest.approx(0.8 * op.server_inflight)
    assert plan.hpa_rps_target == pytest.approx(0.8 * op.throughput)
    same = operating_point_closed_loop(n, x, 2.5 * cycle_ms, slo_p99_ms=150, mean_ms=cycle_ms)
    assert same.server_inflight == pytest.approx(same.concurrency) and same.notes == ()

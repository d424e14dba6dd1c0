"""Capacity arithmetic on worked examples, by hand and from a synthetic sweep."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from pydantic import ValidationError

from harness.analysis.capacity.planner import (
    CapacityInputs,
    CapacityPlan,
    operating_point_closed_loop,
    operating_point_manual,
    operating_point_open_loop,
    plan_capacity,
)
from harness.errors import AnalysisError
from tests.harness.analysis.capacity.queueing_truth import mmc_in_system
from tests.harness.analysis.capacity.usl_truth import usl_x


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
    # HPA targets = one pod's load at 19 pods: 1000 / 19 req/s; M/M/1 in flight at
    # rho = 10/19: rho / (1 - rho) = 10/9
    assert p.hpa_rps_target == pytest.approx(1000 / 19)
    assert p.hpa_inflight_target == pytest.approx(10 / 9, rel=5e-5)
    forced = plan_capacity(inp.model_copy(update={"target_utilisation": 0.5}), op)
    assert forced.replicas == 20


@pytest.mark.parametrize("headroom", [0.0, 0.2])
def test_hpa_rule_agrees_with_plan(headroom: float) -> None:
    """At peak, the HPA's desired = ceil(pods x reading / target) lands on the planned count
    from any count: requests/s ceil(pods x (10000 / pods) / (10000 / n)) = n. Headroom stays:
    n = ceil(10000 x 1.2 / 64) = 188 (the old rho_t x X_op target gave 157 back)."""
    op = operating_point_manual(50, 4)
    inp = CapacityInputs(peak_qps=10_000, target_utilisation=0.8, headroom=headroom)
    p = plan_capacity(inp, op)
    assert p.replicas == {0.0: 157, 0.2: 188}[headroom]  # ceil(156.25), ceil(187.5)
    for pods in (7, 100, p.replicas, 300):
        desired = math.ceil(round(pods * (10_000 / pods) / p.hpa_rps_target, 9))
        assert desired == p.replicas


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
    # the operating point's own notes (a poor fit, a load generator's share) come back too
    noted = dataclasses.replace(operating_point_manual(20, 2), notes=("USL fit is poor",))
    p = plan_capacity(CapacityInputs(peak_qps=123), noted)
    again = CapacityPlan.from_dict(json.loads(json.dumps(p.to_dict())))
    assert again == p and again.operating_point.notes == ("USL fit is poor",)
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
    rate = 5000 / plan.replicas  # one pod's load at the planned count
    assert plan.hpa_rps_target == pytest.approx(rate)
    # M/M/c in flight at that rate (c = c_op, service c_op / X_op), scaled to the server's
    # share 0.75: the users' time in the load generator is not in flight at the server
    service = op.concurrency / op.throughput
    full = mmc_in_system(int(op.concurrency), service, rate)
    assert plan.hpa_inflight_target == pytest.approx(full * 0.75, rel=0.02)
    assert plan.hpa_inflight_target == pytest.approx(
        full * op.server_inflight / op.concurrency, rel=1e-4
    )
    same = operating_point_closed_loop(n, x, 2.5 * cycle_ms, slo_p99_ms=150, mean_ms=cycle_ms)
    assert same.server_inflight == pytest.approx(same.concurrency) and same.notes == ()


def test_bare_formula_prints_every_step() -> None:
    """10k QPS at 50 ms, one in flight: X_op = 1 / 0.05 = 20/s, n = 10000 / 20 = 500; with no
    SLO, growth or target rho_t = 1; min = 1 + redundancy 0; max = ceil(500 x 1.5) = 750."""
    plan = plan_capacity(CapacityInputs(peak_qps=10_000), operating_point_manual(50, 1))
    assert (plan.min_replicas, plan.max_replicas) == (1, 750)
    assert plan.rho_queue is None and plan.rho_growth is None
    assert plan.arithmetic == (
        "operating point (manual): c_op = 1 in flight per instance, X_op = 20.0000 req/s per "
        "instance, mean time in system 50.000 ms (Little: X_op = c_op / L)",
        "n0 = ceil(peak 10000 / X_op 20.0000) = ceil(500.0000) = 500",
        "rho_t = 1 (no SLO, growth rate or target given: the bare formula)",
        "n = ceil(peak 10000 x (1 + headroom 0) / (rho_t 1.0000 x X_op 20.0000)) = "
        "ceil(500.0000) = 500",
        "n_total = ceil((n 500 + redundancy 0) / (1 - failure share 0)) = ceil(500.0000) = 500",
        "min_replicas = 1 (max of 1 + redundancy 0); max_replicas = 750 (replicas x 1.5)",
        "HPA targets per pod = one pod's load at n_total 500 (the HPA settles there at peak): "
        "requests/s peak 10000 / 500 = 20.000; in flight at the server at that rate, Little's "
        "law at the measured mean (the pod model has no steady state there) = 1.000",
    )
    assert plan.notes[-1] == (
        "each pod runs at its measured capacity at peak (20.000 req/s, no utilisation margin): "
        "the queueing model predicts an unbounded queue there, so the simulated HPA scales "
        "past the plan; plan with an SLO, headroom or a utilisation target"
    )
    given = plan_capacity(
        CapacityInputs(peak_qps=10_000, target_utilisation=0.5), operating_point_manual(50, 1)
    )
    assert given.replicas == 1000  # ceil(10000 / (0.5 x 20))
    assert "rho_t = 0.5 (given by hand)" in given.arithmetic


def test_queue_bound_plan_prints_every_step() -> None:
    """M/M/1, L = 10 ms (X_op = 100/s), SLO 100 ms: rho_q = 1 - ln(100) x 0.01 / 0.1 = 0.53948;
    growth 0.01/s over 30 s: rho_g = 1 / 1.3 = 0.76923; rho_t = rho_q.
    n = ceil(1000 / (0.53948 x 100)) = ceil(18.5363) = 19; max = ceil(19 x 1.5) = 29;
    HPA per pod at 19 pods: 1000 / 19 = 52.632 requests/s; M/M/1 in flight at rho = 10/19:
    rho / (1 - rho) = 10/9 = 1.111."""
    inp = CapacityInputs(peak_qps=1000, slo_p99_ms=100, growth_rate_per_s=0.01, pod_ready_s=30)
    plan = plan_capacity(inp, operating_point_manual(10, 1))
    assert (plan.replicas, plan.min_replicas, plan.max_replicas) == (19, 1, 29)
    assert plan.arithmetic == (
        "operating point (manual): c_op = 1 in flight per instance, X_op = 100.0000 req/s per "
        "instance, mean time in system 10.000 ms (Little: X_op = c_op / L)",
        "n0 = ceil(peak 1000 / X_op 100.0000) = ceil(10.0000) = 10",
        "rho_queue = 0.5395: highest utilisation of M/M/1 (mean service 10.000 ms) whose exact "
        "M/M/c response p99 <= SLO 100 ms",
        "rho_growth = 1 / (1 + growth 0.01/s x pod ready 30 s) = 0.7692",
        "rho_t = min(0.5395, 0.7692) = 0.5395",
        "n = ceil(peak 1000 x (1 + headroom 0) / (rho_t 0.5395 x X_op 100.0000)) = "
        "ceil(18.5363) = 19",
        "n_total = ceil((n 19 + redundancy 0) / (1 - failure share 0)) = ceil(19.0000) = 19",
        "min_replicas = 1 (max of 1 + redundancy 0); max_replicas = 29 (replicas x 1.5)",
        "HPA targets per pod = one pod's load at n_total 19 (the HPA settles there at peak): "
        "requests/s peak 1000 / 19 = 52.632; in flight at the server at that rate, the pod "
        "model's (M/M/1 at 0.5263 utilisation) = 1.111",
    )


def test_sweep_plan_with_every_adjustment_prints_every_step() -> None:
    """An operating point as a closed-loop sweep reports it: c_op 4, X_op 200/s, L 20 ms,
    measured p99 40 ms, 3.2 in flight at the server. SLO 100 ms leaves 60 ms for the Erlang C
    wait p99 of M/M/4 (mu = 50/s): SciPy's brentq on 0.04 + ln(C(4, 4 rho) / 0.01) /
    (200 (1 - rho)) = 0.1, with C from its textbook sum, gives rho_q = 0.689903.
    No growth rate given for a sweep: 0.002/s over 60 s -> rho_g = 1 / 1.12 = 0.892857.
    n = ceil(2000 x 1.25 / (0.689903 x 200)) = ceil(18.1185) = 19;
    n_total = ceil((19 + 1) / 0.75) = ceil(26.667) = 27.
    HPA per pod at 27 pods: 2000 / 27 = 74.074 requests/s; in flight M/M/4 (20 ms) at that
    rate, 74.074 x (0.02 + C(4, 1.4815) / (200 - 74.074)) = 1.52372, x 3.2 / 4 (the server's
    share) = 1.21898. min: max(1 + 1, ceil(1 / 0.25) = 4 domains, ceil(900 / 74.074) = 13) =
    13 (what the HPA settles on at 900 req/s); max: ceil(27 x 1.5) = 41."""
    from harness.analysis.capacity.planner import OperatingPoint

    op = OperatingPoint(
        "sweep-closed", 4.0, 200.0, 0.02, p99_ms=40.0, n_star=43.589, x_max=1234.5,
        server_inflight=3.2,
    )
    inp = CapacityInputs(
        peak_qps=2000, slo_p99_ms=100, headroom=0.25, redundancy=1, failure_share=0.25,
        min_qps=900,
    )
    plan = plan_capacity(inp, op)
    assert plan.rho_queue == pytest.approx(0.6899028, abs=1e-6)
    assert plan.rho_growth == pytest.approx(1 / 1.12)
    assert (plan.n0, plan.n_before_redundancy, plan.replicas) == (10, 19, 27)
    assert (plan.min_replicas, plan.max_replicas) == (13, 41)
    assert plan.hpa_inflight_target == pytest.approx(1.2189752, rel=5e-5)
    assert plan.hpa_rps_target == pytest.approx(2000 / 27)
    assert plan.arithmetic == (
        "operating point (sweep-closed): c_op = 4 in flight per instance, X_op = 200.0000 req/s "
        "per instance, mean time in system 20.000 ms (Little: X_op = c_op / L)",
        "USL: N* = 43.59, X(N*) = 1234.50 req/s; c_op is the largest N <= N* whose p99 meets "
        "the SLO",
        "n0 = ceil(peak 2000 / X_op 200.0000) = ceil(10.0000) = 10",
        "rho_queue = 0.6899: highest utilisation of M/M/4 (mean service 20.000 ms) whose "
        "measured p99 at c_op (interpolated) 40.00 ms + Erlang C wait p99 <= SLO 100 ms",
        "rho_growth = 1 / (1 + growth 0.002/s x pod ready 60 s) = 0.8929",
        "rho_t = min(0.6899, 0.8929) = 0.6899",
        "n = ceil(peak 2000 x (1 + headroom 0.25) / (rho_t 0.6899 x X_op 200.0000)) = "
        "ceil(18.1185) = 19",
        "n_total = ceil((n 19 + redundancy 1) / (1 - failure share 0.25)) = ceil(26.6667) = 27",
        "min_replicas = 13 (max of 1 + redundancy 1, 4 failure domains, ceil(min_qps 900 / "
        "74.074) = 13); max_replicas = 41 (replicas x 1.5)",
        "HPA targets per pod = one pod's load at n_total 27 (the HPA settles there at peak): "
        "requests/s peak 2000 / 27 = 74.074; in flight at the server at that rate, the pod "
        "model's (M/M/4 at 0.3704 utilisation) = 1.219",
    )


def test_growth_bound_plan_with_given_bounds() -> None:
    """SLO 200 ms on M/M/1 at 10 ms: rho_q = 1 - ln(100) x 0.01 / 0.2 = 0.76974; growth
    0.01/s over 60 s: rho_g = 1 / 1.6 = 0.625, the smaller, so n = ceil(1000 / 62.5) = 16.
    N* of 10^6 or more reads as unbounded; no X(N*) reads n/a."""
    from harness.analysis.capacity.planner import OperatingPoint

    op = OperatingPoint("sweep-closed", 1.0, 100.0, 0.01, n_star=1e6, x_max=None)
    inp = CapacityInputs(
        peak_qps=1000, slo_p99_ms=200, growth_rate_per_s=0.01, min_replicas=3, max_replicas=40
    )
    plan = plan_capacity(inp, op)
    assert plan.rho_target == 0.625 and plan.replicas == 16
    assert (plan.min_replicas, plan.max_replicas) == (3, 40)
    assert plan.arithmetic[1] == (
        "USL: N* = unbounded (no coherency penalty measured), X(N*) = n/a req/s; c_op is the "
        "largest N <= N* whose p99 meets the SLO"
    )
    assert plan.arithmetic[3:] == (
        "rho_queue = 0.7697: highest utilisation of M/M/1 (mean service 10.000 ms) whose exact "
        "M/M/c response p99 <= SLO 200 ms",
        "rho_growth = 1 / (1 + growth 0.01/s x pod ready 60 s) = 0.6250",
        "rho_t = min(0.7697, 0.6250) = 0.6250",
        "n = ceil(peak 1000 x (1 + headroom 0) / (rho_t 0.6250 x X_op 100.0000)) = "
        "ceil(16.0000) = 16",
        "n_total = ceil((n 16 + redundancy 0) / (1 - failure share 0)) = ceil(16.0000) = 16",
        "min_replicas = 3 (given); max_replicas = 40 (given)",
        "HPA targets per pod = one pod's load at n_total 16 (the HPA settles there at peak): "
        "requests/s peak 1000 / 16 = 62.500; in flight at the server at that rate, the pod "
        "model's (M/M/1 at 0.6250 utilisation) = 1.667",
    )
    # a given minimum above the derived maximum (sweep default growth: rho_t = 1 / 1.12,
    # n = ceil(1000 x 1.12 / 100) = 12, max ceil(18) = 18) lifts the maximum to it
    low_max = plan_capacity(CapacityInputs(peak_qps=1000, min_replicas=30), op)
    assert (low_max.replicas, low_max.min_replicas, low_max.max_replicas) == (12, 30, 30)


def test_an_slo_below_the_idle_p99_is_refused() -> None:
    """M/M/1 at 50 ms: even idle, p99 = ln(100) x 50 ms = 230 ms > 10 ms."""
    with pytest.raises(AnalysisError, match=r"^even an idle instance misses the p99 SLO of 10 ms$"):
        plan_capacity(CapacityInputs(peak_qps=100, slo_p99_ms=10), operating_point_manual(50, 1))


def test_ceil_ignores_float_dust_below_one_billionth_only() -> None:
    from harness.analysis.capacity.planner import ceil_exact

    assert ceil_exact(500.00000000000006) == 500
    assert ceil_exact(2.0000000004) == 2  # 4e-10 above: dust
    assert ceil_exact(2.000000002) == 3  # 2e-9 above: a real fraction of a pod


def test_plan_files_without_optional_lists_and_with_infinities() -> None:
    """Older plan files may lack notes and arithmetic; an unbounded N* is written as null."""
    op = dataclasses.replace(operating_point_manual(20, 2), n_star=math.inf)
    p = plan_capacity(CapacityInputs(peak_qps=123), op)
    d = json.loads(json.dumps(p.to_dict()))
    assert d["schema_version"] == 1 and d["operating_point"]["n_star"] is None
    for key in ("notes", "arithmetic"):
        del d[key]
    del d["operating_point"]["notes"]
    again = CapacityPlan.from_dict(d)
    assert again.notes == () and again.arithmetic == () and again.operating_point.notes == ()
    assert again.replicas == p.replicas

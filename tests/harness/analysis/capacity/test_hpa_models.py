"""The pod model and the plan's HPA settings against M/M/c from the textbook, by hand."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from harness.analysis.capacity.hpa_models import (
    PLAN_SCALE_DOWN,
    QueueingPodModel,
    model_from_plan,
    preset,
    setting_from_spec,
    settings_from_plan,
)
from harness.analysis.capacity.hpa_sim import DEFAULT_DOWN, DEFAULT_UP, HPASettings
from harness.analysis.capacity.planner import (
    CapacityInputs,
    OperatingPoint,
    operating_point_manual,
    plan_capacity,
)
from tests.harness.analysis.capacity.queueing_truth import erlang_c_sum, mmc_in_system

# The table is interpolated linearly over 801 utilisations in [0, 0.999]: at rho <= 0.75 that
# is within ~1e-5 of the formula (curvature x step^2 / 8); a 50-point table is off by ~1e-3.
TABLE_REL = 5e-5
LN100 = math.log(100)


def test_pod_model_is_mm1_from_the_textbook() -> None:
    """c = 1, mean service 0.5 s: capacity 2/s. At rate r, rho = r / 2:
    in flight L = rho / (1 - rho) = 0, 1/3, 1, 3; p99 of T ~ Exp(mu - r) = ln(100) / (2 - r) s,
    idle p99 = ln(100) x 0.5 s = 2302.585 ms."""
    m = QueueingPodModel(c=1, service_s=0.5)
    assert (m.c, m.service_s, m.capacity) == (1, 0.5, 2.0)
    rates = np.array([0.0, 0.5, 1.0, 1.5])
    np.testing.assert_allclose(m.inflight(rates), [0, 1 / 3, 1, 3], rtol=TABLE_REL, atol=1e-12)
    np.testing.assert_allclose(
        m.p99_ms(rates), [1000 * LN100 / (2 - r) for r in rates], rtol=TABLE_REL
    )
    assert m.p99_ms(np.array([0.0]))[0] == pytest.approx(1000 * LN100 * 0.5, rel=1e-9)
    # from rho = 0.999 (rate 1.998) on the pod is overloaded: 1000 x c in flight, p99 infinite
    over = np.array([1.998, 3.0])
    np.testing.assert_array_equal(m.inflight(over), [1000.0, 1000.0])
    assert np.isinf(m.p99_ms(over)).all()
    # just below (rho 0.998): between the table's last two rows, L(0.99775) and L(0.999)
    near = float(m.inflight(np.array([1.996]))[0])
    assert 0.99775 / 0.00225 < near < 0.999 / 0.001
    assert math.isfinite(float(m.p99_ms(np.array([1.996]))[0]))
    assert QueueingPodModel(c=0, service_s=0.5).c == 1  # at least one slot


def test_pod_model_with_measured_service_tail_and_scaled_inflight() -> None:
    """M/M/2, mu = 100/s, rate 150/s: L = 2 rho / (1 - rho^2) = 1.5 / 0.4375 = 3.428571;
    p99 = measured 30 ms + wait p99 ln((9/14) / 0.01) / 50 s = 30 + 83.2667 ms."""
    m = QueueingPodModel(c=2, service_s=0.01, service_p99_s=0.03, inflight_scale=0.8)
    r = np.array([150.0])
    assert m.inflight(r)[0] == pytest.approx(0.8 * mmc_in_system(2, 0.01, 150.0), rel=TABLE_REL)
    assert m.inflight(r)[0] == pytest.approx(0.8 * 1.5 / 0.4375, rel=TABLE_REL)
    wait_ms = 1000 * math.log(erlang_c_sum(2, 1.5) / 0.01) / 50
    assert m.p99_ms(r)[0] == pytest.approx(30 + wait_ms, rel=TABLE_REL)
    assert m.p99_ms(r)[0] == pytest.approx(30 + 1000 * math.log(900 / 14) / 50, rel=TABLE_REL)
    # at low load nobody waits: the p99 is the measured one, 30 ms exactly
    assert m.p99_ms(np.array([1.0]))[0] == 30.0


def test_pod_model_with_a_fitted_latency_curve() -> None:
    """p99 = 5 + 2 u / (1 - u), u = X / 120: at 60/s, 5 + 2 = 7 ms; at 99.8/s (u = 0.83167)
    5 + 2 x 4.9406 = 14.881 ms; from the pod's own capacity (100/s) on, infinite."""
    m = QueueingPodModel(c=1, service_s=0.01, latency_curve=(5.0, 2.0, 120.0))
    p99 = m.p99_ms(np.array([60.0, 99.8, 100.0]))
    assert p99[0] == pytest.approx(7.0, rel=1e-12)
    u = 99.8 / 120
    assert p99[1] == pytest.approx(5 + 2 * u / (1 - u), rel=1e-12)
    assert math.isinf(p99[2])


def test_model_from_plan_by_hand() -> None:
    # no measured p99: the exact M/M/1 tail; 50 ms, rate 10/s: ln(100) x 0.05 / 0.5 s
    bare_plan = plan_capacity(CapacityInputs(peak_qps=100), operating_point_manual(50, 1))
    bare = model_from_plan(bare_plan)
    assert (bare.c, bare.capacity) == (1, 20.0)
    assert bare.p99_ms(np.array([10.0]))[0] == pytest.approx(1000 * LN100 * 0.1, rel=TABLE_REL)
    # a measured p99 of 40 ms is the pod's p99 while nobody waits
    measured = plan_capacity(CapacityInputs(peak_qps=100), operating_point_manual(20, 4, 40))
    assert model_from_plan(measured).p99_ms(np.array([1.0]))[0] == 40.0
    # a sweep's fitted curve (a 5, b 2, saturation 300) and 3.2 of 4 in flight at the server
    op = OperatingPoint(
        "sweep-closed", 4.0, 200.0, 0.02, p99_ms=40.0, server_inflight=3.2,
        latency_model={"a_ms": 5.0, "b_ms": 2.0, "saturation": 300.0, "r2": 1.0},
    )
    plan = plan_capacity(CapacityInputs(peak_qps=1000), op)
    fitted = model_from_plan(plan)
    assert fitted.p99_ms(np.array([150.0]))[0] == pytest.approx(7.0, rel=1e-12)  # u = 1/2
    assert fitted.inflight(np.array([100.0]))[0] == pytest.approx(
        0.8 * mmc_in_system(4, 0.02, 100.0), rel=TABLE_REL
    )
    # without the curve: 40 ms + Erlang C wait p99 of M/M/4 at 150/s (A = 3, theta = 50/s)
    queue = model_from_plan(plan, use_fitted_curve=False)
    wait_ms = 1000 * math.log(erlang_c_sum(4, 3.0) / 0.01) / 50
    assert queue.p99_ms(np.array([150.0]))[0] == pytest.approx(40 + wait_ms, rel=TABLE_REL)


def test_settings_from_plan() -> None:
    """Targets = one pod's load at the planned count: 1000 / 10 = 100 req/s, and the M/M/4
    (20 ms) in-flight at 100/s, 100 x (0.02 + C(4, 2) / (200 - 100)) = 2.1739; pods start in
    the plan's pod_ready_s, or as told, or in 60 s for a plan file that does not say."""
    plan = plan_capacity(
        CapacityInputs(peak_qps=1000, target_utilisation=0.5, pod_ready_s=30),
        operating_point_manual(20, 4),
    )
    s = settings_from_plan(plan)
    assert (s.min_replicas, s.max_replicas) == (plan.min_replicas, plan.max_replicas) == (1, 15)
    assert plan.replicas == 10 and s.rps_target == 100.0  # ceil(1000 / (0.5 x 200))
    assert s.inflight_target == pytest.approx(mmc_in_system(4, 0.02, 100.0), rel=TABLE_REL)
    assert s.inflight_target == pytest.approx(2.173913, rel=TABLE_REL)  # C(4, 2) = 4/23
    assert s.pod_startup_s == 30 and s.scale_up == DEFAULT_UP and s.scale_down == PLAN_SCALE_DOWN
    assert settings_from_plan(plan, pod_startup_s=45).pod_startup_s == 45
    assert settings_from_plan(plan, pod_startup_s=0).pod_startup_s == 0
    assert settings_from_plan(dataclasses.replace(plan, inputs={})).pod_startup_s == 60


def test_presets_by_hand() -> None:
    base = HPASettings(min_replicas=2, max_replicas=20, inflight_target=0.8, rps_target=8.0)
    margin = preset(base, "tolerance-margin")  # both targets / (1 + 0.1)
    assert margin.inflight_target == pytest.approx(0.8 / 1.1, rel=1e-12)
    assert margin.rps_target == pytest.approx(8 / 1.1, rel=1e-12)
    only_rps = preset(base, "rps-only")
    assert preset(only_rps, "tolerance-margin").inflight_target is None
    assert preset(base, "inflight-only").rps_target is None and only_rps.rps_target == 8.0
    fast = preset(base, "fast-scale-down").scale_down
    assert fast.stabilization_window_s == 30 and fast.policies == base.scale_down.policies
    planned = base.model_copy(update={"scale_down": PLAN_SCALE_DOWN})
    assert preset(planned, "k8s-default").scale_down == DEFAULT_DOWN  # 100 % per 15 s
    with pytest.raises(ValueError) as info:
        preset(base, "bogus")
    assert str(info.value) == (
        "unknown HPA preset 'bogus'; choose from plan, k8s-default, fast-scale-down, "
        "slow-scale-up, rps-only, inflight-only, tolerance-margin"
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("plan:x", "'plan:x': 'x' must look like key=value"),
        ("plan:=5", "'plan:=5': '=5' must look like key=value"),
        ("plan:nope=1", "'nope': unknown HPA setting 'nope'"),
        ("plan:tolerance.x=1", "'tolerance.x': 'tolerance' is not a group of settings"),
        # only the first "=" splits: the value "0.1=2" is not a number
        ("plan:tolerance=0.1=2", "'plan:tolerance=0.1=2': ('tolerance',): Input should be a "
         "valid number"),
        ("plan:scale_up=3", "'plan:scale_up=3': ('scale_up',): Input should be a valid "
         "dictionary"),
    ],
)
def test_setting_spec_errors_are_exact(spec: str, message: str) -> None:
    base = HPASettings(min_replicas=2, max_replicas=20, inflight_target=0.8, rps_target=8)
    with pytest.raises(ValueError) as info:
        setting_from_spec(base, spec)
    text = str(info.value)
    # whole, except where the tail is pydantic's own wording
    assert text.startswith(message) if "Input should" in message else text == message


def test_setting_spec_null_values() -> None:
    base = HPASettings(min_replicas=2, max_replicas=20, inflight_target=0.8, rps_target=8)
    assert setting_from_spec(base, "plan:rps_target=NULL").rps_target is None
    assert setting_from_spec(base, "plan: rps_target = None ").rps_target is None
    assert setting_from_spec(base, "plan").rps_target == 8

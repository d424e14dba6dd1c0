"""HPA simulation against a step load computed by hand, and against the plan."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.capacity.hpa_models import model_from_plan, preset, settings_from_plan
from harness.analysis.capacity.hpa_sim import (
    HPASettings,
    compare_settings,
    diurnal_series,
    simulate_hpa,
)
from harness.analysis.capacity.planner import CapacityInputs, operating_point_manual, plan_capacity
from harness.traces import load_arrivals, rate_series, scale_to_peak


class FixedLatencyPod:
    """100 ms per request, no queueing, 10 requests/s per pod before the SLO breaks."""

    def inflight(self, rate: np.ndarray) -> np.ndarray:
        return 0.1 * np.asarray(rate)

    def p99_ms(self, rate: np.ndarray) -> np.ndarray:
        return np.where(np.asarray(rate) <= 10.0, 50.0, 500.0)


def step_traffic() -> np.ndarray:
    t = np.arange(1500)
    return np.where((t >= 300) & (t < 900), 80.0, 16.0)


def test_step_load_matches_hand_computation() -> None:
    """Hand trace (sync 15 s, window 15 s, start-up 30 s, target 0.8 in flight = 8 rps/pod):

    t=315: 2 pods see 40 rps each -> ratio 5 -> want 10, limited to max(2x2, 2+4) = 6.
    t=330: 2 with metrics, 4 missing count 0: ratio 4*2/(0.8*6) = 1.667 -> ceil(10.0) = 10.
    t=345, 360: missing pods at 0 bring the ratio to exactly 1.0 -> hold 10; t=375: 8 rps/pod.
    Over SLO while per-pod load > 10 rps: t in [300, 360) -> 60 s.
    Load drops at 900; the 300 s down window holds 10 until every recommendation in
    (t-300, t] is 2: t = 1200 -> 2 pods (100 %/15 s allows it).
    Pod-seconds: 315*2 + 15*6 + 870*10 + 300*2 = 10,020.
    """
    s = HPASettings(min_replicas=2, max_replicas=20, inflight_target=0.8, pod_startup_s=30)
    r = simulate_hpa(step_traffic(), s, FixedLatencyPod(), slo_ms=100.0)
    assert r.replicas[314] == 2 and r.replicas[315] == 6 and r.replicas[330] == 10
    assert r.ready[344] == 2 and r.ready[345] == 6 and r.ready[360] == 10
    assert r.replicas[1199] == 10 and r.replicas[1200] == 2
    assert r.seconds_over_slo == 60
    assert r.replica_hours == pytest.approx(10_020 / 3600)
    assert r.scale_events == 3 and r.max_replicas_used == 10


def test_tolerance_and_policies() -> None:
    # 10 % tolerance: 8.7 rps/pod against 8 (ratio 1.0875) does not scale
    flat = np.full(120, 17.4)
    s = HPASettings(min_replicas=2, max_replicas=20, inflight_target=0.8, pod_startup_s=0)
    assert simulate_hpa(flat, s, FixedLatencyPod(), 100.0).replicas.max() == 2
    # a slow scale-up policy (1 pod per 60 s) delays capacity and costs SLO minutes
    slow = preset(s, "slow-scale-up")
    fast_r, slow_r = compare_settings(
        step_traffic(), {"fast": s, "slow": slow}, FixedLatencyPod(), 100.0
    )
    assert slow_r.seconds_over_slo > fast_r.seconds_over_slo
    # 60 s up window: at t=360 every recommendation in (300, 360] asks for more (the one at
    # t=300 saw the old load); then one pod per 60 s
    assert slow_r.replicas[359] == 2 and slow_r.replicas[360] == 3
    assert slow_r.replicas[419] == 3 and slow_r.replicas[420] == 4


def test_rps_guard_is_max_across_metrics() -> None:
    s = HPASettings(
        min_replicas=2, max_replicas=20, inflight_target=100.0, rps_target=8.0, pod_startup_s=30
    )
    r = simulate_hpa(step_traffic(), s, FixedLatencyPod(), 100.0)
    assert r.replicas[330] == 10  # the rps metric drives the scale-up


def test_plan_hpa_on_real_trace_keeps_slo_and_saves_replicas() -> None:
    root = __import__("pathlib").Path(__file__).resolve().parents[4]
    arrivals = load_arrivals(root / "scenarios" / "data" / "azure_llm_conv_2023.csv")
    traffic = scale_to_peak(rate_series(arrivals, 1.0), 2000.0)
    plan = plan_capacity(
        CapacityInputs(peak_qps=2000, slo_p99_ms=100, pod_ready_s=30, growth_rate_per_s=0.005),
        operating_point_manual(20, 4, p99_ms=40),
    )
    base = settings_from_plan(plan).model_copy(update={"initial_replicas": plan.replicas})
    model = model_from_plan(plan)
    results = compare_settings(
        traffic, {"plan": base, "k8s": preset(base, "k8s-default")}, model, 100.0
    )
    plan_r = results[0]
    static_hours = plan.replicas * traffic.size / 3600
    assert plan_r.replica_hours < static_hours
    assert plan_r.minutes_over_slo < 0.05 * traffic.size / 60
    assert plan_r.max_replicas_used <= plan.max_replicas


def test_diurnal_series_shape() -> None:
    d = diurnal_series(1000, 100, duration_s=86_400, peak_at_s=14 * 3600)
    assert d.max() == pytest.approx(1000) and d.min() == pytest.approx(100, abs=1e-3)
    assert int(np.argmax(d)) == 14 * 3600


def test_tolerance_band_matters_when_the_target_sits_at_the_slo() -> None:
    """rps target = rho_t x X_op puts pods exactly at the SLO's utilisation; the HPA's 10 %
    dead band lets them run hotter. Dividing the target by 1.1 removes most SLO minutes."""
    from harness.analysis.capacity.hpa_models import PRESETS

    plan = plan_capacity(
        CapacityInputs(peak_qps=2000, slo_p99_ms=100, pod_ready_s=30),
        operating_point_manual(20, 4, p99_ms=40),
    )
    base = preset(settings_from_plan(plan), "rps-only")
    traffic = diurnal_series(2000, 400, duration_s=6 * 3600, peak_at_s=3 * 3600)
    plain, margin = compare_settings(
        traffic,
        {"plain": base, "margin": preset(base, "tolerance-margin")},
        model_from_plan(plan),
        100.0,
    )
    assert margin.minutes_over_slo < plain.minutes_over_slo / 5
    assert margin.replica_hours > plain.replica_hours
    for name in PRESETS:
        preset(settings_from_plan(plan), name)
    with pytest.raises(ValueError, match="unknown HPA preset"):
        preset(base, "bogus")


def test_no_scale_down_within_the_window_after_start() -> None:
    """The controller seeds its down window with the starting count (as Kubernetes does)."""
    s = HPASettings(
        min_replicas=1, max_replicas=20, inflight_target=0.8, pod_startup_s=0, initial_replicas=10
    )
    r = simulate_hpa(np.full(600, 8.0), s, FixedLatencyPod(), 100.0)  # needs 1 pod
    assert r.replicas[299] == 10 and r.replicas[300] == 1


def test_setting_specs() -> None:
    from harness.analysis.capacity.hpa_models import setting_from_spec

    base = HPASettings(min_replicas=2, max_replicas=20, inflight_target=0.8, rps_target=8)
    s = setting_from_spec(base, "k8s-default:scale_up.stabilization_window_s=30,rps_target=none")
    assert s.scale_up.stabilization_window_s == 30 and s.rps_target is None
    assert s.scale_down.stabilization_window_s == 300
    for bad in ("plan:nope=1", "plan:tolerance=-1", "plan:scale_up=3", "plan:x"):
        with pytest.raises(ValueError):
            setting_from_spec(base, bad)


def test_settings_with_min_above_max_are_refused_by_name() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"min_replicas 5 > max_replicas 3"):
        HPASettings(min_replicas=5, max_replicas=3, inflight_target=1.0)
    assert HPASettings(min_replicas=3, max_replicas=3, inflight_target=1.0).max_replicas == 3

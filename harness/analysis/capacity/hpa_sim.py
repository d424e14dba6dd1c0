"""Replay a traffic series through the Kubernetes HPA control loop, offline.

Why: a replica count for the peak says nothing about the hours around it. Whether an HPA
with given targets, windows and policies keeps p99 within the SLO while traffic ramps — and
what it costs in replica-hours — depends on the control loop's details, so this module
follows the algorithm as Kubernetes documents it (and as `pkg/controller/podautoscaler`
implements it):

* every `sync_period_s` (15 s): per metric, ratio = average per pod / target; no change when
  |ratio - 1| <= tolerance (0.1); desired = ceil(current * ratio); pods without metrics (not
  yet ready) count as 0 on a scale-up and as the target on a scale-down, and the ratio is
  recomputed; the largest recommendation across metrics wins;
* stabilisation: the recommendation is held to the min (up) / max (down) of those made in the
  window (default 0 s up, 300 s down);
* rate policies: up by max(100 %, 4 pods) per 15 s, down by 100 % per 15 s by default; the
  change is counted from the replica count at the start of each policy's period;
* clamped to [minReplicas, maxReplicas]; new pods serve after `pod_startup_s`.

The pods' behaviour comes from a `PodLoadModel` (requests/s per ready pod -> in-flight and
p99); `harness.analysis.capacity.hpa_models` builds one, and the plan's HPA settings, from a
capacity plan. Pure and deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "HPASettings",
    "PodLoadModel",
    "ScalingPolicy",
    "ScalingRules",
    "SimResult",
    "compare_settings",
    "diurnal_series",
    "simulate_hpa",
]


class ScalingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["Pods", "Percent"]
    value: int = Field(gt=0)
    period_s: int = Field(gt=0, le=1800)


class ScalingRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    stabilization_window_s: int = Field(default=0, ge=0, le=3600)
    policies: tuple[ScalingPolicy, ...]
    select_policy: Literal["Max", "Min", "Disabled"] = "Max"


DEFAULT_UP = ScalingRules(
    stabilization_window_s=0,
    policies=(
        ScalingPolicy(type="Percent", value=100, period_s=15),
        ScalingPolicy(type="Pods", value=4, period_s=15),
    ),
)
DEFAULT_DOWN = ScalingRules(
    stabilization_window_s=300, policies=(ScalingPolicy(type="Percent", value=100, period_s=15),)
)


class HPASettings(BaseModel):
    """One HPA configuration: targets, bounds, behaviour, and the pods' start-up delay."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min_replicas: int = Field(ge=1)
    max_replicas: int = Field(ge=1)
    inflight_target: float | None = Field(default=None, gt=0)  # AverageValue per pod
    rps_target: float | None = Field(default=None, gt=0)  # AverageValue per pod
    tolerance: float = Field(default=0.1, ge=0)
    sync_period_s: int = Field(default=15, ge=1)
    pod_startup_s: int = Field(default=60, ge=0)
    metric_window_s: int = Field(default=15, ge=1)  # metrics averaged over this window
    scale_up: ScalingRules = DEFAULT_UP
    scale_down: ScalingRules = DEFAULT_DOWN
    initial_replicas: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _bounds_in_order(self) -> HPASettings:
        # Kubernetes rejects such an HPA; a simulation of one would answer nothing real
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas {self.min_replicas} > max_replicas {self.max_replicas}"
            )
        return self


class PodLoadModel(Protocol):
    """How a ready pod behaves at a given request rate (vectorised)."""

    def inflight(self, rate_per_pod: np.ndarray) -> np.ndarray: ...

    def p99_ms(self, rate_per_pod: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class SimResult:
    name: str
    t: np.ndarray  # seconds
    traffic: np.ndarray  # requests/s offered
    replicas: np.ndarray  # pods existing (ready or starting), per second
    ready: np.ndarray  # pods serving, per second
    p99_ms: np.ndarray  # predicted p99 per second (inf with no ready pod / overload)
    seconds_over_slo: int
    replica_hours: float
    max_replicas_used: int
    scale_events: int
    slo_ms: float

    @property
    def minutes_over_slo(self) -> float:
        return self.seconds_over_slo / 60.0

    def summary(self) -> dict[str, float | int | str]:
        return {
            "name": self.name,
            "minutes_over_slo": round(self.minutes_over_slo, 3),
            "replica_hours": round(self.replica_hours, 3),
            "max_replicas": self.max_replicas_used,
            "mean_replicas": round(float(self.replicas.mean()), 3),
            "scale_events": self.scale_events,
            "worst_p99_ms": float(np.max(self.p99_ms)),
        }


@dataclass(slots=True)
class _State:
    """Mutable controller state of one simulation (private; never escapes simulate_hpa)."""

    pods: list[float]  # ready_at time of each existing pod, ascending
    recommendations: list[tuple[float, int]]
    up_events: list[tuple[float, int]]
    down_events: list[tuple[float, int]]


def _metric_ratio(avg: float, target: float, ready_n: int, total: int, tol: float) -> int:
    """One metric's recommendation, with the HPA's handling of pods without metrics."""
    ratio = avg / target
    if ready_n == total:
        return total if abs(ratio - 1.0) <= tol else math.ceil(round(ratio * ready_n, 9))
    missing = total - ready_n
    if ratio > 1.0:  # scale-up: missing pods count as using 0
        new_ratio = avg * ready_n / (target * total)
    else:  # scale-down: missing pods count as using exactly the target
        new_ratio = (avg * ready_n + target * missing) / (target * total)
    if abs(new_ratio - 1.0) <= tol or (ratio > 1.0) != (new_ratio > 1.0):
        return total
    rec = math.ceil(round(new_ratio * total, 9))
    # never move against the direction of the ratio (replica_calculator.go does the same)
    return total if (new_ratio > 1.0) != (rec > total) else rec


def _changes_in_period(events: list[tuple[float, int]], now: float, period: int) -> int:
    return sum(n for ts, n in events if ts > now - period)


def _up_limit(cur: int, st: _State, rules: ScalingRules, now: float) -> int:
    if rules.select_policy == "Disabled":
        return cur
    limits = []
    for p in rules.policies:
        start = (
            cur
            - _changes_in_period(st.up_events, now, p.period_s)
            + _changes_in_period(st.down_events, now, p.period_s)
        )
        limits.append(
            start + p.value if p.type == "Pods" else math.ceil(start * (1 + p.value / 100))
        )
    return max(limits) if rules.select_policy == "Max" else min(limits)


def _down_limit(cur: int, st: _State, rules: ScalingRules, now: float) -> int:
    if rules.select_policy == "Disabled":
        return cur
    limits = []
    for p in rules.policies:
        start = (
            cur
            + _changes_in_period(st.down_events, now, p.period_s)
            - _changes_in_period(st.up_events, now, p.period_s)
        )
        limits.append(start - p.value if p.type == "Pods" else int(start * (1 - p.value / 100)))
    return min(limits) if rules.select_policy == "Max" else max(limits)


def _normalise(desired: int, cur: int, st: _State, s: HPASettings, now: float) -> int:
    """Stabilisation windows, then rate policies and min/max (as the controller does)."""
    up_rec = down_rec = desired
    for ts, rec in st.recommendations:
        if ts > now - s.scale_up.stabilization_window_s:
            up_rec = min(up_rec, rec)
        if ts > now - s.scale_down.stabilization_window_s:
            down_rec = max(down_rec, rec)
    keep = now - max(s.scale_up.stabilization_window_s, s.scale_down.stabilization_window_s)
    st.recommendations = [(ts, r) for ts, r in st.recommendations if ts > keep]
    st.recommendations.append((now, desired))
    rec = min(max(cur, up_rec), down_rec)
    if rec > cur:
        limit = max(_up_limit(cur, st, s.scale_up, now), cur)
        return min(rec, limit, s.max_replicas)
    if rec < cur:
        limit = min(_down_limit(cur, st, s.scale_down, now), cur)
        return max(rec, limit, s.min_replicas)
    return rec


def _recommend(
    t: int, s: HPASettings, model: PodLoadModel, traffic: np.ndarray, ready: np.ndarray, cur: int
) -> int:
    """Largest recommendation across metrics over the last metric window.

    Load is spread evenly over the pods ready in each second; the pods "with metrics" are
    those that served throughout the window (the fewest ready in it); the rest of the
    current replicas are missing and handled as the HPA does.
    """
    lo = max(0, t - s.metric_window_s)
    win_ready = ready[lo:t]
    ok = win_ready > 0
    if not ok.any():
        return cur  # no metrics: the HPA does not act
    with_metrics = min(int(win_ready[ok].min()), cur)
    per_pod = traffic[lo:t][ok] / win_ready[ok]
    recs = []
    if s.inflight_target is not None:
        avg = float(np.mean(model.inflight(per_pod)))
        recs.append(_metric_ratio(avg, s.inflight_target, with_metrics, cur, s.tolerance))
    if s.rps_target is not None:
        avg = float(np.mean(per_pod))
        recs.append(_metric_ratio(avg, s.rps_target, with_metrics, cur, s.tolerance))
    return max(recs) if recs else cur


def _apply(st: _State, new: int, cur: int, now: float, startup: int) -> None:
    if new > cur:
        st.pods.extend([now + startup] * (new - cur))
        st.up_events.append((now, new - cur))
    elif new < cur:
        del st.pods[new:]  # newest (least ready) pods go first
        st.down_events.append((now, cur - new))
    horizon = now - 1800
    st.up_events = [e for e in st.up_events if e[0] > horizon]
    st.down_events = [e for e in st.down_events if e[0] > horizon]


def simulate_hpa(
    traffic: np.ndarray,
    settings: HPASettings,
    model: PodLoadModel,
    slo_ms: float,
    name: str = "hpa",
) -> SimResult:
    """Replay `traffic` (requests/s, one value per second) through the HPA loop."""
    traffic = np.asarray(traffic, dtype=np.float64)
    n = traffic.size
    # a count outside [min, max] is brought inside at once (the controller does so before any
    # metric or behaviour is considered)
    init = min(
        max(settings.initial_replicas or settings.min_replicas, settings.min_replicas),
        settings.max_replicas,
    )
    # like the controller at start-up (recordInitialRecommendation), both windows begin
    # holding the current count
    recs = [(0.0, init)]
    st = _State(pods=[-math.inf] * init, recommendations=recs, up_events=[], down_events=[])
    replicas = np.zeros(n, dtype=np.int64)
    ready = np.zeros(n, dtype=np.int64)
    events = 0
    for t in range(n):
        cur = len(st.pods)
        if t > 0 and t % settings.sync_period_s == 0:
            desired = _recommend(t, settings, model, traffic, ready, cur)
            new = _normalise(desired, cur, st, settings, float(t))
            if new != cur:
                events += 1
                _apply(st, new, cur, float(t), settings.pod_startup_s)
        replicas[t] = len(st.pods)
        ready[t] = sum(1 for r in st.pods if r <= t)
    return _result(name, traffic, replicas, ready, model, slo_ms, events)


def _result(
    name: str,
    traffic: np.ndarray,
    replicas: np.ndarray,
    ready: np.ndarray,
    model: PodLoadModel,
    slo_ms: float,
    events: int,
) -> SimResult:
    p99 = np.zeros_like(traffic)
    serving = ready > 0
    busy = traffic > 0
    p99[serving & busy] = model.p99_ms(traffic[serving & busy] / ready[serving & busy])
    p99[~serving & busy] = np.inf
    return SimResult(
        name=name,
        t=np.arange(traffic.size, dtype=np.float64),
        traffic=traffic,
        replicas=replicas,
        ready=ready,
        p99_ms=p99,
        seconds_over_slo=int(np.sum(p99 > slo_ms)),
        replica_hours=float(replicas.sum()) / 3600.0,
        max_replicas_used=int(replicas.max()) if replicas.size else 0,
        scale_events=events,
        slo_ms=slo_ms,
    )


def compare_settings(
    traffic: np.ndarray,
    settings: Mapping[str, HPASettings],
    model: PodLoadModel,
    slo_ms: float,
) -> list[SimResult]:
    """The same traffic through several HPA configurations, for a side-by-side table."""
    return [simulate_hpa(traffic, s, model, slo_ms, name=k) for k, s in settings.items()]


def diurnal_series(
    peak: float,
    trough: float,
    duration_s: int = 86_400,
    period_s: int = 86_400,
    peak_at_s: int = 14 * 3600,
) -> np.ndarray:
    """A smooth day: a cosine between `trough` and `peak`, peaking at `peak_at_s`."""
    t = np.arange(duration_s, dtype=np.float64)
    phase = 2 * np.pi * (t - peak_at_s) / period_s
    return trough + (peak - trough) * (1 + np.cos(phase)) / 2

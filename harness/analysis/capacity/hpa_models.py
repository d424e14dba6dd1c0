"""Bridges a capacity plan to the HPA simulation: the pod model and the HPA settings.

Why separate from `hpa_sim`: the control loop is generic (any `PodLoadModel`, any
`HPASettings`); turning a plan into a queueing model of one pod and into the HPA that the
manifests encode is planning knowledge, shared by `harness simulate-hpa` and the manifest
writer (`manifests.py` renders the same `ScalingRules`). Pure.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import ValidationError

from harness.analysis.capacity.curves import latency_curve
from harness.analysis.capacity.hpa_sim import (
    DEFAULT_DOWN,
    DEFAULT_UP,
    HPASettings,
    ScalingPolicy,
    ScalingRules,
)
from harness.analysis.capacity.planner import CapacityPlan
from harness.analysis.capacity.queueing import erlang_c, mmc_response_quantile, mmc_wait_quantile

__all__ = [
    "PLAN_SCALE_DOWN",
    "PRESETS",
    "QueueingPodModel",
    "model_from_plan",
    "preset",
    "setting_from_spec",
    "settings_from_plan",
]


class QueueingPodModel:
    """A pod as M/M/c (c = c_op slots, mean service time from the plan).

    In-flight = rate x (service + Erlang C mean wait) (Little). p99 = the fitted latency curve
    of the sweep (p99 vs per-instance throughput) when the plan has one, else the measured p99
    at c_op plus the Erlang C waiting-time p99, else the exact M/M/c p99. Tabulated once over
    utilisation and interpolated, so calls are vectorised.
    """

    def __init__(
        self,
        c: int,
        service_s: float,
        service_p99_s: float | None = None,
        latency_curve: tuple[float, float, float] | None = None,
        grid: int = 801,
        overload_factor: float = 1000.0,
        inflight_scale: float = 1.0,
    ) -> None:
        self.c = max(1, int(c))
        self.service_s = service_s
        self.capacity = self.c / service_s  # requests/s at utilisation 1
        self.latency_curve = latency_curve
        self.overload_inflight = self.c * overload_factor
        self._rho = np.linspace(0.0, 0.999, grid)
        lam = self._rho * self.capacity
        wait_mean = np.array([_mean_wait(self.c, service_s, x) for x in lam])
        # inflight_scale < 1: part of each closed-loop cycle is spent in the load generator,
        # not at the server (OperatingPoint.server_inflight / concurrency)
        self._inflight = lam * (service_s + wait_mean) * inflight_scale
        self._p99_ms = 1000.0 * np.array(
            [
                (service_p99_s + mmc_wait_quantile(self.c, service_s, x))
                if service_p99_s
                else mmc_response_quantile(self.c, service_s, x)
                if x > 0
                else mmc_response_quantile(self.c, service_s, 1e-12)
                for x in lam
            ]
        )

    def inflight(self, rate_per_pod: np.ndarray) -> np.ndarray:
        rho = np.asarray(rate_per_pod, dtype=np.float64) / self.capacity
        out = np.interp(rho, self._rho, self._inflight)
        return np.where(rho < self._rho[-1], out, self.overload_inflight)

    def p99_ms(self, rate_per_pod: np.ndarray) -> np.ndarray:
        r = np.asarray(rate_per_pod, dtype=np.float64)
        rho = r / self.capacity
        if self.latency_curve is not None:
            out = latency_curve(r, *self.latency_curve)
        else:
            out = np.interp(rho, self._rho, self._p99_ms)
        return np.where(rho < self._rho[-1], out, np.inf)


def _mean_wait(c: int, service_s: float, lam: float) -> float:
    theta = c / service_s - lam
    return erlang_c(c, lam * service_s) / theta if theta > 0 else math.inf


def model_from_plan(plan: CapacityPlan, use_fitted_curve: bool = True) -> QueueingPodModel:
    op = plan.operating_point
    curve = None
    if use_fitted_curve and op.latency_model:
        lm = op.latency_model
        curve = (lm["a_ms"], lm["b_ms"], lm["saturation"])
    return QueueingPodModel(
        c=max(1, math.floor(op.concurrency + 1e-9)),
        service_s=op.mean_latency_s,
        service_p99_s=None if op.p99_ms is None else op.p99_ms / 1000.0,
        latency_curve=curve,
        inflight_scale=op.inflight_at_server / op.concurrency,
    )


PLAN_SCALE_DOWN = ScalingRules(
    stabilization_window_s=300,
    policies=(
        ScalingPolicy(type="Percent", value=10, period_s=60),
        ScalingPolicy(type="Pods", value=1, period_s=60),
    ),
    select_policy="Max",
)


def settings_from_plan(plan: CapacityPlan, pod_startup_s: int | None = None) -> HPASettings:
    """The HPA the manifests encode: in-flight target rho_t*c_op, rps guard rho_t*X_op,
    scale up fast (K8s default), scale down slowly (300 s window, 10 %/min)."""
    startup = (
        pod_startup_s if pod_startup_s is not None else int(plan.inputs.get("pod_ready_s", 60))
    )
    return HPASettings(
        min_replicas=plan.min_replicas,
        max_replicas=plan.max_replicas,
        inflight_target=plan.hpa_inflight_target,
        rps_target=plan.hpa_rps_target,
        pod_startup_s=startup,
        scale_up=DEFAULT_UP,
        scale_down=PLAN_SCALE_DOWN,
    )


PRESETS = (
    "plan",
    "k8s-default",
    "fast-scale-down",
    "slow-scale-up",
    "rps-only",
    "inflight-only",
    "tolerance-margin",
)


def _scaled(target: float | None, factor: float) -> float | None:
    return None if target is None else target * factor


def preset(base: HPASettings, name: str) -> HPASettings:
    """Named variations of the plan's HPA for side-by-side comparison.

    `tolerance-margin` divides both targets by (1 + tolerance): the HPA leaves a metric alone
    within +-10 % of its target, so a target placed exactly at the SLO's utilisation lets pods
    run up to 10 % hotter than planned; this variant keeps the worst case at the plan.
    """
    margin = 1.0 / (1.0 + base.tolerance)
    changes: dict[str, dict] = {
        "plan": {},
        "k8s-default": {"scale_down": DEFAULT_DOWN},
        "fast-scale-down": {
            "scale_down": ScalingRules(stabilization_window_s=30, policies=DEFAULT_DOWN.policies)
        },
        "slow-scale-up": {
            "scale_up": ScalingRules(
                stabilization_window_s=60,
                policies=(ScalingPolicy(type="Pods", value=1, period_s=60),),
            )
        },
        "rps-only": {"inflight_target": None},
        "inflight-only": {"rps_target": None},
        "tolerance-margin": {
            "inflight_target": _scaled(base.inflight_target, margin),
            "rps_target": _scaled(base.rps_target, margin),
        },
    }
    if name not in changes:
        raise ValueError(f"unknown HPA preset {name!r}; choose from {', '.join(PRESETS)}")
    return base.model_copy(update=changes[name])


def _set_path(data: dict, dotted: str, raw: str) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        if not isinstance(node.get(key), dict):
            raise ValueError(f"{dotted!r}: {key!r} is not a group of settings")
        node = node[key]
    if leaf not in node:
        raise ValueError(f"{dotted!r}: unknown HPA setting {leaf!r}")
    node[leaf] = None if raw.lower() in ("none", "null") else raw


def setting_from_spec(base: HPASettings, spec: str) -> HPASettings:
    """`PRESET[:key=value,...]`, e.g. `plan:scale_down.stabilization_window_s=60,tolerance=0.05`.

    Keys are HPASettings fields (dotted into scale_up/scale_down); values are validated by the
    same model, so a typo or an out-of-range value fails with the field named.
    """
    name, _, rest = spec.partition(":")
    settings = preset(base, name)
    if not rest:
        return settings
    data = settings.model_dump()
    for item in rest.split(","):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{spec!r}: {item!r} must look like key=value")
        _set_path(data, key.strip(), raw.strip())
    try:
        return HPASettings.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"{spec!r}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc

"""Bridges a capacity plan to the HPA simulation: the pod model and the HPA settings.

Why separate from `hpa_sim`: the control loop is generic (any `PodLoadModel`, any
`HPASettings`); turning a plan into a queueing model of one pod (`hpa_pod`) and into the
HPA that the manifests encode is planning knowledge, shared by `harness simulate-hpa` and the
manifest writer (`manifests.py` renders the same `ScalingRules`). Pure.
"""

from __future__ import annotations

from pydantic import ValidationError

from harness.analysis.capacity.hpa_pod import QueueingPodModel, pod_model
from harness.analysis.capacity.hpa_sim import (
    DEFAULT_DOWN,
    DEFAULT_UP,
    HPASettings,
    ScalingPolicy,
    ScalingRules,
)
from harness.analysis.capacity.planner import CapacityPlan

__all__ = [
    "PLAN_SCALE_DOWN",
    "PRESETS",
    "QueueingPodModel",
    "model_from_plan",
    "preset",
    "setting_from_spec",
    "settings_from_plan",
]


def model_from_plan(plan: CapacityPlan, use_fitted_curve: bool = True) -> QueueingPodModel:
    """The pod model of the plan's operating point (`hpa_pod.pod_model`)."""
    return pod_model(plan.operating_point, use_fitted_curve)


PLAN_SCALE_DOWN = ScalingRules(
    stabilization_window_s=300,
    policies=(
        ScalingPolicy(type="Percent", value=10, period_s=60),
        ScalingPolicy(type="Pods", value=1, period_s=60),
    ),
    select_policy="Max",
)


def settings_from_plan(plan: CapacityPlan, pod_startup_s: int | None = None) -> HPASettings:
    """The HPA the manifests encode: the plan's per-pod targets (one pod's load at the planned
    count), scale up fast (K8s default), scale down slowly (300 s window, 10 %/min)."""
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

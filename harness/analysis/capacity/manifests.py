"""Kubernetes manifests for a capacity plan, validated offline against the real schemas.

Why: the plan is only useful if what gets deployed encodes it. The HPA's primary metric is
in-flight requests per pod, a requests/s per pod guard beside it (the HPA takes the larger
recommendation); both targets are one pod's load at the planned count, so the HPA's own rule
ceil(pods x current / target) settles on the plan's replicas at peak, headroom and redundancy
included (`planner`, step 6). CPU is
not a metric for a GPU server (the host CPU idles while the GPU saturates). Scale-up is fast,
scale-down slow, with the same `ScalingRules` the HPA simulation replays.

No cluster runs here, so every document is checked with `kubernetes_validate` in STRICT mode
(unknown fields fail) for a stated Kubernetes version. Builders return plain dicts; only
Pure: documents in memory; `harness.plan.write_manifests` writes them.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import yaml
from pydantic import BaseModel, ConfigDict, Field

from harness.analysis.capacity.hpa_models import settings_from_plan
from harness.analysis.capacity.hpa_sim import HPASettings, ScalingRules
from harness.analysis.capacity.planner import CapacityPlan
from harness.errors import ConfigError

__all__ = [
    "DEFAULT_K8S_VERSION",
    "DeploymentOptions",
    "build_deployment",
    "build_hpa",
    "build_manifests",
    "build_pdb",
    "build_service",
    "supported_k8s_versions",
    "to_yaml",
    "validate_manifest",
]

DEFAULT_K8S_VERSION = "1.30"
LIVE_PATH = "/v2/health/live"
READY_PATH = "/v2/health/ready"


class DeploymentOptions(BaseModel):
    """What the plan does not know about the deployment; defaults fit the reference server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="reference-server", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    namespace: str = "default"
    image: str = "serving-harness/reference-server:0.1.0"
    gpu: bool = False
    gpus_per_pod: int = Field(default=1, ge=1)
    cpu_request: str = "2"
    cpu_limit: str = "4"
    memory_request: str = "2Gi"
    memory_limit: str = "4Gi"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    inflight_metric: str = "inflight_requests"
    rps_metric: str = "inference_requests_per_second"
    zone_spread: bool = False  # topologySpreadConstraints over zones (failure domains)


def _labels(o: DeploymentOptions) -> dict[str, str]:
    return {"app.kubernetes.io/name": o.name, "app.kubernetes.io/part-of": "serving-harness"}


def _probe(path: str, period: int, failures: int, delay: int = 0) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "initialDelaySeconds": delay,
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _resources(o: DeploymentOptions) -> dict[str, Any]:
    res: dict[str, Any] = {
        "requests": {"cpu": o.cpu_request, "memory": o.memory_request},
        "limits": {"cpu": o.cpu_limit, "memory": o.memory_limit},
    }
    if o.gpu:  # extended resources: requests default to the limit
        res["limits"]["nvidia.com/gpu"] = str(o.gpus_per_pod)
    return res


def _container(o: DeploymentOptions) -> dict[str, Any]:
    return {
        "name": "server",
        "image": o.image,
        "args": [
            "--host",
            "0.0.0.0",
            "--model-repository",
            "/models",
            "--http-port",
            str(o.http_port),
            "--grpc-port",
            str(o.grpc_port),
            "--metrics-port",
            str(o.metrics_port),
            "--device",
            "cuda" if o.gpu else "cpu",
        ],
        "ports": [
            {"name": "http", "containerPort": o.http_port, "protocol": "TCP"},
            {"name": "grpc", "containerPort": o.grpc_port, "protocol": "TCP"},
            {"name": "metrics", "containerPort": o.metrics_port, "protocol": "TCP"},
        ],
        "env": [{"name": "HOME", "value": "/tmp"}],
        "resources": _resources(o),
        "startupProbe": _probe(READY_PATH, period=2, failures=60),
        "livenessProbe": _probe(LIVE_PATH, period=10, failures=3),
        "readinessProbe": _probe(READY_PATH, period=5, failures=2),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def _pod_spec(o: DeploymentOptions) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": 30,
        "containers": [_container(o)],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    if o.gpu:
        spec["tolerations"] = [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    if o.zone_spread:
        spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": _labels(o)},
            }
        ]
    return spec


def build_deployment(plan: CapacityPlan, o: DeploymentOptions) -> dict[str, Any]:
    """Deployment starting at the plan's min_replicas (the HPA owns the count after that)."""
    pod_spec = _pod_spec(o)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": o.name,
            "namespace": o.namespace,
            "labels": _labels(o),
            "annotations": {"serving-harness/planned-replicas": str(plan.replicas)},
        },
        "spec": {
            "replicas": plan.min_replicas,
            "selector": {"matchLabels": _labels(o)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": _labels(o),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(o.metrics_port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": pod_spec,
            },
        },
    }


def build_service(o: DeploymentOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": o.name, "namespace": o.namespace, "labels": _labels(o)},
        "spec": {
            "type": "ClusterIP",
            "selector": _labels(o),
            "ports": [
                {"name": n, "port": p, "targetPort": n, "protocol": "TCP"}
                for n, p in (
                    ("http", o.http_port),
                    ("grpc", o.grpc_port),
                    ("metrics", o.metrics_port),
                )
            ],
        },
    }


def quantity(value: float) -> str:
    """A Kubernetes quantity in milli-units (exact, no float formatting surprises)."""
    milli = max(1, round(value * 1000))
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def _rules(r: ScalingRules) -> dict[str, Any]:
    return {
        "stabilizationWindowSeconds": r.stabilization_window_s,
        "selectPolicy": r.select_policy,
        "policies": [
            {"type": p.type, "value": p.value, "periodSeconds": p.period_s} for p in r.policies
        ],
    }


def _pods_metric(name: str, target: float) -> dict[str, Any]:
    return {
        "type": "Pods",
        "pods": {
            "metric": {"name": name},
            "target": {"type": "AverageValue", "averageValue": quantity(target)},
        },
    }


def build_hpa(
    plan: CapacityPlan, o: DeploymentOptions, settings: HPASettings | None = None
) -> dict[str, Any]:
    s = settings or settings_from_plan(plan)
    metrics = []
    if s.inflight_target is not None:
        metrics.append(_pods_metric(o.inflight_metric, s.inflight_target))
    if s.rps_target is not None:
        metrics.append(_pods_metric(o.rps_metric, s.rps_target))
    if not metrics:
        raise ConfigError("an HPA needs at least one metric target")
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": o.name, "namespace": o.namespace, "labels": _labels(o)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": o.name},
            "minReplicas": s.min_replicas,
            "maxReplicas": s.max_replicas,
            "metrics": metrics,
            "behavior": {"scaleUp": _rules(s.scale_up), "scaleDown": _rules(s.scale_down)},
        },
    }


def build_pdb(plan: CapacityPlan, o: DeploymentOptions) -> dict[str, Any]:
    """Voluntary disruptions may take at most the redundancy the plan paid for (>= 1)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": o.name, "namespace": o.namespace, "labels": _labels(o)},
        "spec": {
            "maxUnavailable": max(1, int(plan.inputs.get("redundancy", 0))),
            "selector": {"matchLabels": _labels(o)},
        },
    }


def build_manifests(plan: CapacityPlan, o: DeploymentOptions) -> dict[str, dict[str, Any]]:
    """file stem -> document, in apply order."""
    return {
        "deployment": build_deployment(plan, o),
        "service": build_service(o),
        "hpa": build_hpa(plan, o),
        "pdb": build_pdb(plan, o),
    }


def supported_k8s_versions() -> list[str]:
    """Kubernetes minor versions whose schemas the installed kubernetes-validate ships."""
    seen: dict[str, None] = {}
    for v in kubernetes_validate.utils.all_versions():
        seen[kubernetes_validate.utils.major_minor(v)] = None
    return list(seen)


def validate_manifest(doc: dict[str, Any], k8s_version: str = DEFAULT_K8S_VERSION) -> str:
    """Strict schema validation; returns the schema version used, raises ConfigError."""
    try:
        return kubernetes_validate.validate(doc, k8s_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.path) or "(root)"
        raise ConfigError(
            f"{doc.get('kind', '?')} {doc.get('metadata', {}).get('name', '?')}: invalid for "
            f"Kubernetes {k8s_version} at {path}: {exc.message}"
        ) from exc
    except kubernetes_validate.SchemaNotFoundError as exc:
        raise ConfigError(f"no schema: {exc}") from exc
    except kubernetes_validate.utils.VersionNotSupportedError as exc:
        raise ConfigError(
            f"Kubernetes {k8s_version} is not supported by kubernetes-validate "
            f"(known: {', '.join(supported_k8s_versions())})"
        ) from exc


def to_yaml(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)

"""Kubernetes manifests for one distributed run: `harness k8s-job SCENARIO --workers N`.

    ConfigMap  harness-<name>-scenario   the scenario, validated, with --set overrides applied
    Service    harness-<name>-master     the Locust master's port (5557) for the workers
    Job        harness-<name>-master     `harness run /config/scenario.yaml --workers-external N
                                          --master-bind 0.0.0.0:5557 --out /results`
    Job        harness-<name>-workers    N pods of `harness worker --master <service>:5557`

Same image everywhere (deploy/Dockerfile installs the whole package). The run spec proper
(target resolved and checked ready, seed fixed) is resolved by the master inside the cluster
and sent to the workers over Locust's messaging: nothing is shared but the network. The run
directory stays on the master pod's `/results` volume; after the run the master waits (at most
`collect_s`) for `/results/.collected`, so it can be copied out:

    kubectl cp <master-pod>:/results ./results
    kubectl exec <master-pod> -- touch /results/.collected

The Job's exit status is `harness run`'s. Every document is checked strictly against the
Kubernetes schemas (`validate_manifest`, kubernetes-validate, as the capacity manifests).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

import yaml

from harness.analysis.capacity.manifests import DEFAULT_K8S_VERSION, validate_manifest
from harness.config import Scenario
from harness.errors import ConfigError

MASTER_PORT = 5557
CONFIG_DIR, RESULTS_DIR = "/config", "/results"
DEFAULT_IMAGE = "serving-harness/reference-server:0.1.0"


@dataclass(frozen=True, slots=True)
class JobOptions:
    workers: int
    image: str = DEFAULT_IMAGE
    namespace: str | None = None
    cpu: str = "1"  # per worker pod: one Locust process holds one core
    memory: str = "1Gi"
    wait_s: int = 300  # how long the master waits for every worker
    collect_s: int = 600  # how long the master pod keeps /results for `kubectl cp`
    k8s_version: str = DEFAULT_K8S_VERSION

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"--workers {self.workers}: must be at least 1")


def _name(scenario: Scenario) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", scenario.name.lower()).strip("-")[:40].strip("-")
    return f"harness-{slug or 'run'}"


def _meta(name: str, o: JobOptions, component: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": _labels(name, component)}
    if o.namespace:
        meta["namespace"] = o.namespace
    return meta


def _labels(name: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component}


def _pod(name: str, o: JobOptions, container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"labels": _labels(name, container["name"])},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }


def _resources(o: JobOptions) -> dict[str, Any]:
    amount = {"cpu": o.cpu, "memory": o.memory}
    return {"requests": dict(amount), "limits": dict(amount)}


def build_config_map(scenario: Scenario, o: JobOptions) -> dict[str, Any]:
    text = yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)
    name = f"{_name(scenario)}-scenario"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(name, o, "scenario"),
        "data": {"scenario.yaml": text},
    }


def build_service(scenario: Scenario, o: JobOptions) -> dict[str, Any]:
    name = _name(scenario)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(f"{name}-master", o, "master"),
        "spec": {
            "selector": _labels(name, "master"),
            "ports": [{"name": "locust", "port": MASTER_PORT, "targetPort": MASTER_PORT}],
        },
    }


def master_command(scenario: Scenario, o: JobOptions) -> str:
    run = [
        "harness", "run", f"{CONFIG_DIR}/scenario.yaml", "--out", RESULTS_DIR,
        "--run-id", _name(scenario), "--no-progress",
        "--workers-external", str(o.workers), "--master-bind", f"0.0.0.0:{MASTER_PORT}",
        "--workers-wait", str(o.wait_s),
    ]  # fmt: skip
    wait = f"until [ -f {RESULTS_DIR}/.collected ]; do sleep 2; done"
    return (
        f"{shlex.join(run)}; code=$?; "
        f'echo "harness run exited $code; copy {RESULTS_DIR} now (kubectl cp)"; '
        f"timeout {o.collect_s} sh -c {shlex.quote(wait)}; exit $code"
    )


def build_master_job(scenario: Scenario, o: JobOptions) -> dict[str, Any]:
    name = _name(scenario)
    container = {
        "name": "master",
        "image": o.image,
        "command": ["sh", "-c", master_command(scenario, o)],
        "ports": [{"name": "locust", "containerPort": MASTER_PORT}],
        "volumeMounts": [
            {"name": "scenario", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "results", "mountPath": RESULTS_DIR},
        ],
        "resources": _resources(o),
    }
    volumes = [
        {"name": "scenario", "configMap": {"name": f"{name}-scenario"}},
        {"name": "results", "emptyDir": {}},
    ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(f"{name}-master", o, "master"),
        "spec": {"backoffLimit": 0, "template": _pod(name, o, container, volumes=volumes)},
    }


def build_worker_job(scenario: Scenario, o: JobOptions) -> dict[str, Any]:
    name = _name(scenario)
    master = f"{name}-master:{MASTER_PORT}"
    container = {
        "name": "worker",
        "image": o.image,
        "command": ["harness", "worker", "--master", master, "--wait", str(o.wait_s)],
        "resources": _resources(o),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(f"{name}-workers", o, "worker"),
        "spec": {
            "parallelism": o.workers,
            "completions": o.workers,
            "backoffLimit": 0,  # a lost worker fails the run (exit 3), it is not replaced
            "template": _pod(name, o, container),
        },
    }


def build_job_manifests(scenario: Scenario, o: JobOptions) -> dict[str, dict[str, Any]]:
    """File name -> document, each validated strictly (ConfigError names what is wrong)."""
    docs = {
        "configmap.yaml": build_config_map(scenario, o),
        "master-service.yaml": build_service(scenario, o),
        "master-job.yaml": build_master_job(scenario, o),
        "worker-job.yaml": build_worker_job(scenario, o),
    }
    for doc in docs.values():
        validate_manifest(doc, o.k8s_version)
    return docs

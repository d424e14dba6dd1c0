"""Manifests pass strict schema validation; a broken one fails (the validator is real)."""

from __future__ import annotations

import copy
import math

import kubernetes_validate
import numpy as np
import pytest
import yaml

from harness.analysis.capacity.hpa_models import model_from_plan
from harness.analysis.capacity.manifests import (
    DEFAULT_K8S_VERSION,
    DeploymentOptions,
    build_manifests,
    quantity,
    supported_k8s_versions,
    to_yaml,
    validate_manifest,
)
from harness.analysis.capacity.planner import CapacityInputs, operating_point_manual, plan_capacity
from harness.errors import ConfigError
from harness.plan import write_manifests
from tests.torn_writes import failing_replace, listing, torn_writes


@pytest.fixture(scope="module")
def plan():
    return plan_capacity(
        CapacityInputs(peak_qps=2000, slo_p99_ms=100, redundancy=1),
        operating_point_manual(20, 4, p99_ms=40),
    )


@pytest.mark.parametrize("gpu", [False, True])
@pytest.mark.parametrize("version", ["1.25", DEFAULT_K8S_VERSION, "1.33"])
def test_manifests_validate_strictly(plan, gpu: bool, version: str) -> None:
    docs = build_manifests(plan, DeploymentOptions(gpu=gpu, zone_spread=True))
    for doc in docs.values():
        assert validate_manifest(doc, version) == version
    container = docs["deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert ("nvidia.com/gpu" in container["resources"]["limits"]) is gpu


def test_hpa_encodes_the_plan(plan) -> None:
    hpa = build_manifests(plan, DeploymentOptions(gpu=True))["hpa"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (plan.min_replicas, plan.max_replicas)
    inflight, rps = hpa["metrics"]
    assert inflight["type"] == "Pods" and inflight["pods"]["metric"]["name"] == "inflight_requests"
    assert inflight["pods"]["target"]["averageValue"] == quantity(plan.hpa_inflight_target)
    assert rps["pods"]["target"]["averageValue"] == quantity(plan.hpa_rps_target)
    assert all(m["type"] != "Resource" for m in hpa["metrics"])  # no CPU metric on GPU
    up, down = hpa["behavior"]["scaleUp"], hpa["behavior"]["scaleDown"]
    assert up["stabilizationWindowSeconds"] == 0
    assert down["stabilizationWindowSeconds"] == 300
    # the HPA rule at peak lands on the planned count (redundancy included): requests/s
    # ceil(2000 / (2000 / 16)) = 16; in flight, the pod model's reading at 2000 / 16 per pod
    assert plan.replicas == 16 and rps["pods"]["target"]["averageValue"] == "125"
    target_milli = int(inflight["pods"]["target"]["averageValue"].rstrip("m"))
    reading = model_from_plan(plan).inflight(np.array([2000 / 16]))[0]
    assert math.ceil(round(16 * reading / (target_milli / 1000), 2)) == 16
    # a server whose in-flight is Little's at the measured 20 ms reads less than the target:
    # that metric never asks for more than the plan at peak (the rps metric holds it there)
    assert math.ceil(2000 * 0.020 / (target_milli / 1000)) <= 16


def test_broken_manifest_fails_strict_but_not_lax(plan) -> None:
    hpa = build_manifests(plan, DeploymentOptions())["hpa"]
    broken = copy.deepcopy(hpa)
    broken["spec"]["metrics"][0]["pods"]["target"]["averagValue"] = "1"  # typo'd field
    with pytest.raises(ConfigError, match="averagValue"):
        validate_manifest(broken)
    # without strict mode the same typo passes: strictness is what catches it
    kubernetes_validate.validate(broken, DEFAULT_K8S_VERSION, strict=False)
    wrong_type = copy.deepcopy(hpa)
    wrong_type["spec"]["minReplicas"] = "two"
    with pytest.raises(ConfigError, match="minReplicas"):
        validate_manifest(wrong_type)


def test_write_manifests_atomic_and_all_or_nothing(plan, tmp_path) -> None:
    docs = build_manifests(plan, DeploymentOptions())
    paths = write_manifests(docs, tmp_path / "k8s")
    assert sorted(p.name for p in paths) == [
        "deployment.yaml",
        "hpa.yaml",
        "pdb.yaml",
        "service.yaml",
    ]
    assert yaml.safe_load(paths[0].read_text()) == docs["deployment"]
    bad = dict(docs, service={**docs["service"], "spec": {"bogus": 1}})
    with pytest.raises(ConfigError):
        write_manifests(bad, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("fault", [torn_writes, failing_replace])
def test_a_rewrite_that_fails_mid_write_keeps_the_old_manifests(
    plan, tmp_path, monkeypatch, fault
) -> None:
    """Half of a write reached the disk (then ENOSPC), or the rename failed: every old
    manifest is still whole and no temp file is left in the folder."""
    out = tmp_path / "k8s"
    write_manifests(build_manifests(plan, DeploymentOptions()), out)
    before = {name: (out / name).read_bytes() for name in listing(out)}
    changed = build_manifests(plan, DeploymentOptions(gpu=True, zone_spread=True))
    assert to_yaml(changed["deployment"]).encode() != before["deployment.yaml"]
    with pytest.raises(OSError, match="injected"), fault(monkeypatch):
        write_manifests(changed, out)
    assert {name: (out / name).read_bytes() for name in listing(out)} == before


def test_versions_and_quantities() -> None:
    assert DEFAULT_K8S_VERSION in supported_k8s_versions()
    with pytest.raises(ConfigError, match="not supported"):
        validate_manifest({"apiVersion": "v1", "kind": "Service"}, "1.99")
    assert quantity(2.0) == "2" and quantity(2.7596) == "2760m" and quantity(0.0001) == "1m"

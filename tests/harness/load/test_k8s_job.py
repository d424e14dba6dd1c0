"""`harness k8s-job`: the manifests validate strictly and run the same image as master/worker."""

from __future__ import annotations

import copy
import shlex

import kubernetes_validate
import pytest
import yaml

from harness.config import validate_scenario
from harness.load.k8s_job import JobOptions, build_job_manifests

SCENARIO = validate_scenario(
    {
        "name": "Big_Run.v2",
        "target": {"url": "http://127.0.0.1:8000", "protocol": "kserve-http", "model": "m"},
        "load": {"mode": "open", "rate": 100, "duration": 10},
    },
    "test",
)


def test_manifests_validate_strictly_and_wire_master_and_workers() -> None:
    docs = build_job_manifests(SCENARIO, JobOptions(workers=3, image="img:1", namespace="load"))
    for doc in docs.values():  # independently of the builder's own check
        kubernetes_validate.validate(doc, "1.30", strict=True)
        assert doc["metadata"]["namespace"] == "load"
    master, workers = docs["master-job.yaml"], docs["worker-job.yaml"]
    (m,) = master["spec"]["template"]["spec"]["containers"]
    (w,) = workers["spec"]["template"]["spec"]["containers"]
    assert m["image"] == w["image"] == "img:1"
    run = shlex.split(m["command"][2].split(";")[0])
    assert run[:3] == ["harness", "run", "/config/scenario.yaml"]
    assert run[run.index("--workers-external") + 1] == "3"
    assert run[run.index("--master-bind") + 1] == "0.0.0.0:5557"
    assert w["command"][:4] == ["harness", "worker", "--master", "harness-big-run-v2-master:5557"]
    assert workers["spec"]["parallelism"] == workers["spec"]["completions"] == 3
    service = docs["master-service.yaml"]
    assert service["metadata"]["name"] == "harness-big-run-v2-master"
    assert service["spec"]["selector"] == master["spec"]["template"]["metadata"]["labels"]
    scenario = yaml.safe_load(docs["configmap.yaml"]["data"]["scenario.yaml"])
    assert validate_scenario(scenario, "configmap") == SCENARIO
    assert {"name": "scenario", "configMap": {"name": "harness-big-run-v2-scenario"}} in (
        master["spec"]["template"]["spec"]["volumes"]
    )


def test_a_broken_document_fails_strict_validation() -> None:
    doc = copy.deepcopy(build_job_manifests(SCENARIO, JobOptions(workers=1))["worker-job.yaml"])
    doc["spec"]["template"]["spec"]["containers"][0]["comand"] = ["x"]
    kubernetes_validate.validate(doc, "1.30", strict=False)  # lax mode lets it through
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, "1.30", strict=True)

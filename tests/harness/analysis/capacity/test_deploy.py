"""deploy/: every example manifest validates strictly; image, probes and plan agree."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
import yaml

from harness.analysis.capacity.manifests import (
    DEFAULT_K8S_VERSION,
    DeploymentOptions,
    build_manifests,
    validate_manifest,
)
from harness.analysis.capacity.planner import CapacityPlan

DEPLOY = Path(__file__).resolve().parents[4] / "deploy"
DOCKERFILE = (DEPLOY / "Dockerfile").read_text()


def all_docs() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted((DEPLOY / "k8s").rglob("*.yaml")):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            docs.append((f"{path.relative_to(DEPLOY)}#{i}", doc))
    return docs


@pytest.mark.parametrize("name,doc", all_docs(), ids=[n for n, _ in all_docs()])
def test_example_manifest_is_valid(name: str, doc: dict) -> None:
    assert validate_manifest(doc, DEFAULT_K8S_VERSION) == DEFAULT_K8S_VERSION


def test_locust_topology() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for _, d in all_docs()}
    assert {
        ("Deployment", "locust-master"),
        ("Deployment", "locust-worker"),
        ("Service", "locust-master"),
    } <= kinds


def test_reference_manifests_are_the_plans_output() -> None:
    """The checked-in manifests are exactly what `harness plan` makes of plan.json."""
    ref = DEPLOY / "k8s" / "reference"
    data = json.loads((ref / "plan.json").read_text())
    plan = CapacityPlan.from_dict(
        {k: v for k, v in data.items() if k in CapacityPlan.__slots__ or k == "schema_version"}
    )
    regenerated = build_manifests(plan, DeploymentOptions(**data["deployment"]))
    for stem, doc in regenerated.items():
        assert yaml.safe_load((ref / f"{stem}.yaml").read_text()) == doc


def test_dockerfile_matches_manifests() -> None:
    dep = yaml.safe_load((DEPLOY / "k8s" / "reference" / "deployment.yaml").read_text())
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] in DOCKERFILE  # HEALTHCHECK route
    assert "/v2/health/ready" in DOCKERFILE
    exposed = {
        int(p) for line in re.findall(r"^EXPOSE (.+)$", DOCKERFILE, re.M) for p in line.split()
    }
    assert {p["containerPort"] for p in container["ports"]} <= exposed
    assert re.search(r"^USER 10001", DOCKERFILE, re.M)  # non-root, as runAsUser in the pod
    assert dep["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001
    assert "python -m reference_server.models.build /models" in DOCKERFILE
    assert re.search(r"^FROM .* AS gpu$", DOCKERFILE, re.M)
    assert "slim" in DOCKERFILE


def test_image_and_manifest_arguments_parse_as_server_options() -> None:
    """The CMD of both image stages and the Deployment's args are real server options."""
    from reference_server.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for cmd in re.findall(r"^CMD (\[.*\])$", DOCKERFILE, re.M):
        args = parser.parse_args(json.loads(cmd))
        assert args.model_repository == "/models" and args.host == "0.0.0.0"
    dep = yaml.safe_load((DEPLOY / "k8s" / "reference" / "deployment.yaml").read_text())
    args = parser.parse_args(dep["spec"]["template"]["spec"]["containers"][0]["args"])
    assert args.device == "cuda" and args.http_port == 8000

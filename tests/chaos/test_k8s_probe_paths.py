"""The reference Deployment's probes and the server agree on what a lost GPU means.

Kubernetes does not evict a pod whose GPU is lost (kubernetes #60388, #79228), so the pod's
own probes must turn the server's device-loss state into traffic leaving it: with policy
`unready` the readiness path must answer non-200 (the Service drops the pod) while the
liveness path stays 200 (no restart loop on a node whose GPU is gone); with `cpu-fallback`
both stay 200 (the pod keeps serving, degraded). The paths and the port are read from
deploy/k8s/reference/deployment.yaml and asked of a real reference server.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness.stack.server_process import ServerProcess, rest_call

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
TOKEN = "probe-paths"


def container() -> dict:
    docs = yaml.safe_load_all((REPO / "deploy/k8s/reference/deployment.yaml").read_text())
    deployment = next(d for d in docs if d and d["kind"] == "Deployment")
    return deployment["spec"]["template"]["spec"]["containers"][0]


def probe_path(kind: str) -> str:
    get = container()[kind]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    args = container()["args"]
    # the probe's named port is the one the server's --http-port serves
    assert ports[get["port"]] == int(args[args.index("--http-port") + 1])
    return get["path"]


@pytest.fixture(scope="module")
def server(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("probe-paths") / "server.log"
    args = ["--model-repository", str(model_repository), "--device", "cpu"]
    env = dict(os.environ, HARNESS_ADMIN_TOKEN=TOKEN)
    proc = ServerProcess.start(log, extra_args=args, env=env, ready_timeout_s=60)
    try:
        yield proc.http_url
    finally:
        proc.stop(grace_s=5)


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def with_fault(base: str, policy: str) -> tuple[int, int, int]:
    """(readiness, liveness, startup) statuses while a device_loss fault is on."""
    spec = {"type": "device_loss", "policy": policy, "duration_s": 60}
    rest_call("POST", base + "/admin/faults", spec, token=TOKEN, expect=(201,))
    try:
        return tuple(status(base + probe_path(k)) for k in  # type: ignore[return-value]
                     ("readinessProbe", "livenessProbe", "startupProbe"))  # fmt: skip
    finally:
        rest_call("DELETE", base + "/admin/faults", token=TOKEN)


def test_the_probe_paths_are_the_kserve_health_routes():
    assert probe_path("readinessProbe") == "/v2/health/ready"
    assert probe_path("livenessProbe") == "/v2/health/live"


def test_device_loss_unready_fails_readiness_not_liveness(server: str):
    assert with_fault(server, "unready")[:2] == (503, 200)
    assert status(server + probe_path("readinessProbe")) == 200  # back once cleared


def test_cpu_fallback_keeps_the_pod_ready_and_says_degraded(server: str):
    spec = {"type": "device_loss", "policy": "cpu-fallback", "duration_s": 60}
    rest_call("POST", server + "/admin/faults", spec, token=TOKEN, expect=(201,))
    try:
        assert status(server + probe_path("readinessProbe")) == 200
        assert status(server + probe_path("livenessProbe")) == 200
        with urllib.request.urlopen(server + "/v2", timeout=5) as resp:
            assert json.loads(resp.read())["degraded"] is True
    finally:
        rest_call("DELETE", server + "/admin/faults", token=TOKEN)

"""The HPA's two Pods metrics, proven: a real Prometheus scrapes a real 2-replica stack under a
known open load, and every Prometheus Adapter rule of deploy/k8s/monitoring is evaluated as
the adapter evaluates it (`<<.Series>>`, `<<.LabelMatchers>>` = namespace + pod regex,
`<<.GroupBy>>` = pod).

Known load: 100 requests/s (constant arrivals) through nginx; every request is held 20 ms by a
latency fault on both replicas, so the server's time per request is known and dominates.
Expected values come from elsewhere than the metric under test: the offered rate (the
schedule), the run's own client-side mean latency (HDR histograms) and Triton's request-
duration counter. Little's law: in flight per pod = that pod's rate x mean latency.

The rules' 1-minute window needs 60 s of steady load; a test must stay under 60 s, so the
rules are evaluated with a 15 s window (`AdapterRule.with_window`, the only change), at an
instant whose whole window lies inside the load.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from harness.load.api import run_scenario
from harness.monitor import LOCAL_NAMESPACE, PromClient, evaluate_rule, load_rules
from harness.stack.local import LocalStack
from tests.integration.run_helpers import scenario

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed"),
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus is not installed"),
]
RULES = Path(__file__).parents[2] / "deploy/k8s/monitoring/prometheus-adapter-rules.yaml"
TOKEN = "monitoring-test-token"
RATE, HOLD_MS, DURATION_S = 100.0, 20, 24
WINDOW_S = 15


def _add_latency(http_url: str) -> None:
    body = json.dumps({"type": "latency", "fixed_ms": HOLD_MS}).encode()
    request = urllib.request.Request(
        f"{http_url}/admin/faults",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 201


def test_adapter_rules_give_per_pod_rate_and_littles_law_inflight(
    tmp_path: Path, model_repository: Path
) -> None:
    stack = LocalStack(
        replicas=2, model_repository=model_repository, device="cpu", admin_token=TOKEN,
        workdir=tmp_path / "stack", monitor=True,
    )  # fmt: skip
    with stack:
        for replica in stack.replicas:
            _add_latency(replica.http_url)
        client = PromClient(stack.prometheus_url)
        client.wait_for_targets(2)
        sc = scenario(
            stack.url,
            {"mode": "open", "arrival": "constant", "rate": RATE, "duration": f"{DURATION_S}s"},
            target={"url": stack.url, "protocol": "kserve-http", "model": "digits",
                    "version": "1"},
        )  # fmt: skip
        outcome = run_scenario(sc, tmp_path / "results", show_progress=False)
        epoch = json.loads((outcome.run_dir / "stream" / "start.json").read_text())["epoch"]
        at = epoch + DURATION_S - 2  # the window [at - 15 s, at] lies inside the load
        pods = ["replica-0", "replica-1"]
        rules = {
            result.metric: result
            for rule in load_rules(RULES)
            for result in evaluate_rule(
                client, rule.with_window(f"{WINDOW_S}s"), LOCAL_NAMESPACE, pods, at
            )
        }
        duration_per_pod = {
            s.labels["pod"]: s.value / 1e6
            for s in client.query(
                f"sum(rate(nv_inference_request_duration_us[{WINDOW_S}s])) by (pod)", at
            )
        }
    summary = outcome.summary
    assert summary["failures"] == 0
    assert set(rules) == {"inflight_requests", "inference_requests_per_second"}
    rps = rules["inference_requests_per_second"].per_pod
    inflight = rules["inflight_requests"].per_pod
    assert set(rps) == set(inflight) == set(pods)
    assert 'namespace="local",pod=~"replica-0|replica-1"' in rules["inflight_requests"].query
    # requests/s per pod sum to the offered rate (constant arrivals: exactly 100/s) within 10 %
    assert sum(rps.values()) == pytest.approx(RATE, rel=0.10)
    mean_s = summary["latency_ms"]["mean"] / 1000.0  # client side, from the intended start
    assert HOLD_MS / 1000 <= mean_s < 2 * HOLD_MS / 1000
    for pod in pods:
        assert rps[pod] > 0.2 * RATE, rps  # nginx sent each replica a share
        # Little's law with the run's own mean latency (client side: + nginx, HTTP)
        assert inflight[pod] == pytest.approx(rps[pod] * mean_s, rel=0.20), (pod, inflight)
        # and with Triton's duration counter (server side, counted as requests finish)
        assert inflight[pod] == pytest.approx(duration_per_pod[pod], rel=0.05)
    print(f"per pod: rps {rps}, in flight {inflight}, rate x mean {mean_s:.4f} s, "
          f"Triton duration rate {duration_per_pod}")  # fmt: skip

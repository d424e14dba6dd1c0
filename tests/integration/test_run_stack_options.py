"""What a scenario's `stack:` section asks of a run's local stack. `monitor: true`: a
Prometheus that scrapes every replica, the user is told its URL, and it stops with the stack.
`workers: N`: N server processes per replica."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import psutil
import pytest

from harness.config import validate_scenario
from harness.load.runner import target_for
from tests.integration.cli_helpers import wait_for

pytestmark = pytest.mark.integration


def test_a_monitored_stack_is_scraped_and_stopped(
    model_repository: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    scenario = validate_scenario({
        "name": "monitored",
        "target": {"url": "http://127.0.0.1:9", "protocol": "kserve-http", "model": "mlp"},
        "stack": {"local": True, "replicas": 2, "device": "cpu", "monitor": True,
                  "model_repository": str(model_repository)},
        "load": {"mode": "open", "rate": 10, "duration": "5s"},
    }, "test")  # fmt: skip
    with target_for(scenario, tmp_path) as target:
        printed = capsys.readouterr().err
        assert printed.startswith("Prometheus for this run's stack: http://127.0.0.1:")
        url = printed.split(": ", 1)[1].strip()
        def ours(proc: psutil.Process) -> bool:
            cmdline = " ".join(proc.info["cmdline"] or [])
            return "prometheus" in cmdline and str(tmp_path) in cmdline

        prometheus = [p for p in psutil.process_iter(["cmdline"]) if ours(p)]
        assert len(prometheus) == 1

        def replicas_up() -> bool:
            with urllib.request.urlopen(f"{url}/api/v1/targets", timeout=5) as resp:
                active = json.load(resp)["data"]["activeTargets"]
            return sum(t["health"] == "up" for t in active) >= len(target.metrics_urls) == 2

        wait_for(replicas_up, timeout_s=30, what="Prometheus scraping both replicas")
    assert not prometheus[0].is_running(), "Prometheus stops with the stack"


def test_stack_workers_reach_the_replicas_of_a_run(model_repository: Path, tmp_path: Path) -> None:
    """`stack: {workers: 2}`: each replica of the run's stack is two server processes on one
    port (the merged /metrics counts them), not one."""
    scenario = validate_scenario({
        "name": "two-workers",
        "target": {"url": "http://127.0.0.1:9", "protocol": "kserve-http", "model": "mlp"},
        "stack": {"local": True, "replicas": 1, "device": "cpu", "workers": 2,
                  "model_repository": str(model_repository)},
        "load": {"mode": "open", "rate": 10, "duration": "5s"},
    }, "test")  # fmt: skip
    with target_for(scenario, tmp_path) as target:
        (metrics_url,) = target.metrics_urls
        with urllib.request.urlopen(metrics_url, timeout=10) as resp:
            text = resp.read().decode()
    workers = [line for line in text.splitlines() if line.startswith("reference_server_workers ")]
    assert [float(line.split()[1]) for line in workers] == [2.0], workers

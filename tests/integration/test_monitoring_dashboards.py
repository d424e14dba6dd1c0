"""Every panel's PromQL (and the game day's fault annotation) returns series from a real
Prometheus scraping a real stack -- `harness stack up --monitor` -- and the Locust master's
live endpoint during a run with a fault window in its events.jsonl.

GPU panels (`GPU_PANELS`) can return data only where the server runs on CUDA: like Triton,
the reference server exports `nv_gpu_*` only then. On a CPU host they must return nothing,
and the test says so; on a GPU host they must return data like every other panel.
Then `harness stack down` leaves no Prometheus process and no TSDB behind.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from harness.load.api import run_scenario
from harness.monitor import PromClient, ScrapeTarget, replica_targets
from harness.monitor.dashboards import DASHBOARDS, GPU_PANELS
from harness.monitor.scrape_config import TARGETS_FILE, write_targets
from harness.stack.local import read_state
from harness.stack.server_process import pid_alive
from tests.integration.cli_helpers import run_cli, wait_for
from tests.integration.run_helpers import scenario

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed"),
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus is not installed"),
]
DURATION_S = 14


def test_every_dashboard_query_returns_series_and_stack_down_leaves_nothing(
    tmp_path: Path, model_repository: Path
) -> None:
    state_dir = tmp_path / "stack"
    up = run_cli(
        "stack", "up", "--replicas", "2", "--device", "cpu", "--monitor", "--detach",
        "--model-repository", str(model_repository), "--state-dir", str(state_dir),
    )  # fmt: skip
    state = read_state(state_dir / "stack.json")
    try:
        assert up.returncode == 0, up.stderr
        assert state.monitor is not None and f"prometheus: {state.monitor.url}" in up.stdout
        client = PromClient(state.monitor.url)
        client.wait_for_targets(2)
        sc = scenario(
            state.url,
            {"mode": "open", "arrival": "poisson", "rate": 80, "duration": f"{DURATION_S}s"},
            target={"url": state.url, "protocol": "kserve-http", "model": "digits",
                    "version": "1"},
        )  # fmt: skip
        outcome: list = []
        runner = threading.Thread(
            target=lambda: outcome.append(run_scenario(sc, tmp_path, show_progress=False))
        )
        runner.start()
        try:
            live = wait_for(lambda: next(tmp_path.glob("*/stream/live.json"), None), 60, "live")
            run_dir = live.parent.parent
            live_url = json.loads(live.read_text())["url"]
            host_port = live_url.split("://")[1].split("/")[0]
            targets = [*replica_targets(state.metrics_urls), ScrapeTarget("harness-run", host_port)]
            # the file_sd file the stack's Prometheus watches
            write_targets(Path(state.monitor.workdir) / TARGETS_FILE, targets)
            client.wait_for_targets(3)
            epoch = json.loads((run_dir / "stream" / "start.json").read_text())["epoch"]
            wait_for(lambda: time.time() > epoch + 5, 30, "second 5")
            with open(run_dir / "events.jsonl", "a") as events:  # as the game day's FaultClock
                events.write(json.dumps({"ts": 5.0, "type": "fault_start"}) + "\n")
            wait_for(lambda: time.time() > epoch + 8, 30, "second 8")
            with open(run_dir / "events.jsonl", "a") as events:
                events.write(json.dumps({"ts": 8.0, "type": "fault_end"}) + "\n")
        finally:
            runner.join(timeout=120)
        assert outcome and outcome[0].summary["failures"] == 0
        start, end = epoch + 2, epoch + DURATION_S
        empty, gpu_empty = [], []
        for name, doc in DASHBOARDS.items():
            queries = [(p["title"], t["expr"]) for p in doc["panels"] for t in p["targets"]]
            queries += [(a["name"], a["expr"]) for a in doc["annotations"]["list"]]
            for title, expr in queries:
                found = client.query_range(expr, start, end, 1.0)
                if not any(s.points for s in found):
                    (gpu_empty if title in GPU_PANELS else empty).append(f"{name}: {title}")
        cuda = 'count(reference_server_device_info{provider="CUDAExecutionProvider"})'
        on_gpu = client.query(cuda)
    finally:
        down = run_cli("stack", "down", "--state-dir", str(state_dir))
    assert empty == []
    if on_gpu:
        assert gpu_empty == []
    else:  # the server exports no GPU gauges without a GPU (as Triton): these panels are empty
        assert sorted(gpu_empty) == sorted(f"serving-stack.json: {t}" for t in GPU_PANELS)
        print(f"no GPU here: {gpu_empty} return no data (nv_gpu_* exported only on CUDA)")
    assert down.returncode == 0
    assert not pid_alive(state.monitor.pid)
    assert not Path(state.monitor.storage).exists()

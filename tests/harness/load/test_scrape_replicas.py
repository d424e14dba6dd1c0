"""Scraping several replicas: each row keeps its replica, counters sum across replicas, and a
target URL that is a detached local stack's is scraped replica by replica."""

from __future__ import annotations

import json
from pathlib import Path

from harness.load.runner import metrics_urls_for
from harness.load.scrape import cumulative_names, merge_replicas, parse_metrics
from harness.stack.local import ReplicaState, StackState, write_state

TEXT = """# HELP nv_inference_request_success Number of successful inference requests
# TYPE nv_inference_request_success counter
nv_inference_request_success{{model="digits",version="1"}} {ok}
# HELP nv_inference_pending_request_count Pending requests
# TYPE nv_inference_pending_request_count gauge
nv_inference_pending_request_count{{model="digits",version="1"}} {pending}
"""


def test_counters_sum_across_replicas_per_tick_and_gauges_are_left_out() -> None:
    rows = parse_metrics(TEXT.format(ok=30, pending=2), 100.0, "http://r0/metrics", "0")
    rows += parse_metrics(TEXT.format(ok=12, pending=5), 100.0, "http://r1/metrics", "1")
    rows += parse_metrics(TEXT.format(ok=31, pending=0), 101.0, "http://r0/metrics", "0")
    rows += parse_metrics(TEXT.format(ok=20, pending=0), 101.0, "http://r1/metrics", "1")
    replicas = {json.loads(labels)["replica"] for _, _, labels, _ in rows}
    assert replicas == {"0", "1"}
    cumulative = cumulative_names(TEXT.format(ok=0, pending=0))
    # prometheus_client names a counter's sample `<name>_total`, as the stored rows are named
    assert cumulative == {"nv_inference_request_success_total"}
    merged = merge_replicas(rows, cumulative)
    labels = json.dumps({"model": "digits", "replica": "all", "version": "1"}, sort_keys=True)
    # 30 + 12 at t=100, 31 + 20 at t=101 (by hand)
    assert merged == [
        (100.0, "nv_inference_request_success_total", labels, 42.0),
        (101.0, "nv_inference_request_success_total", labels, 51.0),
    ]


def _state(tmp_path: Path) -> Path:
    replicas = tuple(
        ReplicaState(i, 1000 + i, f"http://127.0.0.1:{7000 + i}", f"127.0.0.1:{7100 + i}",
                     f"http://127.0.0.1:{7200 + i}/metrics", "log")
        for i in range(2)
    )  # fmt: skip
    state = StackState(url="http://127.0.0.1:8000", grpc_url="127.0.0.1:8001", replicas=replicas)
    path = tmp_path / "stack.json"
    write_state(path, state)
    return path


def test_a_detached_stacks_url_is_scraped_replica_by_replica(tmp_path: Path) -> None:
    path = _state(tmp_path)
    every = ("http://127.0.0.1:7200/metrics", "http://127.0.0.1:7201/metrics")
    assert metrics_urls_for("http://127.0.0.1:8000/", "kserve-http", path) == every
    assert metrics_urls_for("127.0.0.1:8001", "kserve-grpc", path) == every
    # another URL, no state file: the target's own /metrics (gRPC: nothing to scrape)
    assert metrics_urls_for("http://127.0.0.1:9000", "kserve-http", path) == (
        "http://127.0.0.1:9000/metrics",
    )
    assert metrics_urls_for("http://127.0.0.1:8000", "kserve-http", tmp_path / "none") == (
        "http://127.0.0.1:8000/metrics",
    )
    assert metrics_urls_for("127.0.0.1:9001", "kserve-grpc", None) == ()

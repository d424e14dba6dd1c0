"""A two-replica local stack (nginx in front): every replica is scraped, and the scraped
request counters, summed across replicas, equal the requests the load sent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.load.api import run_scenario
from harness.load.scrape import merge_replicas
from harness.results import load_run
from tests.integration.run_helpers import scenario

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed"),
]
SUCCESS = "nv_inference_request_success_total"


def test_two_replicas_are_scraped_and_their_counters_sum_to_the_requests_sent(
    tmp_path: Path, model_repository: Path
) -> None:
    sc = scenario(
        "http://127.0.0.1:1",
        {"mode": "open", "arrival": "constant", "rate": 60, "duration": "4s"},
        stack={"local": True, "replicas": 2, "model_repository": str(model_repository),
               "device": "cpu"},
        target={"url": "http://127.0.0.1:1", "protocol": "kserve-http", "model": "digits",
                "version": "1"},
    )  # fmt: skip
    outcome = run_scenario(sc, tmp_path, show_progress=False)
    assert outcome.status == "complete"
    sent = outcome.summary["requests"]
    assert sent == 240 and outcome.summary["failures"] == 0  # 60/s x 4 s, all answered
    table = load_run(outcome.run_dir).server_metrics
    columns = table.select(["ts", "metric", "labels", "value"]).to_pylist()
    rows = [tuple(r.values()) for r in columns]
    per_replica = [r for r in rows if r[1] == SUCCESS]
    replicas = {json.loads(r[2])["replica"] for r in per_replica}
    assert replicas == {"0", "1"}
    last = max(r[0] for r in per_replica)
    final = {replica: 0.0 for replica in replicas}
    for ts, _, labels, value in per_replica:  # one series per (model, version) per replica
        if ts == last:
            final[json.loads(labels)["replica"]] += value
    assert all(count > 0 for count in final.values()), final  # nginx sent both some load
    merged = [r for r in merge_replicas(rows, {SUCCESS}) if r[0] == last]
    assert sum(r[3] for r in merged) == sent

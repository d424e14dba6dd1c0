"""`harness sweep` with the real load engine against the real local reference stack.

Bounded: two closed-loop steps of 5 s on one replica (about 30 s in all). Proves the wiring
the synthetic-engine test cannot: the stack is started once and reused, each step is an
ordinary run directory, and the sweep files describe what was measured.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from harness.cli.main import main
from tests.ports import kernel_picked_port

pytestmark = pytest.mark.integration


def test_real_closed_loop_sweep(tmp_path: Path) -> None:
    scen = tmp_path / "sweep.yaml"
    scen.write_text(
        yaml.safe_dump(
            {
                "name": "sweep-itest",
                "target": {
                    # replaced by the local stack's own (kernel-picked) address
                    "url": f"http://127.0.0.1:{kernel_picked_port()}",
                    "protocol": "kserve-http",
                    "model": "mlp",
                },
                "stack": {"local": True, "replicas": 1, "device": "cpu"},
                "load": {"mode": "closed", "users": 1, "duration": "5s", "warmup": "1s"},
                # a loose SLO: the search must pass step 1 and grow to step 2
                "slo": {"p99_ms": 5000, "error_rate": 0.01},
                "validity": {
                    "min_duration_s": 0,
                    "min_requests": 0,
                    "stability": {"windows": 2, "window_s": "1s", "tolerance": 0.5},
                },
            }
        )
    )
    out = tmp_path / "results"
    rc = main(
        [
            "sweep",
            str(scen),
            "--out",
            str(out),
            "--no-progress",
            "--max-steps",
            "2",
            "--start",
            "1",
            # a busy CI host can make a 5 s step unstable; this test is about the wiring
            "--allow-unstable",
        ]
    )
    assert rc == 0
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["kind"] == "sweep" and run["status"] == "complete"
    table = pq.read_table(run_dir / "sweep.parquet").to_pydict()
    assert table["load"] == [1.0, 2.0]
    assert all(x > 10 for x in table["throughput_rps"])  # real requests were served
    assert all(0 < p < 5000 for p in table["p99_ms"])
    # N for the fits is the server's own in-flight average (its in-flight-seconds counter,
    # what the HPA's adapter reads): above 0, at most the users, and at most Little's law on
    # the client's latency from the send (the server's time is part of the client's)
    assert table["concurrency_from"] == ["server counter"] * 2
    for load, n, run_id in zip(table["load"], table["concurrency"], table["run_id"], strict=True):
        summary = json.loads((run_dir / "steps" / run_id / "summary.json").read_text())
        little = summary["throughput_rps"] * summary["latency_uncorrected_ms"]["mean"] / 1000
        assert 0 < n <= min(load, little * 1.02), (n, load, little)
    for run_id in table["run_id"]:
        summary = json.loads((run_dir / "steps" / run_id / "summary.json").read_text())
        assert summary["requests"] > 0 and summary["failures"] == 0
    # one shared stack for the sweep, not one per step
    assert (run_dir / "stack").is_dir()
    assert not any((run_dir / "steps" / r / "stack").exists() for r in table["run_id"])
    meta = json.loads((run_dir / "sweep.json").read_text())
    assert meta["best_load"] == 2.0 and meta["search"]["steps"] == 2

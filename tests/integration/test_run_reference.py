"""`harness run` against the real reference stack: the quickstart (the main job) and gRPC."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from harness.cli.main import main
from harness.config import load_scenario
from harness.load.api import run_scenario
from harness.results import load_run

pytestmark = pytest.mark.integration
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def test_quickstart_runs_the_ab_split_checks_answers_and_scrapes(tmp_path: Path, capsys) -> None:
    out = tmp_path / "results"
    args = ["run", str(SCENARIOS / "quickstart.yaml"), "--out", str(out), "--no-progress"]
    args += ["--set", "load.duration=4s", "--run-id", "qs"]
    code = main(args)
    printed = capsys.readouterr().out
    summary = json.loads((out / "qs" / "summary.json").read_text())
    # 100 req/s for one worker is light work (a few % of a core): a second leaves the verdict
    # only when the generator flags it (one of its ~100 requests sent over 10 ms late, or CPU
    # over 90 %), which a busy host causes now and then, not in most of the four seconds. On
    # the seconds measured, the digits model answers far inside the SLO: exit 0.
    assert summary["validity"]["measured_s"] >= 2, summary["validity"]
    assert code == 0 and summary["slo"]["passed"], summary
    assert "results:" in printed and "digits/2" in printed
    assert summary["status"] == "complete" and summary["failures"] == 0
    arms = summary["endpoints"]
    assert set(arms) == {"digits/1", "digits/2"}
    for arm in arms.values():  # measured seconds only; None if all were unhealthy
        assert arm["accuracy"] is None or arm["accuracy"] > 0.9
    per_arm = {name: 0 for name in arms}
    for record in load_run(out / "qs").windows:
        per_arm[record.endpoint] += record.count
    assert per_arm["digits/1"] > 3 * per_arm["digits/2"] > 0  # the 90/10 split

    windows = pq.read_table(out / "qs" / "windows.parquet")
    assert sum(windows.column("checked").to_pylist()) == summary["requests"]
    metrics = pq.read_table(out / "qs" / "server_metrics.parquet")
    names = set(metrics.column("metric").to_pylist())
    assert "nv_inference_request_success_total" in names
    assert max(metrics.column("ts").to_pylist()) > 2.0  # scraped during the load
    with duckdb.connect(str(out / "history.duckdb"), read_only=True) as con:
        rows = con.execute("select run_id, status from runs").fetchall()
    assert rows == [("qs", "complete")]


def test_grpc_scenario_against_the_local_stack(tmp_path: Path) -> None:
    scenario = load_scenario(SCENARIOS / "grpc.yaml", ["load.duration=3s", "load.rate=50"])
    outcome = run_scenario(scenario, tmp_path, show_progress=False)
    assert outcome.status == "complete", outcome.summary
    assert outcome.summary["requests"] == pytest.approx(150, abs=4 * 150**0.5)
    assert outcome.summary["failures"] == 0
    windows = load_run(outcome.run_dir).windows
    checked = sum(w.checked for w in windows)
    assert checked == outcome.summary["requests"]
    assert sum(w.correct for w in windows) / checked > 0.9

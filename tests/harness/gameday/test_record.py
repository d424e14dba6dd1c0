"""The game day's own record: run.json kind "gameday" with what ran and the verdict, summary
and history row rebuilt (one row per run id, replaced), the stack's logs kept in
`<run>/stack/` with its state (admin token redacted), and the recovery tolerance taken from
the settings into the impact analysis.

Synthetic run directories written through the library (`write_synthetic_run`); latencies
chosen so each tolerance decides by hand (see each test).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness.analysis.ab.synthetic import window_rows
from harness.analysis.impact import FaultTimeline, RecoveryTolerance, Slo
from harness.gameday import GamedaySettings, record, report
from harness.latency.windows import WindowRecord
from harness.results import finalize_run, list_runs, load_run, write_synthetic_run

SCENARIO = {
    "name": "gameday-record",
    "target": {"url": "http://127.0.0.1:9", "protocol": "kserve-http", "model": "digits"},
    "load": {"mode": "open", "arrival": "constant", "rate": 100, "duration": "20s"},
    "slo": {"p99_ms": 250, "error_rate": 0.05},
    "validity": {"min_duration_s": 0, "min_requests": 0},
}


def _run(path: Path) -> Path:
    """20 s at 100 req/s: 10 ms before second 10, 100 ms in 10..12, 30 ms from 13 on."""
    seconds = np.repeat(np.arange(20), 100)
    latency_ms = np.where(seconds < 10, 10.0, np.where(seconds < 13, 100.0, 30.0))
    rows = window_rows("digits/1", seconds, latency_ms * 1000, np.zeros(seconds.size, bool))
    run_dir = write_synthetic_run(
        path, [WindowRecord.from_dict(r) for r in rows], scenario=SCENARIO["name"],
        scenario_config=SCENARIO,
    )  # fmt: skip
    finalize_run(run_dir)  # as the load engine does: summary.json + a history row
    return run_dir


def test_the_run_is_marked_a_game_day_and_its_history_row_replaced(tmp_path: Path) -> None:
    run_dir = _run(tmp_path / "runs" / "day")
    assert [r.kind for r in list_runs(tmp_path / "runs")] == ["run"]
    section = {"experiment": "x.json", "title": "t", "status": "complete", "verdict": "fail",
               "exit_code": 1}  # fmt: skip
    record.mark_gameday(run_dir, section)
    run = json.loads((run_dir / "run.json").read_text())
    assert run["kind"] == "gameday" and run["gameday"] == section
    assert run["status"] == "complete" and run["scenario_config"] == SCENARIO  # the rest kept
    assert json.loads((run_dir / "summary.json").read_text())["kind"] == "gameday"
    rows = list_runs(tmp_path / "runs")
    assert [(r.run_id, r.kind) for r in rows] == [("day", "gameday")]  # replaced, not added
    assert load_run(run_dir).meta["kind"] == "gameday"


def test_the_stack_logs_and_state_are_kept_for_the_post_mortem(tmp_path: Path) -> None:
    stack, run_dir = tmp_path / "stack", tmp_path / "run"
    files = {
        "replica-0.log": "new", "replica-0.log.4242": "killed", "replica-1.log": "r1",
        "faultproxy.log": "fp", "faultproxy.port": "127.0.0.1:1", "nginx/nginx.conf": "conf",
        "nginx/logs/error.log": "err", "nginx/nginx.pid": "1", "cache/x.json": "{}",
    }  # fmt: skip
    for name, text in files.items():
        (stack / name).parent.mkdir(parents=True, exist_ok=True)
        (stack / name).write_text(text)
    assert record.copy_stack_logs(stack, run_dir) == []  # no run directory: nothing
    run_dir.mkdir()
    copied = record.copy_stack_logs(stack, run_dir)
    kept = ["faultproxy.log", "nginx/logs/error.log", "nginx/nginx.conf", "replica-0.log",
            "replica-0.log.4242", "replica-1.log"]  # fmt: skip
    assert copied == [f"stack/{name}" for name in kept]
    assert all((run_dir / "stack" / n).read_text() == files[n] for n in kept)
    record.keep_stack_state(json.dumps({"url": "u", "admin_token": "s3cret"}), run_dir)
    state = json.loads((run_dir / "stack" / "stack.json").read_text())
    assert state == {"url": "u", "admin_token": "<redacted>"}


def test_the_recovery_tolerance_of_the_settings_decides_the_recovery(tmp_path: Path) -> None:
    """Baseline p99 10 ms (HDR: 10.0x); after the fault every window's p99 is 30 ms.
    Default tolerance: 2 x 10 + 5 = 25 ms < 30: never recovered. Factor 3: 35 ms >= 30:
    recovered at the first window after the fault (13), 0 s after fault_end 13; so does a
    slack of 11 ms: 2 x 10 + 11 = 31 ms >= 30."""
    run = load_run(_run(tmp_path / "runs" / "day"))
    timeline, slo = FaultTimeline(10.0, 13.0), Slo(250, 0.05)
    default = report.impact_of(run, timeline, slo, GamedaySettings().tolerance)
    assert default.recovered_at_s is None
    wider = GamedaySettings(k=3, recovery_p99_factor=3.0).tolerance
    assert wider == RecoveryTolerance(k=3, p99_factor=3.0, p99_slack_ms=5.0, error_rate_slack=0.01)
    assert report.impact_of(run, timeline, slo, wider).recovered_at_s == 13
    slack = GamedaySettings(recovery_p99_slack_ms=11).tolerance
    assert report.impact_of(run, timeline, slo, slack).recovered_at_s == 13
    assert report.tolerance_dict(slack) == {
        "k": 3, "p99_factor": 2.0, "p99_slack_ms": 11, "error_rate_slack": 0.01,
    }  # fmt: skip

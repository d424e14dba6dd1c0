"""Small run directories for the report and notebook tests, written through the library.

A split A/B run and a second run of the same scenario (synthetic windows from
`harness.analysis.ab.synthetic`, summarised by `finalize_run` as a real run is), a sweep with
its plan and HPA simulation (the sweep CLI over a fake engine, then `harness plan` and
`harness simulate-hpa`), and a game day's gameday.json written here in the shape
`harness.gameday` writes (schema_version 1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from harness.analysis.ab.synthetic import ArmSpec, load_factor, simulate_arm, window_rows
from harness.cli.main import main
from harness.latency.windows import WindowRecord
from harness.results import finalize_run, write_synthetic_run

SECONDS = 30
SCENARIO = {
    "name": "report-test",
    "target": {"url": "http://127.0.0.1:9", "protocol": "kserve-http", "model": "digits"},
    "load": {"mode": "open", "arrival": "poisson", "rate": 160, "duration": f"{SECONDS}s"},
    "slo": {"p99_ms": 250, "error_rate": 0.05},
    "validity": {"min_duration_s": 0, "min_requests": 0},
}


def synthetic_run(
    path: Path, arms: dict[str, ArmSpec], seed: int = 0, events: tuple[dict[str, Any], ...] = ()
) -> Path:
    """A summarised run directory whose endpoints follow `arms` (seeded)."""
    load = load_factor(SECONDS, 0.15, 0.7, np.random.default_rng(seed))
    rows = []
    for i, (endpoint, spec) in enumerate(arms.items()):
        s = simulate_arm(spec, load, np.random.default_rng(seed + 1 + i))
        rows += window_rows(endpoint, s.seconds, s.latency_us, s.failed, s.checked, s.correct)
    records = [WindowRecord.from_dict(r) for r in rows]
    run_dir = write_synthetic_run(
        path, records, scenario=SCENARIO["name"], scenario_config=SCENARIO, events=events
    )
    finalize_run(run_dir, history=False)
    return run_dir


def split_run(path: Path, seed: int = 0) -> Path:
    arms = {
        "digits/1": ArmSpec(rate=80, error_rate=0.01),
        "digits/2": ArmSpec(rate=80, scale=1.3, error_rate=0.01),
    }
    return synthetic_run(path, arms, seed)


def one_arm_run(path: Path, seed: int, scale: float = 1.0) -> Path:
    return synthetic_run(path, {"digits/1": ArmSpec(rate=120, scale=scale)}, seed)


def sweep_with_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A closed-loop sweep over the fake USL engine of the plan tests, with plan.json, the
    manifests and an HPA simulation written into the sweep's directory."""
    import harness.load.api
    from tests.harness.cli.test_plan import fake_run_scenario

    monkeypatch.setattr(harness.load.api, "run_scenario", fake_run_scenario)
    scen = tmp_path / "closed.yaml"
    scenario = {
        "name": "report-sweep",
        "target": SCENARIO["target"],
        "load": {"mode": "closed", "users": 1, "duration": "10s"},
        "slo": {"p99_ms": 100},
    }
    scen.write_text(yaml.safe_dump(scenario))
    out = tmp_path / "sweeps"
    argv = ["sweep", str(scen), "--out", str(out), "--no-progress", "--max-steps", "20"]
    assert main([*argv, "--step-duration", "20s"]) == 0
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    assert main(["plan", "--peak-qps", "5000", "--from", str(run_dir), "--out", str(run_dir)]) == 0
    argv = ["simulate-hpa", "--plan", str(run_dir), "--diurnal", "--hours", "1"]
    assert main(argv) == 0
    return run_dir


def gameday_doc(run_id: str, *, fault: tuple[float, float] = (10.0, 16.0)) -> dict[str, Any]:
    """gameday.json in the layout of harness/gameday/runner.py (schema_version 1)."""
    phase = {
        "seconds": 8,
        "requests": 960,
        "failures": 0,
        "error_rate": 0.0,
        "p99_ms": 14.0,
        "mean_ms": 5.0,
    }
    return {
        "schema_version": 1,
        "run_id": run_id,
        "status": "complete",
        "experiment": {
            "title": "kill one replica",
            "path": "chaos/node-kill.json",
            "configuration": {},
        },
        "slo": {"p99_ms": 250.0, "error_rate": 0.05},
        "timeline": {
            "method_start": fault[0] - 0.5,
            "fault_start": fault[0],
            "fault_end": fault[1],
            "method_end": fault[1],
            "rollback_start": None,
            "rollback_end": None,
            "steady": None,
            "load_s": SECONDS,
            "load_status": "complete",
            "load_exit": 0,
        },
        "hypothesis": {
            "before": {"met": True},
            "during": {"met": False, "checks": 3},
            "after": {"met": True},
            "method_ran": True,
            "journal_status": "completed",
        },
        "impact": {
            "time_to_detect_s": 1.0,
            "time_to_recover_s": 3.0,
            "recovered_at_s": 19,
            "failed_requests": 37,
            "slowed_requests": 12,
            "excess_latency_s": 0.8,
            "impact_seconds": [10, 18],
            "before": phase,
            "during": {**phase, "failures": 37, "error_rate": 0.04, "p99_ms": 90.0},
            "after": phase,
            "error_budget": {"allowed": 240, "used": 37, "share": 0.154},
            "latency_budget": {"allowed": 48, "used": 12, "share": 0.25},
            "notes": [],
        },
        "capacity_check": {
            "gate": False,
            "predicted": {
                "applicable": True,
                "carries": True,
                "replicas": 2,
                "lost": 1,
                "rate_rps": 160.0,
                "per_replica_rps": 400.0,
                "utilisation": 0.4,
                "predicted_p99_ms": 20.0,
                "slo_p99_ms": 250.0,
                "reason": "1 replica at 40 % utilisation meets the SLO",
            },
            "observed": {"carried": True, "during_p99_ms": 90.0, "during_error_rate": 0.04},
            "agreed": True,
        },
        "rollback": {
            "before": {"replicas": 2},
            "after": {"replicas": 2},
            "equal": True,
            "differences": [],
            "forced": None,
        },
        "verdict": {"result": "pass", "reasons": [], "exit_code": 0},
    }


def write_gameday(run_dir: Path, doc: dict[str, Any]) -> None:
    (run_dir / "gameday.json").write_text(json.dumps(doc, indent=2))

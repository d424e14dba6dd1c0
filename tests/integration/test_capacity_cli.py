"""`harness capacity` on the real local stack: a short sweep (3 s steps, validity rules that fit
them), the plan, the HPA simulation and the report, under a minute."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from harness.cli.main import main
from harness.report.build import build_report

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCENARIO = {
    "name": "capacity-short",
    "target": {"url": "http://127.0.0.1:8000", "protocol": "kserve-http", "model": "digits"},
    "stack": {"local": True, "replicas": 1, "device": "cpu"},
    "load": {"mode": "open", "arrival": "poisson", "rate": 100, "duration": "4s",
             "warmup": "1s"},
    "slo": {"p99_ms": 250, "error_rate": 0.01},
    "validity": {"min_duration_s": 2, "min_requests": 50,
                 "stability": {"windows": 2, "window_s": "1s", "tolerance": 0.3}},
    "loadgen": {"max_lag_p99_ms": 100, "late_ms": 100, "max_cpu_percent": 99, "drain": "2s"},
}  # fmt: skip


def test_capacity_report_on_a_real_short_sweep(tmp_path: Path) -> None:
    scen = tmp_path / "capacity.yaml"
    scen.write_text(yaml.safe_dump(SCENARIO))
    results, reports = tmp_path / "results", tmp_path / "reports"
    rc = main(
        ["capacity", str(scen), "--peak-qps", "1000", "--headroom", "0.2", "--out",
         str(results), "--reports", str(reports), "--no-progress", "--max-load", "400",
         "--max-step-duration", "8s"]
    )  # fmt: skip
    assert rc == 0
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    plan = json.loads((run_dir / "plan.json").read_text())
    rec = json.loads((run_dir / "recommendation.json").read_text())
    assert plan["operating_point"]["source"] == "sweep-open"
    for key in ("replicas", "min_replicas", "max_replicas", "hpa_inflight_target",
                "hpa_rps_target"):  # fmt: skip
        assert rec[key] == plan[key], key
    rows = dict(build_report(run_dir).sections[0].tables[0].rows)
    assert rows["replicas at peak"] == str(plan["replicas"])
    assert rec["settle_from_plan"] == plan["replicas"]  # the HPA holds the plan at peak
    (report_dir,) = list(reports.iterdir())
    assert rec["sentence"] in (report_dir / "summary.md").read_text()

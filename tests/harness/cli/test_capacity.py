"""`harness capacity` with the sweep tests' stand-in engine: the report's recommendation is
plan.json's, and it comes first; the plan's HPA holds the planned count at a constant peak.

The engine is faked (an M/M/1-like open loop saturating at 1000 req/s, as in test_plan.py), so
this runs in seconds; `tests/integration/test_capacity_cli.py` does it on the real stack.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.analysis.capacity.hpa_models import model_from_plan, settings_from_plan
from harness.analysis.capacity.hpa_sim import simulate_hpa
from harness.cli.main import main
from harness.plan import load_plan
from harness.report.build import build_report
from tests.harness.cli.test_plan import fake_open_loop, write_open_scenario


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.load.api

    monkeypatch.setattr(harness.load.api, "run_scenario", fake_open_loop)


def capacity(tmp_path: Path, *extra: str) -> tuple[int, Path, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    scen = write_open_scenario(tmp_path, "capacity-test", 50)
    out, reports = tmp_path / "results", tmp_path / "reports"
    rc = main(
        ["capacity", str(scen), "--peak-qps", "3000", "--out", str(out), "--reports",
         str(reports), "--no-progress", "--start", "50", "--resolution", "10", *extra]
    )  # fmt: skip
    runs = [p for p in out.iterdir() if p.is_dir()] if out.is_dir() else []
    return rc, (runs[0] if runs else out), reports


@pytest.mark.parametrize("headroom", ["0", "0.2"])
def test_report_recommends_what_plan_json_says(
    tmp_path: Path, fake_engine: None, headroom: str, capsys: pytest.CaptureFixture
) -> None:
    rc, run_dir, reports = capacity(tmp_path, "--headroom", headroom, "--redundancy", "1")
    assert rc == 0
    plan = json.loads((run_dir / "plan.json").read_text())
    rec = json.loads((run_dir / "recommendation.json").read_text())
    for key in ("replicas", "min_replicas", "max_replicas", "hpa_inflight_target",
                "hpa_rps_target", "peak_qps"):  # fmt: skip
        assert rec[key] == plan[key], key
    assert {"hpa.yaml", "deployment.yaml", "hpa_sim.json", "sweep.json"} <= {
        p.name for p in run_dir.iterdir()
    }
    # the report: the recommendation first, its table equal to plan.json, then the evidence
    report = build_report(run_dir)
    keys = [s.key for s in report.sections]
    assert keys[0] == "recommendation" and {"plan", "sweep"} <= set(keys[1:])
    rows = dict(report.sections[0].tables[0].rows)
    assert rows["replicas at peak"] == str(plan["replicas"])
    assert rows["HPA minReplicas"] == str(plan["min_replicas"])
    assert rows["HPA maxReplicas"] == str(plan["max_replicas"])
    assert rows["HPA in-flight target / pod"] == f"{plan['hpa_inflight_target']:.3f}"
    assert rows["HPA requests/s target / pod"] == f"{plan['hpa_rps_target']:.2f}"
    assert report.headline == rec["sentence"]
    assert rec["sentence"].startswith(f"In {rec['measurements']} measurements across ")
    assert f", {plan['replicas']} replicas of digits meet the constraints" in rec["sentence"]
    # the written files say the same: summary.md opens with that sentence
    (report_dir,) = list(reports.iterdir())
    md = (report_dir / "summary.md").read_text()
    assert rec["sentence"] in md and "report.html" in {p.name for p in report_dir.iterdir()}
    assert md.index("Recommendation") < md.index("Capacity plan")
    # the manifest's HPA targets are the recommendation's
    hpa = (run_dir / "hpa.yaml").read_text()
    assert f"minReplicas: {plan['min_replicas']}" in hpa
    assert f"maxReplicas: {plan['max_replicas']}" in hpa
    out = capsys.readouterr().out
    assert rec["sentence"][:60] in out.replace("\n", "")


def test_headroom_is_kept_by_the_hpa_at_peak(tmp_path: Path, fake_engine: None) -> None:
    """The plan with 20 % headroom pays for more replicas, and its HPA, held at a constant
    peak through the simulation, stays on that count (it used to drift back)."""
    counts = {}
    for headroom in ("0", "0.2"):
        rc, run_dir, _ = capacity(tmp_path / headroom, "--headroom", headroom)
        assert rc == 0
        plan, _ = load_plan(run_dir)
        settings = settings_from_plan(plan).model_copy(update={"initial_replicas": plan.replicas})
        r = simulate_hpa(np.full(1800, plan.peak_qps), settings, model_from_plan(plan), 50.0)
        assert r.replicas.min() == r.replicas.max() == plan.replicas
        rec = json.loads((run_dir / "recommendation.json").read_text())
        assert rec["settle_from_plan"] == plan.replicas
        counts[headroom] = plan.replicas
    assert counts["0.2"] > counts["0"]


def test_no_passing_load_exits_1_and_bad_options_exit_2(tmp_path: Path, fake_engine) -> None:
    rc, _, reports = capacity(tmp_path / "a", "--slo-p99-ms", "1")  # 4 ms idle > 1 ms
    assert rc == 1 and not reports.exists()
    for bad in (["--headroom", "-1"], ["--k8s-version", "1.99"]):
        rc, run_dir, _ = capacity(tmp_path / bad[0][2:], *bad)
        assert rc == 2 and not run_dir.exists()  # refused before any load ran

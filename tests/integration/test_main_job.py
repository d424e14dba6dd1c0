"""The main job (`make run` = `harness quickstart`) end to end: the README's contract.

Real processes: two reference-server replicas behind nginx, Locust, the sweep's stack. Run at
`--scale 0.5` (15 s A/B run, 5 s sweep steps: ~80 s here instead of ~2 minutes); the scale
only shortens the load phases, every stage still runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli.main import main

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_quickstart_writes_report_verdict_and_plan_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    results, reports = tmp_path / "results", tmp_path / "reports"
    rc = main(
        ["quickstart", "--out", str(results), "--reports", str(reports), "--scale", "0.5",
         "--no-progress"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    runs = sorted(p for p in results.iterdir() if p.is_dir())
    (run_dir,) = [p for p in runs if "quickstart-main" in p.name]
    (sweep_dir,) = [p for p in runs if "quickstart-sweep" in p.name]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["slo"]["passed"] and set(summary["endpoints"]) == {"digits/1", "digits/2"}
    plan = json.loads((sweep_dir / "plan.json").read_text())
    rec = json.loads((sweep_dir / "recommendation.json").read_text())
    assert rec["replicas"] == plan["replicas"] >= 1
    assert (sweep_dir / "hpa_sim.json").is_file() and (sweep_dir / "hpa.yaml").is_file()
    # one report: recommendation first, then plan, sweep, the run and its A/B verdict
    (report_dir,) = list(reports.iterdir())
    md = (report_dir / "summary.md").read_text()
    order = [md.index(t) for t in ("Recommendation", "Capacity plan", "A/B comparison")]
    assert order == sorted(order)
    assert rec["sentence"] in md
    html = (report_dir / "report.html").read_text()
    assert "data:image/png;base64," in html and "<script" not in html
    # the one-screen summary: the A/B verdict, the plan, the report's path
    lines = out.splitlines()
    assert any(line.startswith("A/B (digits/2 vs digits/1): ") for line in lines)
    assert any(line.startswith("plan: In ") for line in lines)
    assert f"report: {report_dir / 'report.html'}" in out.replace("\n", "")

"""`harness report` on a real run: the quickstart (local reference stack, digits v1/v2 split,
server metrics scraped) for 4 s, then the report of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.latency.hdr import decode_histogram, new_histogram
from harness.report import build_report
from harness.report.data import latency_frame, server_breakdown_frame
from harness.results import load_run

pytestmark = pytest.mark.integration
SCENARIOS = Path(__file__).resolve().parents[3] / "scenarios"


def test_report_of_a_real_quickstart_run(tmp_path: Path) -> None:
    out = tmp_path / "results"
    argv = ["run", str(SCENARIOS / "quickstart.yaml"), "--out", str(out), "--no-progress"]
    main([*argv, "--set", "load.duration=4s", "--run-id", "qs"])  # exit 0 or 1: SLO verdict
    summary = json.loads((out / "qs" / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["requests"] > 0
    assert main(["report", str(out / "qs"), "--out", str(tmp_path / "reports")]) == 0
    report_dir = tmp_path / "reports" / "qs"
    md = (report_dir / "summary.md").read_text()
    p99 = summary["latency_ms"]["p99"]
    if p99 is not None:  # every second unhealthy on a starved host leaves nothing measured
        assert f"| p99 | {p99:.3g} |" in md
    run = load_run(out / "qs")
    frame = latency_frame(run).set_index("second")
    merged: dict[int, object] = {}
    for record in run.windows:
        if record.outcome == "success":
            merged.setdefault(record.second, new_histogram()).add(decode_histogram(record.hdr))
    for second, hist in merged.items():
        assert frame.loc[second, "p99_ms"] == hist.get_value_at_percentile(99) / 1000.0
    breakdown = server_breakdown_frame(run)
    assert breakdown is not None and (breakdown["requests"] > 0).any()
    # the servers' own counters (summed over replicas) saw the requests and their compute time
    busy = breakdown[breakdown["requests"] > 0]
    assert (busy["compute_ms"] > 0).all()
    stems = {p.stem for p in (report_dir / "figures").glob("*.png")}
    assert {"latency_over_time", "throughput", "errors", "server_breakdown", "ab_cdf"} <= stems
    assert [s.key for s in build_report(out / "qs").sections] == ["run"]  # no compare given

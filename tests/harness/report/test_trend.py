"""The run section gets the history trend figure when its scenario has two or more runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.analysis.ab.synthetic import window_rows
from harness.latency.windows import WindowRecord
from harness.report import build_report
from harness.report.trend import trend_frame
from harness.results import finalize_run, load_run, write_synthetic_run
from harness.results.history import ComparisonRow, record_comparison

SCENARIO = {
    "name": "trendy",
    "target": {"url": "http://127.0.0.1:9", "protocol": "kserve-http", "model": "m"},
    "load": {"mode": "open", "rate": 50, "duration": "20s"},
}


def _run(out: Path, run_id: str, median_us: float) -> Path:
    rng = np.random.default_rng(len(run_id))
    seconds = np.repeat(np.arange(20), 50)
    rows = window_rows("m", seconds, rng.lognormal(np.log(median_us), 0.2, seconds.size),
                       np.zeros(seconds.size, bool))  # fmt: skip
    records = [WindowRecord.from_dict(r) for r in rows]
    run_dir = write_synthetic_run(out / run_id, records, scenario_config=SCENARIO,
                                  scenario="trendy")  # fmt: skip
    finalize_run(run_dir)
    return run_dir


def _figure_names(run_dir: Path) -> list[str]:
    (section,) = [s for s in build_report(run_dir).sections if s.key == "run"]
    return [f.name for f in section.figures]


def test_trend_figure_appears_with_two_runs_and_marks_gate_regressions(tmp_path: Path) -> None:
    first = _run(tmp_path, "r1", 2000)
    assert "history_trend" not in _figure_names(first)  # one run: no trend
    second = _run(tmp_path, "r2", 4000)
    a, b = load_run(first).run_id, load_run(second).run_id
    record_comparison(tmp_path, ComparisonRow(
        f"gate:{a}:{b}", "gate", None, "trendy", a, "all", b, "all", "two-runs",
        "regression", True, "5%", "", "[]",
    ))  # fmt: skip
    assert "history_trend" in _figure_names(second)
    frame = trend_frame(load_run(second))
    assert list(frame["run_id"]) == [a, b]
    assert list(frame["gate"].fillna("-")) == ["-", "regression"]
    assert frame["p50_ms"].iloc[1] > 1.8 * frame["p50_ms"].iloc[0]  # medians 2 ms -> 4 ms

"""Two Locust workers: Poisson arrivals at the server, exact merge, traffic split, trace replay.

* the requests reaching the server from two workers form one Poisson stream (KS test on the
  server-side inter-arrival times);
* the master's merged per-second histograms equal the histogram of every request recorded
  individually (exact merge through Locust messages, the stream and windows.parquet);
* a 90/10 split lands within sampling error;
* trace replay reproduces the trace's (time-scaled) inter-arrival distribution.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from harness.latency.hdr import new_histogram, to_us
from harness.load.api import run_scenario
from harness.traces import load_arrivals
from tests.integration.delay_server import DelayServerProcess
from tests.integration.run_helpers import merged_histogram, scenario, verdict_code

pytestmark = pytest.mark.integration

TRACE = Path(__file__).resolve().parents[2] / "scenarios" / "data" / "azure_llm_conv_2023.csv"


def _raw(run_dir: Path) -> list[dict]:
    rows = []
    for path in sorted((run_dir / "stream").glob("raw-*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines()]
    return rows


def test_two_workers_poisson_split_and_exact_merge(tmp_path: Path) -> None:
    rate, duration = 60.0, 6.0
    load = {"mode": "open", "arrival": "poisson", "rate": rate, "duration": duration, "seed": 5}
    split = [
        {"model": "m", "version": "1", "weight": 90},
        {"model": "m", "version": "2", "weight": 10},
    ]
    with DelayServerProcess(median_ms=5.0, sigma=0.5) as server:
        sc = scenario(server.url, load, workers=2, split=split)
        outcome = run_scenario(sc, tmp_path, show_progress=False, record_raw=True)
        log = [row for row in server.log() if row[2].endswith("/infer")]
    assert outcome.status == "complete"
    assert outcome.exit_code == verdict_code(outcome.summary)
    assert outcome.summary["loadgen"]["workers_finished"] == 2

    gaps = np.diff(np.sort([row[0] for row in log]))
    assert stats.kstest(gaps, "expon", args=(0, 1 / rate)).pvalue > 0.01
    assert abs(len(log) - rate * duration) < 4 * np.sqrt(rate * duration)

    raw = _raw(outcome.run_dir)
    assert {r["endpoint"] for r in raw} == {"m/1", "m/2"} and len(raw) == len(log)
    assert len(list((outcome.run_dir / "stream").glob("raw-*.jsonl"))) == 2  # both worked
    for corrected, start in ((True, "intended"), (False, "sent")):
        truth = new_histogram()
        for r in raw:
            if r["ok"]:
                truth.record_value(to_us(r["done"] - r[start]))
        merged = merged_histogram(outcome.run_dir, corrected=corrected)
        assert merged.get_total_count() == truth.get_total_count() == len(raw)
        assert list(merged.counts) == list(truth.counts), "merge must be exact"

    share = sum(r["endpoint"] == "m/2" for r in raw) / len(raw)
    assert abs(share - 0.1) < 4 * np.sqrt(0.1 * 0.9 / len(raw)), share
    assert set(outcome.summary["endpoints"]) == {"m/1", "m/2"}


def test_trace_replay_reproduces_interarrivals(tmp_path: Path) -> None:
    speedup, duration = 15.0, 4.0
    trace = {"path": str(TRACE), "speedup": speedup}
    load = {"mode": "open", "arrival": "trace", "trace": trace, "duration": duration}
    with DelayServerProcess(median_ms=2.0, sigma=0.0) as server:
        # show_progress: also exercises the rich live view (written to the captured stderr)
        outcome = run_scenario(scenario(server.url, load), tmp_path, show_progress=True)
        log = [row for row in server.log() if row[2].endswith("/infer")]
    assert outcome.status == "complete"
    offsets = load_arrivals(TRACE) / speedup
    expected = offsets[offsets < duration]
    assert len(log) == expected.size == outcome.summary["requests"]
    seen = np.diff(np.sort([row[0] for row in log]))
    result = stats.ks_2samp(seen, np.diff(expected))
    assert result.pvalue > 0.01, result

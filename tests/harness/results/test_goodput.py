"""Goodput in the summary: answers within the SLO latency per second, overall and per stage.

Expected values are counted with numpy on the raw latencies the windows were built from (the
latencies are drawn away from the threshold's HDR slot, so slot rounding cannot move one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.analysis.ab.synthetic import window_rows
from harness.config import validate_scenario
from harness.latency.sparse import SparseHist
from harness.latency.windows import WindowRecord
from harness.results import load_run, summarize, write_synthetic_run
from harness.results.goodput import count_within
from harness.results.schema import GoodputStage, GoodputSummary

THRESHOLD_MS = 100.0
# A spike: 5 s at 50/s, 5 s at 200/s (an overload: slow answers and failures), 5 s at 50/s.
STAGES = [(5, 50), (5, 200), (5, 50)]
SCENARIO = {
    "name": "spike",
    "target": {"url": "http://127.0.0.1:9", "protocol": "kserve-http", "model": "m"},
    "load": {
        "mode": "open",
        "stages": [{"duration": f"{d}s", "rate": r} for d, r in STAGES],
    },
    "slo": {"p99_ms": THRESHOLD_MS},
}


def _latencies(rng: np.random.Generator, n: int, slow_share: float) -> np.ndarray:
    """Microseconds: fast ones 5-60 ms, slow ones 150-900 ms (none near 100 ms)."""
    slow = rng.random(n) < slow_share
    return np.where(slow, rng.uniform(150e3, 900e3, n), rng.uniform(5e3, 60e3, n)).astype(int)


def _spike(tmp_path: Path) -> tuple[Path, list[dict[str, float]]]:
    rng = np.random.default_rng(7)
    seconds, latency, failed, truth = [], [], [], []
    start = 0
    for duration, rate in STAGES:
        n = duration * rate
        overloaded = rate > 100
        lat = _latencies(rng, n, slow_share=0.6 if overloaded else 0.0)
        fail = rng.random(n) < (0.2 if overloaded else 0.0)
        sec = start + np.repeat(np.arange(duration), rate)
        seconds.append(sec), latency.append(lat), failed.append(fail)
        ok = ~fail
        truth.append(
            {
                "offered_rps": float(rate),
                "throughput_rps": ok.sum() / duration,
                "goodput_rps": (ok & (lat <= THRESHOLD_MS * 1000)).sum() / duration,
            }
        )
        start += duration
    rows = window_rows(
        "m", np.concatenate(seconds), np.concatenate(latency), np.concatenate(failed)
    )
    scenario = validate_scenario(SCENARIO).model_dump(mode="json")
    records = [WindowRecord.from_dict(r) for r in rows]
    return write_synthetic_run(tmp_path / "r", records, scenario_config=scenario), truth


def test_goodput_per_stage_shows_the_spike_and_matches_the_raw_counts(tmp_path: Path) -> None:
    run_dir, truth = _spike(tmp_path)
    summary = summarize(load_run(run_dir))
    goodput = summary["goodput"]
    assert set(goodput) == set(GoodputSummary.__annotations__)
    assert goodput["threshold_ms"] == THRESHOLD_MS
    stages = goodput["stages"]
    assert [(s["from_s"], s["to_s"], s["seconds"]) for s in stages] == [
        (0.0, 5.0, 5),
        (5.0, 10.0, 5),
        (10.0, 15.0, 5),
    ]
    for got, want in zip(stages, truth, strict=True):
        assert set(got) == set(GoodputStage.__annotations__)
        assert got["offered_rps"] == want["offered_rps"]
        assert got["throughput_rps"] == round(want["throughput_rps"], 3)
        assert got["goodput_rps"] == round(want["goodput_rps"], 3)
    # the spike: offered 4x, answered 3.2x as much, of which only ~40 % in time
    assert stages[1]["throughput_rps"] > 3 * stages[0]["throughput_rps"]
    assert stages[1]["goodput_rps"] < 0.5 * stages[1]["throughput_rps"]
    assert stages[0]["goodput_rps"] == stages[2]["goodput_rps"] == 50.0
    # overall: the measured seconds (staged loads are judged on their last stage, calm)
    measured = summary["validity"]["measured_s"]
    assert goodput["goodput_rps"] == summary["throughput_rps"] == 50.0
    assert goodput["good_share"] == 1.0 and measured >= 1


def test_no_latency_threshold_no_goodput_section(tmp_path: Path) -> None:
    run_dir, _ = _spike(tmp_path)
    summary = summarize(
        load_run(run_dir), slo=validate_scenario(SCENARIO).slo.model_copy(update={"p99_ms": None})
    )
    assert "goodput" not in summary


def test_count_within_counts_whole_slots_at_or_below_the_threshold() -> None:
    values = np.array([999, 1000, 1000, 1001, 5000, 100_000])  # us
    hist = SparseHist.from_values(values)
    # 1 ms threshold: 999 and the two 1000s (1001 is in the next slot: 3 digits at 1 ms)
    assert count_within(hist, 1000) == 3 == int((values <= 1000).sum())
    # 100 ms sits in a slot 32 us wide whose highest value is above 100,000 us: it counts
    # only when the whole slot is within the threshold (as p99 <= threshold is judged)
    assert count_within(hist, 100_000) == 5
    assert count_within(hist, 100_100) == 6
    assert count_within(hist, 998) == 0
    assert count_within(SparseHist.empty(), 1000) == 0

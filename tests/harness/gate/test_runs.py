"""The gate on run directories: an inconclusive verdict names the run that was short of data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.analysis.ab.synthetic import ArmSpec, load_factor, simulate_arm, window_rows
from harness.gate import GateConfig, gate_run
from harness.latency.windows import WindowRecord
from harness.results import write_synthetic_run

SECONDS = 12


def _run(path: Path, scale: float, unhealthy: set[int], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    s = simulate_arm(ArmSpec(rate=100, scale=scale), load_factor(SECONDS, 0.1, 0.5, rng), rng)
    rows = window_rows("digits/1", s.seconds, s.latency_us, s.failed)
    for row in rows:
        row["healthy"] = row["second"] not in unhealthy
    windows = [WindowRecord.from_dict(r) for r in rows]
    return write_synthetic_run(path, windows, events=[{"ts": 1.0, "type": "warmup_end"}])


def test_a_baseline_short_of_healthy_seconds_is_named_in_the_inconclusive_verdict(
    tmp_path: Path,
) -> None:
    # the CI case: a baseline recorded while the host stalled (4 unhealthy seconds) against a
    # run 10x slower; latency cannot be judged on 7 seconds when the gate needs 8
    base = _run(tmp_path / "base", 1.0, {2, 3, 5, 8}, seed=1)
    slow = _run(tmp_path / "slow", 10.0, set(), seed=2)
    result = gate_run(slow, base, GateConfig(min_windows=8, n_boot=200))
    by_metric = {m.metric: m for m in result.metrics}
    assert by_metric["p50"].verdict == by_metric["p99"].verdict == "inconclusive"
    assert "inconclusive, too little data: p50, p99" in result.summary
    (line,) = [w for w in result.warnings if w.startswith("baseline 'base'")]
    # 12 seconds: second 0 is warm-up, 4 unhealthy, 7 measured
    assert line.startswith("baseline 'base': 7 measured seconds, 5 left out")
    assert "below the gate's 8" in line
    # the run itself had enough: it is not named as short
    assert not any("below the gate's" in w for w in result.warnings if w.startswith("run "))
    # the comparison's own words for the same facts are left out: a gate always compares two
    # runs, and the lines above already count the seconds left out, per run by its role
    assert not any("two separate runs" in w or "windows excluded" in w for w in result.warnings)
    assert [w.split(":")[0] for w in result.warnings] == ["baseline 'base'", "run 'slow'"]


def test_enough_healthy_seconds_judge_latency_and_name_no_shortfall(tmp_path: Path) -> None:
    base = _run(tmp_path / "base", 1.0, {5}, seed=1)
    slow = _run(tmp_path / "slow", 10.0, set(), seed=2)
    result = gate_run(slow, base, GateConfig(min_windows=8, n_boot=200))
    by_metric = {m.metric: m for m in result.metrics}
    assert by_metric["p50"].verdict == "regressed" and result.regression
    assert not any("below the gate's" in w for w in result.warnings)
    (line,) = [w for w in result.warnings if w.startswith("baseline 'base'")]
    assert line.startswith("baseline 'base': 10 measured seconds, 2 left out")

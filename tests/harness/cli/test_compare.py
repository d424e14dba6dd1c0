"""`harness compare` end to end on small run directories written per the results contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.analysis.ab.synthetic import ArmSpec, load_factor, simulate_arm, window_rows
from harness.cli.main import main
from harness.compare import read_arms
from harness.latency.windows import WindowRecord
from harness.results import write_synthetic_run
from tests.harness.summary_shape import full_summary

SECONDS = 60


def write_run(path: Path, rows: list[dict], events: tuple[dict, ...] = ()) -> Path:
    """A run directory from windows.parquet rows, through the results writer."""
    return write_synthetic_run(path, [WindowRecord.from_dict(r) for r in rows], events=events)


def _rows(endpoint: str, spec: ArmSpec, load: np.ndarray, seed: int) -> list[dict]:
    s = simulate_arm(spec, load, np.random.default_rng(seed))
    return window_rows(endpoint, s.seconds, s.latency_us, s.failed, s.checked, s.correct)


def _split_run(path: Path, spec_b: ArmSpec, seed: int = 0) -> Path:
    load = load_factor(SECONDS, 0.15, 0.7, np.random.default_rng(seed))
    rows = _rows("digits/1", ArmSpec(rate=80, accuracy=0.95), load, seed + 1)
    rows += _rows("digits/2", spec_b, load, seed + 2)
    return write_run(path, rows, events=[{"ts": 3.0, "type": "warmup_end"}])


def test_split_run_regression_exits_1_and_writes_json(tmp_path: Path, capsys) -> None:
    run = _split_run(tmp_path / "r1", ArmSpec(rate=80, scale=1.3, error_rate=0.02, accuracy=0.95))
    out = tmp_path / "cmp.json"
    rc = main(
        [
            "compare",
            str(run),
            "--arm",
            "digits/1",
            "--arm",
            "digits/2",
            "--json",
            str(out),
            "--n-boot",
            "300",
        ]
    )
    assert rc == 1
    data = json.loads(out.read_text())
    assert data["verdict"] == "worse" and data["regression"] is True
    assert data["design"] == "split"
    metrics = {m["metric"]: m for m in data["metrics"]}
    assert metrics["p99"]["verdict"] == "worse"
    assert metrics["error_rate"]["verdict"] == "worse"
    assert metrics["error_rate"]["a"] == 0.0  # no failure rows in A: zero events, not missing
    assert "accuracy" in metrics
    printed = capsys.readouterr().out
    assert "REGRESSION" in printed and "p99" in printed


def test_split_run_without_difference_exits_0(tmp_path: Path) -> None:
    run = _split_run(tmp_path / "r2", ArmSpec(rate=80, accuracy=0.95), seed=5)
    out = tmp_path / "cmp.json"
    # exactly two endpoints: the arms are picked in sorted order without --arm
    rc = main(["compare", str(run), "--json", str(out), "--n-boot", "300", "--margin", "10%"])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["arm_a"] == "digits/1" and data["arm_b"] == "digits/2"
    assert data["verdict"] != "worse"
    assert data["details"]["windows_a"] == SECONDS - 3  # warm-up excluded


def test_two_runs_warn_about_confounding(tmp_path: Path, capsys) -> None:
    runs = []
    for i in range(2):
        load = load_factor(SECONDS, 0.15, 0.7, np.random.default_rng(100 + i))
        rows = _rows("digits/1", ArmSpec(rate=80), load, 200 + i)
        runs.append(write_run(tmp_path / f"run{i}", rows))
    rc = main(["compare", str(runs[0]), str(runs[1]), "--n-boot", "200"])
    assert rc == 0
    assert "confounded" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra",
    [
        ["--arm", "digits/1", "--arm", "digits/9"],  # unknown endpoint
        ["--margin", "five"],  # bad margin
        ["--alpha", "0.7"],  # out of range
        ["--arm", "a", "--arm", "b", "--arm", "c"],
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, extra: list[str]) -> None:
    run = _split_run(tmp_path / "r3", ArmSpec(rate=40))
    assert main(["compare", str(run), *extra]) == 2


def test_missing_run_directory_exits_2(tmp_path: Path) -> None:
    assert main(["compare", str(tmp_path / "nope")]) == 2


def test_reader_round_trip_and_exclusions(tmp_path: Path) -> None:
    load = load_factor(20, 0.1, 0.5, np.random.default_rng(7))
    s = simulate_arm(ArmSpec(rate=50, error_rate=0.05), load, np.random.default_rng(8))
    rows = window_rows("m/1", s.seconds, s.latency_us, s.failed)
    for row in rows:  # the load generator was unhealthy in second 10
        if row["second"] == 10:
            row["healthy"] = False
    write_run(tmp_path / "r", rows, events=[{"ts": 1.5, "type": "warmup_end"}])
    (arm,) = read_arms(tmp_path / "r", ["m/1"])
    keep = (s.seconds >= 2) & (s.seconds != 10)
    assert arm.n_windows == 17 and arm.excluded_windows == 3
    assert arm.n_requests == int(keep.sum())
    assert arm.n_failures == int((s.failed & keep).sum())
    assert arm.n_success == int((~s.failed & keep).sum())


def test_reads_run_directories_written_by_the_load_engine(tmp_path: Path) -> None:
    """Compatibility with the real writer (harness.latency + harness.results.store)."""
    from harness.loadgen.recorder import LatencyRecorder
    from harness.results.store import RunWriter

    rng = np.random.default_rng(9)
    recorder = LatencyRecorder(origin_s=0.0)
    expected = {"m/1": [0, 0], "m/2": [0, 0]}  # [successes, failures]
    for i in range(3000):
        endpoint = "m/1" if i % 2 else "m/2"
        intended = i / 100.0
        ok = rng.random() > 0.02
        latency = float(rng.lognormal(np.log(0.004), 0.4))
        recorder.record(endpoint, ok, intended, intended, intended + latency, 1, int(ok))
        expected[endpoint][0 if ok else 1] += 1
    writer = RunWriter(tmp_path, "ab", scenario_config={}, run_id="run-ab")
    writer.start()
    writer.write_windows(recorder.flush())
    writer.finish("complete")
    arm1, arm2 = read_arms(writer.run_dir, ["m/1", "m/2"])
    assert (arm1.n_success, arm1.n_failures) == tuple(expected["m/1"])
    assert (arm2.n_success, arm2.n_failures) == tuple(expected["m/2"])
    assert arm1.n_windows == 30 and arm1.checked == sum(expected["m/1"])
    assert 3_500 < arm1.merged.percentile(50) < 4_500  # microseconds
    assert main(["compare", str(writer.run_dir), "--n-boot", "200"]) in (0, 1)


def test_measured_span_comes_from_the_summary_when_present(tmp_path: Path) -> None:
    load = load_factor(30, 0.1, 0.5, np.random.default_rng(1))
    s = simulate_arm(ArmSpec(rate=30), load, np.random.default_rng(2))
    run = write_run(
        tmp_path / "r",
        window_rows("m/1", s.seconds, s.latency_us, s.failed),
        events=[{"ts": 2.0, "type": "warmup_end"}],
    )
    summary = full_summary(validity={"analysed_from_s": 10, "warmup_s": 4})
    (run / "summary.json").write_text(json.dumps(summary))
    (arm,) = read_arms(run, ["m/1"])
    assert arm.seconds[0] == 14 and arm.excluded_windows == 14


def test_uncorrected_latency_and_incomplete_status(tmp_path: Path, capsys) -> None:
    load = load_factor(40, 0.1, 0.5, np.random.default_rng(3))
    rows = []
    for endpoint, seed in (("m/1", 4), ("m/2", 5)):
        s = simulate_arm(ArmSpec(rate=50), load, np.random.default_rng(seed))
        fast = window_rows(endpoint, s.seconds, s.latency_us / 2, s.failed)
        slow = window_rows(endpoint, s.seconds, s.latency_us, s.failed)
        for row, half in zip(slow, fast, strict=True):
            row["hdr_uncorrected"] = half["hdr"]  # send-to-done is half the intended-to-done
        rows += slow
    run = write_run(tmp_path / "r", rows)
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, "status": "incomplete"}))
    corrected, _ = read_arms(run, ["m/1", "m/2"])
    uncorrected, _ = read_arms(run, ["m/1", "m/2"], uncorrected=True)
    ratio = uncorrected.merged.percentile(50) / corrected.merged.percentile(50)
    assert ratio == pytest.approx(0.5, rel=0.01)
    assert main(["compare", str(run), "--uncorrected", "--n-boot", "200"]) in (0, 1)
    assert "did not finish normally" in capsys.readouterr().out

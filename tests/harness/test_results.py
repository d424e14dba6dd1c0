"""Run directory: atomic versioned files, interrupted runs readable, summary from windows."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest

from harness.config import validate_scenario
from harness.errors import SchemaVersionError, StoreError
from harness.load.hdr import LatencyRecorder, new_histogram
from harness.load.spec import RunSpec
from harness.load.stream import write_json_atomic
from harness.results import (
    RunWriter,
    atomic_write_bytes,
    atomic_write_json,
    finalize_run,
    list_runs,
    read_json,
    read_run,
    summarize,
)
from harness.results.store import atomic_write_table
from harness.results.windows import SparseHist
from tests.harness.analysis.torn_writes import failing_replace, listing, torn_writes
from tests.ports import kernel_picked_port

SCENARIO = {
    "name": "steady-digits",
    "target": {
        "url": f"http://127.0.0.1:{kernel_picked_port()}",
        "protocol": "kserve-http",
        "model": "digits",
    },
    "load": {"mode": "open", "arrival": "poisson", "rate": 200, "duration": "30s"},
    "slo": {"p99_ms": 100, "error_rate": 0.01},
}


def synthetic_records(seconds=30, rate=200, warm_s=4, seed=5):
    """Open-loop-like data: 90/10 split, 0.5% failures, a slow first `warm_s` seconds."""
    rng = np.random.default_rng(seed)
    recorder = LatencyRecorder(origin_s=1000.0)
    truth = []
    for t in np.sort(rng.uniform(0, seconds, rate * seconds)):
        median = 0.050 if t < warm_s else 0.005
        latency = rng.lognormal(math.log(median), 0.3)
        ok = bool(rng.random() > 0.005)
        endpoint = "digits/1" if rng.random() < 0.9 else "digits/2"
        recorder.record(endpoint, ok, 1000 + t, 1000 + t, 1000 + t + latency, 1, int(ok))
        if ok and t >= warm_s:
            truth.append(latency * 1000)
    return recorder.flush(), np.array(truth)


def start_writer(tmp_path, scenario=None):
    config = validate_scenario(scenario or SCENARIO).model_dump(mode="json")
    writer = RunWriter(tmp_path, "steady-digits", scenario_config=config)
    writer.start()
    return writer


def test_run_lifecycle_and_summary_contract(tmp_path):
    records, truth_ms = synthetic_records()
    writer = start_writer(tmp_path)
    assert read_json(writer.run_dir / "run.json")["status"] == "incomplete"
    writer.event("stage", ts=0.0, index=0)
    writer.write_windows(records[:10])  # a checkpoint mid-run ...
    writer.write_windows(records)  # ... replaced by the full set
    writer.write_server_metrics([(0.5, "nv_inference_count", {"model": "digits"}, 3.0)])
    writer.finish("complete")
    summary = finalize_run(writer.run_dir)

    assert json.loads((writer.run_dir / "summary.json").read_text()) == summary
    run = read_run(writer.run_dir)
    assert run.run["status"] == "complete" and run.run["ended_at"].endswith("Z")
    assert run.run["scenario_config"]["load"]["rate"] == 200
    assert run.events == [{"ts": 0.0, "type": "stage", "index": 0}]
    assert run.server_metrics is not None and run.server_metrics.num_rows == 1
    assert json.loads(run.server_metrics.column("labels")[0].as_py()) == {"model": "digits"}
    assert run.windows == records

    assert summary["requests"] == sum(r.count for r in records) == 6000
    assert summary["failures"] == sum(r.count for r in records if r.outcome == "failure")
    assert summary["validity"]["warmup_s"] == 4
    assert summary["valid"] is True and summary["slo"]["passed"] is True
    for name, p in {"p50": 50, "p99": 99}.items():
        truth = np.percentile(truth_ms, p)
        assert summary["latency_ms"][name] == pytest.approx(truth, rel=0.02)
        low, high = summary["latency_ci_ms"][name]
        assert low <= summary["latency_ms"][name] <= high
    assert summary["throughput_rps"] == pytest.approx(200, rel=0.05)
    assert summary["offered_rps"] == 200  # open loop: the schedule's rate, not what got sent
    arms = summary["endpoints"]
    assert set(arms) == {"digits/1", "digits/2"}
    share = arms["digits/2"]["requests"] / (
        arms["digits/1"]["requests"] + arms["digits/2"]["requests"]
    )
    assert share == pytest.approx(0.1, abs=0.02)
    assert arms["digits/1"]["accuracy"] == pytest.approx(0.995, abs=0.004)  # failures count wrong
    assert [row.run_id for row in list_runs(tmp_path)] == [writer.run_id]


def test_interrupted_run_keeps_its_windows(tmp_path):
    records, _ = synthetic_records(seconds=12)
    writer = start_writer(tmp_path)
    writer.write_windows(records)
    with (writer.run_dir / "events.jsonl").open("a") as handle:
        handle.write('{"ts": 3.0, "type": "fau')  # torn by the interruption
    run = read_run(writer.run_dir)  # no finish(): killed midway
    assert run.run["status"] == "incomplete" and run.windows == records and run.events == []
    summary = summarize(run)
    assert summary["requests"] == 2400 and summary["valid"] is False
    assert "run status is incomplete" in summary["validity"]["reasons"]


def test_slo_failure_and_uncorrected_latency(tmp_path):
    recorder = LatencyRecorder()
    for i in range(4000):  # 20 s at 200/s; every request sent 30 ms late, served in 2 ms
        t = i / 200
        recorder.record("digits", True, t, t + 0.030, t + 0.032)
    scenario = {**SCENARIO, "slo": {"p99_ms": 10, "min_throughput_rps": 500}}
    writer = start_writer(tmp_path, scenario)
    writer.write_windows(recorder.flush())
    writer.finish("complete")
    summary = summarize(read_run(writer.run_dir))
    assert summary["latency_ms"]["p99"] == pytest.approx(32, rel=0.01)
    assert summary["latency_uncorrected_ms"]["p99"] == pytest.approx(2, rel=0.01)
    checks = {c["name"]: c for c in summary["slo"]["checks"]}
    assert checks["p99_ms"]["passed"] is False and checks["p99_ms"]["conclusive"] is True
    assert checks["min_throughput_rps"]["observed"] == pytest.approx(200)
    assert summary["slo"]["passed"] is False


def test_atomic_write_replaces_whole_file_or_nothing(tmp_path):
    path = tmp_path / "run.json"
    atomic_write_json(path, {"schema_version": 1, "a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"schema_version": 1, "a": object()})
    assert read_json(path) == {"schema_version": 1, "a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temp files left behind


def _run_spec(path, version):
    spec = RunSpec(str(path.parent), {"version": version}, "http://127.0.0.1:1", (), version)
    spec.write(path)


# every writer of a file in results/<run-id>/ (README: "Files are written atomically")
RUN_DIR_WRITERS = {
    "atomic_write_json": lambda path, v: atomic_write_json(path, {"version": v, "pad": "x" * 64}),
    "atomic_write_bytes": lambda path, v: atomic_write_bytes(path, bytes([v]) * 4096),
    "atomic_write_table": lambda path, v: atomic_write_table(path, pa.table({"v": [v] * 100})),
    "RunSpec.write": _run_spec,
    "stream.write_json_atomic": lambda path, v: write_json_atomic(path, {"version": v}),
}


@pytest.mark.parametrize("fault", ["torn write", "failed rename"])
@pytest.mark.parametrize("writer", sorted(RUN_DIR_WRITERS))
def test_a_write_that_fails_half_way_keeps_the_old_file_whole(tmp_path, monkeypatch, writer, fault):
    """The fault strikes after bytes reached the disk: half of each write() then ENOSPC, or
    a temp file written in full whose rename fails. An in-place writer loses the old file."""
    write = RUN_DIR_WRITERS[writer]
    path = tmp_path / "file"
    write(path, 1)
    old = path.read_bytes()
    write(path, 2)
    assert path.read_bytes() != old  # the two versions differ, so a torn mix would show
    write(path, 1)
    inject = torn_writes if fault == "torn write" else failing_replace
    with pytest.raises(OSError, match="injected"), inject(monkeypatch):
        write(path, 2)
    assert path.read_bytes() == old
    assert listing(tmp_path) == ["file"]  # the temp file went with the failure


def test_unknown_schema_version_is_refused(tmp_path):
    writer = start_writer(tmp_path)
    run = json.loads((writer.run_dir / "run.json").read_text())
    atomic_write_json(writer.run_dir / "run.json", {**run, "schema_version": 99})
    with pytest.raises(SchemaVersionError, match="schema_version 99"):
        read_run(writer.run_dir)
    with pytest.raises(StoreError, match="missing"):
        read_run(tmp_path / "nope")


def test_run_directory_is_never_reused(tmp_path):
    writer = start_writer(tmp_path)
    again = RunWriter(tmp_path, "steady-digits", scenario_config={}, run_id=writer.run_id)
    with pytest.raises(StoreError, match="already exists"):
        again.start()


def test_sparse_percentiles_equal_hdrhistogram_own():
    rng = np.random.default_rng(11)
    histogram = new_histogram()
    for value in rng.lognormal(8, 1.5, 20_000).astype(int):
        histogram.record_value(int(value))
    sparse = SparseHist.from_histogram(histogram)
    for p in (0, 0.1, 1, 25, 50, 90, 99, 99.9, 99.99, 100):
        assert sparse.percentile(p) == histogram.get_value_at_percentile(p)
    assert sparse.max() == histogram.get_max_value()
    assert sparse.mean() == pytest.approx(histogram.get_mean_value())


def test_vectorised_recording_matches_hdrhistogram():
    rng = np.random.default_rng(12)
    values = np.r_[
        rng.lognormal(8, 3, 50_000).astype(np.int64).clip(0, 60_000_000),
        [0, 1, 2047, 2048, 4095, 4096, 1_000_000, 60_000_000],
    ]
    histogram = new_histogram()
    for value in values:
        assert histogram.record_value(int(value))
    expected = SparseHist.from_histogram(histogram)
    got = SparseHist.from_values(values)
    assert np.array_equal(got.slots, expected.slots)
    assert np.array_equal(got.counts, expected.counts)
    with pytest.raises(ValueError, match="60 s"):
        SparseHist.from_values(np.array([60_000_001]))


def test_latencies_beyond_the_histogram_make_the_run_invalid(tmp_path):
    recorder = LatencyRecorder()
    for i in range(6000):
        t = i / 200
        recorder.record("digits", True, t, t, t + (75.0 if i == 4000 else 0.004))
    writer = start_writer(tmp_path)
    writer.write_windows(recorder.flush())
    writer.finish("complete")
    summary = summarize(read_run(writer.run_dir))
    assert summary["rejected"] == 1 and summary["requests"] == 6000
    assert summary["valid"] is False
    assert any("outside 1 us..60 s" in r for r in summary["validity"]["reasons"])


def test_timeline_rows_per_second():
    from harness.results.windows import decode_windows, timeline

    records, _ = synthetic_records(seconds=6)
    rows = timeline(decode_windows(records))
    assert [r["second"] for r in rows] == list(range(6))
    assert sum(r["requests"] for r in rows) == 1200
    assert rows[0]["p50_ms"] == pytest.approx(50, rel=0.1)  # the slow warm-up
    assert rows[5]["p50_ms"] == pytest.approx(5, rel=0.1)

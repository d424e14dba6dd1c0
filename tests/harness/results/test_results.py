"""Run directory: atomic versioned files, interrupted runs readable, summary from windows."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest

from harness.config import validate_scenario
from harness.errors import SchemaVersionError, StoreError
from harness.latency.hdr import new_histogram
from harness.latency.sparse import SparseHist, merge
from harness.loadgen.recorder import LatencyRecorder
from harness.loadgen.spec import RunSpec
from harness.loadgen.stream import write_json_atomic
from harness.results import (
    RunWriter,
    atomic_write_bytes,
    atomic_write_json,
    finalize_run,
    list_runs,
    load_run,
    read_json,
    summarize,
)
from harness.results.store import atomic_write_table
from harness.results.windows import SecondStats, Window, per_second, select, timeline
from tests.ports import kernel_picked_port
from tests.torn_writes import failing_replace, listing, torn_writes

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
    run = load_run(writer.run_dir)
    assert run.meta["status"] == "complete" and run.meta["ended_at"].endswith("Z")
    assert run.meta["scenario_config"]["load"]["rate"] == 200
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
    run = load_run(writer.run_dir)  # no finish(): killed midway
    assert run.meta["status"] == "incomplete" and run.windows == records and run.events == []
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
    summary = summarize(load_run(writer.run_dir))
    assert summary["latency_ms"]["p99"] == pytest.approx(32, rel=0.01)
    assert summary["latency_uncorrected_ms"]["p99"] == pytest.approx(2, rel=0.01)
    (arm,) = summary["endpoints"].values()  # per endpoint too: the table shows both
    assert arm["latency_ms"]["p99"] == pytest.approx(32, rel=0.01)
    assert arm["latency_uncorrected_ms"]["p99"] == pytest.approx(2, rel=0.01)
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
        load_run(writer.run_dir)
    with pytest.raises(StoreError, match="missing"):
        load_run(tmp_path / "nope")


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
    for p in (0, 0.1, 1, 25, 50, 90, 99, 99.9, 99.99, 100, 150):  # hdrh clamps p to 100
        assert sparse.percentile(p) == histogram.get_value_at_percentile(p)
    assert sparse.max() == histogram.get_max_value()
    assert sparse.min() == histogram.get_min_value()
    assert sparse.mean() == pytest.approx(histogram.get_mean_value())
    assert sparse.counts.dtype == np.int64  # integer counts: merges stay exact


def test_sparse_percentiles_in_wide_slots_take_hdrhistograms_end_of_slot():
    """Above 2048 us a slot holds many values: p = 0 reads its low end, any p > 0 its high
    end (hdrh's rule); 1 s sits in a 512 us slot, 999_936..1_000_447."""
    values = np.arange(1_000_000, 1_100_000, 1000)  # 100 values, each in its own slot
    histogram = new_histogram()
    for value in values:
        histogram.record_value(int(value))
    sparse = SparseHist.from_histogram(histogram)
    assert sparse.percentile(0) == 999_936 and sparse.percentile(0.5) == 1_000_447
    for p in (0, 0.5, 1, 1.5, 50, 100):
        assert sparse.percentile(p) == histogram.get_value_at_percentile(p)
    assert (sparse.min(), sparse.max()) == (histogram.get_min_value(), histogram.get_max_value())
    assert sparse.value_at_rank(1) == 1_000_447  # upper end unless asked
    assert sparse.value_at_rank(1, upper=False) == 999_936
    for rank in (0, 101):
        with pytest.raises(ValueError, match=rf"^rank {rank} outside 1\.\.100$"):
            sparse.value_at_rank(rank)


def test_one_request_and_no_request():
    one = SparseHist.from_values(np.array([1234]))  # a one-microsecond slot
    assert (one.total, one.percentile(50), one.percentile(0), one.mean()) == (1, 1234, 1234, 1234)
    assert (one.min(), one.max()) == (1234, 1234)
    empty = SparseHist.empty()
    assert empty.slots.dtype == empty.counts.dtype == np.int64
    assert (empty.slots.size, empty.counts.size, empty.total) == (0, 0, 0)
    assert [empty.percentile(50), empty.mean(), empty.min(), empty.max()] == [None] * 4
    assert merge([]).total == 0 and merge([empty, empty]).slots.size == 0


def test_merge_of_sparse_histograms_is_the_histogram_of_all_values():
    rng = np.random.default_rng(13)
    a = rng.lognormal(8, 2, 3000).astype(np.int64).clip(0, 60_000_000)
    b = rng.lognormal(9, 1, 2000).astype(np.int64).clip(0, 60_000_000)
    merged = merge([SparseHist.from_values(a), SparseHist.empty(), SparseHist.from_values(b)])
    histogram = new_histogram()  # hdrh's own histogram of all 5000 values
    for value in np.r_[a, b].tolist():
        histogram.record_value(value)
    whole = SparseHist.from_histogram(histogram)
    assert np.array_equal(merged.slots, whole.slots)
    assert np.array_equal(merged.counts, whole.counts) and merged.total == 5000
    assert merged.counts.dtype == whole.counts.dtype == np.int64


def _window(second, outcome="success", values=(), endpoint="m", healthy=True):
    hist = SparseHist.from_values(np.array(values, dtype=np.int64))
    return Window(second, endpoint, outcome, len(values), 0, 0, 0, healthy, hist, hist)


def test_select_and_per_second_count_every_request_and_time_only_successes():
    windows = [
        _window(3, values=[1000, 1001]),
        _window(3, "failure", values=[1500], endpoint="n"),
        _window(5, values=[1100], healthy=False),
        _window(5, "failure", values=[1600, 1700]),
    ]
    assert select(windows, outcome="failure") == [windows[1], windows[3]]
    assert select(windows, endpoint="n") == [windows[1]]
    assert select(windows, seconds=[5], outcome="success") == [windows[2]]
    rows = per_second(windows)  # first..last second seen, the empty second 4 included
    assert [(r.second, r.requests, r.failures, r.healthy, r.hist.total) for r in rows] == [
        (3, 3, 1, True, 2), (4, 0, 0, True, 0), (5, 3, 2, False, 1),
    ]  # fmt: skip
    assert rows[0].hist.max() == 1001 and rows[2].hist.min() == 1100  # successes only
    assert per_second([]) == []
    assert [r.second for r in per_second(windows, range(2, 4))] == [2, 3]
    assert isinstance(rows[0], SecondStats)


def test_timeline_rows_by_hand():
    # second 0: 100 successes at 1001..1100 us (one-microsecond slots): p50 is the 50th
    # value, 1050 us; p99 the 99th, 1099 us. Second 1: failures only. Second 2: nothing.
    windows = [
        _window(0, values=list(range(1001, 1101))),
        _window(1, "failure", values=[2000, 2000]),
        _window(3, values=[1500]),
    ]
    assert timeline(windows) == [
        {"second": 0, "requests": 100, "failures": 0, "throughput_rps": 100, "p50_ms": 1.05,
         "p99_ms": 1.099, "healthy": True},
        {"second": 1, "requests": 2, "failures": 2, "throughput_rps": 0, "p50_ms": None,
         "p99_ms": None, "healthy": True},
        {"second": 2, "requests": 0, "failures": 0, "throughput_rps": 0, "p50_ms": None,
         "p99_ms": None, "healthy": True},
        {"second": 3, "requests": 1, "failures": 0, "throughput_rps": 1, "p50_ms": 1.5,
         "p99_ms": 1.5, "healthy": True},
    ]  # fmt: skip


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
    with pytest.raises(ValueError, match=r"^values outside 0\.\.60 s cannot be recorded$"):
        SparseHist.from_values(np.array([60_000_001]))
    with pytest.raises(ValueError, match=r"^values outside 0\.\.60 s cannot be recorded$"):
        SparseHist.from_values(np.array([5, -1]))
    assert got.counts.dtype == np.int64


def test_latencies_beyond_the_histogram_make_the_run_invalid(tmp_path):
    recorder = LatencyRecorder()
    for i in range(6000):
        t = i / 200
        recorder.record("digits", True, t, t, t + (75.0 if i == 4000 else 0.004))
    writer = start_writer(tmp_path)
    writer.write_windows(recorder.flush())
    writer.finish("complete")
    summary = summarize(load_run(writer.run_dir))
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

"""HDR windows: exact merge across recorders, honest rejects, corrected vs uncorrected."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from harness.load.hdr import (
    FAILURE,
    SUCCESS,
    LatencyRecorder,
    WindowRecord,
    WindowStore,
    clear_histogram,
    decode_histogram,
    new_histogram,
    record_values,
)

PERCENTILES = [0, 1, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100]


def _requests(n: int, seed: int = 7):
    rng = np.random.default_rng(seed)
    intended = np.sort(rng.uniform(0, 5, n))
    lag = rng.exponential(0.0002, n)
    service = rng.lognormal(np.log(0.003), 0.8, n)
    endpoints = rng.choice(["digits/1", "digits/2"], n, p=[0.9, 0.1])
    ok = rng.random(n) > 0.02
    return intended, intended + lag, intended + lag + service, endpoints, ok


def _counts(blob: bytes) -> np.ndarray:
    return np.ctypeslib.as_array(decode_histogram(blob).counts).copy()


def test_two_recorders_merge_exactly_to_one():
    intended, sent, done, endpoints, ok = _requests(20_000)
    single, workers = LatencyRecorder(), [LatencyRecorder(), LatencyRecorder()]
    assignment = np.random.default_rng(1).integers(0, 2, len(intended))
    for i in range(len(intended)):
        args = (str(endpoints[i]), bool(ok[i]), intended[i], sent[i], done[i], 1, int(ok[i]))
        single.record(*args)
        workers[assignment[i]].record(*args)
    store = WindowStore()
    for worker in workers:  # ship in two batches, as the per-second flush does
        store.add_all(worker.flush(before_second=3))
        store.add_all(worker.flush())
    expected = {r.key: r for r in single.flush()}
    merged = {r.key: r for r in store.records()}
    assert merged.keys() == expected.keys()
    assert {k[2] for k in merged} == {SUCCESS, FAILURE}
    for key, want in expected.items():
        got = merged[key]
        assert (got.count, got.checked, got.correct, got.rejected) == (
            want.count,
            want.checked,
            want.correct,
            want.rejected,
        )
        assert np.array_equal(_counts(got.hdr), _counts(want.hdr))
        assert np.array_equal(_counts(got.hdr_uncorrected), _counts(want.hdr_uncorrected))
    all_single = new_histogram()
    for record in expected.values():
        if record.outcome == SUCCESS:
            all_single.add(decode_histogram(record.hdr))
    all_merged = store.histogram()
    assert all_merged.get_total_count() == int(ok.sum())
    for p in PERCENTILES:
        assert all_merged.get_value_at_percentile(p) == all_single.get_value_at_percentile(p)


def test_percentiles_match_raw_data_to_three_digits():
    intended, sent, done, _, _ = _requests(5_000, seed=3)
    recorder = LatencyRecorder()
    for i in range(len(intended)):
        recorder.record("m", True, intended[i], sent[i], done[i])
    store = WindowStore()
    store.add_all(recorder.flush())
    hist = store.histogram()
    raw_us = np.sort(np.floor((done - intended) * 1e6 + 0.5))
    for p in (50, 90, 99):
        rank = max(int(p / 100 * len(raw_us) + 0.5), 1)
        truth = raw_us[rank - 1]
        assert hist.get_value_at_percentile(p) == pytest.approx(truth, rel=1e-3, abs=1)


def test_out_of_range_values_are_counted_not_clamped():
    recorder = LatencyRecorder()
    recorder.record("m", True, 0.1, 0.1, 0.1 + 0.005)  # fine
    recorder.record("m", True, 0.2, 0.2, 0.2 + 61.0)  # above 60 s
    recorder.record("m", False, 0.3, 0.3, 0.3 - 0.001)  # negative (clock skew)
    recorder.record("m", True, 0.4, 59.0, 0.4 + 70.0)  # only the corrected value is out
    assert recorder.rejected == 3 and recorder.recorded == 4
    records = {r.outcome: r for r in recorder.flush()}
    ok, bad = records[SUCCESS], records[FAILURE]
    assert (ok.count, ok.rejected) == (3, 2)
    assert (bad.count, bad.rejected) == (1, 1)
    hist = decode_histogram(ok.hdr)
    assert hist.get_total_count() == 1  # nothing clamped into the top bucket
    assert decode_histogram(ok.hdr_uncorrected).get_total_count() == 2


def test_corrected_measures_from_intended_start_and_windows_by_intended_second():
    recorder = LatencyRecorder(origin_s=100.0)
    # scheduled at t=0.9 s, sent late at 1.4 s, answered at 1.5 s
    recorder.record("m", True, 100.9, 101.4, 101.5)
    (record,) = recorder.flush()
    assert record.second == 0
    corrected = decode_histogram(record.hdr).get_value_at_percentile(50)
    uncorrected = decode_histogram(record.hdr_uncorrected).get_value_at_percentile(50)
    assert corrected == pytest.approx(600_000, rel=1e-3)
    assert uncorrected == pytest.approx(100_000, rel=1e-3)


def test_flush_pops_only_finished_windows():
    recorder = LatencyRecorder()
    for second in range(4):
        recorder.record("m", True, second + 0.5, second + 0.5, second + 0.51)
    assert [r.second for r in recorder.flush(before_second=2)] == [0, 1]
    assert recorder.flush(before_second=2) == []
    assert recorder.open_windows == 2
    assert [r.second for r in recorder.flush()] == [2, 3]


def test_health_flags_merge_with_and():
    a, b = LatencyRecorder(), LatencyRecorder()
    for recorder in (a, b):
        recorder.record("m", True, 0.5, 0.5, 0.51)
        recorder.record("m", True, 1.5, 1.5, 1.51)
    a.mark_unhealthy(1)
    b.mark_unhealthy(5)  # before any request of that second: applies when it opens
    b.record("m", True, 5.5, 5.5, 5.51)
    store = WindowStore()
    store.add_all(a.flush() + b.flush())
    assert {r.second: r.healthy for r in store.records()} == {0: True, 1: False, 5: False}


def test_window_record_ships_by_pickle_and_dict():
    recorder = LatencyRecorder()
    recorder.record("digits/1", True, 0.0, 0.001, 0.004, checked=1, correct=1)
    (record,) = recorder.flush()
    assert pickle.loads(pickle.dumps(record)) == record
    assert WindowRecord.from_dict(record.to_dict()) == record
    assert isinstance(record.hdr, bytes) and record.checked == record.correct == 1


def test_window_record_survives_locust_msgpack_transport():
    msgpack = pytest.importorskip("msgpack")
    recorder = LatencyRecorder()
    recorder.record("digits/2", False, 3.2, 3.25, 3.3)
    (record,) = recorder.flush()
    wire = msgpack.packb({"records": [record.to_dict()]}, use_bin_type=True)
    (back,) = msgpack.unpackb(wire, raw=False)["records"]
    assert WindowRecord.from_dict(back) == record


def _same(a, b) -> bool:
    return (
        a.get_total_count() == b.get_total_count()
        and a.get_min_value() == b.get_min_value()
        and a.get_max_value() == b.get_max_value()
        and all(a.get_value_at_percentile(p) == b.get_value_at_percentile(p) for p in PERCENTILES)
    )


def test_cleared_histogram_behaves_like_a_fresh_one() -> None:
    used = new_histogram()
    for value in (1, 7, 5_000, 59_000_000):
        used.record_value(value)
    clear_histogram(used)
    assert used.get_total_count() == 0
    fresh = new_histogram()
    for value in (3, 250, 250, 1_000_000):
        used.record_value(value)
        fresh.record_value(value)
    assert _same(used, fresh)
    assert _same(decode_histogram(used.encode()), decode_histogram(fresh.encode()))


def test_recorder_reuses_histograms_and_windows_stay_exact() -> None:
    """Windows flushed second after second reuse cleared histograms (no ~130 KiB allocation
    per window per second, no garbage cycles), and every record still equals what a fresh
    recorder makes of the same requests."""
    intended, sent, done, endpoints, ok = _requests(6000)
    recycling, fresh_records = LatencyRecorder(), []
    records = []
    for second in range(1, 6):
        in_second = (intended >= second - 1) & (intended < second)
        fresh = LatencyRecorder()
        for i in np.flatnonzero(in_second):
            args = (str(endpoints[i]), bool(ok[i]), intended[i], sent[i], done[i])
            recycling.record(*args)
            fresh.record(*args)
        records += recycling.flush(second)
        fresh_records += fresh.flush(None)
        assert recycling._spare, "flushed windows' histograms are kept for reuse"
    assert [r.key for r in records] == [r.key for r in fresh_records]
    for mine, theirs in zip(records, fresh_records, strict=True):
        assert mine.count == theirs.count
        assert _same(decode_histogram(mine.hdr), decode_histogram(theirs.hdr))
        assert _same(
            decode_histogram(mine.hdr_uncorrected), decode_histogram(theirs.hdr_uncorrected)
        )


def test_record_values_matches_hdrh_record_value_one_by_one() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate(
        [
            rng.lognormal(np.log(2_000), 1.5, 5000).astype(np.int64),
            [0, 1, 2047, 2048, 59_999_999, 60_000_000],  # edges of the range and of a bucket
        ]
    )
    values = np.clip(values, 0, 60_000_000)
    bulk, single = new_histogram(), new_histogram()
    bulk.record_value(17)  # bulk adds to what is already there
    single.record_value(17)
    record_values(bulk, values)
    for value in values.tolist():
        single.record_value(value)
    assert _same(bulk, single)
    assert bulk.encode() == single.encode()

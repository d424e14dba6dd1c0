"""HDR windows: exact merge across recorders, honest rejects, corrected vs uncorrected."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from harness.latency.hdr import (
    HIGHEST_US,
    HdrLayout,
    clear_histogram,
    decode_histogram,
    new_histogram,
    record_values,
    to_us,
)
from harness.latency.windows import FAILURE, SUCCESS, WindowRecord, WindowStore, merge_records
from harness.loadgen.recorder import LatencyRecorder

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


def _values(histogram) -> list[tuple[int, int]]:
    """(value, count) of every recorded slot (values below 2048 us are exact: 1 us slots)."""
    return [
        (i.value_iterated_to, i.count_at_value_iterated_to)
        for i in histogram.get_recorded_iterator()
    ]


def test_seconds_become_the_nearest_whole_microsecond():
    assert to_us(1.0) == 1_000_000
    assert to_us(0.0000024) == 2 and to_us(0.0000026) == 3  # 2.4 -> 2, 2.6 -> 3
    assert to_us(-0.0000024) == -2 and to_us(-0.0000026) == -3  # floor(-2.1) = -3
    assert to_us(0.0) == 0


def test_zero_and_exactly_sixty_seconds_are_kept_one_microsecond_more_is_counted_out():
    """The contract's range is 0 .. 60 s inclusive (hdrh refuses negatives, the recorder
    refuses past 60 s); each bound is checked on both the corrected and uncorrected value."""
    recorder = LatencyRecorder()
    recorder.record("m", True, 0.5, 0.5, 0.5)  # 0 us from intended and from sent
    recorder.record("m", True, 0.5, 0.5, 60.5)  # 60.5 - 0.5 = 60.0 s exactly, both
    recorder.record("m", True, 0.5, 60.0, 60.500001)  # corrected 60 s + 1 us: out
    recorder.record("m", True, 0.5, 60.500002, 60.5)  # uncorrected -2 us: out
    assert (recorder.recorded, recorder.rejected) == (4, 2)
    (record,) = recorder.flush()
    assert (record.count, record.rejected) == (4, 2)
    corrected = decode_histogram(record.hdr)
    top = corrected.get_highest_equivalent_value(HIGHEST_US)
    assert corrected.get_total_count() == 3  # 0, 60 s and (from request 4) 60 s
    assert (corrected.get_min_value(), corrected.get_max_value()) == (0, top)
    uncorrected = decode_histogram(record.hdr_uncorrected)
    assert _values(uncorrected)[0] == (0, 1) and uncorrected.get_total_count() == 3
    assert uncorrected.get_max_value() == top


def test_rejects_and_counters_add_up_across_workers():
    store = WindowStore()
    for _ in range(2):  # two workers, one request over 60 s each, in the same window
        recorder = LatencyRecorder()
        recorder.record("m", True, 0.1, 0.1, 0.1 + 61.0)
        recorder.record("m", True, 0.2, 0.2, 0.2 + 0.001, checked=1, correct=1)
        recorder.record("m", True, 0.3, 0.3, 0.3 + 0.001)  # checked/correct default to 0
        store.add_all(recorder.flush())
    (merged,) = store.records()
    assert (merged.count, merged.rejected, merged.checked, merged.correct) == (6, 2, 2, 2)
    assert decode_histogram(merged.hdr).get_total_count() == 4


def test_unhealthy_flag_for_a_second_not_yet_open_survives_a_flush_before_it():
    recorder = LatencyRecorder()
    recorder.mark_unhealthy(2)
    recorder.record("m", True, 0.5, 0.5, 0.51)
    assert [(r.second, r.healthy) for r in recorder.flush(before_second=2)] == [(0, True)]
    recorder.record("m", True, 2.5, 2.5, 2.51)  # second 2 opens after that flush
    recorder.record("m", True, 3.5, 3.5, 3.51)
    assert [(r.second, r.healthy) for r in recorder.flush()] == [(2, False), (3, True)]
    recorder.record("m", True, 2.6, 2.6, 2.61)  # a flush of everything forgets the flags
    assert [(r.second, r.healthy) for r in recorder.flush()] == [(2, True)]


def test_flushed_histograms_are_reused_two_per_window_and_the_pool_is_capped():
    recorder = LatencyRecorder()
    cap = LatencyRecorder.MAX_SPARE_HISTOGRAMS
    for second in range(cap):  # 2 * cap histograms come back: only cap are kept
        recorder.record("m", True, second + 0.5, second + 0.5, second + 0.51)
    recorder.flush()
    assert len(recorder._spare) == cap
    pooled = {id(h) for h in recorder._spare}
    for second in range(3):  # three new windows take six pooled histograms
        recorder.record("m", True, second + 0.5, second + 0.5, second + 0.51)
    assert len(recorder._spare) == cap - 6
    in_use = {id(h) for w in recorder._windows.values() for h in (w.corrected, w.uncorrected)}
    assert len(in_use) == 6 and in_use <= pooled


def _store_of_five_windows() -> WindowStore:
    """seconds 0..2, endpoints a/b, one failure; corrected = 1000 + 100 * i us,
    uncorrected = 10 us less (values below 2048 us: one-microsecond slots, exact)."""
    recorder = LatencyRecorder()
    requests = [(0, "a", True), (1, "a", True), (1, "b", True), (1, "a", False), (2, "a", True)]
    for i, (second, endpoint, ok) in enumerate(requests):
        intended = second + 0.25
        latency = (1000 + 100 * i) / 1e6
        recorder.record(endpoint, ok, intended, intended + 10e-6, intended + latency)
    store = WindowStore()
    store.add_all(recorder.flush())
    return store


def test_store_selects_windows_by_second_endpoint_outcome_and_clock():
    store = _store_of_five_windows()
    assert len(store) == 5 and store.seconds() == [0, 1, 2]
    assert [r.key for r in store.records(before_second=2)] == [
        (0, "a", SUCCESS), (1, "a", FAILURE), (1, "a", SUCCESS), (1, "b", SUCCESS),
    ]  # fmt: skip
    assert _values(store.histogram()) == [(1000, 1), (1100, 1), (1200, 1), (1400, 1)]
    assert _values(store.histogram(seconds=range(1, 3))) == [(1100, 1), (1200, 1), (1400, 1)]
    assert _values(store.histogram(endpoint="a")) == [(1000, 1), (1100, 1), (1400, 1)]
    assert _values(store.histogram(seconds=range(1, 2), endpoint="a", outcome=None)) == [
        (1100, 1), (1300, 1),
    ]  # fmt: skip
    assert _values(store.histogram(outcome=FAILURE)) == [(1300, 1)]
    assert _values(store.histogram(corrected=False)) == [(990, 1), (1090, 1), (1190, 1), (1390, 1)]


def test_store_marks_a_lost_workers_second_unhealthy_and_keeps_its_data():
    store = _store_of_five_windows()
    before = {r.key: r for r in store.records()}
    store.mark_unhealthy(1)
    after = {r.key: r for r in store.records()}
    assert {k: r.healthy for k, r in after.items()} == {k: k[0] != 1 for k in before}
    assert all(after[k].hdr == before[k].hdr and after[k].count == before[k].count for k in after)


def test_windows_of_different_keys_are_never_merged():
    a, b = _store_of_five_windows().records()[:2]
    with pytest.raises(
        ValueError, match=r"^cannot merge windows \(0, 'a', 'success'\) and \(1, 'a', 'failure'\)$"
    ):
        merge_records(a, b)


def _state(histogram) -> tuple:
    return (
        list(histogram.counts),
        histogram.total_count,
        histogram.min_value,
        histogram.max_value,
        histogram.start_time_stamp_msec,
        histogram.end_time_stamp_msec,
    )


def test_clear_histogram_leaves_what_hdrh_reset_leaves_without_its_slow_loop(monkeypatch):
    used, reference = new_histogram(), new_histogram()
    for histogram in (used, reference):
        for value in (0, 7, 5_000, 59_000_000):
            histogram.record_value(value)
        histogram.set_start_time_stamp(1_000)
        histogram.set_end_time_stamp(2_000)
    reference.reset()  # hdrh's own: one Python assignment per slot
    monkeypatch.setattr(used, "reset", lambda: pytest.fail("per-slot reset on the ctypes layout"))
    clear_histogram(used)
    assert _state(used) == _state(reference)


def test_record_values_never_falls_back_to_per_value_recording_on_ctypes(monkeypatch):
    histogram = new_histogram()
    monkeypatch.setattr(
        histogram, "record_value", lambda *a: pytest.fail("per-value record on ctypes layout")
    )
    record_values(histogram, [3, 3, 2_000_000])
    assert histogram.get_total_count() == 3 and histogram.get_min_value() == 3


def test_other_counts_layouts_take_hdrhs_own_slow_path():
    """An hdrh whose counts are not a ctypes array (a plain list here): record_values and
    clear_histogram must go through hdrh's own record_value and reset."""
    values = [0, 1, 3, 3, 2047, 2048, 1_000_000, HIGHEST_US]
    listed, reference = new_histogram(), new_histogram()
    listed.counts = list(listed.counts)
    record_values(listed, values)
    for value in values:
        reference.record_value(value)
    assert _state(listed) == _state(reference)
    clear_histogram(listed)
    reference.reset()
    assert _state(listed) == _state(reference)


@pytest.mark.parametrize(
    ("lowest", "highest", "digits"),
    [(1, 60_000_000, 3), (1000, 3_600_000_000, 2), (1024, 10_000_000_000, 3)],
)
def test_layout_arithmetic_matches_hdrh_for_any_layout(lowest, highest, digits):
    """HdrLayout against hdrh's own index and value functions: every slot's highest
    equivalent value, and the slot of values on and around every power of two."""
    histogram = HdrHistogram(lowest, highest, digits)
    layout = HdrLayout(lowest, highest, digits)
    indices = np.arange(histogram.counts_len)
    expected = [
        histogram.get_highest_equivalent_value(histogram.get_value_from_index(int(i)))
        for i in indices
    ]
    assert np.array_equal(layout.value_of(indices), expected)
    powers = 2 ** np.arange(int(np.log2(highest)))
    values = np.unique(np.r_[0, powers - 1, powers, powers + 1, powers * 3 // 2, highest])
    values = values[values <= highest]
    slots = layout.index_of(values)
    assert [histogram.get_value_from_index(int(i)) for i in slots] == [
        histogram.get_lowest_equivalent_value(int(v)) for v in values
    ]

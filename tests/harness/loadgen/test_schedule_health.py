"""Generator self-health per second, and the master's append-only window stream."""

from __future__ import annotations

from pathlib import Path

from harness.latency.windows import WindowStore
from harness.loadgen import stream
from harness.loadgen.health import HealthThresholds, evaluate_second, quantile
from harness.loadgen.recorder import LatencyRecorder


def test_quantile_is_nearest_rank() -> None:
    values = sorted(float(v) for v in range(1, 101))
    assert quantile(values, 0.5) == 50.0 and quantile(values, 0.99) == 99.0
    assert quantile([], 0.99) == 0.0


def test_a_second_is_unhealthy_for_cpu_lag_or_drops_and_says_why() -> None:
    limits = HealthThresholds(max_cpu_percent=90, max_lag_p99_ms=5, late_ms=2)
    good = evaluate_second(3, 0, [0.0001] * 100, 40.0, 0, 4, limits)
    assert good.healthy and good.sent == 100 and good.late == 0 and not good.reasons
    lagging = evaluate_second(3, 0, [0.0001] * 97 + [0.02, 0.03, 0.006], 40.0, 0, 4, limits)
    assert not lagging.healthy and lagging.late == 3 and "lag" in lagging.reasons[0]
    assert "(3 requests over it)" in lagging.reasons[0]
    busy = evaluate_second(3, 1, [], 97.0, 0, 0, limits)
    assert not busy.healthy and "cpu" in busy.reasons[0]
    dropping = evaluate_second(3, 1, [0.0] * 10, 10.0, 7, 1000, limits)
    assert not dropping.healthy and "7 requests dropped" in dropping.reasons[0]
    assert dropping.to_dict()["reasons"] == list(dropping.reasons)


def _records(origin: float, n: int, unhealthy: int | None = None) -> list:
    recorder = LatencyRecorder(origin_s=origin)
    for i in range(n):
        t = origin + i * 0.01
        recorder.record("m/1", i % 10 != 0, t, t + 0.001, t + 0.002 + i * 1e-5)
    if unhealthy is not None:
        recorder.mark_unhealthy(unhealthy)
    return recorder.flush()


def test_stream_round_trip_merges_duplicates_exactly_and_skips_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / stream.WINDOWS
    a, b = _records(0.0, 250), _records(0.0, 130, unhealthy=1)
    stream.append_lines(path, (stream.record_to_json(r) for r in a))
    stream.append_lines(path, (stream.record_to_json(r) for r in b))
    with open(path, "a") as handle:
        handle.write('{"second": 9, "endpo')  # a writer killed mid-line
    merged = stream.merge_stream(path)
    truth = WindowStore()
    truth.add_all(a + b)
    assert [r.key for r in merged.records()] == [r.key for r in truth.records()]
    for got, want in zip(merged.records(), truth.records(), strict=True):
        assert got.count == want.count and got.healthy == want.healthy
    assert not next(r for r in merged.records() if r.second == 1).healthy
    assert merged.histogram().get_total_count() == truth.histogram().get_total_count()


def test_read_lines_resumes_from_an_offset(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    stream.append_lines(path, [{"a": 1}, {"a": 2}])
    items, offset = stream.read_lines(path)
    stream.append_lines(path, [{"a": 3}])
    more, _ = stream.read_lines(path, offset)
    assert [i["a"] for i in items] == [1, 2] and more == [{"a": 3}]
    assert stream.read_lines(tmp_path / "missing.jsonl") == ([], 0)


def test_quantile_rank_is_at_least_one_and_at_most_the_count() -> None:
    assert quantile([1.0, 2.0, 3.0], 0.0) == 1.0  # rank max(1, ceil(0)) = 1
    assert quantile([1.0, 2.0], 0.1) == 1.0  # rank ceil(0.2) = 1
    assert quantile([1.0, 2.0], 0.51) == 2.0  # rank ceil(1.02) = 2
    assert quantile([5.0], 0.99) == 5.0


def test_the_health_record_carries_every_field_the_stream_writes() -> None:
    # 100 lags, given in reverse to check the sort: 49 of 0.1 ms, then (nearest rank of 100)
    # rank 50 = 1.23456 ms (p50), 47 of 2 ms, one of 11 ms, rank 99 = 12.34567 ms (p99),
    # rank 100 = 45.67891
    lags_s = [0.0001] * 49 + [0.00123456] + [0.002] * 47 + [0.011, 0.01234567, 0.04567891]
    record = evaluate_second(12, 3, lags_s[::-1], 97.46, 2, 17, HealthThresholds())
    assert record.to_dict() == {
        "second": 12,
        "worker": 3,
        "cpu_percent": 97.5,  # rounded to 0.1
        "sent": 100,
        "dropped": 2,
        "late": 3,  # over the default 10 ms: 11, 12.3 and 45.7 ms
        "lag_p50_ms": 1.235,  # rounded to the microsecond
        "lag_p99_ms": 12.346,
        "lag_max_ms": 45.679,
        "outstanding_max": 17,
        "healthy": False,
        "reasons": [
            "cpu 97.5% > 90%",
            "schedule lag p99 12.346 ms > 10 ms (3 requests over it)",
            "2 requests dropped at max_outstanding",
        ],
    }


def test_a_second_without_requests_has_zero_lags() -> None:
    record = evaluate_second(0, 0, [], 12.34, 0, 0, HealthThresholds())
    assert (record.sent, record.late, record.cpu_percent) == (0, 0, 12.3)
    assert (record.lag_p50_ms, record.lag_p99_ms, record.lag_max_ms) == (0.0, 0.0, 0.0)
    assert record.healthy and record.reasons == ()


def test_only_values_above_a_limit_break_it() -> None:
    # the rule is "above the limit" (the reasons read "x > limit"): equal is still healthy,
    # and a request exactly late_ms behind its start is not late. 0.005 s * 1000 == 5.0 exactly.
    limits = HealthThresholds(max_cpu_percent=80, max_lag_p99_ms=5, late_ms=5)
    at = evaluate_second(1, 0, [0.005] * 10, 80.0, 0, 1, limits)
    assert at.healthy and at.late == 0 and at.lag_p99_ms == 5.0
    over = evaluate_second(1, 0, [0.0051] * 10, 80.1, 0, 1, limits)
    assert not over.healthy and over.late == 10
    assert over.reasons == (
        "cpu 80.1% > 80%",
        "schedule lag p99 5.100 ms > 5 ms (10 requests over it)",
    )


def test_thresholds_default_to_the_documented_limits() -> None:
    # README, `loadgen`: max_cpu_percent (90), max_lag_p99_ms (10), late_ms (10)
    assert HealthThresholds().to_dict() == {
        "max_cpu_percent": 90.0,
        "max_lag_p99_ms": 10.0,
        "late_ms": 10.0,
        "min_lagging": 3,
    }


def test_one_stall_at_a_low_rate_does_not_flag_the_second() -> None:
    # 100 requests/s, a 25 ms stall of the host delays two of them: p99 is the second
    # largest lag (over the limit), but two requests are not a generator that cannot keep up
    limits = HealthThresholds()
    stall = evaluate_second(5, 0, [0.001] * 98 + [0.025, 0.015], 20.0, 0, 3, limits)
    assert stall.lag_p99_ms == 15.0 and stall.healthy and stall.reasons == ()
    behind = evaluate_second(5, 0, [0.001] * 97 + [0.025, 0.015, 0.011], 20.0, 0, 3, limits)
    assert not behind.healthy and behind.lag_p99_ms == 15.0
    # a generator behind on most of its requests is flagged whatever the rate
    slow = evaluate_second(5, 0, [0.05] * 5, 20.0, 0, 3, limits)
    assert not slow.healthy

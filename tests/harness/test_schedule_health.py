"""Generator self-health per second, and the master's append-only window stream."""

from __future__ import annotations

from pathlib import Path

from harness.load import stream
from harness.load.hdr import LatencyRecorder, WindowStore
from harness.load.health import HealthThresholds, evaluate_second, quantile


def test_quantile_is_nearest_rank() -> None:
    values = sorted(float(v) for v in range(1, 101))
    assert quantile(values, 0.5) == 50.0 and quantile(values, 0.99) == 99.0
    assert quantile([], 0.99) == 0.0


def test_a_second_is_unhealthy_for_cpu_lag_or_drops_and_says_why() -> None:
    limits = HealthThresholds(max_cpu_percent=90, max_lag_p99_ms=5, late_ms=2)
    good = evaluate_second(3, 0, [0.0001] * 100, 40.0, 0, 4, limits)
    assert good.healthy and good.sent == 100 and good.late == 0 and not good.reasons
    lagging = evaluate_second(3, 0, [0.0001] * 98 + [0.02, 0.03], 40.0, 0, 4, limits)
    assert not lagging.healthy and lagging.late == 2 and "lag" in lagging.reasons[0]
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

"""`chaos.probes.live_slo` on synthetic live windows whose percentiles are known by hand.

The windows are written the way the Locust master writes them (`harness.loadgen.stream`
lines of `WindowRecord`s, HDR histograms recorded through `harness.latency.hdr`), so the
probe reads exactly what it reads during a game day. Expected values come from hand
arithmetic over the recorded values (HDR keeps 3 significant digits: a value v reads back as
the highest value of its slot, within 0.1 % above v).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos import probes
from harness.latency.hdr import new_histogram, record_values
from harness.latency.windows import FAILURE, SUCCESS, WindowRecord
from harness.loadgen import stream


def record(second: int, values_ms: list[float], outcome: str = SUCCESS) -> WindowRecord:
    hist = new_histogram()
    record_values(hist, [int(v * 1000) for v in values_ms])
    blob = hist.encode()
    return WindowRecord(second, "digits", outcome, len(values_ms), blob, blob)


def write_windows(run_dir: Path, records: list[WindowRecord]) -> None:
    (run_dir / "stream").mkdir(parents=True, exist_ok=True)
    stream.append_lines(run_dir / "stream" / stream.WINDOWS, map(stream.record_to_json, records))


def test_p99_and_error_rate_over_the_last_windows_by_hand(tmp_path: Path):
    # second 0 is slow (1000 ms) and must be outside a 3-window look; seconds 1..3 carry
    # 99 requests of 10 ms and 1 of 200 ms each (p99 rank = round(0.99 * 300) = 297 of 300:
    # the 297th smallest is 10 ms -- only the top 3 are 200 ms), and 6 failures in all.
    windows = [record(0, [1000.0] * 50)]
    for second in (1, 2, 3):
        windows += [record(second, [10.0] * 99 + [200.0]), record(second, [1.0, 1.0], FAILURE)]
    write_windows(tmp_path, windows)
    result = probes.live_slo(str(tmp_path), windows=3, max_p99_ms=20, max_error_rate=0.05)
    assert result["requests"] == 306 and result["failures"] == 6
    assert result["error_rate"] == pytest.approx(6 / 306)
    assert result["p99_ms"] == pytest.approx(10.0, rel=1e-3)
    assert result["seconds"] == [1, 3] and result["ok"] is True
    # 4 windows take in the slow second: 350 successes (297 x 10 ms, 3 x 200, 50 x 1000),
    # p99 rank round(346.5) = 347 > 300 -> 1000 ms
    four = probes.live_slo(str(tmp_path), windows=4, max_p99_ms=20, max_error_rate=0.05)
    assert four["p99_ms"] == pytest.approx(1000.0, rel=1e-3) and four["ok"] is False


def test_each_tolerance_fails_alone(tmp_path: Path):
    write_windows(tmp_path, [record(5, [10.0] * 90), record(5, [1.0] * 10, FAILURE)])
    args = {"run_dir": str(tmp_path), "windows": 1}
    assert probes.live_slo(**args, max_p99_ms=10.1, max_error_rate=0.10)["ok"] is True
    assert probes.live_slo(**args, max_p99_ms=9.9, max_error_rate=0.10)["ok"] is False
    assert probes.live_slo(**args, max_p99_ms=10.1, max_error_rate=0.09)["ok"] is False
    assert (
        probes.live_slo(**args, max_p99_ms=10.1, max_error_rate=0.1, min_requests=101)["ok"]
        is False
    )
    assert probes.slo_met(**args, max_p99_ms=10.1, max_error_rate=0.10) is True
    assert probes.slo_met(**args, max_p99_ms=9.9, max_error_rate=0.10) is False


def test_late_copies_of_a_window_are_merged_exactly(tmp_path: Path):
    # second 7 arrives twice (a late request); both halves count: 4 x 10 ms + 1 x 50 ms,
    # p50 rank round(2.5) = 3 -> 10 ms, p99 rank round(4.95) = 5 -> 50 ms
    write_windows(tmp_path, [record(6, [1.0]), record(7, [10.0] * 4), record(8, [2.0])])
    write_windows(tmp_path, [record(7, [50.0])])
    result = probes.live_slo(str(tmp_path), windows=2, max_p99_ms=100)
    assert result["seconds"] == [7, 8] and result["requests"] == 6
    assert result["p99_ms"] == pytest.approx(50.0, rel=1e-3)


def test_no_load_is_not_a_steady_state(tmp_path: Path):
    result = probes.live_slo(str(tmp_path), windows=3)
    assert result["requests"] == 0 and result["p99_ms"] is None and result["ok"] is False
    assert probes.slo_ok(result) is False and probes.slo_ok(None) is False
    assert probes.slo_ok({"ok": True}) is True


def test_run_dir_from_configuration_and_a_missing_one_is_an_error(tmp_path: Path):
    write_windows(tmp_path, [record(1, [5.0])])
    by_config = probes.live_slo(windows=1, configuration={"run_dir": str(tmp_path)})
    assert by_config["requests"] == 1
    with pytest.raises(ValueError) as error:
        probes.live_slo(windows=1, configuration={})
    assert str(error.value) == "no run directory: pass run_dir or set the `run_dir` configuration"


def test_the_tail_of_a_long_stream_is_read_not_the_whole_file(tmp_path: Path):
    # 400 seconds of windows, a late copy of second 396 at the very end, and a first read of
    # 1 KiB: the reader must widen its read until it holds the newest seconds whole (and
    # LATE_MARGIN_S more), and agree with a read of the whole file.
    write_windows(tmp_path, [record(s, [float(1 + s % 7)] * 20) for s in range(400)])
    write_windows(tmp_path, [record(396, [3.0])])
    path = tmp_path / "stream" / stream.WINDOWS
    assert path.stat().st_size > 50 * 1024
    tail = probes._last_seconds(path, 5, tail_bytes=1024)
    whole = probes._last_seconds(path, 5, tail_bytes=10**9)
    assert tail == whole and sorted({i["second"] for i in tail}) == [395, 396, 397, 398, 399]
    result = probes.live_slo(str(tmp_path), windows=5, max_p99_ms=100)
    assert result["seconds"] == [395, 399] and result["requests"] == 101
    # seconds 395..399 record 1 + s % 7 ms: 4, 5, 6, 7, 1 ms x 20 and one 3 ms:
    # p99 rank round(99.99) = 100 of 101 -> 7 ms
    assert result["p99_ms"] == pytest.approx(7.0, rel=1e-3)


def test_p99_and_p50_of_one_to_a_hundred_ms(tmp_path: Path):
    # values 1..100 ms: p99 rank round(99.0) = 99 -> 99 ms, p50 rank 50 -> 50 ms
    write_windows(tmp_path, [record(1, [float(v) for v in range(1, 101)])])
    result = probes.live_slo(str(tmp_path), windows=1, max_p99_ms=1000)
    assert result["p99_ms"] == pytest.approx(99.0, rel=1e-3)
    assert result["p50_ms"] == pytest.approx(50.0, rel=1e-3)


def test_a_read_that_cuts_a_second_in_half_widens(tmp_path: Path):
    # Two lines a second (success, failure) and, last, a late copy of an older second (55):
    # a tail that starts between second 57's two lines sees 5 seconds (55, 57..60) for a
    # 4-second look; only the LATE_MARGIN_S rule makes it read on and keep 57 whole.
    lines = []
    for second in range(61):
        lines += [record(second, [5.0] * 3), record(second, [1.0], FAILURE)]
    write_windows(tmp_path, [*lines, record(55, [9.0])])
    path = tmp_path / "stream" / stream.WINDOWS
    whole = probes._last_seconds(path, 4, tail_bytes=10**9)
    assert sum(int(i["count"]) for i in whole) == 4 * 4
    for tail_bytes in range(64, 4096, 37):
        assert probes._last_seconds(path, 4, tail_bytes=tail_bytes) == whole, tail_bytes

"""Joining a run from another machine: the clock estimate, the refusal rules, who is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.load.remote import ExternalWorkers, missing_message, parse_address
from harness.loadgen import stream
from harness.loadgen.spec import ClockSample, best_sample, join_refusal


def test_skew_is_the_master_clock_minus_the_worker_midpoint_of_the_shortest_round_trip() -> None:
    # worker clock 1.000 -> 1.004 (rtt 4 ms), master said 11.010: skew 11.010 - 1.002 = 10.008 s
    slow = ClockSample(sent=1.000, master=11.010, received=1.004)
    # 2.000 -> 2.001 (rtt 1 ms), master 12.0015: skew 12.0015 - 2.0005 = 10.001 s; it wins
    fast = ClockSample(sent=2.000, master=12.0015, received=2.001)
    assert slow.skew == pytest.approx(10.008) and slow.rtt == pytest.approx(0.004)
    assert best_sample([slow, fast]) is fast
    assert fast.skew == pytest.approx(10.001)
    with pytest.raises(ValueError):
        best_sample([])


def test_a_worker_refuses_another_version_or_a_clock_beyond_the_limit() -> None:
    assert join_refusal("0.1.0", "0.1.0", 49.9, 50.0, "m:5557") is None
    assert join_refusal("0.1.0", "0.1.0", -50.0, 50.0, "m:5557") is None  # the limit itself
    assert join_refusal("0.1.0", "0.2.0", 0.0, 50.0, "m:5557") == (
        "this worker runs harness 0.1.0 but the master at m:5557 runs harness 0.2.0: "
        "install the same version on every machine"
    )
    assert join_refusal("0.1.0", "0.1.0", -50.5, 50.0, "m:5557") == (
        "this worker's clock is -50.500 ms from the master's at m:5557 (limit 50 ms; windows "
        "are per second of one epoch): synchronise the clocks (NTP/chrony) or raise "
        "--max-clock-skew-ms"
    )


def test_addresses_and_settings_are_checked_with_the_option_named() -> None:
    assert parse_address("10.0.0.5:6000", "--master") == ("10.0.0.5", 6000)
    assert parse_address("10.0.0.5", "--master-bind") == ("10.0.0.5", 5557)
    with pytest.raises(ConfigError, match=r"^--master 'h:x': expected HOST:PORT, e\.g\. "):
        parse_address("h:x", "--master")
    with pytest.raises(ConfigError, match=r"^--workers-external -1: must be 0 or more$"):
        ExternalWorkers(-1)
    assert ExternalWorkers(1, "0.0.0.0").local_master_host == "127.0.0.1"
    assert ExternalWorkers(1, "10.1.2.3").local_master_host == "10.1.2.3"


def test_the_missing_message_counts_local_and_remote_and_names_refusals(tmp_path: Path) -> None:
    refused = {"host": "b", "refused": "this worker runs harness 0.1.0 but ..."}
    roster = {"expected": 4, "local": 2, "external": 2, "connected": ["x", "y"], "remote": []}
    roster["remote"] = [{"host": "a", "refused": None}, refused]
    stream.write_json_atomic(tmp_path / stream.ROSTER, roster)
    # two connected, one is the remote worker that joined: local 1 of 2, remote 1 of 2
    assert missing_message(tmp_path, "m:5557", 30.2) == (
        "2 of 4 Locust workers joined the master at m:5557 within 30 s: local 1 of 2, "
        "remote 1 of 2; missing 1 remote worker(s) (start each with `harness worker --master "
        "HOST:PORT` pointing at this master); missing 1 local worker(s) (see "
        "locust-worker-*.log); refused on b: this worker runs harness 0.1.0 but ..."
    )
    roster["connected"] = ["x", "y", "z", "w"]
    stream.write_json_atomic(tmp_path / stream.ROSTER, roster)
    assert missing_message(tmp_path, "m:5557", 1.0) is None

"""scenarios.openloop: the open-loop driver's schedule walking, drops, timer slack and drain.

A fake `send` records (arm, intended, sent) and can sleep (gevent) to stand in for a
request's latency, so the driver's logic runs for real -- real clock, real timerfd -- with
no server. Bounds on timing are loose (the machine is shared); counts are exact.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import Counter
from dataclasses import dataclass, field

import gevent
import numpy as np
import pytest
from greenlet import GreenletExit, getcurrent

from scenarios import openloop
from scenarios.openloop import OpenLoopDriver, ScheduleStats


@dataclass
class FakeSend:
    """send(arm, intended, sent): records the call, then 'takes' `latency(index)` seconds."""

    latency_s: float = 0.0
    hang_first: int = 0  # the first N requests sleep 60 s (until killed)
    calls: list[tuple[int, float, float]] = field(default_factory=list)
    greenlets: list[object] = field(default_factory=list)  # which greenlet sent each
    finished: int = 0
    killed: int = 0
    active: int = 0
    active_max: int = 0

    def __call__(self, arm: int, intended: float, sent: float) -> None:
        index = len(self.calls)
        self.calls.append((arm, intended, sent))
        self.greenlets.append(getcurrent())
        self.active += 1
        self.active_max = max(self.active_max, self.active)
        try:
            if index < self.hang_first:
                gevent.sleep(60)
            elif self.latency_s:
                gevent.sleep(self.latency_s)
            self.finished += 1
        except GreenletExit:
            self.killed += 1
            raise
        finally:
            self.active -= 1


def make_driver(
    send: FakeSend,
    origin: float,
    weights: list[float] | None = None,
    max_outstanding: int = 10_000,
    **kwargs: float,
) -> OpenLoopDriver:
    stats = ScheduleStats(origin=origin)
    return OpenLoopDriver(send, weights or [1.0], stats, max_outstanding, seed=7, **kwargs)


def clusters(times: list[float], apart_s: float = 0.00025) -> int:
    """How many groups of send times, a new group after a pause longer than `apart_s`."""
    ordered = sorted(times)
    return 1 + sum(1 for a, b in itertools.pairwise(ordered) if b - a > apart_s)


@pytest.mark.parametrize("early_s", [0.0, 20e-6])
def test_every_request_sent_once_in_order_never_early(early_s: float) -> None:
    rng = np.random.default_rng(3)
    offsets = np.sort(rng.uniform(0.92, 1.08, 300))  # straddles second 0 / second 1
    schedule = np.array_split(offsets, [1, 101])  # chunks of 1, 100 and 199 arrivals
    send = FakeSend()
    origin = time.perf_counter() + 0.02 - 0.9  # first arrival ~40 ms from now
    driver = make_driver(send, origin, early_s=early_s)
    driver.run(schedule)
    assert driver.drain(5.0) == 0

    intended = [origin + offset for offset in offsets.tolist()]
    assert [call[1] for call in send.calls] == intended  # each once, in schedule order
    sent = [call[2] for call in send.calls]
    assert all(s >= i for s, i in zip(sent, intended, strict=True))  # never early
    assert sent == sorted(sent)
    assert {call[0] for call in send.calls} == {0}
    stats = driver.stats
    assert stats.sent_total == len(offsets)
    assert stats.dropped_total == 0 and stats.abandoned_total == 0
    per_second = Counter(math.floor(i - origin) for i in intended)
    assert set(per_second) == {0, 1}
    assert {second: len(lags) for second, lags in stats.lags.items()} == per_second
    expected_lags = sorted(s - i for s, i in zip(sent, intended, strict=True))
    assert sorted(stats.lags[0] + stats.lags[1]) == expected_lags
    assert max(expected_lags) < 0.5  # loose: an idle driver is far better than this
    assert stats.seconds() == {0, 1}
    lags, dropped, outstanding = stats.pop(0)
    assert (len(lags), dropped, outstanding >= 1) == (per_second[0], 0, True)
    assert stats.seconds() == {1}


def test_arm_weights_are_respected_within_sampling_error() -> None:
    n = 4000
    counts = []
    for _ in range(2):
        send = FakeSend()
        driver = make_driver(send, time.perf_counter(), weights=[0.9, 0.1])
        driver.run([np.zeros(1000)] * (n // 1000))  # all due now: the driver is 'behind'
        assert driver.drain(5.0) == 0
        assert driver.stats.sent_total == n
        counts.append(Counter(call[0] for call in send.calls))
    sigma = math.sqrt(n * 0.9 * 0.1)
    assert set(counts[0]) == {0, 1}
    assert abs(counts[0][1] - n * 0.1) < 4 * sigma
    assert counts[0] == counts[1]  # same seed, same arms


def test_requests_due_while_max_outstanding_are_in_flight_are_dropped() -> None:
    send = FakeSend(latency_s=0.05)
    offsets = np.arange(40) * 0.005  # 200 ms of arrivals, 5 ms apart
    origin = time.perf_counter() + 0.02
    driver = make_driver(send, origin, max_outstanding=3)
    driver.run([offsets[:17], offsets[17:]])
    assert driver.drain(5.0) == 0
    stats = driver.stats
    assert stats.dropped_total > 0
    assert stats.sent_total + stats.dropped_total == len(offsets)
    # each of 3 slots is busy >= 50 ms: at most 3 x 4 sends in 200 ms, the rest dropped
    assert stats.dropped_total >= 20
    assert sum(stats.dropped.values()) == stats.dropped_total
    assert len(send.calls) == send.finished == stats.sent_total
    assert send.active_max <= 3
    assert stats.outstanding_max[0] == 3
    assert not driver.in_flight


def test_timer_slack_groups_wakeups_and_bounds_lag() -> None:
    n, gap = 200, 0.005
    offsets = np.arange(n) * 0.001  # 1 ms apart

    def run(min_wake_gap_s: float) -> FakeSend:
        send = FakeSend()
        driver = make_driver(send, time.perf_counter() + 0.02, min_wake_gap_s=min_wake_gap_s)
        driver.run([offsets])
        assert driver.drain(5.0) == 0
        assert driver.stats.sent_total == n
        return send

    slack_send = run(gap)
    slack_groups = clusters([call[2] for call in slack_send.calls])
    assert slack_groups <= n // 2  # ~n/5 wake-ups expected
    lags = [sent - intended for _, intended, sent in slack_send.calls]
    assert min(lags) >= 0.0
    assert max(lags) < gap + 0.02
    assert np.mean(lags) > 0.001  # requests really waited for a shared wake-up

    tight_send = run(0.0)
    tight_groups = clusters([call[2] for call in tight_send.calls])
    assert tight_groups > slack_groups


def test_stop_ends_a_long_wait_promptly() -> None:
    send = FakeSend()
    driver = make_driver(send, time.perf_counter())
    stopper = gevent.spawn_later(0.1, driver.stop)
    start = time.perf_counter()
    driver.run([np.array([0.0, 60.0]), np.array([61.0, 62.0])])
    assert time.perf_counter() - start < 2.0
    assert stopper.dead
    assert driver.drain(1.0) == 0
    assert [call[1] for call in send.calls] == [driver.stats.origin]  # only the first
    assert driver.stats.sent_total == 1 and driver.stats.dropped_total == 0


def test_drain_waits_for_requests_in_flight() -> None:
    send = FakeSend(latency_s=0.1)
    driver = make_driver(send, time.perf_counter())
    driver.run([np.zeros(5)])
    assert len(driver.in_flight) == 5
    start = time.perf_counter()
    assert driver.drain(5.0) == 0
    assert time.perf_counter() - start < 2.0
    assert send.finished == 5 and send.killed == 0
    assert driver.stats.abandoned_total == 0
    assert not driver.in_flight


def test_drain_kills_and_counts_abandoned_requests() -> None:
    send = FakeSend(hang_first=2, latency_s=0.01)
    driver = make_driver(send, time.perf_counter())
    driver.run([np.zeros(5)])
    start = time.perf_counter()
    assert driver.drain(0.2) == 2
    elapsed = time.perf_counter() - start
    assert 0.15 <= elapsed < 3.0
    assert driver.stats.abandoned_total == 2
    assert send.killed == 2 and send.finished == 3
    assert driver.stats.sent_total == 5
    assert not driver.in_flight


def test_stop_after_run_returned_is_harmless() -> None:
    driver = make_driver(FakeSend(), time.perf_counter())
    driver.run([np.zeros(1)])
    assert driver.drain(1.0) == 0
    driver.stop()


def test_sender_greenlets_are_reused_and_end_with_the_run() -> None:
    # a fresh greenlet per request costs CPython 3.11 an mmap/munmap of a frame stack each
    # time; the driver parks its senders and reuses them, and none outlives the run
    send = FakeSend(latency_s=0.002)
    offsets = np.arange(300) * 0.001  # 1 ms apart, 2 ms each: 2-3 in flight at a time
    driver = make_driver(send, time.perf_counter() + 0.02)
    driver.run([offsets[:100], offsets[100:]])
    assert driver.drain(5.0) == 0
    assert len(send.calls) == 300
    senders = {id(g): g for g in send.greenlets}
    assert len(senders) <= send.active_max + 1 < 300
    gevent.sleep(0)  # parked senders were killed at the end of the run: let them end
    assert all(g.dead for g in senders.values())
    assert not driver.in_flight


def test_parked_senders_beyond_the_recent_peak_end(monkeypatch: pytest.MonkeyPatch) -> None:
    # a burst needs 40 senders; afterwards one at a time suffices: the burst's senders must
    # not stay parked for the rest of the run (memory would follow the worst burst ever)
    monkeypatch.setattr(openloop, "TRIM_EVERY_S", 0.15)
    monkeypatch.setattr(openloop, "KEEP_PARKED", 2)
    parked_seen: list[tuple[float, int]] = []
    senders: list[object] = []

    def send(arm: int, intended: float, sent: float) -> None:
        parked_seen.append((intended - origin, driver.parked_senders))
        senders.append(getcurrent())
        gevent.sleep(0.05 if len(senders) <= 40 else 0.001)

    burst = np.zeros(40)
    tail = 0.1 + np.arange(60) * 0.01  # 0.10 .. 0.69 s, one at a time
    origin = time.perf_counter() + 0.02
    driver = OpenLoopDriver(send, [1.0], ScheduleStats(origin=origin), 1000, seed=1)
    driver.run([burst, tail])
    assert driver.drain(5.0) == 0
    assert len(parked_seen) == 100
    assert max(n for t, n in parked_seen if 0.1 <= t < 0.15) >= 30  # the burst's, parked
    assert max(n for t, n in parked_seen if t >= 0.4) <= 3  # trimmed to the recent need
    gevent.sleep(0)
    assert all(g.dead for g in senders)  # trimmed ones ended, the rest with the run

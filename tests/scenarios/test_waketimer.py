"""scenarios.waketimer: precise wake-ups for the open-loop driver, and the portable fallback.

Checked: a sleep never ends before its deadline (the driver's lag would otherwise be
negative and requests early), the timerfd timer wakes well under gevent's ~1 ms granularity
(loose bound: the machine is shared), and `wake()` ends a sleep at once and every later one.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Iterator

import gevent
import pytest

from scenarios.waketimer import GeventWakeTimer, TimerFdWakeTimer, make_wake_timer

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="timerfd is a Linux interface"
)


@pytest.fixture
def timerfd() -> Iterator[TimerFdWakeTimer]:
    timer = TimerFdWakeTimer()
    yield timer
    timer.close()


def lateness(timer: TimerFdWakeTimer | GeventWakeTimer, sleeps: int, seed: int) -> list[float]:
    """Seconds each `sleep_until` returned after its deadline (negative: early)."""
    rng = random.Random(seed)
    late = []
    for _ in range(sleeps):
        deadline = time.monotonic() + rng.uniform(0.0002, 0.002)
        timer.sleep_until(deadline)
        late.append(time.monotonic() - deadline)
    return late


@linux_only
def test_timerfd_never_wakes_early_and_is_precise(timerfd: TimerFdWakeTimer) -> None:
    late = lateness(timerfd, 200, seed=1)
    assert min(late) >= 0.0
    assert statistics.median(late) < 0.002


@linux_only
def test_timerfd_deadline_in_the_past_returns_at_once(timerfd: TimerFdWakeTimer) -> None:
    start = time.monotonic()
    timerfd.sleep_until(start - 1.0)
    timerfd.sleep_until(0.0)  # all-zero timespec would disarm the timer: must still fire
    assert time.monotonic() - start < 0.5


@linux_only
def test_timerfd_lets_other_greenlets_run_while_sleeping(timerfd: TimerFdWakeTimer) -> None:
    ran: list[float] = []
    deadline = time.monotonic() + 0.05
    gevent.spawn(lambda: ran.append(time.monotonic()))
    timerfd.sleep_until(deadline)
    assert len(ran) == 1 and ran[0] < deadline


@linux_only
def test_timerfd_wake_ends_a_long_sleep(timerfd: TimerFdWakeTimer) -> None:
    waker = gevent.spawn_later(0.05, timerfd.wake)
    start = time.monotonic()
    timerfd.sleep_until(start + 30.0)
    assert time.monotonic() - start < 1.0
    assert waker.dead
    start = time.monotonic()
    for _ in range(3):
        timerfd.sleep_until(time.monotonic() + 30.0)  # woken: every later sleep is a no-op
    assert time.monotonic() - start < 0.1


@linux_only
def test_timerfd_wake_before_sleeping_makes_sleeps_return(timerfd: TimerFdWakeTimer) -> None:
    timerfd.wake()
    start = time.monotonic()
    timerfd.sleep_until(start + 30.0)
    assert time.monotonic() - start < 0.1


def test_gevent_timer_never_wakes_early_and_wake_works() -> None:
    timer = GeventWakeTimer()
    late = lateness(timer, 100, seed=2)
    # Event.wait(delay) rounds to the loop's millisecond clock: allow 1 ms of rounding
    assert min(late) >= -0.001
    assert statistics.median(late) < 0.01
    gevent.spawn_later(0.05, timer.wake)
    start = time.monotonic()
    timer.sleep_until(start + 30.0)
    assert time.monotonic() - start < 1.0
    start = time.monotonic()
    timer.sleep_until(start + 30.0)
    assert time.monotonic() - start < 0.1
    timer.close()


@linux_only
def test_make_wake_timer_picks_timerfd_on_linux() -> None:
    timer = make_wake_timer()
    try:
        assert isinstance(timer, TimerFdWakeTimer)
    finally:
        timer.close()


def test_make_wake_timer_falls_back_without_timerfd(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable() -> TimerFdWakeTimer:
        raise OSError(38, "timerfd_create failed")

    monkeypatch.setattr("scenarios.waketimer.TimerFdWakeTimer", unavailable)
    assert isinstance(make_wake_timer(), GeventWakeTimer)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert isinstance(make_wake_timer(), GeventWakeTimer)

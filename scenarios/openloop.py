"""Open-loop arrivals inside Locust: start every request at its scheduled time, whatever happens.

Why Locust's own users are not enough: a Locust user waits for its answer before its next
request (closed loop), so a stalled server silently slows the generator down and the stall
never appears in the percentiles (coordinated omission). Here one driver greenlet per worker
walks a precomputed schedule (`harness.loadgen.schedule`) and *spawns* each request at its
intended time on a sender greenlet, at most `max_outstanding` in flight; latency is recorded
from the intended time. Sender greenlets are raw greenlets (no Greenlet object, no pool
semaphore) kept parked between requests and reused: a fresh greenlet per request makes
CPython 3.11 mmap and munmap a 16 KiB frame stack for it each time (measured: one of each per
request, with the page faults and TLB flushes they bring). Every `TRIM_EVERY_S` the parked
senders beyond the peak in flight of that period end, so a burst's senders do not stay.
Between requests the driver sleeps on a precise wake timer (`scenarios.waketimer`), never
earlier than due; with timer slack it wakes at most once per `min_wake_gap_s` and sends what
fell due together.

Honesty when the generator cannot keep up, measured, never hidden:
  * schedule lag = actual send - intended start, per request, summarised per second;
  * a request due while `max_outstanding` requests are in flight is dropped and counted;
  * requests still in flight after the drain period are recorded as failures with the
    latency they had reached (a lower bound), not forgotten.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import gevent
import numpy as np
from gevent import get_hub
from greenlet import getcurrent, greenlet

from harness.loadgen.schedule import pick_arms
from scenarios.waketimer import make_wake_timer

log = logging.getLogger(__name__)

Clock = Callable[[], float]

TRIM_EVERY_S = 5.0  # schedule seconds between trims of the parked senders
KEEP_PARKED = 16  # never trim below this many


@dataclass(slots=True)
class ScheduleStats:
    """Per-second schedule bookkeeping of one worker (seconds relative to the run origin)."""

    origin: float
    lags: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    dropped: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    outstanding_max: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    sent_total: int = 0
    dropped_total: int = 0
    abandoned_total: int = 0

    def second_of(self, t: float) -> int:
        return math.floor(t - self.origin)

    def sent(self, intended: float, lag: float) -> None:
        self.lags[self.second_of(intended)].append(lag)
        self.sent_total += 1

    def drop(self, intended: float) -> None:
        self.dropped[self.second_of(intended)] += 1
        self.dropped_total += 1

    def outstanding(self, intended: float, count: int) -> None:
        second = self.second_of(intended)
        if count > self.outstanding_max[second]:
            self.outstanding_max[second] = count

    def pop(self, second: int) -> tuple[list[float], int, int]:
        """(lags, dropped, outstanding max) of `second`, forgetting it."""
        return (
            self.lags.pop(second, []),
            self.dropped.pop(second, 0),
            self.outstanding_max.pop(second, 0),
        )

    def seconds(self) -> set[int]:
        return set(self.lags) | set(self.dropped) | set(self.outstanding_max)


Send = Callable[[int, float, float], None]
"""send(arm, intended, sent): performs and records one request."""


class OpenLoopDriver:
    """Walks arrival times (seconds since `origin`) and fires `send` for each on time.

    `clock` must read the CLOCK_MONOTONIC timeline (`time.perf_counter` on Linux), the one
    the wake timer (`scenarios.waketimer`) sleeps on."""

    def __init__(
        self,
        send: Send,
        weights: list[float],
        stats: ScheduleStats,
        max_outstanding: int,
        seed: int,
        clock: Clock = time.perf_counter,
        early_s: float = 100e-6,
        min_wake_gap_s: float = 0.0,
    ) -> None:
        self.send = send
        self.weights = weights
        self.stats = stats
        self.max_outstanding = max_outstanding
        self.in_flight: set[Any] = set()
        self.rng = np.random.default_rng(seed)
        self.clock = clock
        self.early_s = early_s  # a request due sooner than this is waited for by spinning
        self.min_wake_gap_s = min_wake_gap_s
        self.stopped = False
        self.timer = make_wake_timer()
        self._parked: list[greenlet] = []  # idle sender greenlets, reused LIFO
        self._retired = False  # the schedule is over: senders end instead of parking
        self._hub = get_hub()  # this thread's hub: the senders' parent and scheduler

    def run(self, schedule: Iterable[np.ndarray]) -> None:
        """Blocks (cooperatively) until the schedule is exhausted or `stop()` is called."""
        origin, in_flight, stats, clock = self.stats.origin, self.in_flight, self.stats, self.clock
        limit, dispatch, early = self.max_outstanding, self._dispatch, self.early_s
        sleep_until, gap = self.timer.sleep_until, self.min_wake_gap_s
        behind, woke = 0, -1.0
        peak, next_trim = 0, origin + TRIM_EVERY_S
        try:
            for chunk in schedule:
                arms = pick_arms(self.weights, len(chunk), self.rng).tolist()
                for offset, arm in zip(chunk.tolist(), arms, strict=True):
                    intended = origin + offset
                    now = clock()
                    if now < intended <= now + early:
                        # due very soon: yield (answers get read meanwhile) until it is due
                        # rather than sleep -- on virtual machines an idle vCPU that halts
                        # and wakes costs more CPU than this short spin
                        while clock() < intended:
                            gevent.sleep(0)
                    elif intended > now:
                        behind = 0
                        # timer slack: never wake sooner than `min_wake_gap_s` after the
                        # last wake-up; what falls due meanwhile goes out together, late
                        # by less than the gap (measured as lag like any other lateness)
                        wake = max(intended, woke + gap)
                        sleep_until(wake)  # spawned requests run while we sleep
                        woke = clock()
                    else:
                        behind += 1
                        if behind % 32 == 0:  # lagging: let started requests run, stay fair
                            gevent.sleep(0)
                    if self.stopped:
                        return
                    if len(in_flight) >= limit:
                        stats.drop(intended)
                        continue
                    in_flight.add(dispatch(arm, intended))
                    count = len(in_flight)
                    stats.outstanding(intended, count)
                    if count > peak:
                        peak = count
                    if intended >= next_trim:
                        self._trim_parked(max(peak, KEEP_PARKED))
                        peak, next_trim = 0, intended + TRIM_EVERY_S
        finally:
            self.timer.close()
            self._retired = True
            while self._parked:
                gevent.kill(self._parked.pop())  # parked ones end now; busy ones when done

    @property
    def parked_senders(self) -> int:
        return len(self._parked)

    def _trim_parked(self, keep: int) -> None:
        """End the least recently used parked senders beyond `keep`."""
        parked = self._parked
        if len(parked) > keep:
            excess = len(parked) - keep
            for sender in parked[:excess]:  # the bottom of the LIFO stack: idle longest
                gevent.kill(sender)
            del parked[:excess]

    def _dispatch(self, arm: int, intended: float) -> greenlet:
        """Hands one request to a parked sender (or a new one); it starts at the hub's next
        turn, as `gevent.spawn_raw` would start a fresh greenlet."""
        hub = self._hub
        sender = self._parked.pop() if self._parked else greenlet(self._sender, hub)
        hub.loop.run_callback(sender.switch, arm, intended)
        return sender

    def _sender(self, arm: int, intended: float) -> None:
        """A sender greenlet's life: send, then park in the hub until the next request."""
        me, hub, stats, in_flight = getcurrent(), self._hub, self.stats, self.in_flight
        while True:
            try:
                sent = self.clock()
                stats.sent(intended, sent - intended)
                self.send(arm, intended, sent)
            except Exception:  # `send` records its own failures; this is a bug, not a result
                log.exception("open-loop sender failed")
            finally:
                in_flight.discard(me)  # GreenletExit (abandoned in the drain) ends it here
            if self._retired:
                return
            self._parked.append(me)
            arm, intended = hub.switch()  # parked until `_dispatch` hands over the next one

    def stop(self) -> None:
        self.stopped = True
        self.timer.wake()

    def drain(self, timeout_s: float) -> int:
        """Wait for in-flight requests; kill those still running after `timeout_s`."""
        deadline = self.clock() + timeout_s
        while self.in_flight and self.clock() < deadline:
            gevent.sleep(0.005)
        left = len(self.in_flight)
        if left:
            log.warning(
                "%d requests still in flight after %.1f s drain; abandoning", left, timeout_s
            )
            self.stats.abandoned_total += left
            for greenlet in list(self.in_flight):
                gevent.kill(greenlet)  # raises GreenletExit in it: it records, then ends
            deadline = self.clock() + 5.0
            while self.in_flight and self.clock() < deadline:
                gevent.sleep(0.005)
        return left


def sleep_until(deadline: float, clock: Clock = time.perf_counter) -> None:
    delay = deadline - clock()
    if delay > 0:
        gevent.sleep(delay)

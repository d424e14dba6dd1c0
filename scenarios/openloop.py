"""Open-loop arrivals inside Locust: start every request at its scheduled time, whatever happens.

Why Locust's own users are not enough: a Locust user waits for its answer before its next
request (closed loop), so a stalled server silently slows the generator down and the stall
never appears in the percentiles (coordinated omission). Here one driver greenlet per worker
walks a precomputed schedule (`harness.load.schedule`) and *spawns* each request at its
intended time into a bounded pool; latency is recorded from the intended time.

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

import gevent
import numpy as np
from gevent.event import Event
from gevent.pool import Pool

from harness.load.schedule import pick_arms

log = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(slots=True)
class ScheduleStats:
    """Per-second schedule bookkeeping of one worker (seconds relative to the run origin)."""

    origin: float
    lags: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    dropped: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    outstanding_max: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    spin_s: float = 0.0  # time spent yield-spinning for timer precision (not load)
    spin_total_s: float = 0.0
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
    """Walks arrival times (seconds since `origin`) and fires `send` for each on time."""

    def __init__(
        self,
        send: Send,
        weights: list[float],
        stats: ScheduleStats,
        max_outstanding: int,
        seed: int,
        clock: Clock = time.perf_counter,
        spin_s: float = 0.0012,
        yield_cost_s: float = 2e-6,
    ) -> None:
        self.send = send
        self.spin_s = spin_s
        self.weights = weights
        self.stats = stats
        self.pool = Pool(max_outstanding)
        self.rng = np.random.default_rng(seed)
        self.clock = clock
        self.stop_event = Event()
        self.iteration_cost_s = yield_cost_s

    def run(self, schedule: Iterable[np.ndarray]) -> None:
        """Blocks (cooperatively) until the schedule is exhausted or `stop()` is called."""
        origin, pool, stats = self.stats.origin, self.pool, self.stats
        behind = 0
        for chunk in schedule:
            arms = pick_arms(self.weights, len(chunk), self.rng).tolist()
            for offset, arm in zip(chunk.tolist(), arms, strict=True):
                intended = origin + offset
                delay = intended - self.clock()
                if delay > 0:
                    behind = 0
                    if self._wait_until(intended, delay):
                        return
                else:
                    behind += 1
                    if behind % 32 == 0:  # lagging: let started requests run, stay fair
                        gevent.sleep(0)
                    if self.stop_event.is_set():
                        return
                if pool.full():
                    stats.drop(intended)
                    continue
                pool.spawn(self._one, arm, intended)
                stats.outstanding(intended, len(pool))

    def _wait_until(self, due: float, delay: float) -> bool:
        """Sleep until `due`; True if stopped meanwhile. gevent's timers wake up to ~1 ms
        late (libev rounds to milliseconds), so the last `spin_s` is spent yielding in a
        loop (other greenlets keep running meanwhile). The CPU-health check must not mistake
        that for load, nor miss the real work done during the yields: each yield is charged
        at the calibrated cost of an idle one (`yield_cost_s`), the rest counts as load."""
        if delay > self.spin_s:
            gevent.sleep(delay - self.spin_s)  # cheaper than Event.wait(timeout)
            if self.stop_event.is_set():
                return True
        yields = 0
        while self.clock() < due:
            gevent.sleep(0)
            yields += 1
        idle = yields * self.iteration_cost_s
        self.stats.spin_s += idle
        self.stats.spin_total_s += idle
        return self.stop_event.is_set()

    def _one(self, arm: int, intended: float) -> None:
        sent = self.clock()
        self.stats.sent(intended, sent - intended)
        self.send(arm, intended, sent)

    def stop(self) -> None:
        self.stop_event.set()

    def drain(self, timeout_s: float) -> int:
        """Wait for in-flight requests; kill those still running after `timeout_s`."""
        self.pool.join(timeout=timeout_s)
        left = len(self.pool)
        if left:
            log.warning(
                "%d requests still in flight after %.1f s drain; abandoning", left, timeout_s
            )
            self.stats.abandoned_total += left
            self.pool.kill(block=True, timeout=5)
        return left


def idle_yield_cost(clock: Clock = time.perf_counter, batches: int = 20, n: int = 50) -> float:
    """Seconds one `gevent.sleep(0)` costs when nothing else runs: the fastest of several
    short batches, so other greenlets running during calibration do not inflate it (an
    inflated cost would hide real CPU load from the health check)."""
    best = float("inf")
    for _ in range(batches):
        start = clock()
        for _ in range(n):
            gevent.sleep(0)
        best = min(best, (clock() - start) / n)
    return best


def sleep_until(deadline: float, clock: Clock = time.perf_counter) -> None:
    delay = deadline - clock()
    if delay > 0:
        gevent.sleep(delay)

"""Shedding on event-loop lag: refuse new inference while the loop is behind.

Why: a model's queue policy bounds how long an *admitted* request waits in its queue, not how
long the request's bytes sat in the kernel's socket buffers before the loop read them. Past
about a core of front-end work (one GIL) the loop falls behind reading, each request it reads
is already old, and admitting them spends CPU on answers that come too late to be of use: the
goodput collapse of `benchmarks/bench_overload.py` at 4x capacity. A timer due every `tick_s`
measures how late it runs. While it has run later than the limit on two ticks in a row, new
inference is refused at its headers (the cheap path, HTTP 503 / gRPC UNAVAILABLE), so the
loop catches up and what it admits next is fresh. The idea of Node's toobusy and of Envoy's
overload manager.

Two ticks, not one: a single late tick is what a stall of the whole process looks like (a
VM descheduled, a page-in) and says nothing about load; sustained overload makes every
iteration of the loop long, so every tick late.
"""

from __future__ import annotations

import asyncio
import time

from reference_server.errors import Rejected

__all__ = ["LoopLagShedder"]


class LoopLagShedder:
    """The event loop's lag, measured by a periodic timer; `refusal()` while it is behind.

    `limit_s` 0 turns shedding off (the lag is still measured, for /metrics).
    """

    def __init__(self, limit_s: float, tick_s: float = 0.005) -> None:
        self.limit_s = limit_s
        self.tick_s = tick_s
        self.lag_s = 0.0  # how late the last tick ran
        self.behind = False  # the last two ticks both ran later than the limit
        self.shed = 0  # requests refused because the loop was behind
        self._due = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._refusal = Rejected(
            f"server overloaded: its event loop is more than {limit_s * 1e3:g} ms behind"
        )

    def start(self) -> None:
        """Start ticking on the running loop."""
        self.stop()
        self._due = time.monotonic() + self.tick_s
        self._timer = asyncio.get_running_loop().call_later(self.tick_s, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.lag_s, self.behind = 0.0, False

    def _tick(self) -> None:
        # time.monotonic, not loop.time(): uvloop's clock has a 1 ms resolution
        now = time.monotonic()
        lag = max(0.0, now - self._due)
        self.behind = bool(self.limit_s) and lag > self.limit_s and self.lag_s > self.limit_s
        self.lag_s = lag
        self._due = now + self.tick_s
        self._timer = asyncio.get_running_loop().call_later(self.tick_s, self._tick)

    def refusal(self) -> Rejected | None:
        """The refusal (one object, returned, never raised) while behind; else None."""
        if not self.behind:
            return None
        self.shed += 1
        return self._refusal

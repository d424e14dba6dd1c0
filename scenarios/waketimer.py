"""Wake a gevent greenlet at a precise time: a Linux timerfd watched by the event loop.

Why: gevent's own timers wake up to ~1 ms late (libev hands epoll a timeout in whole
milliseconds, rounded up), which alone puts an open-loop generator's schedule lag at ~1 ms.
A timerfd armed at the absolute due time (CLOCK_MONOTONIC, which is what `time.monotonic`
and `time.perf_counter` read on Linux) becomes readable at that time with the kernel's
high-resolution timers, and epoll returns on it -- so the driver sleeps, costs no CPU while
it waits, and wakes tens of microseconds after its due time, not a millisecond.
Busy-waiting would be precise too, but it burns the core the requests need and makes the
generator's own CPU reading meaningless.

Elsewhere (no timerfd: macOS, other libcs) `GeventWakeTimer` falls back to gevent's sleep;
the lag is then coarser, and still measured and reported.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
import time

from gevent.event import Event
from gevent.hub import get_hub

__all__ = ["GeventWakeTimer", "TimerFdWakeTimer", "make_wake_timer"]

CLOCK_MONOTONIC = 1
TFD_TIMER_ABSTIME = 1
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = 0o2000000


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class TimerFdWakeTimer:
    """`sleep_until(t)` on the CLOCK_MONOTONIC timeline; `wake()` ends a sleep early."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._settime = libc.timerfd_settime
        self._settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.c_void_p,
        ]
        fd = libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self.fd = fd
        self._spec = _Itimerspec()  # it_interval stays 0: one-shot
        self._spec_ref = ctypes.byref(self._spec)
        self._watcher = get_hub().loop.io(fd, 1)  # 1: readable
        self._woken = False

    def _arm(self, deadline: float) -> None:
        seconds = int(deadline)
        nanoseconds = int((deadline - seconds) * 1e9)
        if seconds <= 0 and nanoseconds <= 0:
            nanoseconds = 1  # all zeros would disarm the timer instead of firing it
        self._spec.it_value.tv_sec = seconds
        self._spec.it_value.tv_nsec = nanoseconds
        if self._settime(self.fd, TFD_TIMER_ABSTIME, self._spec_ref, None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def sleep_until(self, deadline: float) -> None:
        """Return at `deadline` (time.monotonic timeline), or earlier after `wake()`; never
        earlier otherwise, whatever made the fd readable."""
        while not self._woken and time.monotonic() < deadline:
            self._arm(deadline)
            get_hub().wait(self._watcher)
            with contextlib.suppress(BlockingIOError):  # the count of expirations; reading
                os.read(self.fd, 8)  # it makes the fd unreadable until the next expiry

    def wake(self) -> None:
        """End the current sleep now, and make later sleeps return at once. Harmless after
        `close()` (a late stop must not touch a descriptor number reused since)."""
        self._woken = True
        if self.fd >= 0:
            self._arm(1e-9)  # an absolute time long past: fires immediately

    def close(self) -> None:
        if self.fd >= 0:
            self._watcher.close()
            os.close(self.fd)
            self.fd = -1


class GeventWakeTimer:
    """Portable fallback: gevent's own timer (~1 ms granularity)."""

    def __init__(self) -> None:
        self._event = Event()

    def sleep_until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > 0:
            self._event.wait(delay)

    def wake(self) -> None:
        self._event.set()

    def close(self) -> None:
        pass


def make_wake_timer() -> TimerFdWakeTimer | GeventWakeTimer:
    if sys.platform.startswith("linux"):
        try:
            return TimerFdWakeTimer()
        except (OSError, AttributeError):  # no timerfd in this libc / kernel
            pass
    return GeventWakeTimer()

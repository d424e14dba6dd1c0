"""Give the heap that an overload used back to the operating system once the server is idle.

Why: glibc's malloc keeps freed memory in its arenas. After a burst (thousands of request
bodies, tensors and connection buffers, allocated from the event loop and from the ONNX
Runtime worker threads' own arenas), RSS stayed at its peak after the queue had drained.
`malloc_trim(0)` returns the free pages of every arena (glibc >= 2.8 releases whole free
pages inside the heap, not only at its top). Measured on `cnn` at 2x capacity (one run each
way, same host): without it RSS stayed at its peak 5 s later; with it, 1 s after the load it
dropped by 12-40 MiB (a third to a half of what the burst added; the rest is fragmentation
and ONNX Runtime's arena, which keeps what the largest batch needed).

When: a burst is seen as `in_flight` reaching `threshold`; once the server has then been idle
(nothing in flight) for `delay_s`, one trim runs on the event loop (a few milliseconds for a
few hundred MiB of free heap). Light load never reaches the threshold and never pays for it.
Elsewhere than glibc (musl, macOS) there is no malloc_trim and this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

__all__ = ["MemoryReclaimer", "malloc_trim"]


def _load_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _load_malloc_trim()


def malloc_trim() -> bool:
    """Return free heap pages to the OS; True if glibc released any."""
    return bool(_TRIM(0)) if _TRIM is not None else False


class MemoryReclaimer:
    """Trim the heap once after each burst, when the server has been idle for a while."""

    def __init__(
        self,
        is_idle: Callable[[], bool],
        *,
        threshold: int = 64,
        delay_s: float = 1.0,
        trim: Callable[[], bool] = malloc_trim,
    ) -> None:
        self.is_idle = is_idle
        self.threshold = threshold
        self.delay_s = delay_s
        self.trim = trim
        self.trims = 0
        self._burst = False
        self._handle: asyncio.TimerHandle | None = None

    def busy(self, in_flight: int) -> None:
        """A request started; `in_flight` counts it."""
        if in_flight >= self.threshold:
            self._burst = True

    def idle(self) -> None:
        """Nothing is in flight now: after a burst, check again in `delay_s` and trim."""
        if self._burst and self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(self.delay_s, self._check)

    def _check(self) -> None:
        self._handle = None
        if not self.is_idle():
            return  # busy again; the next idle moment schedules another check
        self._burst = False
        released = self.trim()
        self.trims += 1
        logger.debug("after a burst: malloc_trim released memory: %s", released)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

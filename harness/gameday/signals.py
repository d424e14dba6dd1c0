"""Signals during a game day: SIGTERM behaves like Ctrl-C, and a second one during the cleanup
waits until the cleanup is done.

Why: a game day is stopped the way a service is (SIGTERM from a CI runner or systemd) as
often as with Ctrl-C, and either must roll back before exiting; stopping half way through the
rollback would leave faults or processes behind. Main thread only (signal handlers); off it,
both context managers do nothing. While chaoslib runs, it installs its own handlers; see
`chaos_run` for how SIGTERM stays an interrupt there.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

__all__ = ["as_interrupt", "deferred_interrupts", "interrupts"]

log = logging.getLogger(__name__)


def as_interrupt(signum: int, frame: object) -> None:
    """A signal handler that raises what Ctrl-C raises."""
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def interrupts() -> Iterator[None]:
    """SIGINT and SIGTERM raise what Ctrl-C raises; a stray SIGUSR1 (the watchdog's, after
    chaoslib restored its handlers) is ignored instead of killing the process. Main thread
    only. SIGINT is set explicitly, as `harness run` does: a process started from a shell's
    background job (`cmd &` without job control) or by some CI runners inherits SIGINT
    *ignored*, and Python keeps it so -- a Ctrl-C meant to stop the game day would be lost."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {
        signal.SIGINT: signal.signal(signal.SIGINT, as_interrupt),
        signal.SIGTERM: signal.signal(signal.SIGTERM, as_interrupt),
        signal.SIGUSR1: signal.signal(signal.SIGUSR1, lambda s, f: None),
    }
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """While rolling back and stopping: a second Ctrl-C or SIGTERM is logged, not obeyed
    (stopping half way would leave faults or processes behind)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    old = signal.signal(signal.SIGINT, lambda s, f: caught.append(s))
    old_term = signal.signal(signal.SIGTERM, lambda s, f: caught.append(s))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        signal.signal(signal.SIGTERM, old_term)
    if caught:
        log.warning("a second interrupt arrived during the cleanup; the cleanup finished first")

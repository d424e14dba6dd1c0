"""The heap is trimmed once after a burst, when the server has been idle for a while."""

from __future__ import annotations

import asyncio
import platform

import pytest

from reference_server import memory
from reference_server.memory import MemoryReclaimer


def test_trims_once_after_a_burst_and_only_when_idle() -> None:
    async def main() -> list[str]:
        events: list[str] = []
        in_flight = [0]

        def trim() -> bool:
            events.append(f"trim at in_flight={in_flight[0]}")
            return True

        reclaimer = MemoryReclaimer(lambda: in_flight[0] == 0, threshold=3, delay_s=0.01, trim=trim)
        for n in (1, 2, 0, 1, 0):  # light load: never reaches the threshold
            reclaimer.busy(n)
            if n == 0:
                reclaimer.idle()
        await asyncio.sleep(0.05)
        events.append("light load over")
        reclaimer.busy(3)  # a burst
        reclaimer.idle()
        in_flight[0] = 1  # busy again before the delay is over: no trim
        await asyncio.sleep(0.05)
        events.append("busy at the check")
        in_flight[0] = 0
        reclaimer.idle()
        await asyncio.sleep(0.05)
        reclaimer.idle()  # idle again, no new burst: nothing more
        await asyncio.sleep(0.05)
        return events

    assert asyncio.run(main()) == ["light load over", "busy at the check", "trim at in_flight=0"]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_malloc_trim_is_found_on_glibc() -> None:
    assert memory._TRIM is not None
    memory.malloc_trim()  # callable through ctypes without crashing the process

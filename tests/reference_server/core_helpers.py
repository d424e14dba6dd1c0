"""Running an in-process InferenceCore for the core-level tests (no HTTP, no gRPC)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from reference_server.core import InferenceCore


def run_with_core(config: object, body: Callable[[InferenceCore], Awaitable]) -> object:
    """Start a core, await `body(core)`, stop the core (2 s grace); returns body's result."""

    async def main() -> object:
        core = InferenceCore(config)
        await core.start()
        try:
            return await body(core)
        finally:
            await core.stop(2.0)

    return asyncio.run(main())


async def until(
    predicate: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.001
) -> object:
    """Poll `predicate` on the running loop until it returns something truthy (returned), or
    fail at the deadline: the asyncio sibling of tests/integration/cli_helpers.wait_for."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not (value := predicate()):
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        await asyncio.sleep(interval_s)
    return value

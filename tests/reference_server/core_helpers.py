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

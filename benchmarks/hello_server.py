"""A bare asyncio HTTP/1.1 "hello" server: the ceiling baseline of the server benchmark.

Why: the benchmark states the reference server's throughput as a share of what a bare
asyncio HTTP server reaches on the same core in the same run, so that a noisy machine
moves both numbers together. This is the least an asyncio server can do per request: no
routing, no parsing beyond finding the end of each request head (requests carry no body),
a fixed keep-alive answer. It runs on uvloop, like the reference server.

    python benchmarks/hello_server.py     # prints "listening http=PORT", serves until killed
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
    b"Connection: keep-alive\r\n\r\nhello"
)


class HelloProtocol(asyncio.Protocol):
    """Answers every request head (`...\\r\\n\\r\\n`) with RESPONSE; pipelining works."""

    def __init__(self) -> None:
        self._buffer = b""
        self._transport: Any = None

    def connection_made(self, transport: Any) -> None:  # uvloop's transport is no subclass
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        count = buffer.count(b"\r\n\r\n")
        if count:
            buffer = buffer[buffer.rfind(b"\r\n\r\n") + 4 :]
            self._transport.write(RESPONSE * count)
        self._buffer = buffer


async def serve(
    host: str = "127.0.0.1", port: int = 0, protocol: type[asyncio.Protocol] = HelloProtocol
) -> None:
    """Serve `protocol` (benchmarks/null_refuser.py passes its own) until killed."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(protocol, host, port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"listening http={bound}\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


def main() -> int:
    import uvloop  # the reference server's default loop

    uvloop.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A bare asyncio HTTP/1.1 server that refuses every request at once: the front-end ceiling
of the overload benchmark (and, with `--status 200`, the HTTP transport floor of the server
benchmark: what reading a request body costs before any decoding or model work).

Why: past capacity a server must at least *read* every offered request before it can refuse
it. This server does only that -- find each request head, skip its Content-Length body, answer
503 with Retry-After -- on uvloop, like the reference server. No routing, no JSON, no model.
Whatever share of an offered load it cannot answer within the SLO on this host, no
single-front-end Python server can: it bounds the overload benchmark's goal.

    python benchmarks/null_refuser.py [--status 200]   # prints "listening http=PORT"
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 1\r\n"
    b"Content-Length: 4\r\nConnection: keep-alive\r\n\r\nbusy"
)
ANSWERED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n"
    b"Connection: keep-alive\r\n\r\ndone"
)
RESPONSE = REFUSED


class RefuserProtocol(asyncio.Protocol):
    """Answers every complete request (head + Content-Length body) with RESPONSE."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._skip = 0  # body bytes of the current request still to come
        self._transport: Any = None

    def connection_made(self, transport: Any) -> None:  # uvloop's transport is no subclass
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if self._skip:
            taken = min(self._skip, len(data))
            self._skip -= taken
            data = data[taken:]
            if self._skip:
                return
            self._transport.write(RESPONSE)
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = _content_length(bytes(self._buffer[:end]))
            available = len(self._buffer) - end - 4
            if available < length:
                self._skip = length - available
                self._buffer.clear()
                return
            del self._buffer[: end + 4 + length]
            self._transport.write(RESPONSE)


def _content_length(head: bytes) -> int:
    for line in head.lower().split(b"\r\n")[1:]:
        if line.startswith(b"content-length:"):
            return int(line[15:])
    return 0


def main() -> int:
    global RESPONSE
    import uvloop  # the reference server's default loop

    if sys.argv[1:] == ["--status", "200"]:
        RESPONSE = ANSWERED
    elif sys.argv[1:]:
        sys.stderr.write("usage: null_refuser.py [--status 200]\n")
        return 2
    from hello_server import serve  # the same listener; this file's protocol

    uvloop.run(serve(protocol=RefuserProtocol))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A minimal asyncio HTTP/1.1 client for the server's own control traffic between processes.

Why not urllib or a library: the callers (a worker forwarding /metrics and admin calls to its
supervisor, the supervisor gathering its workers' metrics and fanning admin calls out) run on
the event loop and must not block it, and the traffic is tiny, on loopback, one request per
connection (`Connection: close`), so a 40-line client is enough and adds no dependency.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["HttpReply", "request"]


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


async def request(
    method: str,
    url: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout_s: float = 5.0,
) -> HttpReply:
    """One request on a new connection; OSError (or TimeoutError) when there is no answer."""
    async with asyncio.timeout(timeout_s):
        return await _exchange(method, url, body, headers or {})


async def _exchange(method: str, url: str, body: bytes, headers: dict[str, str]) -> HttpReply:
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        head = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        raw = await reader.read()  # the server closes after its answer
    finally:
        writer.close()
    head_bytes, _, payload = raw.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        raise OSError(f"malformed HTTP answer from {url}: {lines[0][:80]!r}") from None
    reply_headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        reply_headers[name.strip().lower()] = value.strip()
    return HttpReply(status, reply_headers, payload)

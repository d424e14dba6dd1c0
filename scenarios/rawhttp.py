"""A lean HTTP/1.1 keep-alive client for the open-loop driver's hot path (gevent sockets).

Why not Locust's FastHttpSession here: it costs 150-220 us of CPU per request on this project's
development machine (header dicts, response objects, cookie handling, a liveness probe of
the socket before every reuse), which caps one worker process at ~7 k requests/s closed
loop -- and an open-loop generator also needs head-room to keep its schedule. The open
loop sends a small fixed set of requests prepared before the run, so the request bytes are
built once and a request is one `send` + `recv` + httptools' C parser. Requests still fire
Locust's `request` event, so Locust's own statistics see every one of them; hand-written
locustfiles and closed-loop runs keep using FastHttpUser's client.

Semantics kept from a mature client: connections are reused LIFO and opened on demand (up
to the driver's `max_outstanding`); a connection idle for a while is probed before reuse
(the server may have closed it), one idle for `CLOSE_AFTER_IDLE_S` is closed (so a burst's
connections do not stay), and a failed request never reuses its connection;
`Connection: close` answers, chunked bodies and network timeouts are handled.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools
from gevent import socket as gsocket

__all__ = ["HttpAnswer", "KeepAliveHttpPool", "build_post"]

PROBE_AFTER_IDLE_S = 1.0  # probe a reused connection only if it sat idle this long
CLOSE_AFTER_IDLE_S = 10.0  # close a connection unused this long (what a burst opened)
RECV_BYTES = 65536


def build_post(host_header: str, path: str, body: bytes, content_type: str) -> bytes:
    """The complete bytes of one POST request (sent as is, many times)."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nUser-Agent: serving-harness\r\n\r\n"
    )
    return head.encode("latin-1") + body


@dataclass(slots=True)
class HttpAnswer:
    status: int  # 0: no HTTP answer at all (see `error`)
    body: bytes = b""
    error: str = ""


class _Response:
    """httptools callbacks for one connection; reused response after response."""

    __slots__ = (
        "chunks",
        "complete",
        "delimited",
        "extra",
        "head_done",
        "keep_alive",
        "parser",
        "status",
    )

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.complete = False
        self.status = 0
        self.keep_alive = False
        self.delimited = False  # Content-Length or chunked: the body's end is in the message
        self.head_done = False
        self.extra = False  # bytes after the answer: nobody asked for them, drop the connection
        self.parser: httptools.HttpResponseParser | None = None

    def reset(self) -> None:
        self.chunks.clear()
        self.complete = self.delimited = self.head_done = self.extra = False

    def on_message_begin(self) -> None:
        if self.complete:  # a second answer in the same read
            self.extra = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) in (14, 17) and name.lower() in (b"content-length", b"transfer-encoding"):
            self.delimited = True

    def on_headers_complete(self) -> None:
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        if not self.extra:
            self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.extra:
            return
        # read here: once the message is complete the parser resets for the next one
        parser = self.parser
        self.status = parser.get_status_code()
        self.keep_alive = parser.should_keep_alive()
        self.complete = True


class _Connection:
    __slots__ = ("idle_since", "parser", "response", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.response = _Response()
        self.parser = httptools.HttpResponseParser(self.response)
        self.response.parser = self.parser
        self.idle_since = 0.0

    def alive(self) -> bool:
        """False if the peer closed (or reset) the connection while it was idle."""
        raw = getattr(self.sock, "_sock", self.sock)  # gevent's recv would wait; this must not
        try:
            raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True  # nothing to read: still open
        except OSError:
            return False
        return False  # b"": closed by the peer; bytes nobody asked for: not reusable either


class KeepAliveHttpPool:
    """Connections to one `http://host:port` origin; `post(wire)` sends prepared bytes."""

    def __init__(
        self, base_url: str, network_timeout_s: float = 60.0, connect_timeout_s: float = 60.0
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http":
            raise ValueError(f"{base_url!r}: the open-loop HTTP client speaks plain http only")
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.host_header = parts.netloc
        self.network_timeout_s = network_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._idle: list[_Connection] = []
        self._next_sweep = 0.0
        self.opened = 0  # connections opened over the pool's life (for tests and reports)

    def _connect(self) -> _Connection:
        sock = gsocket.create_connection(self.address, timeout=self.connect_timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.network_timeout_s)
        self.opened += 1
        return _Connection(sock)

    def _acquire(self) -> _Connection:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if time.monotonic() - conn.idle_since < PROBE_AFTER_IDLE_S or conn.alive():
                return conn
            conn.sock.close()
        return self._connect()

    def warm(self, connections: int) -> int:
        """Open up to `connections` idle connections ahead of the load (a cold start would
        otherwise pay the connects inside the first measured milliseconds); returns how
        many are idle now. A connect that fails is left for the load to report."""
        while len(self._idle) < connections:
            try:
                conn = self._connect()
            except OSError:
                break
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        return len(self._idle)

    def post(self, wire: bytes) -> HttpAnswer:
        """Send one prepared request and read its whole answer. Never raises for network or
        protocol errors: they come back as status 0 with `error` set."""
        try:
            conn = self._acquire()
        except OSError as exc:
            return HttpAnswer(0, error=f"connect: {exc!r}")
        response, parser, sock = conn.response, conn.parser, conn.sock
        response.reset()
        try:
            sent = sock.send(wire)  # one syscall for a request that fits the socket buffer;
            if sent < len(wire):  # gevent's sendall would first ask the kernel for SO_SNDBUF
                sock.sendall(memoryview(wire)[sent:])
            while not response.complete:
                data = sock.recv(RECV_BYTES)
                if data:
                    parser.feed_data(data)
                elif response.head_done and not response.delimited:
                    # HTTP/1.1 lets a body end where the server closes the connection
                    response.status, response.keep_alive = parser.get_status_code(), False
                    break
                else:
                    raise ConnectionError("connection closed by the server mid-answer")
        except (OSError, httptools.HttpParserError) as exc:
            if not response.complete:
                sock.close()
                return HttpAnswer(0, error=f"{type(exc).__name__}: {exc}")
            response.extra = True  # garbage after a complete answer: keep the answer only
        chunks = response.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        status = response.status
        if response.keep_alive and not response.extra:
            conn.idle_since = now = time.monotonic()
            self._idle.append(conn)
            if now >= self._next_sweep:
                self._close_idle(now - CLOSE_AFTER_IDLE_S)
                self._next_sweep = now + CLOSE_AFTER_IDLE_S / 4
        else:
            sock.close()
        return HttpAnswer(status, body)

    def _close_idle(self, unused_since: float) -> None:
        """Close the connections idle since before `unused_since` (LIFO reuse keeps them
        at the bottom of the stack)."""
        idle = self._idle
        stale = 0
        while stale < len(idle) and idle[stale].idle_since < unused_since:
            idle[stale].sock.close()
            stale += 1
        del idle[:stale]

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().sock.close()

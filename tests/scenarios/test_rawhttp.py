"""scenarios.rawhttp: the open loop's keep-alive HTTP/1.1 client against loopback servers.

The servers run in real threads of this (unpatched) test process; the client's gevent sockets
block cooperatively through the hub of the main thread. Most tests use a small raw-socket
server so that the exact request bytes can be checked and the answer bytes (chunked bodies,
`Connection: close`, closing an idle connection, never answering) controlled exactly; one
uses the standard library's HTTP/1.1 server as an ordinary peer.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import gevent
import pytest

from scenarios import rawhttp
from scenarios.rawhttp import KeepAliveHttpPool, build_post
from tests.ports import kernel_picked_port

CONTENT_TYPE = "application/json"
PATH = "/v2/models/digits/infer"


class Request:
    """One request as the server read it off the wire."""

    def __init__(self, raw: bytes, head: bytes, body: bytes) -> None:
        self.raw = raw
        self.body = body
        lines = head.decode("latin-1").split("\r\n")
        self.method, self.path, self.version = lines[0].split(" ")
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()


class Peer:
    """The server side of one accepted connection: read whole requests, write bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def read_request(self) -> Request | None:
        """The next request, or None once the client closed the connection."""
        while b"\r\n\r\n" not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buffer += data
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        request = Request(b"", head, b"")
        length = int(request.headers.get("content-length", "0"))
        while len(rest) < length:
            data = self.sock.recv(65536)
            if not data:
                return None
            rest += data
        request.body, self.buffer = rest[:length], rest[length:]
        request.raw = head + b"\r\n\r\n" + request.body
        return request

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


Handler = Callable[[Peer, "RawServer"], None]


class RawServer:
    """A loopback TCP server: one thread per connection runs `handler(peer, server)`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[Request] = []
        self.connections = 0
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            sock.settimeout(None)
            with self.lock:
                self.connections += 1
                self._socks.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            self.handler(Peer(sock), self)
        except OSError:
            pass  # the test (or stop()) closed the connection under the handler
        finally:
            sock.close()

    def record(self, request: Request) -> None:
        with self.lock:
            self.requests.append(request)

    def wait_connections(self, count: int, timeout_s: float = 5.0) -> int:
        deadline = time.monotonic() + timeout_s
        while self.connections < count and time.monotonic() < deadline:
            time.sleep(0.002)
        return self.connections

    def stop(self) -> None:
        self.stopping.set()
        self._acceptor.join(5)
        self.listener.close()
        with self.lock:
            for sock in self._socks:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5)
        with self.lock:
            for sock in self._socks:
                sock.close()


def answer(status: int, body: bytes, *extra: str, reason: str = "OK") -> bytes:
    head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def reversing(peer: Peer, server: RawServer) -> None:
    """Keep-alive: answer every request with its body reversed."""
    while (request := peer.read_request()) is not None:
        server.record(request)
        peer.send(answer(200, request.body[::-1], "Content-Type: application/octet-stream"))


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], RawServer]]:
    servers: list[RawServer] = []

    def start(handler: Handler) -> RawServer:
        servers.append(RawServer(handler))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def pools() -> Iterator[Callable[..., KeepAliveHttpPool]]:
    made: list[KeepAliveHttpPool] = []

    def make(url: str, **kwargs: float) -> KeepAliveHttpPool:
        made.append(KeepAliveHttpPool(url, **kwargs))
        return made[-1]

    yield make
    for pool in made:
        pool.close()


def _readable(sock: socket.socket, timeout_s: float) -> bool:
    """Wait (bounded) until a socket has something to read: bytes, or the peer's EOF."""
    ready, _, _ = select.select([sock.fileno()], [], [], timeout_s)
    return bool(ready)


def wire_for(url: str, body: bytes) -> bytes:
    return build_post(url.removeprefix("http://"), PATH, body, CONTENT_TYPE)


def test_build_post_bytes() -> None:
    wire = build_post("example:8000", "/p", b'{"a": 1}', "application/json")
    assert wire == (
        b"POST /p HTTP/1.1\r\nHost: example:8000\r\nContent-Type: application/json\r\n"
        b'Content-Length: 8\r\nUser-Agent: serving-harness\r\n\r\n{"a": 1}'
    )


def test_keep_alive_reuses_one_connection_and_sends_exact_bytes(serve, pools) -> None:
    server = serve(reversing)
    pool = pools(server.url)
    body = json.dumps({"inputs": [{"name": "x", "data": list(range(64))}]}).encode()
    wire = wire_for(server.url, body)
    answers = [pool.post(wire) for _ in range(50)]
    assert [(a.status, a.body, a.error) for a in answers] == [(200, body[::-1], "")] * 50
    assert pool.opened == 1
    assert server.connections == 1
    assert len(server.requests) == 50
    first = server.requests[0]
    assert (first.method, first.path, first.version) == ("POST", PATH, "HTTP/1.1")
    assert first.headers["host"] == f"127.0.0.1:{server.port}"
    assert first.headers["content-type"] == CONTENT_TYPE
    assert first.headers["content-length"] == str(len(body))
    assert first.body == body
    assert all(request.raw == wire for request in server.requests)


def test_request_larger_than_the_socket_buffer_goes_out_whole(serve, pools) -> None:
    """The first send() takes what fits the socket buffer; the rest must follow."""
    server = serve(reversing)
    pool = pools(server.url)
    body = bytes(range(256)) * (24 * 1024)  # 6 MiB: far beyond one send on loopback
    answer = pool.post(wire_for(server.url, body))
    assert (answer.status, answer.error) == (200, "")
    assert answer.body == body[::-1]
    assert server.requests[0].body == body


def test_connection_close_answers_open_a_connection_per_request(serve, pools) -> None:
    def closing(peer: Peer, server: RawServer) -> None:
        request = peer.read_request()
        if request is not None:
            server.record(request)
            peer.send(answer(200, b"n=%d" % len(request.body), "Connection: close"))

    server = serve(closing)
    pool = pools(server.url)
    bodies = [b"x" * n for n in range(1, 9)]
    answers = [pool.post(wire_for(server.url, body)) for body in bodies]
    assert [(a.status, a.body, a.error) for a in answers] == [
        (200, b"n=%d" % len(body), "") for body in bodies
    ]
    assert pool.opened == len(bodies)
    assert server.connections == len(bodies)
    assert pool._idle == []  # nothing kept: every connection was closed by the answer


def test_chunked_answer_is_reassembled(serve, pools) -> None:
    pieces = [b"alpha-", b"", b"0123456789" * 700, b"-omega\r\n", b"z"]
    expected = b"".join(pieces)

    def chunked(peer: Peer, server: RawServer) -> None:
        while (request := peer.read_request()) is not None:
            server.record(request)
            peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for piece in pieces:
                if piece:  # an empty chunk would end the body
                    peer.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                    time.sleep(0.002)  # separate segments: the client must parse across reads
            peer.send(b"0\r\n\r\n")

    server = serve(chunked)
    pool = pools(server.url)
    wire = wire_for(server.url, b"{}")
    first, second = pool.post(wire), pool.post(wire)
    assert (first.status, first.body, first.error) == (200, expected, "")
    assert (second.status, second.body, second.error) == (200, expected, "")
    assert pool.opened == 1  # a chunked answer keeps the connection reusable


def test_connection_closed_while_idle_is_replaced(serve, pools, monkeypatch) -> None:
    closed = threading.Event()

    def answer_once_then_close(peer: Peer, server: RawServer) -> None:
        request = peer.read_request()
        if request is not None:
            server.record(request)
            peer.send(answer(200, b"ok"))  # keep-alive answer (HTTP/1.1 default) ...
            peer.sock.close()  # ... yet the server drops the connection while it is idle
            closed.set()

    monkeypatch.setattr(rawhttp, "PROBE_AFTER_IDLE_S", 0.0)
    server = serve(answer_once_then_close)
    pool = pools(server.url)
    wire = wire_for(server.url, b"{}")
    first = pool.post(wire)
    assert (first.status, first.body, first.error) == (200, b"ok", "")
    assert len(pool._idle) == 1
    assert closed.wait(5)
    assert _readable(pool._idle[0].sock, 5)  # the server's FIN has reached the idle connection
    second = pool.post(wire)
    assert (second.status, second.body, second.error) == (200, b"ok", "")
    assert pool.opened == 2
    assert server.wait_connections(2) == 2
    assert len(server.requests) == 2


def test_idle_connection_with_unasked_bytes_is_not_reused(serve, pools, monkeypatch) -> None:
    """Bytes arriving on an idle connection (a stray or duplicated answer) would be read as
    the next request's answer: such a connection is dropped, not reused."""
    idle, stray = threading.Event(), threading.Event()

    def answer_then_babble(peer: Peer, server: RawServer) -> None:
        while (request := peer.read_request()) is not None:
            server.record(request)
            peer.send(answer(200, request.body[::-1]))
            if len(server.requests) == 1 and idle.wait(5):  # the connection is idle now
                peer.send(answer(200, b"stray"))  # nobody asked for this one
                stray.set()

    monkeypatch.setattr(rawhttp, "PROBE_AFTER_IDLE_S", 0.0)
    server = serve(answer_then_babble)
    pool = pools(server.url)
    first = pool.post(wire_for(server.url, b"ab"))
    assert (first.status, first.body) == (200, b"ba")
    assert len(pool._idle) == 1
    idle.set()
    assert stray.wait(5)
    assert _readable(pool._idle[0].sock, 5)  # the stray answer has reached the idle connection
    second = pool.post(wire_for(server.url, b"cd"))
    assert (second.status, second.body, second.error) == (200, b"dc", "")
    assert pool.opened == 2


def test_server_that_never_answers_times_out(serve, pools) -> None:
    def silent(peer: Peer, server: RawServer) -> None:
        request = peer.read_request()
        if request is not None:
            server.record(request)
        server.stopping.wait(30)  # hold the connection open, never answer

    server = serve(silent)
    pool = pools(server.url, network_timeout_s=0.3, connect_timeout_s=2.0)
    start = time.monotonic()
    result = pool.post(wire_for(server.url, b"{}"))
    elapsed = time.monotonic() - start
    assert result.status == 0
    assert result.error
    assert "timed out" in result.error.lower() or "timeout" in result.error.lower()
    assert 0.25 <= elapsed < 5.0
    assert pool._idle == []  # a failed request never leaves its connection for reuse


def test_nothing_listening_is_a_connect_error(pools) -> None:
    # bound but not listening: connects are refused, and no one else can take the port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{holder.getsockname()[1]}"
        pool = pools(url, network_timeout_s=2.0, connect_timeout_s=2.0)
        start = time.monotonic()
        result = pool.post(wire_for(url, b"{}"))
        elapsed = time.monotonic() - start
    assert result.status == 0
    assert result.error.startswith("connect")
    assert "refused" in result.error.lower()
    assert elapsed < 5.0
    assert pool.opened == 0


def test_warm_opens_idle_connections_that_posts_reuse(serve, pools) -> None:
    server = serve(reversing)
    pool = pools(server.url)
    assert pool.warm(3) == 3
    assert pool.opened == 3
    assert server.wait_connections(3) == 3
    assert pool.warm(2) == 3  # already warm enough: opens nothing
    wire = wire_for(server.url, b"abc")
    for _ in range(10):
        result = pool.post(wire)
        assert (result.status, result.body) == (200, b"cba")
    concurrent = [gevent.spawn(pool.post, wire) for _ in range(3)]
    gevent.joinall(concurrent, timeout=10, raise_error=True)
    assert [(g.value.status, g.value.body) for g in concurrent] == [(200, b"cba")] * 3
    assert pool.opened == 3
    # A negative (no fourth connection reaches the server), so a bounded wait; every
    # connection that carried a request was accepted before its answer came back.
    assert server.wait_connections(4, timeout_s=0.05) == 3
    assert len(server.requests) == 13


def test_warm_against_closed_port_opens_nothing(pools) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        pool = pools(f"http://127.0.0.1:{holder.getsockname()[1]}", connect_timeout_s=2.0)
        assert pool.warm(4) == 0
    assert pool.opened == 0


class _ErrorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # the standard library's name
        length = int(self.headers["Content-Length"])
        request = self.rfile.read(length)
        if request == b"{}":
            status, payload = 400, {"error": "missing 'inputs'"}
        else:
            status, payload = 200, {"echo": request.decode()}
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def stdlib_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ErrorHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    thread.join(5)
    server.server_close()


def test_non_200_answers_keep_status_and_body(stdlib_server, pools) -> None:
    url = f"http://127.0.0.1:{stdlib_server.server_address[1]}"
    pool = pools(url)
    bad = pool.post(wire_for(url, b"{}"))
    assert bad.status == 400
    assert json.loads(bad.body) == {"error": "missing 'inputs'"}
    assert bad.error == ""
    good = pool.post(wire_for(url, b'{"inputs": []}'))
    assert good.status == 200
    assert json.loads(good.body) == {"echo": '{"inputs": []}'}
    assert pool.opened == 1  # an error answer is still a complete answer: connection reused
    pool.close()  # let the server's handler thread see EOF before shutdown


def test_only_plain_http_is_accepted() -> None:
    with pytest.raises(ValueError, match="plain http"):
        KeepAliveHttpPool(f"https://127.0.0.1:{kernel_picked_port()}")


def test_body_delimited_by_connection_close(serve, pools) -> None:
    def until_eof(peer: Peer, server: RawServer) -> None:
        if peer.read_request() is not None:
            peer.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello")

    server = serve(until_eof)
    pool = pools(server.url)
    result = pool.post(wire_for(server.url, b"{}"))
    assert (result.status, result.body, result.error) == (200, b"hello", "")


def test_connections_idle_past_the_limit_are_closed(serve, pools, monkeypatch) -> None:
    # a burst opened 4 connections; afterwards one at a time suffices: the unused ones are
    # closed once idle for CLOSE_AFTER_IDLE_S (LIFO reuse leaves them at the bottom)
    monkeypatch.setattr(rawhttp, "CLOSE_AFTER_IDLE_S", 0.2)
    server = serve(reversing)
    pool = pools(server.url)
    wire = wire_for(server.url, b"abc")
    burst = [gevent.spawn(pool.post, wire) for _ in range(4)]
    gevent.joinall(burst, timeout=10, raise_error=True)
    assert pool.opened == 4 and pool.idle_connections == 4
    bottom = [conn.sock for conn in pool._idle[:3]]
    idle_since = max(conn.idle_since for conn in pool._idle[:3])
    deadline = time.monotonic() + 5
    while pool.idle_connections > 1:  # one post at a time, every 20 ms (pacing the load)
        assert time.monotonic() < deadline, f"{pool.idle_connections} connections still idle"
        result = pool.post(wire)
        assert (result.status, result.body) == (200, b"cba")
        gevent.sleep(0.02)
    assert time.monotonic() - idle_since >= 0.2  # closed once idle that long, not before
    assert pool.idle_connections == 1
    assert pool.opened == 4  # the one in use was kept, nothing reopened
    assert all(sock.fileno() == -1 for sock in bottom)  # really closed

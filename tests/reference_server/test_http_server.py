"""The HTTP/1.1 server itself: framing, keep-alive, pipelining, limits, malformed input.

A real HttpServer on 127.0.0.1:0 in a background event loop, with a toy router; clients
are raw sockets (to send exactly the bytes we mean, malformed ones included) and
http.client.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from reference_server.errors import InvalidInput, Rejected
from reference_server.http.routing import Request, Response, Router, json_response
from reference_server.http.server import HttpServer

LIMIT = 1000


def _router() -> Router:
    router = Router()

    async def echo(req: Request, params: dict[str, str]) -> Response:
        delay = float(req.headers.get("x-delay", "0"))
        if delay:
            await asyncio.sleep(delay)
        return json_response({"name": params["name"], "size": len(req.body), "q": req.query})

    def bad(req: Request, params: dict[str, str]) -> Response:
        raise InvalidInput("this route always refuses")

    def crash(req: Request, params: dict[str, str]) -> Response:
        raise RuntimeError("bug")

    router.add("GET", "/ping", lambda req, params: Response(200, b"pong", "text/plain"))
    router.add("POST", "/echo/{name}", echo)
    router.add("GET", "/bad", bad)
    router.add("GET", "/crash", crash)
    return router


@contextlib.contextmanager
def _serving(**kwargs: float) -> Iterator[int]:
    """A real HttpServer with the toy router on 127.0.0.1:0, in a background loop."""
    loop = asyncio.new_event_loop()
    server = HttpServer(_router(), max_body_bytes=LIMIT, **kwargs)
    started: list[int] = []
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        started.append(loop.run_until_complete(server.start("127.0.0.1", 0)))
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield started[0]
    finally:
        fut = asyncio.run_coroutine_threadsafe(server.shutdown(1.0), loop)
        fut.result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with _serving() as bound:
        yield bound


def _exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def _split_responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        n = int(headers["content-length"])
        out.append((status, headers, rest[:n]))
        raw = rest[n:]
    return out


def _still_serves(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/ping")
    resp = conn.getresponse()
    assert (resp.status, resp.read()) == (200, b"pong")
    conn.close()


def test_keep_alive_reuses_one_connection(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for i in range(20):
        conn.request("POST", f"/echo/n{i}?x=1", body=b"a" * i)
        resp = conn.getresponse()
        assert resp.status == 200
        assert json.loads(resp.read()) == {"name": f"n{i}", "size": i, "q": "x=1"}
    conn.close()


def test_pipelined_requests_are_answered_in_order(port: int) -> None:
    # The first request is slow, the others instant: answers must still come in order.
    reqs = [b"POST /echo/slow HTTP/1.1\r\nHost: t\r\nX-Delay: 0.2\r\nContent-Length: 3\r\n\r\nabc"]
    reqs += [
        b"POST /echo/f%d HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nz" % i for i in range(5)
    ]
    reqs.append(b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    answers = _split_responses(_exchange(port, b"".join(reqs)))
    assert [a[0] for a in answers] == [200] * 7
    names = [json.loads(a[2])["name"] for a in answers[:6]]
    assert names == ["slow", "f0", "f1", "f2", "f3", "f4"]
    assert answers[-1][2] == b"pong" and answers[-1][1]["connection"] == "close"


def test_chunked_request_body(port: int) -> None:
    raw = (
        b"POST /echo/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
    )
    ((status, _, body),) = _split_responses(_exchange(port, raw))
    assert status == 200 and json.loads(body)["size"] == 7


def test_declared_body_over_limit_is_413_before_the_body_is_sent(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /echo/big HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
        raw = sock.recv(65536)  # answered without waiting for the 100 kB
    ((status, headers, body),) = _split_responses(raw)
    assert status == 413 and headers["connection"] == "close"
    assert "exceeds the limit of 1000" in json.loads(body)["error"]
    _still_serves(port)


def test_oversized_body_sent_in_full_still_gets_the_413(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", "/echo/big", body=b"x" * 200_000)
    resp = conn.getresponse()
    error = json.loads(resp.read())["error"]
    assert resp.status == 413 and error == "request body of 200000 bytes exceeds the limit of 1000"
    conn.close()
    _still_serves(port)


def test_chunked_body_over_limit_is_413(port: int) -> None:
    chunk = b"%x\r\n%s\r\n" % (600, b"y" * 600)
    raw = b"POST /echo/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 2
    ((status, _, body),) = _split_responses(_exchange(port, raw + b"0\r\n\r\n"))
    assert status == 413
    assert json.loads(body)["error"] == "request body exceeds the limit of 1000 bytes"


@pytest.mark.parametrize(
    "garbage",
    [
        b"garbage\r\n\r\n",
        b"GET /ping HTTP/1.1\r\nHost t\r\n\r\n",
        b"POST /echo/a HTTP/1.1\r\nContent-Length: zz\r\n\r\n",
        b"\x00\xff\xfe binary noise\r\n\r\n",
    ],
)
def test_malformed_request_gets_400_json_and_server_survives(port: int, garbage: bytes) -> None:
    ((status, headers, body),) = _split_responses(_exchange(port, garbage))
    assert status == 400 and headers["connection"] == "close"
    assert json.loads(body)["error"].startswith("malformed HTTP request")
    _still_serves(port)


def test_pipelined_garbage_after_good_request_keeps_order(port: int) -> None:
    raw = (
        b"POST /echo/ok HTTP/1.1\r\nHost: t\r\nX-Delay: 0.1\r\nContent-Length: 0\r\n\r\nBAD\r\n\r\n"
    )
    answers = _split_responses(_exchange(port, raw))
    assert [a[0] for a in answers] == [200, 400]


def test_errors_are_json_with_the_right_status(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for method, path, status, text in [
        ("GET", "/nowhere", 404, "no route for GET /nowhere"),
        ("DELETE", "/ping", 405, "method DELETE not allowed on /ping"),
        ("GET", "/bad", 400, "this route always refuses"),
        ("GET", "/crash", 500, "internal error: RuntimeError"),
    ]:
        conn.request(method, path)
        resp = conn.getresponse()
        assert resp.status == status
        assert resp.getheader("Content-Type") == "application/json"
        assert json.loads(resp.read())["error"] == text
    conn.close()  # the connection survived every error


def test_gzip_and_deflate_request_bodies(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request(
        "POST", "/echo/z", body=gzip.compress(b"q" * 500), headers={"Content-Encoding": "gzip"}
    )
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["size"] == 500
    bomb = gzip.compress(b"\0" * 100_000)  # small on the wire, over the limit inflated
    conn.request("POST", "/echo/z", body=bomb, headers={"Content-Encoding": "gzip"})
    resp = conn.getresponse()
    error = json.loads(resp.read())["error"]
    assert resp.status == 413 and error == "decompressed body exceeds the limit of 1000 bytes"
    conn.request("POST", "/echo/z", body=b"not gzip", headers={"Content-Encoding": "gzip"})
    resp = conn.getresponse()
    error = json.loads(resp.read())["error"]
    assert resp.status == 400 and error.startswith("body is not valid gzip data: "), error
    conn.close()


def test_percent_encoded_path_parameters(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", "/echo/a%20b", body=b"")
    assert json.loads(conn.getresponse().read())["name"] == "a b"
    conn.close()


def test_expect_100_continue(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /echo/e HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"  # before the body is sent
        sock.sendall(b"abcd")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    ((status, _, body),) = _split_responses(raw)
    assert status == 200 and json.loads(body)["size"] == 4


def test_idle_and_stalled_connections_are_closed_but_busy_ones_are_not() -> None:
    with _serving(idle_timeout_s=0.3) as bound:
        idle = socket.create_connection(("127.0.0.1", bound), timeout=5)
        idle.sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
        assert b"pong" in idle.recv(65536)
        stalled = socket.create_connection(("127.0.0.1", bound), timeout=5)
        stalled.sendall(b"GET /ping HTTP/1.1\r\nHo")  # never finishes its headers
        start = time.monotonic()
        slow = b"POST /echo/slow HTTP/1.1\r\nHost: t\r\nX-Delay: 0.9\r\nContent-Length: 0\r\n\r\n"
        answers = _split_responses(_exchange(bound, slow + b"GET /ping HTTP/1.1\r\n\r\n", 3))
        assert [a[0] for a in answers] == [200, 200]  # busy past the timeout: not cut off
        for sock in (idle, stalled):
            assert sock.recv(65536) == b""  # closed by the server (recv times out otherwise)
            sock.close()
        assert time.monotonic() - start < 5


def test_http10_keep_alive_is_acknowledged(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for _ in range(2):  # the same connection serves both
            sock.sendall(b"GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            ((status, headers, body),) = _split_responses(sock.recv(65536))
            assert (status, headers["connection"], body) == (200, "keep-alive", b"pong")
    raw = _exchange(port, b"GET /ping HTTP/1.0\r\n\r\n")  # plain 1.0: answered, then closed
    ((status, headers, _),) = _split_responses(raw)
    assert status == 200 and headers["connection"] == "close"


# -- admission at the headers: refusals answered in order, connections kept ----------------
SHED = Rejected("echo: exceeds maximum queue size (0)")


def _shedding_admission(raising: bool = False) -> Router:
    """Refuse POST /echo/shed* at its headers (the same refusal object every time, as the
    KServe route returns it), or raise it when `raising` (checks may do either)."""

    def check(headers: dict[str, str], params: dict[str, str]) -> Rejected | None:
        if not params["name"].startswith("shed"):
            return None
        if raising:
            raise Rejected(*SHED.args)
        return SHED

    admission = Router()
    admission.add("POST", "/echo/{name}", check)  # type: ignore[arg-type]
    return admission


@pytest.fixture(scope="module")
def shedding_port() -> Iterator[int]:
    with _serving(admission=_shedding_admission()) as bound:
        yield bound


def _post(name: str, body: bytes, extra: bytes = b"") -> bytes:
    return b"POST /echo/%s HTTP/1.1\r\nHost: t\r\n%sContent-Length: %d\r\n\r\n%s" % (
        name.encode(), extra, len(body), body,
    )  # fmt: skip


def _refused(answer: tuple[int, dict[str, str], bytes]) -> bool:
    status, headers, body = answer
    return (status, headers.get("retry-after"), json.loads(body)) == (
        503, "1", {"error": "echo: exceeds maximum queue size (0)"},
    )  # fmt: skip


def test_refusals_between_pipelined_requests_are_answered_in_order(shedding_port: int) -> None:
    # a slow accepted request first: the refusals behind it wait their turn
    reqs = [_post("slow", b"abc", b"X-Delay: 0.2\r\n"), _post("shed1", b"x" * 500),
            _post("f0", b"z"), _post("shed2", b"y" * 7),
            b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"]  # fmt: skip
    answers = _split_responses(_exchange(shedding_port, b"".join(reqs)))
    assert len(answers) == 5
    assert json.loads(answers[0][2]) == {"name": "slow", "size": 3, "q": ""}
    assert _refused(answers[1]) and _refused(answers[3])
    assert json.loads(answers[2][2]) == {"name": "f0", "size": 1, "q": ""}
    assert answers[4][2] == b"pong"


def test_refusals_on_a_keep_alive_connection_leave_it_serving(shedding_port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", shedding_port, timeout=5)
    conn.request("POST", "/echo/shed0", body=b"a" * 900)
    resp = conn.getresponse()
    first = (resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), resp.read())
    sock = conn.sock
    for i in range(1, 5):  # skipped bodies of several sizes: the framing stays right
        conn.request("POST", f"/echo/shed{i}", body=b"b" * (i * 100))
        resp = conn.getresponse()
        again = (resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), resp.read())
        assert _refused(again)
    conn.request("POST", "/echo/kept", body=b"c" * 42)
    resp = conn.getresponse()
    assert (resp.status, json.loads(resp.read())) == (200, {"name": "kept", "size": 42, "q": ""})
    assert conn.sock is sock  # one connection all along
    conn.close()
    assert _refused(first) and "connection" not in first[1]


def test_a_refused_request_asking_to_close_is_answered_then_closed(shedding_port: int) -> None:
    start = time.monotonic()
    raw = _exchange(shedding_port, _post("shed", b"q" * 10, b"Connection: close\r\n"))
    (answer,) = _split_responses(raw)
    assert _refused(answer) and answer[1]["connection"] == "close"
    assert time.monotonic() - start < 2  # closed by the server, not by our read timeout


def test_a_refused_http10_keep_alive_request_keeps_its_connection(shedding_port: int) -> None:
    head = b"POST /echo/shed HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"
    with socket.create_connection(("127.0.0.1", shedding_port), timeout=5) as sock:
        for _ in range(2):
            sock.sendall(head)
            (answer,) = _split_responses(sock.recv(65536))
            assert _refused(answer) and answer[1]["connection"] == "keep-alive"
    (answer,) = _split_responses(_exchange(shedding_port, head.replace(b"keep-alive", b"close")))
    assert _refused(answer) and answer[1]["connection"] == "close"


def test_an_admission_check_may_raise_its_refusal() -> None:
    with _serving(admission=_shedding_admission(raising=True)) as bound:
        answers = _split_responses(
            _exchange(bound, _post("shed", b"1") + _post("fine", b"22", b"Connection: close\r\n"))
        )
    assert len(answers) == 2 and _refused(answers[0])
    assert json.loads(answers[1][2]) == {"name": "fine", "size": 2, "q": ""}

"""A small open-loop HTTP/1.1 load generator for overload tests and the overload benchmark.

Why not the harness's own engine (Locust workers): overload tests need thousands of requests
per second from a process that stays light on a two-core machine, answers classified by
status (200 answered, 503 refused, anything else failed) and the time each took measured
from its *intended* send time, nothing more. Here: a constant-rate schedule, one request at
a time per keep-alive connection, a new connection whenever none is free (up to
`max_connections`; beyond that the request is counted as `not_sent`), raw sockets through
asyncio protocols (uvloop when installed; times from `time.monotonic`, as uvloop's
`loop.time()` has a 1 ms resolution), and a client timeout after which the connection is
closed, as a real client that gives up would do.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import numpy as np

__all__ = ["LoadResult", "kserve_binary_request", "run_closed_loop", "run_open_loop"]


@dataclass(slots=True)
class LoadResult:
    """What one open-loop run saw; latencies in seconds from the intended send time."""

    offered_rps: float
    duration_s: float
    answered: list[float] = field(default_factory=list)  # 200
    answered_from_send: list[float] = field(default_factory=list)  # the same, from the send
    send_lag: list[float] = field(default_factory=list)  # actual send - intended, each request
    refused: list[float] = field(default_factory=list)  # 503
    refused_from_send: list[float] = field(default_factory=list)
    refused_with_retry_after: int = 0
    failed: int = 0  # other statuses, connection errors
    timed_out: int = 0  # the client gave up and closed its connection
    not_sent: int = 0  # no connection free and the cap reached
    connections: int = 0
    schedule_end: float = 0.0  # time.monotonic() when the last request was due

    def good(self, slo_s: float) -> int:
        """Answers within `slo_s` of their intended send time."""
        return int(np.count_nonzero(np.asarray(self.answered) <= slo_s))

    def goodput_rps(self, slo_s: float) -> float:
        return self.good(slo_s) / self.duration_s

    def throughput_rps(self) -> float:
        return len(self.answered) / self.duration_s

    @staticmethod
    def p(values: list[float], q: float) -> float | None:
        return float(np.percentile(values, q)) if values else None


def kserve_binary_request(model: str, shape: tuple[int, ...], host: str = "127.0.0.1") -> bytes:
    """A complete HTTP request: KServe v2 infer with one FP32 input in the binary extension."""
    tensor = np.random.default_rng(0).standard_normal(shape).astype(np.float32).tobytes()
    spec = {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": list(shape),
                "parameters": {"binary_data_size": len(tensor)},
            }
        ],
        "outputs": [{"name": "output", "parameters": {"binary_data": True}}],
    }
    header = json.dumps(spec, separators=(",", ":")).encode()
    body = header + tensor
    head = (
        f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/octet-stream\r\n"
        f"Inference-Header-Content-Length: {len(header)}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


class _Conn(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.intended = 0.0
        self.sent = 0.0
        self.busy = False
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes, intended: float) -> None:
        assert self.transport is not None
        self.busy = True
        self.pool.busy += 1
        self.intended = intended
        self.sent = time.monotonic()
        self.pool.result.send_lag.append(self.sent - intended)
        self.buf.clear()
        self.transport.write(request)
        wait = intended + self.pool.timeout_s - time.monotonic()
        self.timer = self.pool.loop.call_later(max(0.0, wait), self.give_up)

    def give_up(self) -> None:
        self.pool.result.timed_out += 1
        self.idle()
        self.close()

    def idle(self) -> None:
        if self.busy:
            self.busy = False
            self.pool.busy -= 1
        if self.timer is not None:
            self.timer.cancel()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0 or not self.busy:
            return
        head = bytes(self.buf[:end]).lower()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line.startswith(b"content-length:"):
                length = int(line[15:])
        if len(self.buf) < end + 4 + length:
            return
        status = int(head[9:12])
        self.finish(status, b"\r\nretry-after:" in head, b"\r\nconnection: close" in head)

    def finish(self, status: int, retry_after: bool, close: bool) -> None:
        pool = self.pool
        now = time.monotonic()
        elapsed = now - self.intended
        self.idle()
        if status == 200:
            pool.result.answered.append(elapsed)
            pool.result.answered_from_send.append(now - self.sent)
        elif status == 503:
            pool.result.refused.append(elapsed)
            pool.result.refused_from_send.append(now - self.sent)
            pool.result.refused_with_retry_after += retry_after
        else:
            pool.result.failed += 1
        if close:
            self.close()
        pool.release(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.busy:
            self.pool.result.failed += 1
            self.idle()
        self.closed = True
        self.pool.open -= 1
        self.pool.release(self)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


class _Pool:
    def __init__(
        self, host: str, port: int, result: LoadResult, max_connections: int, timeout_s: float
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.host, self.port = host, port
        self.result = result
        self.max_connections = max_connections
        self.timeout_s = timeout_s
        self.free: list[_Conn] = []
        self.open = 0
        self.busy = 0
        self.connecting: set[asyncio.Task] = set()

    def release(self, conn: _Conn) -> None:
        """`conn` has no request in flight any more (answered, or closed)."""
        if not conn.closed:
            self.free.append(conn)

    def send(self, request: bytes, intended: float) -> None:
        while self.free:
            conn = self.free.pop()
            if not conn.closed:
                conn.send(request, intended)
                return
        if self.open >= self.max_connections:
            self.result.not_sent += 1
            return
        self.open += 1
        self.result.connections += 1
        task = self.loop.create_task(self._connect_and_send(request, intended))
        self.connecting.add(task)
        task.add_done_callback(self.connecting.discard)

    async def _connect_and_send(self, request: bytes, intended: float) -> None:
        try:
            _, conn = await self.loop.create_connection(lambda: _Conn(self), self.host, self.port)
        except OSError:
            self.open -= 1
            self.result.failed += 1
            return
        conn.send(request, intended)


async def _run(
    host: str,
    port: int,
    request: bytes,
    rate: float,
    duration_s: float,
    max_connections: int,
    timeout_s: float,
) -> LoadResult:
    result = LoadResult(offered_rps=rate, duration_s=duration_s)
    pool = _Pool(host, port, result, max_connections, timeout_s)
    start = time.monotonic() + 0.01
    total = int(rate * duration_s)
    sent = 0
    while sent < total:
        due = min(total, int((time.monotonic() - start) * rate) + 1)
        while sent < due:
            pool.send(request, start + sent / rate)
            sent += 1
        await asyncio.sleep(max(0.0, start + sent / rate - time.monotonic()))
    result.schedule_end = start + total / rate
    deadline = time.monotonic() + timeout_s + 1.0
    while time.monotonic() < deadline and (pool.connecting or pool.busy):
        await asyncio.sleep(0.01)
    for conn in pool.free:
        conn.close()
    await asyncio.sleep(0)
    return result


class _ClosedPool(_Pool):
    """Closed loop: each connection's user waits for its answer before sending again."""

    def __init__(self, host: str, port: int, result: LoadResult) -> None:
        super().__init__(host, port, result, max_connections=0, timeout_s=60.0)
        self.waiters: dict[_Conn, asyncio.Future] = {}

    def release(self, conn: _Conn) -> None:
        waiter = self.waiters.pop(conn, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def user(self, request: bytes, end: float) -> None:
        _, conn = await self.loop.create_connection(lambda: _Conn(self), self.host, self.port)
        while time.monotonic() < end and not conn.closed:
            self.waiters[conn] = waiter = self.loop.create_future()
            conn.send(request, time.monotonic())
            await waiter
        conn.close()


async def _closed(
    host: str, port: int, request: bytes, concurrency: int, duration_s: float
) -> LoadResult:
    result = LoadResult(offered_rps=0.0, duration_s=duration_s)
    pool = _ClosedPool(host, port, result)
    end = time.monotonic() + duration_s
    await asyncio.gather(*(pool.user(request, end) for _ in range(concurrency)))
    return result


def _runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def run_closed_loop(
    host: str, port: int, request: bytes, concurrency: int, duration_s: float
) -> LoadResult:
    """`concurrency` connections, each sending `request` again as soon as it is answered,
    for `duration_s`: the server's capacity at little cost to the client."""
    with _runner() as runner:
        return runner.run(_closed(host, port, request, concurrency, duration_s))


def run_open_loop(
    host: str,
    port: int,
    request: bytes,
    rate: float,
    duration_s: float,
    *,
    max_connections: int = 2000,
    timeout_s: float = 5.0,
) -> LoadResult:
    """Send `request` at `rate` per second for `duration_s`, then wait for the answers
    (at most `timeout_s` each). Blocks; runs its own event loop (uvloop when installed)."""
    with _runner() as runner:
        return runner.run(_run(host, port, request, rate, duration_s, max_connections, timeout_s))

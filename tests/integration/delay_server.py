"""A tiny KServe-v2-shaped HTTP server whose latency follows a known, seeded distribution.

Why: checking that the load engine measures latency honestly needs a target whose true
latencies are known. Request i (in arrival order) is answered after delay d_i, the i-th draw of
a seeded log-normal (median `--median-ms`, shape `--sigma`; sigma 0 = constant). The server
logs every (arrival time, delay) so a test compares measured percentiles with the delays really
served. `POST /admin/stall {"seconds": S}` freezes it: every answer due before now + S waits
until then (a GC pause / failover, the classic coordinated-omission scenario).
`--slots c` makes it a server of KNOWN capacity: c requests are served at a time, each for
its delay d_i, the rest wait in arrival order (with sigma 0: an M/D/c queue under Poisson
load, capacity c / median exactly), so a sweep's answer can be checked against the truth.

Routes: POST /v2/models/{m}[/versions/{v}]/infer, GET /v2/models/{m}[/versions/{v}] (metadata),
GET /v2/health/live|ready, GET /v2/models/{m}/ready, GET /metrics, GET /admin/log,
POST /admin/stall, POST /admin/reset. Run: `python tests/integration/delay_server.py --port 0`
prints `listening http=PORT` once bound to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import re
import sys
import time

import numpy as np

INFER = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")
MODEL = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(/ready)?$")


class DelayServer:
    def __init__(
        self, median_ms: float, sigma: float, seed: int, fail_every: int = 0, slots: int = 0
    ) -> None:
        self.median_s = median_ms / 1000.0
        self.sigma = sigma
        self.seed = seed
        self.fail_every = fail_every
        self.slots = asyncio.Semaphore(slots) if slots > 0 else None  # 0: unbounded
        self.reset()

    def reset(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        # [arrival wall time, intended delay s, path, served s (arrival -> answer written)]
        self.log: list[list] = []
        self.stall_until = 0.0  # loop time

    def next_delay(self) -> float:
        if self.sigma <= 0:
            return self.median_s
        return float(self.median_s * math.exp(self.sigma * self.rng.standard_normal()))

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                arrival_loop = asyncio.get_running_loop().time()
                arrival_wall = time.time()
                method, path, headers = _parse_head(head)
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, payload, row = await self.route(
                    method, path, body, arrival_loop, arrival_wall
                )
                writer.write(_response(status, payload, headers))
                await writer.drain()
                if row is not None:  # what the client really waited for, server side
                    row[3] = asyncio.get_running_loop().time() - arrival_loop
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def route(
        self, method: str, path: str, body: bytes, arrival: float, wall: float
    ) -> tuple[int, bytes, list | None]:
        path = path.split("?", 1)[0]
        if method == "POST" and (m := INFER.match(path)):
            return await self.infer(m.group(1), m.group(2) or "1", body, arrival, wall, path)
        status, payload = self.route_admin(method, path, body)
        return status, payload, None

    def route_admin(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if method == "POST" and path == "/admin/stall":
            seconds = float(json.loads(body or b"{}").get("seconds", 1.0))
            self.stall_until = time.monotonic() + seconds
            return 200, b"{}"
        if method == "POST" and path == "/admin/reset":
            self.reset()
            return 200, b"{}"
        if path == "/admin/log":
            return 200, json.dumps(self.log).encode()
        if path in ("/v2/health/live", "/v2/health/ready"):
            return 200, b""
        if path == "/metrics":
            text = f"# TYPE delay_requests_total counter\ndelay_requests_total {len(self.log)}\n"
            return 200, text.encode()
        if m := MODEL.match(path):
            return 200, b"" if m.group(3) else _metadata(m.group(1), m.group(2) or "1")
        return 404, json.dumps({"error": f"no route {method} {path}"}).encode()

    async def infer(
        self, model: str, version: str, body: bytes, arrival: float, wall: float, path: str
    ) -> tuple[int, bytes, list]:
        delay = self.next_delay()
        index = len(self.log)
        row = [wall, delay, path, None]
        self.log.append(row)
        loop = asyncio.get_running_loop()
        if self.slots is not None:  # a server of c slots: wait for one, then serve `delay`
            async with self.slots:
                await asyncio.sleep(delay)
            return self.answer(model, version, body, index, row)
        due = arrival + delay
        if due < self.stall_until or arrival < self.stall_until:
            due = max(due, self.stall_until)
        await asyncio.sleep(max(0.0, due - loop.time()))
        while loop.time() < self.stall_until:  # a stall that began while we slept
            await asyncio.sleep(self.stall_until - loop.time())
        return self.answer(model, version, body, index, row)

    def answer(
        self, model: str, version: str, body: bytes, index: int, row: list
    ) -> tuple[int, bytes, list]:
        if self.fail_every and index % self.fail_every == self.fail_every - 1:
            return 500, json.dumps({"error": "injected failure"}).encode(), row
        request = json.loads(body or b"{}")
        first = (request.get("inputs") or [{}])[0]
        label = int(np.argmax(first.get("data") or [0]))
        out = {
            "model_name": model,
            "model_version": version,
            "outputs": [{"name": "label", "datatype": "INT64", "shape": [1], "data": [label]}],
        }
        return 200, json.dumps(out).encode(), row


def _metadata(model: str, version: str) -> bytes:
    return json.dumps(
        {
            "name": model,
            "versions": [version],
            "platform": "delay",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}],
        }
    ).encode()


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    return method, path, headers


def _response(status: int, payload: bytes, headers: dict[str, str]) -> bytes:
    reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error"}.get(status, "OK")
    kind = "text/plain" if payload[:1] not in (b"{", b"[") else "application/json"
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def serve(args: argparse.Namespace) -> None:
    app = DelayServer(args.median_ms, args.sigma, args.seed, args.fail_every, args.slots)
    server = await asyncio.start_server(app.handle, "127.0.0.1", args.port, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"listening http={port}\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--median-ms", type=float, default=20.0)
    parser.add_argument("--sigma", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fail-every", type=int, default=0, help="answer 500 to every n-th")
    parser.add_argument("--slots", type=int, default=0, help="serve c at a time (0: all)")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()


class DelayServerProcess:
    """Start the delay server as a child process on an ephemeral port; stop it by PID."""

    def __init__(self, median_ms: float = 20.0, sigma: float = 0.5, seed: int = 1, **extra: int):
        import subprocess

        cmd = [sys.executable, __file__, "--port", "0", "--median-ms", str(median_ms)]
        cmd += ["--sigma", str(sigma), "--seed", str(seed)]
        for key, value in extra.items():
            cmd += [f"--{key.replace('_', '-')}", str(value)]
        self.popen = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self.popen.stdout.readline() if self.popen.stdout else ""
        match = re.match(r"listening http=(\d+)", line)
        if not match:
            self.stop()
            raise RuntimeError(f"delay server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{match.group(1)}"

    def call(self, method: str, path: str, body: dict | None = None) -> object:
        import urllib.request

        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read()
        return json.loads(text) if text else None

    def log(self) -> list[tuple]:
        return [tuple(row) for row in self.call("GET", "/admin/log")]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=5)
            except Exception:
                self.popen.kill()
                self.popen.wait()
        if self.popen.stdout:
            self.popen.stdout.close()

    def __enter__(self) -> DelayServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

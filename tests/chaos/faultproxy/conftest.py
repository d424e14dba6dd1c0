"""Fixtures for the fault proxy's tests: the proxy as a child process, and loopback servers
whose behaviour is known (an echo server answers at once; a closing server says "bye" and
hangs up), so what the proxy adds is what a test measures.

Why a child process: it is how the stack starts the proxy (`python -m chaos.faultproxy
--api 127.0.0.1:0 --port-file F`), and it keeps the proxy's event loop off this process's
GIL, so the latency a test measures is the proxy's, not the test's own threads'.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.faultproxy import FaultProxyClient

REPO = Path(__file__).resolve().parents[3]
START_DEADLINE_S = 20.0


def wait_for(predicate, timeout: float, what: str, interval: float = 0.01):
    """Poll `predicate` until it returns something truthy (returned) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def start_proxy_process(
    tmp_path: Path, *args: str, command: tuple[str, ...] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """Start the fault proxy as a child; (process, API address read from its port file)."""
    port_file = tmp_path / f"api-{time.monotonic_ns()}.addr"
    command = command or (sys.executable, "-m", "chaos.faultproxy")
    proc = subprocess.Popen(
        [*command, "--api", "127.0.0.1:0", "--port-file", str(port_file), *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )

    def ready() -> str | None:
        if proc.poll() is not None:
            raise AssertionError(f"fault proxy exited {proc.returncode}: {proc.stderr.read()}")
        return port_file.read_text().strip() if port_file.exists() else None

    try:
        address = wait_for(ready, START_DEADLINE_S, "the fault proxy's port file")
    except BaseException:
        stop_process(proc)
        raise
    return proc, address


def stop_process(proc: subprocess.Popen[str], timeout: float = 10.0) -> int:
    """SIGTERM this PID, wait; SIGKILL if it will not go. Returns its exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return proc.returncode


@pytest.fixture(scope="module")
def proxy_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One fault proxy child per test module (seeded); yields its API address."""
    proc, address = start_proxy_process(tmp_path_factory.mktemp("faultproxy"), "--seed", "7")
    try:
        yield address
    finally:
        stop_process(proc)


@pytest.fixture
def api(proxy_process: str) -> Iterator[FaultProxyClient]:
    """A client of the module's proxy; every proxy is deleted after the test."""
    client = FaultProxyClient(proxy_process)
    yield client
    for name in client.proxies():
        client.delete_proxy(name)


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(OSError):
            while data := self.request.recv(256 * 1024):
                self.request.sendall(data)


class _Bye(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(OSError):
            self.request.sendall(b"bye")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextlib.contextmanager
def _serve(handler: type[socketserver.BaseRequestHandler]) -> Iterator[int]:
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    """An echo server on 127.0.0.1 (answers as soon as it reads)."""
    with _serve(_Echo) as port:
        yield port


@pytest.fixture(scope="module")
def bye_port() -> Iterator[int]:
    """A server that sends b"bye" and closes the connection at once."""
    with _serve(_Bye) as port:
        yield port


def listen_port(proxy: dict) -> int:
    return int(proxy["listen"].rsplit(":", 1)[1])


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def round_trip_ms(sock: socket.socket, payload: bytes = b"x" * 100) -> float:
    """Send `payload` to an echo upstream and read it all back; milliseconds taken."""
    start = time.perf_counter()
    sock.sendall(payload)
    received = 0
    while received < len(payload):
        data = sock.recv(len(payload) - received)
        if not data:
            raise ConnectionError("closed mid-answer")
        received += len(data)
    return (time.perf_counter() - start) * 1000.0


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the peer sends until it closes (a RST raises ConnectionResetError)."""
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    return b"".join(chunks)

"""The supervisor of `--workers N`: N server processes on one port, started, watched, stopped.

Why processes: one Python front end (HTTP parsing, gRPC, the event loop) tops out at about
one core; N workers, each with its own core, sessions and batchers, use N cores. They share
the HTTP and gRPC ports through SO_REUSEPORT (the kernel spreads new connections over the
listening workers; a keep-alive connection stays with its worker).

What the supervisor does (worker.py says what a worker does):
  - reserves the HTTP and gRPC ports (sockets bound with SO_REUSEPORT, never listening, so
    they get no connections) so port 0 means one kernel-picked port for all workers, kept
    while any worker restarts;
  - starts the workers (`python -m reference_server --worker-index I ...`, the admin token
    in the environment), and prints `listening http=P grpc=P metrics=P` once every worker
    listens and is ready; the metrics port is the supervisor's own;
  - serves one /metrics (its metrics port, and through the workers the HTTP port's) that
    merges every worker's at scrape time (control.py, metrics_merge.py), plus per-worker series:
    reference_server_worker_info{worker,pid}, reference_server_worker_restarts_total{worker},
    reference_server_worker_inference_requests{worker,pid}, reference_server_workers;
  - applies each admin change (add, remove, clear a fault) to every worker, one change at a
    time and with one fault id for all, and replays the active faults (with what is left of
    their duration) to a worker it restarts;
  - clears a dead worker's byte on the ready board (the server is unready until its
    replacement is ready) and restarts it, logging `worker I (pid P) exited with ...`; a
    worker that cannot start again, or more than `MAX_RESTARTS` restarts within
    `RESTART_WINDOW_S`, ends the server: the others drain and the exit code is 3;
  - on SIGTERM/SIGINT sends SIGTERM to every worker (each drains: unready, stops accepting,
    answers what it holds) and exits 0 once they are gone (SIGKILL after the grace period).
A worker whose supervisor dies sees its stdin pipe close and drains and exits by itself.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from reference_server.config import ServerConfig
from reference_server.control import Control
from reference_server.http.server import HttpServer
from reference_server.worker import ReadyBoard

__all__ = ["Supervisor", "WorkerOptions"]

logger = logging.getLogger(__name__)

EXIT_INFRA = 3
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
START_TIMEOUT_S = 120.0
_LISTENING = b"listening http="


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How to start a worker beyond the ServerConfig: its event loop and log level."""

    event_loop: str = "uvloop"
    log_level: str = "INFO"


@dataclass(slots=True)
class _Worker:
    index: int
    process: asyncio.subprocess.Process
    private_url: str  # its own listener: per-worker /metrics and admin API
    exited: asyncio.Future = field(repr=False)
    drain: asyncio.Future = field(repr=False)
    restarts: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid


class WorkerStartError(Exception):
    def __init__(self, index: int, code: int | None) -> None:
        super().__init__(f"worker {index} exited with code {code} before it was ready")
        self.code = code


class Supervisor:
    def __init__(self, config: ServerConfig, options: WorkerOptions | None = None) -> None:
        self.config = config
        self.options = options or WorkerOptions()
        self.workers: dict[int, _Worker] = {}
        self._restart_times: collections.deque[float] = collections.deque()
        self.control = Control(self._by_index, config.admin_token)  # /metrics, admin
        self._board = ReadyBoard.create(config.workers)
        self._reserved = [_reserve(config.host, p) for p in (config.http_port, config.grpc_port)]
        self.http_port, self.grpc_port = (s.getsockname()[1] for s in self._reserved)
        self._control_url = ""

    def _by_index(self) -> list[_Worker]:
        return sorted(self.workers.values(), key=lambda w: w.index)

    # -- life ------------------------------------------------------------------------------
    async def run(
        self, stop: asyncio.Event | None = None, announce: Callable[[str], None] | None = None
    ) -> int:
        """Serve until SIGTERM/SIGINT (or `stop`); the exit code."""
        stop = stop or asyncio.Event()
        host = self.config.host
        control = HttpServer(self.control.control_router(), max_body_bytes=1 << 20, name="control")
        public = HttpServer(self.control.metrics_router(), max_body_bytes=1 << 16, name="metrics")
        try:
            self._control_url = f"http://{_url_host(host)}:{await control.start(host, 0)}"
            metrics_port = await public.start(host, self.config.metrics_port)
            _install_signals(stop)
            code = await self._start_all()
            if code == 0:
                line = (
                    f"listening http={self.http_port} grpc={self.grpc_port} metrics={metrics_port}"
                )
                logger.info("serving with %d workers", len(self.workers))
                (announce or _print_line)(line)
                code = await self._watch(stop)
        finally:
            await self._stop_all()
            await public.shutdown(0.5)
            await control.shutdown(0.5)
            self._close()
        return code

    async def _start_all(self) -> int:
        starts = [self._start_worker(i) for i in range(self.config.workers)]
        results = await asyncio.gather(*starts, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                logger.error("%s: stopping", result)
                code = result.code if isinstance(result, WorkerStartError) else None
                return code if code in (2, 3) else EXIT_INFRA
        return 0

    async def _start_worker(self, index: int) -> _Worker:
        env = dict(os.environ)
        if self.config.admin_token:
            env["HARNESS_ADMIN_TOKEN"] = self.config.admin_token
        process = await asyncio.create_subprocess_exec(
            *self._worker_argv(index),
            stdin=asyncio.subprocess.PIPE,  # never written: its end of file says we are gone
            stdout=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,  # a terminal's Ctrl-C reaches us only; we stop them
            pass_fds=(self._board.fd,),
        )
        try:
            port = await asyncio.wait_for(_private_port(process), START_TIMEOUT_S)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
        if port is None:
            raise WorkerStartError(index, await process.wait())
        url = f"http://{_url_host(self.config.host)}:{port}"
        assert process.stdout is not None
        drain = asyncio.ensure_future(_drain(process.stdout))  # later output, never blocking it
        worker = _Worker(index, process, url, asyncio.ensure_future(process.wait()), drain)
        self.workers[index] = worker
        logger.info("worker %d ready: pid %d", index, process.pid)
        return worker

    def _worker_argv(self, index: int) -> list[str]:
        c = self.config
        argv = [sys.executable, "-m", "reference_server", "--log-level", self.options.log_level]
        argv += ["--event-loop", self.options.event_loop, "--host", c.host]
        argv += ["--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port)]
        argv += ["--metrics-port", "0", "--device", c.device]
        argv += ["--intra-op-threads", str(c.intra_op_threads)]
        argv += ["--max-body-bytes", str(c.max_body_bytes)]
        argv += ["--max-loop-lag-ms", str(c.max_loop_lag_ms)]
        if c.model_repository is not None:
            argv += ["--model-repository", str(c.model_repository)]
        argv += ["--worker-index", str(index), "--worker-control", self._control_url]
        return [*argv, "--worker-board-fd", str(self._board.fd)]

    async def _watch(self, stop: asyncio.Event) -> int:
        """Restart workers that die until `stop`; EXIT_INFRA when restarting gives up."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                exits = {w.exited: w for w in self.workers.values()}
                await asyncio.wait([stopping, *exits], return_when=asyncio.FIRST_COMPLETED)
                for done in [f for f in exits if f.done()]:
                    if not stop.is_set() and not await self._replace(exits[done]):
                        return EXIT_INFRA
            return 0
        finally:
            stopping.cancel()

    async def _replace(self, dead: _Worker) -> bool:
        """Report a dead worker and start another in its place; False to give up."""
        self._board.set(dead.index, False)
        code = dead.process.returncode
        how = f"signal {signal.Signals(-code).name}" if code and code < 0 else f"code {code}"
        logger.error("worker %d (pid %d) exited with %s", dead.index, dead.pid, how)
        now = time.monotonic()
        self._restart_times.append(now)
        while self._restart_times and self._restart_times[0] < now - RESTART_WINDOW_S:
            self._restart_times.popleft()
        if len(self._restart_times) > MAX_RESTARTS:
            logger.error(
                "more than %d restarts in %.0f s: stopping", MAX_RESTARTS, RESTART_WINDOW_S
            )
            return False
        try:
            async with self.control.lock:  # no fault change between the start and the replay
                worker = await self._start_worker(dead.index)
                worker.restarts = dead.restarts + 1
                await self.control.replay_faults(worker)
        except (WorkerStartError, OSError, TimeoutError) as exc:
            logger.error("worker %d could not be restarted (%s): stopping", dead.index, exc)
            return False
        logger.warning("worker %d restarted: pid %d", dead.index, worker.pid)
        return True

    async def _stop_all(self) -> None:
        """SIGTERM every worker (each drains), SIGKILL what is left after the grace period."""
        live = [w for w in self.workers.values() if w.process.returncode is None]
        for worker in live:
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
        if not live:
            return
        _, late = await asyncio.wait(
            [w.exited for w in live], timeout=self.config.shutdown_grace_s + 5.0
        )
        for worker in live:
            if worker.exited in late:
                logger.warning(
                    "worker %d (pid %d) ignored SIGTERM: killed", worker.index, worker.pid
                )
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
        await asyncio.gather(*(w.exited for w in live))

    def _close(self) -> None:
        for sock in self._reserved:
            sock.close()
        self._board.close()


def _reserve(host: str, port: int) -> socket.socket:
    """A socket bound to host:port with SO_REUSEPORT and never listening: it holds the port
    (0 = the kernel picks) for the workers, and receives no connections itself."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


async def _private_port(process: asyncio.subprocess.Process) -> int | None:
    """The private port in a worker's `listening ... metrics=P` line; None if it exits."""
    assert process.stdout is not None
    while line := await process.stdout.readline():
        if line.startswith(_LISTENING):
            return int(line.rsplit(b"metrics=", 1)[1])
    return None


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _print_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _install_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

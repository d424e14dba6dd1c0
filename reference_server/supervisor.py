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
    merges every worker's at scrape time (metrics_merge.py), plus per-worker series:
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
import itertools
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from reference_server.config import ServerConfig
from reference_server.http import client
from reference_server.http.admin import FAULT_ID_HEADER
from reference_server.http.routing import Request, Response, Router, json_loads, json_response
from reference_server.http.server import HttpServer
from reference_server.metrics_merge import format_value, merge_expositions
from reference_server.worker import ReadyBoard

__all__ = ["Supervisor", "WorkerOptions"]

logger = logging.getLogger(__name__)

EXIT_INFRA = 3
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
START_TIMEOUT_S = 120.0
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
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
        self._faults: dict[str, tuple[dict, float]] = {}  # id -> (spec, added at, monotonic)
        self._fault_ids = itertools.count(1)
        self._admin_lock = asyncio.Lock()
        self._board = ReadyBoard.create(config.workers)
        self._reserved = [_reserve(config.host, p) for p in (config.http_port, config.grpc_port)]
        self.http_port, self.grpc_port = (s.getsockname()[1] for s in self._reserved)
        self._control_url = ""

    # -- life ------------------------------------------------------------------------------
    async def run(
        self, stop: asyncio.Event | None = None, announce: Callable[[str], None] | None = None
    ) -> int:
        """Serve until SIGTERM/SIGINT (or `stop`); the exit code."""
        stop = stop or asyncio.Event()
        host = self.config.host
        control = HttpServer(self._control_router(), max_body_bytes=1 << 20, name="control")
        public = HttpServer(self._metrics_router(), max_body_bytes=1 << 16, name="metrics")
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
            async with self._admin_lock:  # no fault change between the start and the replay
                worker = await self._start_worker(dead.index)
                worker.restarts = dead.restarts + 1
                await self._replay_faults(worker)
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

    # -- /metrics ----------------------------------------------------------------------------
    def _metrics_router(self) -> Router:
        router = Router()
        router.add("GET", "/metrics", self._metrics)
        return router

    async def _metrics(self, req: Request, params: dict[str, str]) -> Response:
        workers = sorted(self.workers.values(), key=lambda w: w.index)
        replies = await asyncio.gather(
            *(client.request("GET", w.private_url + "/metrics") for w in workers),
            return_exceptions=True,
        )
        texts: dict[int, str] = {}
        for worker, reply in zip(workers, replies, strict=True):
            if isinstance(reply, client.HttpReply) and reply.status == 200:
                texts[worker.index] = reply.body.decode()
            else:
                logger.warning("worker %d gave no metrics: %r", worker.index, reply)
        body = merge_expositions(texts.values()) + self._worker_series(workers, texts)
        return Response(200, body.encode(), METRICS_CONTENT_TYPE)

    @staticmethod
    def _worker_series(workers: list[_Worker], texts: dict[int, str]) -> str:
        info, restarts, served = [], [], []
        for w in workers:
            labels = f'worker="{w.index}",pid="{w.pid}"'
            info.append(f"reference_server_worker_info{{{labels}}} 1")
            restarts.append(
                f'reference_server_worker_restarts_total{{worker="{w.index}"}} {w.restarts}'
            )
            if w.index in texts:
                count = _sample_sum(texts[w.index], "reference_server_inference_requests{")
                served.append(
                    f"reference_server_worker_inference_requests{{{labels}}} {format_value(count)}"
                )
        return "\n".join([
            "# HELP reference_server_workers Worker processes that answered this scrape",
            "# TYPE reference_server_workers gauge",
            f"reference_server_workers {len(texts)}",
            "# HELP reference_server_worker_info Worker processes by index and PID",
            "# TYPE reference_server_worker_info gauge",
            *info,
            "# HELP reference_server_worker_restarts_total Times a worker was restarted",
            "# TYPE reference_server_worker_restarts_total counter",
            *restarts,
            "# HELP reference_server_worker_inference_requests Inference requests per worker",
            "# TYPE reference_server_worker_inference_requests counter",
            *served,
            "",
        ])  # fmt: skip

    # -- admin fan-out -------------------------------------------------------------------------
    def _control_router(self) -> Router:
        router = self._metrics_router()
        router.add("POST", "/admin/faults", self._admin)
        router.add("DELETE", "/admin/faults", self._admin)
        router.add("DELETE", "/admin/faults/{id}", self._admin)
        return router

    async def _admin(self, req: Request, params: dict[str, str]) -> Response:
        """Apply one admin change to every worker; answer as the first worker answered."""
        headers = {k: req.headers[k] for k in ("authorization", "content-type") if k in req.headers}
        async with self._admin_lock:
            fault_id = self._new_fault_id(req.body) if req.method == "POST" else None
            if fault_id:
                headers[FAULT_ID_HEADER] = fault_id
            workers = sorted(self.workers.values(), key=lambda w: w.index)
            replies = await asyncio.gather(
                *(client.request(req.method, w.private_url + req.path, req.body, headers)
                  for w in workers),
                return_exceptions=True,
            )  # fmt: skip
            answers = [r for r in replies if isinstance(r, client.HttpReply)]
            if not answers:
                return json_response({"error": "no worker answered"}, 503)
            first = answers[0]
            if len(answers) < len(workers) or any(a.status != first.status for a in answers):
                logger.error("admin %s %s: workers disagree or are missing: %r",
                             req.method, req.path, replies)  # fmt: skip
            self._record(req, params, first.status, fault_id)
        content_type = first.headers.get("content-type", "application/json")
        return Response(first.status, first.body, content_type)

    def _new_fault_id(self, body: bytes) -> str:
        try:
            spec = json_loads(body)
        except (ValueError, UnicodeDecodeError):
            spec = None
        kind = spec.get("type") if isinstance(spec, dict) else None
        return f"{kind if isinstance(kind, str) else 'fault'}-{next(self._fault_ids)}"

    def _record(self, req: Request, params: dict[str, str], status: int, fault_id: str | None):
        """Keep the active faults, to replay them to a restarted worker."""
        if req.method == "POST" and status == 201 and fault_id:
            self._faults[fault_id] = (json_loads(req.body), time.monotonic())
        elif req.method == "DELETE" and status == 200:
            if "id" in params:
                self._faults.pop(params["id"], None)
            else:
                self._faults.clear()

    async def _replay_faults(self, worker: _Worker) -> None:
        now = time.monotonic()
        headers = {"authorization": f"Bearer {self.config.admin_token}"}
        for fault_id, (spec, added) in list(self._faults.items()):
            duration = spec.get("duration_s")
            if duration:
                left = float(duration) - (now - added)
                if left <= 0:
                    del self._faults[fault_id]
                    continue
                spec = {**spec, "duration_s": left}
            body = json_response(spec).body
            reply = await client.request(
                "POST", worker.private_url + "/admin/faults", body,
                {**headers, FAULT_ID_HEADER: fault_id, "content-type": "application/json"},
            )  # fmt: skip
            if reply.status != 201:
                logger.error("fault %s not replayed to worker %d: HTTP %d", fault_id,
                             worker.index, reply.status)  # fmt: skip


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


def _sample_sum(text: str, prefix: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


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

"""Wiring of one reference-server process: core, HTTP, gRPC and metrics listeners, shutdown.

`serve(config)` is the whole life of a server: load the models (the core), bind the three
listeners on `config.host` (port 0 = let the kernel pick), announce the bound ports in one
stdout line `listening http=P grpc=P metrics=P` once everything is ready (scripts and tests
read it), then serve until SIGTERM/SIGINT or `stop` is set.

Under a supervisor (`--workers N`, supervisor.py) the same `serve` runs in each worker with
a `WorkerRole` (worker.py): shared ports, /metrics and admin changes handed to the
supervisor, a private listener (the reported "metrics" port) for the per-worker metrics and
admin API, readiness on the ready board.

Graceful shutdown, in this order and within `config.shutdown_grace_s`:
  1. the core turns unready at once (`/v2/health/ready` answers 503, so balancers drain us);
  2. the HTTP and gRPC listeners stop accepting; idle keep-alive connections are closed;
  3. in-flight HTTP requests and gRPC calls finish and are answered;
  4. the core stops its batchers; the metrics listener closes last.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

from reference_server.config import ServerConfig
from reference_server.core import InferenceCore
from reference_server.http import admin, kserve, tfserving
from reference_server.http.routing import Request, Response, Router
from reference_server.http.server import HttpServer
from reference_server.worker import ReadyBoard, WorkerRole, forwarder, keep_marking, watch_parent

logger = logging.getLogger(__name__)

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_METRICS_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class BoundPorts:
    http: int
    grpc: int
    metrics: int

    def announcement(self) -> str:
        return f"listening http={self.http} grpc={self.grpc} metrics={self.metrics}"


def _print_ports(ports: BoundPorts) -> None:
    sys.stdout.write(ports.announcement() + "\n")
    sys.stdout.flush()


def metrics_handler(core: InferenceCore) -> Callable[[Request, dict[str, str]], Response]:
    def handler(req: Request, params: dict[str, str]) -> Response:
        return Response(200, core.metrics_text(), METRICS_CONTENT_TYPE)

    return handler


def build_http_router(
    core: InferenceCore, config: ServerConfig, role: WorkerRole | None = None
) -> Router:
    """Every route of the main HTTP port: KServe v2, TF Serving, admin, /metrics (a worker
    hands /metrics and admin changes to its supervisor)."""
    router = Router()
    kserve.add_routes(router, core)
    tfserving.add_routes(router, core)
    if role is None:
        admin.add_routes(router, core, config.admin_token)
        router.add("GET", "/metrics", metrics_handler(core))
    else:
        forward = forwarder(role.control_url)
        admin.add_routes(router, core, config.admin_token, forward=forward)
        router.add("GET", "/metrics", lambda req, params: forward(req))
    return router


def build_admission_router(core: InferenceCore) -> Router:
    """The checks run when a request's headers are in: KServe and TF Serving inference are
    refused there, before their bodies are read, while the model's queue is full or the
    event loop is behind (InferenceCore.admit)."""
    admission = Router()
    kserve.add_admission(admission, core)
    tfserving.add_admission(admission, core)
    return admission


def build_metrics_router(
    core: InferenceCore, config: ServerConfig | None = None, role: WorkerRole | None = None
) -> Router:
    """The metrics port; a worker's private listener also takes the supervisor's admin calls."""
    router = Router()
    router.add("GET", "/metrics", metrics_handler(core))
    if role is not None and config is not None:
        admin.add_routes(router, core, config.admin_token, accept_ids=True)
    return router


class _Listeners:
    """The three listeners of one process, started and stopped together."""

    def __init__(
        self, core: InferenceCore, config: ServerConfig, role: WorkerRole | None = None
    ) -> None:
        self.core = core
        self.config = config
        self.shared = role is not None  # a worker: the HTTP and gRPC ports are shared
        self.http = HttpServer(
            build_http_router(core, config, role),
            max_body_bytes=config.max_body_bytes,
            admission=build_admission_router(core),
        )
        self.metrics = HttpServer(
            build_metrics_router(core, config, role),
            max_body_bytes=_METRICS_BODY_LIMIT,
            name="metrics",
        )
        self.grpc = None

    async def start(self) -> BoundPorts:
        from reference_server.grpc_service import start_grpc_server

        host = self.config.host
        http_port = await self.http.start(host, self.config.http_port, reuse_port=self.shared)
        self.grpc, grpc_port = await start_grpc_server(
            self.core, host, self.config.grpc_port, self.config.max_body_bytes, self.shared
        )
        metrics_port = await self.metrics.start(host, self.config.metrics_port)
        return BoundPorts(http_port, grpc_port, metrics_port)

    async def drain(self, grace_s: float) -> bool:
        """Stop accepting and wait for in-flight work; True if everything finished."""
        self.http.stop_accepting()
        waits = [self.http.shutdown(grace_s)]
        if self.grpc is not None:
            waits.append(self.grpc.stop(grace_s))
        results = await asyncio.gather(*waits, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                logger.error("error while draining a listener: %r", result)
        return results[0] is True

    async def close(self) -> None:
        self.http.stop_accepting()
        await self.metrics.shutdown(0.5)
        if self.grpc is not None:
            await self.grpc.stop(0)


def _install_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread / platform
            logger.debug("cannot install a handler for %s", sig)


async def serve(
    config: ServerConfig,
    ready_callback: Callable[[BoundPorts], None] | None = None,
    stop: asyncio.Event | None = None,
    role: WorkerRole | None = None,
) -> int:
    """Run one server until SIGTERM/SIGINT (or `stop` is set); return the exit code (0).

    `ready_callback(ports)` is called once every listener is bound and the models are
    ready; by default it prints the `listening http=... grpc=... metrics=...` line.
    `role`: this process is a worker of a supervisor (see worker.py).
    Start-up failures raise (ModelLoadError, DeviceUnavailable, OSError for a port).
    """
    core = InferenceCore(config)  # loads every model; nothing else runs on the loop yet
    await core.start()
    listeners = _Listeners(core, config, role)
    try:
        ports = await listeners.start()
    except BaseException:
        await listeners.close()
        await core.stop(0)
        raise
    stop = stop or asyncio.Event()
    _install_signals(stop)
    marking = None
    if role is not None:
        board = ReadyBoard(role.board_fd)
        core.peers_ready = board.all_ready
        board.set(role.index, core.local_ready)  # before the supervisor hears we listen
        marking = asyncio.ensure_future(keep_marking(board, role.index, lambda: core.local_ready))
        await watch_parent(stop)
    if role is None:
        logger.info("serving: %s (provider %s)", ports.announcement(), core.provider)
    else:  # never the `listening ...` pattern: a log shared with the supervisor is parsed
        logger.info("worker %d serving (private port %d)", role.index, ports.metrics)
    (ready_callback or _print_ports)(ports)
    await stop.wait()
    if marking is not None:
        marking.cancel()
        board.set(role.index, False)  # draining: not ready any more
    return await _shutdown(core, listeners, config.shutdown_grace_s)


async def _shutdown(core: InferenceCore, listeners: _Listeners, grace_s: float) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_s
    logger.info("shutting down: unready now, draining for up to %.1f s", grace_s)
    core.begin_shutdown()
    clean = await listeners.drain(grace_s)
    await core.stop(max(0.0, deadline - loop.time()))
    await listeners.close()
    if clean:
        logger.info("shutdown complete")
    else:
        logger.warning("shutdown deadline reached with requests still in flight")
    return 0

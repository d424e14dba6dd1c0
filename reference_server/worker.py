"""One worker of `--workers N`: what a server process does differently under a supervisor.

A worker is an ordinary server (its own core, ONNX Runtime sessions and batchers) that
  - shares the HTTP and gRPC ports with its siblings (SO_REUSEPORT: the kernel spreads new
    connections over the listening workers);
  - answers /metrics and admin fault changes on the shared HTTP port by handing them to the
    supervisor (`control_url`), which merges every worker's metrics and applies a fault to
    every worker, so whichever worker a client reaches, the answer is the server's;
  - serves its own, per-worker /metrics and admin API on its private listener (the "metrics"
    port it reports to the supervisor; the supervisor's fan-out uses it);
  - marks its readiness in the ready board, a small shared memory map (an unlinked file the
    supervisor hands down as a file descriptor: nothing is left on disk), and is ready only
    while every worker is (`InferenceCore.peers_ready`), so a probe gets the same answer from
    any worker;
  - drains and exits when its supervisor goes away (its stdin, a pipe from the supervisor,
    reaches end of file), so a killed supervisor leaves no worker behind.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
import tempfile
from dataclasses import dataclass

from reference_server.http import client
from reference_server.http.routing import Request, Response, json_response

__all__ = ["ReadyBoard", "WorkerRole", "forwarder", "watch_parent"]

logger = logging.getLogger(__name__)

_FORWARDED_HEADERS = ("authorization", "content-type")
BOARD_REFRESH_S = 0.2  # how often a worker re-marks its readiness (a fault may have expired)


@dataclass(frozen=True, slots=True)
class WorkerRole:
    index: int
    control_url: str  # http://host:port of the supervisor's control listener
    board_fd: int  # the ready board, inherited from the supervisor


class ReadyBoard:
    """One byte per worker in a shared mapping: 1 = that worker is ready.

    The supervisor creates it (all 0) on an unlinked temporary file whose descriptor the
    workers inherit (`fd`), and clears a dead worker's byte; each worker sets its own. Reads
    and writes of single bytes through a shared mapping need no lock."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._map = mmap.mmap(fd, 0)
        self.size = len(self._map)

    @classmethod
    def create(cls, workers: int) -> ReadyBoard:
        fd, path = tempfile.mkstemp(prefix="reference-server-ready-")
        os.unlink(path)  # gone from the disk at once; lives while a process holds it
        os.write(fd, bytes(workers))
        return cls(fd)

    def set(self, index: int, ready: bool) -> None:
        self._map[index] = int(ready)

    def all_ready(self) -> bool:
        return self._map.find(b"\x00") < 0

    def close(self) -> None:
        self._map.close()
        os.close(self.fd)


def forwarder(control_url: str):
    """A route handler body that hands a request to the supervisor and relays its answer."""

    async def forward(req: Request) -> Response:
        url = control_url + req.path + (f"?{req.query}" if req.query else "")
        headers = {k: req.headers[k] for k in _FORWARDED_HEADERS if k in req.headers}
        try:
            reply = await client.request(req.method, url, req.body, headers)
        except (OSError, TimeoutError) as exc:
            logger.error("supervisor unreachable at %s: %s", control_url, exc)
            return json_response({"error": "server supervisor unreachable"}, 503)
        content_type = reply.headers.get("content-type", "application/json")
        return Response(reply.status, reply.body, content_type)

    return forward


async def keep_marking(board: ReadyBoard, index: int, ready) -> None:
    """Mark this worker's readiness now and every BOARD_REFRESH_S (until cancelled)."""
    while True:
        board.set(index, ready())
        await asyncio.sleep(BOARD_REFRESH_S)


class _EofWatcher(asyncio.Protocol):
    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._stop.is_set():
            logger.warning("supervisor gone (stdin closed): draining and exiting")
        self._stop.set()


async def watch_parent(stop: asyncio.Event) -> None:
    """Set `stop` when stdin (the supervisor's pipe) reaches end of file."""
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: _EofWatcher(stop), os.fdopen(0, "rb", buffering=0))

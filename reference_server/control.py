"""The supervisor's routes (`--workers N`): one /metrics for all workers, admin changes to all.

  GET    /metrics                 every worker's own /metrics (their private listeners), merged
                                  at this scrape (metrics_merge.py), plus per-worker series:
                                  reference_server_workers, reference_server_worker_info{worker,
                                  pid}, reference_server_worker_restarts_total{worker},
                                  reference_server_worker_inference_requests{worker,pid}
  POST   /admin/faults            (control listener only; the workers forward to it) one change
  DELETE /admin/faults[/{id}]     at a time, to every worker, with one fault id for all (the
                                  X-Fault-Id header); answered as the first worker answered; the
                                  bearer token is the workers' to check

The active faults are kept here, so that a restarted worker can be given them
(`replay_faults`, under `lock`, which the supervisor holds from the start to the replay).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from typing import Protocol

from reference_server.http import client
from reference_server.http.admin import FAULT_ID_HEADER
from reference_server.http.routing import Request, Response, Router, json_loads, json_response
from reference_server.metrics_merge import format_value, merge_expositions

__all__ = ["Control", "WorkerLike"]

logger = logging.getLogger(__name__)

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class WorkerLike(Protocol):
    index: int
    private_url: str
    restarts: int

    @property
    def pid(self) -> int: ...


class Control:
    def __init__(self, workers: Callable[[], list[WorkerLike]], admin_token: str | None) -> None:
        """`workers()`: the current workers, by index."""
        self._workers = workers
        self._admin_token = admin_token
        self._faults: dict[str, tuple[dict, float]] = {}  # id -> (spec, added at, monotonic)
        self._fault_ids = itertools.count(1)
        self.lock = asyncio.Lock()

    # -- /metrics ----------------------------------------------------------------------------
    def metrics_router(self) -> Router:
        router = Router()
        router.add("GET", "/metrics", self._metrics)
        return router

    async def _metrics(self, req: Request, params: dict[str, str]) -> Response:
        workers = self._workers()
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
    def _worker_series(workers: list[WorkerLike], texts: dict[int, str]) -> str:
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
    def control_router(self) -> Router:
        router = self.metrics_router()
        router.add("POST", "/admin/faults", self._admin)
        router.add("DELETE", "/admin/faults", self._admin)
        router.add("DELETE", "/admin/faults/{id}", self._admin)
        return router

    async def _admin(self, req: Request, params: dict[str, str]) -> Response:
        """Apply one admin change to every worker; answer as the first worker answered."""
        headers = {k: req.headers[k] for k in ("authorization", "content-type") if k in req.headers}
        async with self.lock:
            fault_id = self._new_fault_id(req.body) if req.method == "POST" else None
            if fault_id:
                headers[FAULT_ID_HEADER] = fault_id
            workers = self._workers()
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

    async def replay_faults(self, worker: WorkerLike) -> None:
        """Give a (re)started worker the active faults, with what is left of their duration."""
        now = time.monotonic()
        headers = {"authorization": f"Bearer {self._admin_token}"}
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


def _sample_sum(text: str, prefix: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )

"""Master side of a harness run: start the clock, merge the workers' windows, hand them over.

One `MasterRuntime` in the Locust master process. On `test_start` it fixes second 0 (a wall-
clock epoch slightly in the future, so every worker starts its schedule at the same instant)
and broadcasts it. Workers' `harness_windows` messages are merged exactly (`WindowStore`);
a second is *closed* once every expected worker has reported past it, and closed windows are
appended to `<run_dir>/stream/windows.jsonl` at once, so an interrupted run keeps them. Late
fragments of a closed second are appended too (the reader adds duplicates exactly).

It also watches for the end: the orchestrator's stop request (`stream/control.json`), lost
workers (Locust's heartbeat bookkeeping), and the workers' `harness_final` messages; the load
shape (`scenarios.load_shape`) stops Locust once `done` is set.

While the run goes it serves live Prometheus metrics (`scenarios.live_metrics`: offered and
achieved rate, per-second p50/p99 from the intended start, errors, generator health, stage,
fault) on a loopback port written to `stream/live.json`.

Workers on other machines join through `scenarios.launch --remote`: before becoming Locust
workers they send `harness_hello` requests; the master answers each with its clock and version
(the first also with the run spec and the files it names), and keeps each worker's verdict
(`harness_join`: clock skew, round trip, refused or not) in `stream/workers.json`, the roster
the orchestrator reads to say who is missing.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event

from harness import __version__
from harness.latency.windows import WindowRecord, WindowStore
from harness.loadgen import stream
from harness.loadgen.spec import JOIN_HELLO, JOIN_REPORT, RunSpec
from scenarios.live_metrics import LiveMetrics
from scenarios.worker import MSG_FINAL, MSG_FINISH, MSG_INDEX, MSG_START, MSG_WINDOWS

log = logging.getLogger(__name__)

FOREVER = 1 << 62


class MasterRuntime:
    def __init__(self, environment: Any, spec: RunSpec) -> None:
        self.environment = environment
        self.spec = spec
        self.scenario = spec.parsed_scenario()
        self.n_workers = spec.total_workers
        self.joined: list[dict[str, Any]] = []  # remote workers' join verdicts
        self.connected: list[str] = []  # Locust client ids, in order of arrival
        self.dir = spec.stream_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.epoch: float | None = None
        self.pending = WindowStore()
        self.horizons: dict[str, int] = {}
        self.finals: dict[str, dict[str, Any]] = {}
        self.done = Event()
        self.finish_requested_at: float | None = None
        self.finish_reason = ""
        self._missing_reported: set[str] = set()
        self.live = LiveMetrics(self.scenario, Path(spec.run_dir))
        try:
            self.live.serve()
        except OSError:  # watching live is a convenience: the run goes on without it
            log.exception("live run metrics not served")
        runner = environment.runner
        port = getattr(getattr(runner, "server", None), "port", None)
        stream.write_json_atomic(self.dir / "master.json", {"port": port, "pid": os.getpid()})
        runner.register_message(MSG_WINDOWS, self._on_windows)
        runner.register_message(MSG_FINAL, self._on_final)
        runner.register_message(JOIN_HELLO, self._on_hello)
        runner.register_message(JOIN_REPORT, self._on_join_report)
        environment.events.worker_connect.add_listener(self._on_worker_connect)
        self._write_roster()
        environment.events.test_start.add_listener(self._on_test_start)
        environment.events.quitting.add_listener(self._on_quitting)
        gevent.spawn(self._watch)

    def elapsed(self) -> float | None:
        return None if self.epoch is None else time.time() - self.epoch

    def event(self, kind: str, ts: float | None = None, **fields: Any) -> None:
        """Append an event; `ts` (seconds since second 0) defaults to now."""
        ts = self.elapsed() if ts is None else ts
        stream.append_lines(self.dir / stream.EVENTS, [{"ts": ts, "type": kind, **fields}])

    # -- workers joining -------------------------------------------------------------------
    def _write_roster(self) -> None:
        stream.write_json_atomic(
            self.dir / stream.ROSTER,
            {
                "expected": self.n_workers,
                "local": self.scenario.workers,
                "external": self.spec.external_workers,
                "connected": list(self.connected),
                "remote": list(self.joined),
            },
        )

    def _on_worker_connect(self, client_id: str, **_: Any) -> None:
        """Number the worker (in the order workers connect; a worker that reconnects keeps its
        number) and tell it. The harness numbers workers itself rather than reading Locust's
        own index: Locust numbers every node that sends the master a message, the short-lived
        clients of remote workers asking for the run among them."""
        if client_id not in self.connected:
            self.connected.append(client_id)
            self._write_roster()
        index = self.connected.index(client_id)
        self.environment.runner.send_message(MSG_INDEX, {"index": index}, client_id=client_id)

    def _files(self) -> dict[str, Any]:
        """The files the spec names, for a worker that cannot read the master's disk."""
        out = {}
        for key in ("dataset_path", "trace_path"):
            path = getattr(self.spec, key)
            if path:
                out[key] = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        return out

    def _on_hello(self, environment: Any, msg: Any, **_: Any) -> None:
        reply: dict[str, Any] = {"seq": msg.data.get("seq"), "version": __version__}
        if msg.data.get("want_spec"):
            reply["spec"] = self.spec.to_json()
            reply["files"] = self._files()
        reply["master_time"] = time.time()  # last: as close to the send as possible
        environment.runner.send_message(JOIN_HELLO, reply, client_id=msg.node_id)

    def _on_join_report(self, environment: Any, msg: Any, **_: Any) -> None:
        report = dict(msg.data)
        self.joined.append(report)
        self._write_roster()
        if report.get("refused"):
            log.error("worker on %s refused to join: %s", report.get("host"), report["refused"])
            self.event("worker_refused", host=report.get("host"), reason=report["refused"])
        else:
            log.info(
                "worker on %s joins: clock skew %+.3f ms (rtt %.3f ms)",
                report.get("host"), report.get("clock_skew_ms"), report.get("rtt_ms"),
            )  # fmt: skip

    # -- start -----------------------------------------------------------------------------
    def _on_test_start(self, environment: Any, **_: Any) -> None:
        if self.epoch is not None:
            return
        self.epoch = time.time() + self.spec.start_lead_s
        self.live.epoch = self.epoch
        stream.write_json_atomic(
            self.dir / stream.START, {"epoch": self.epoch, "workers": self.n_workers}
        )
        environment.runner.send_message(MSG_START, {"epoch": self.epoch})
        stream.append_lines(
            self.dir / stream.EVENTS, [{"ts": 0.0, "type": "load_start", "workers": self.n_workers}]
        )
        log.info("run epoch %.3f sent to %d workers", self.epoch, self.n_workers)

    # -- windows ---------------------------------------------------------------------------
    def _ingest(self, msg: Any) -> None:
        data = msg.data
        self.pending.add_all(WindowRecord.from_dict(r) for r in data["records"])
        if data["health"]:
            stream.append_lines(self.dir / stream.HEALTH, data["health"])
            self.live.observe_health(data["health"])
        horizon = data.get("horizon")
        self.horizons[msg.node_id] = FOREVER if horizon is None else int(horizon)

    def _on_windows(self, environment: Any, msg: Any, **_: Any) -> None:
        self._ingest(msg)
        self._write_closed()

    def _on_final(self, environment: Any, msg: Any, **_: Any) -> None:
        self._ingest(msg)
        self.finals[msg.node_id] = msg.data.get("totals", {})
        self._write_closed()
        if len(self.finals) >= self.n_workers:
            self._complete("all workers finished")

    def _write_closed(self) -> None:
        if len(self.horizons) < self.n_workers:
            return
        self._write_before(min(self.horizons.values()))

    def _write_before(self, before: int | None) -> None:
        closed = self.pending.records(before_second=before)
        if not closed:
            return
        stream.append_lines(self.dir / stream.WINDOWS, (stream.record_to_json(r) for r in closed))
        self.live.observe_windows(closed)
        keep = [] if before is None else self.pending.records()[len(closed) :]
        self.pending = WindowStore()
        self.pending.add_all(keep)

    def _complete(self, reason: str) -> None:
        if self.done.is_set():
            return
        self._write_before(None)
        complete = len(self.finals) >= self.n_workers
        stream.write_json_atomic(
            self.dir / stream.FINAL,
            {
                "complete": complete,
                "reason": reason,
                "finish_reason": self.finish_reason,
                "workers": list(self.finals.values()),
                "ended_at_epoch_s": self.elapsed(),
            },
        )
        self.event("load_end", reason=reason)
        self.done.set()

    def _on_quitting(self, environment: Any, **_: Any) -> None:
        self._complete("locust quitting")

    # -- end -------------------------------------------------------------------------------
    def finish(self, reason: str) -> None:
        """Ask every worker to stop sending, drain and send its final windows."""
        if self.finish_requested_at is not None:
            return
        self.finish_requested_at = time.time()
        self.finish_reason = reason
        self.event("finish", reason=reason)
        self.environment.runner.send_message(MSG_FINISH, {"reason": reason})

    def finish_overdue(self) -> bool:
        if self.finish_requested_at is None:
            return False
        return time.time() - self.finish_requested_at > self.spec.drain_s + 10.0

    def _watch(self) -> None:
        while not self.done.is_set():
            gevent.sleep(0.25)
            control = stream.read_json(self.dir / stream.CONTROL)
            if control and control.get("stop"):
                self.finish(str(control.get("reason", "stopped by the orchestrator")))
            self._check_missing()
            if self.finish_overdue():
                self._complete("timed out waiting for workers' final windows")

    def _check_missing(self) -> None:
        clients = getattr(self.environment.runner, "clients", None)
        if clients is None:
            return
        for client in clients.missing:
            if client.id not in self._missing_reported:
                self._missing_reported.add(client.id)
                self.event("worker_lost", worker=client.id)
                log.error("worker %s stopped sending heartbeats", client.id)

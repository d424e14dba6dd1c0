"""Worker side of a harness run: record every request, judge each second, ship windows.

One `WorkerRuntime` per Locust worker process (created on Locust's `init` event). It
  * waits for the master's `harness_start` message (the wall-clock epoch of second 0, common
    to all workers) and maps it onto this process's monotonic clock;
  * owns the `LatencyRecorder` every request goes into and the open-loop `ScheduleStats`;
  * every second judges the second that just ended (CPU via psutil, schedule lag, drops;
    `harness.loadgen.health`), flags it unhealthy in the recorder if need be, and sends the
    closed windows to the master (`harness_windows`);
  * on the end of its schedule, or the master's `harness_finish`, lets in-flight requests
    finish, then sends everything left plus its totals (`harness_final`).
"""

from __future__ import annotations

import gc
import logging
import math
import socket
import time
from typing import Any

import gevent
import numpy as np
import psutil
from gevent import GreenletExit
from gevent.event import Event

from harness.latency.hdr import HIGHEST_US, new_histogram, record_values
from harness.loadgen import stream
from harness.loadgen.health import evaluate_second
from harness.loadgen.payloads import Sample, dataset_samples, random_samples
from harness.loadgen.recorder import LatencyRecorder
from harness.loadgen.spec import RunSpec
from scenarios.openloop import OpenLoopDriver, ScheduleStats
from scenarios.users import Prepared

log = logging.getLogger(__name__)

INDEX_WAIT_S = 10.0

MSG_START, MSG_FINISH = "harness_start", "harness_finish"
MSG_INDEX = "harness_index"  # master -> a worker that connected: its index among the workers
MSG_WINDOWS, MSG_FINAL = "harness_windows", "harness_final"


def _yield() -> None:
    gevent.sleep(0)


class WorkerRuntime:
    def __init__(self, environment: Any, spec: RunSpec) -> None:
        self.environment = environment
        self.spec = spec
        self.scenario = spec.parsed_scenario()
        self.n_workers = max(spec.total_workers, 1)  # local and remote: the schedule's shares
        self.clock = time.perf_counter
        self.started = Event()
        self.finished = Event()  # no new requests from here on
        self.recorder = LatencyRecorder()
        self.raw: list[tuple[str, bool, float, float, float]] = []
        self.record = self._record_raw if spec.record_raw else self.recorder.record
        self.stats = ScheduleStats(origin=0.0)
        self.lag_histogram = new_histogram()
        self.driver: OpenLoopDriver | None = None
        self.in_flight = 0
        self._prepared: list[list[Prepared]] | None = None
        self._final_sent = False
        self._process = psutil.Process()
        self._process.cpu_percent(None)
        self._cpu_at_start = 0.0
        runner = environment.runner
        self._index: int | None = None
        runner.register_message(MSG_INDEX, self._on_index)
        runner.register_message(MSG_START, self._on_start)
        runner.register_message(MSG_FINISH, self._on_finish)

    # -- lifecycle -------------------------------------------------------------------------
    def _on_index(self, environment: Any, msg: Any, **_: Any) -> None:
        self._index = int(msg.data["index"])

    @property
    def worker_index(self) -> int:
        """This worker's index, 0 .. n_workers - 1, as the master numbered it when it connected
        (before the master asks for users, so it is there by the first task)."""
        deadline = time.monotonic() + INDEX_WAIT_S
        while self._index is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no worker index from the master within {INDEX_WAIT_S:g} s")
            gevent.sleep(0.01)
        return self._index % self.n_workers

    def _on_start(self, environment: Any, msg: Any, **_: Any) -> None:
        if self.started.is_set():
            return
        gc.collect()
        gc.freeze()
        self._cpu_at_start = sum(
            self._process.cpu_times()[:2]
        )  # start-up objects leave the collector's view: shorter pauses under load
        origin = self.clock() + (float(msg.data["epoch"]) - time.time())
        self.recorder.origin_s = origin
        self.stats.origin = origin
        self.started.set()
        gevent.spawn(self._report_loop)

    def _on_finish(self, environment: Any, msg: Any, **_: Any) -> None:
        self.finished.set()
        if self.driver is not None:
            self.driver.stop()  # the driving user drains and finalises
        else:
            gevent.spawn(self._drain_closed_then_finalize)

    def wait_started(self) -> float:
        self.started.wait()
        return self.stats.origin

    def _drain_closed_then_finalize(self) -> None:
        deadline = self.clock() + self.spec.drain_s
        while self.in_flight > 0 and self.clock() < deadline:
            gevent.sleep(0.01)
        self.finalize()

    # -- per-second reports ----------------------------------------------------------------
    def _report_loop(self) -> None:
        origin = self.stats.origin
        while not self._final_sent:
            now = self.clock()
            next_tick = origin + math.floor(now - origin) + 1 + 0.05
            gevent.sleep(max(0.0, next_tick - now))
            if self._final_sent:
                return
            self._report(math.floor(self.clock() - origin))

    def _cpu_percent(self) -> float:
        """Process CPU since the last call (the driver sleeps, it never spins)."""
        return self._process.cpu_percent(None)

    def _health(self, seconds: list[int]) -> list[dict[str, Any]]:
        cpu = self._cpu_percent()
        out = []
        for second in seconds:
            lag_list, dropped, outstanding = self.stats.pop(second)
            lags = np.asarray(lag_list, dtype=np.float64)  # vectorised: a Python loop over
            # thousands of lags here stalled the event loop
            record_values(self.lag_histogram, np.clip(np.rint(lags * 1e6), 1, HIGHEST_US))
            health = evaluate_second(
                second, self.worker_index, lags, cpu, dropped, outstanding, self.spec.health
            )
            if not health.healthy:
                self.recorder.mark_unhealthy(second)
            out.append(health.to_dict())
        return out

    def _report(self, before_second: int | None) -> None:
        """Judge and ship every second before `before_second` (None: everything)."""
        pending = self.stats.seconds()
        if before_second is None:
            current = math.floor(self.clock() - self.stats.origin)
            seconds = sorted(pending | {current})
        else:
            seconds = sorted({s for s in pending if s < before_second} | {before_second - 1})
        health = self._health([s for s in seconds if s >= 0 or s in pending])
        pause = None if before_second is None else _yield  # the final report need not yield
        records = self.recorder.flush(before_second, pause)
        message = MSG_FINAL if before_second is None else MSG_WINDOWS
        data: dict[str, Any] = {
            "worker": self.worker_index,
            "horizon": before_second,
            "records": [r.to_dict() for r in records],
            "health": health,
        }
        if before_second is None:
            data["totals"] = self.totals()
        self.environment.runner.send_message(message, data)

    def totals(self) -> dict[str, Any]:
        return {
            "worker": self.worker_index,
            "host": socket.gethostname(),
            "sent": self.stats.sent_total,
            "dropped": self.stats.dropped_total,
            "abandoned": self.stats.abandoned_total,
            "recorded": self.recorder.recorded,
            "rejected": self.recorder.rejected,
            "lag_hdr": self.lag_histogram.encode().decode("ascii"),
            "cpu_s": round(sum(self._process.cpu_times()[:2]) - self._cpu_at_start, 3),
        }

    def _record_raw(
        self,
        endpoint: str,
        ok: bool,
        intended: float,
        sent: float,
        done: float,
        checked: int = 0,
        correct: int = 0,
    ) -> None:
        self.recorder.record(endpoint, ok, intended, sent, done, checked, correct)
        origin = self.stats.origin
        self.raw.append((endpoint, ok, intended - origin, sent - origin, done - origin))

    def _write_raw(self) -> None:
        if self.spec.record_raw:
            path = self.spec.stream_dir / f"raw-{self.worker_index}.jsonl"
            keys = ("endpoint", "ok", "intended", "sent", "done")
            stream.append_lines(path, (dict(zip(keys, row, strict=True)) for row in self.raw))

    def finalize(self) -> None:
        if self._final_sent:
            return
        self.finished.set()
        self._write_raw()
        self._report(None)
        self._final_sent = True
        log.info("worker %d sent its final windows", self.worker_index)

    # -- requests --------------------------------------------------------------------------
    def prepared(self, user: Any) -> list[list[Prepared]]:
        """Per arm, the pre-encoded requests (built once per process with the first user)."""
        if self._prepared is None:
            self._prepared = [
                [user.prepare(arm.name, arm.model, arm.version, s) for s in self._samples(i)]
                for i, arm in enumerate(self.spec.endpoints)
            ]
        return self._prepared

    def _samples(self, arm_index: int) -> list[Sample]:
        arm = self.spec.endpoints[arm_index]
        batch = self.scenario.target.inputs.batch_size
        if self.spec.dataset_path:
            return dataset_samples(self.spec.dataset_path, arm.inputs[0].name, batch)
        seed = hash((self.spec.seed, self.worker_index, arm_index)) & 0x7FFFFFFF
        return random_samples(arm.inputs, self.spec.random_pool, seed, batch)

    def make_sender(self, user: Any) -> Any:
        """send(arm, intended, sent) for the open-loop driver: request, then record."""
        prepared, record, clock = self.prepared(user), self.record, self.clock
        post = getattr(user, "send_open_loop", user.send)  # HTTP users: the lean pool
        counters = [0] * len(prepared)

        def send(arm: int, intended: float, sent: float) -> None:
            requests = prepared[arm]
            request = requests[counters[arm] % len(requests)]
            counters[arm] += 1
            try:
                answer = post(request)
            except GreenletExit:  # abandoned at the end of the drain: record what we know
                record(request.name, False, intended, sent, clock())
                raise
            except Exception:
                log.exception("request to %s raised", request.name)
                record(request.name, False, intended, sent, clock())
                return
            record(request.name, answer.ok, intended, sent, clock(), answer.checked, answer.correct)

        return send

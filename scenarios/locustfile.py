"""The project's locustfile, run by `harness run` as a Locust master and N workers.

    HARNESS_RUN_SPEC=results/<run>/run_spec.json \\
        python -m locust -f scenarios/locustfile.py --headless --master --expect-workers 2 ...

It reads the resolved run spec (`harness.loadgen.spec.RunSpec`, written by the orchestrator) and
defines, for Locust to find at import time:
  * `HarnessUser`: the scenario's protocol user (KServe HTTP/gRPC, TF Serving) driving either
    the open-loop schedule (one driver per worker) or closed-loop requests with a wait time;
  * `HarnessShape`: the load shape (`scenarios.load_shape`).
On Locust's `init` event the master gets a `MasterRuntime` and each worker a `WorkerRuntime`.
Every request is recorded into HDR windows (from its intended start in open loop, from its
send in closed loop) and appears in Locust's own stats as well.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import gevent
import numpy as np
from locust import between, constant, events, task
from locust.runners import MasterRunner, WorkerRunner

from harness.config import OpenLoad
from harness.loadgen.arrivals import worker_schedule
from harness.loadgen.schedule import pick_arms
from harness.loadgen.spec import RunSpec
from scenarios.load_shape import HarnessShape
from scenarios.master import MasterRuntime
from scenarios.openloop import OpenLoopDriver, sleep_until
from scenarios.users import KServeGrpcUser, KServeHttpUser, TFServingUser
from scenarios.worker import WorkerRuntime

__all__ = ["HarnessShape", "HarnessUser"]

log = logging.getLogger(__name__)

SPEC = RunSpec.from_env()
SCENARIO = SPEC.parsed_scenario()
PROTOCOL_USERS = {
    "kserve-http": KServeHttpUser,
    "kserve-grpc": KServeGrpcUser,
    "tfserving": TFServingUser,
}
_RUNTIME: dict[str, Any] = {}
WARM_CONNECTIONS = 16  # open-loop HTTP: connections opened before the load starts


def _worker_runtime() -> WorkerRuntime:
    return _RUNTIME["worker"]


class _OpenLoopMixin:
    """One per worker: drives this worker's share of the arrival schedule."""

    wait_time = constant(0)

    @task
    def drive(self) -> None:
        runtime = _worker_runtime()
        if runtime.driver is not None or runtime.finished.is_set():
            gevent.sleep(3600)  # a second driver on one worker would double the rate
            return
        load = SCENARIO.load
        assert isinstance(load, OpenLoad)
        weights = [arm.weight for arm in SPEC.endpoints]
        driver = OpenLoopDriver(
            runtime.make_sender(self),
            weights,
            runtime.stats,
            load.max_outstanding,
            seed=SPEC.seed * 7919 + runtime.worker_index,
            clock=runtime.clock,
            min_wake_gap_s=load.timer_slack_ms / 1000.0,
        )
        runtime.driver = driver
        warm = getattr(self, "warm_open_loop", None)
        if warm is not None:  # connect before second 0, not inside the measurement
            warm(min(load.max_outstanding, WARM_CONNECTIONS))
        runtime.wait_started()
        schedule = worker_schedule(
            SCENARIO, runtime.worker_index, runtime.n_workers, SPEC.seed, SPEC.trace_path
        )
        driver.run(schedule)
        driver.drain(SPEC.drain_s)
        runtime.finalize()
        gevent.sleep(3600)


class _ClosedLoopMixin:
    """Closed loop: send, wait for the answer, wait `wait_time`, repeat."""

    def on_start(self) -> None:
        runtime = _worker_runtime()
        sleep_until(runtime.wait_started(), runtime.clock)  # second 0 is common to all
        self._prepared = runtime.prepared(self)
        self._weights = [arm.weight for arm in SPEC.endpoints]
        self._rng = np.random.default_rng(random.getrandbits(32))

    @task
    def one_request(self) -> None:
        runtime = _worker_runtime()
        if runtime.finished.is_set():
            gevent.sleep(0.5)
            return
        arm = int(pick_arms(self._weights, 1, self._rng)[0])
        requests = self._prepared[arm]
        request = requests[int(self._rng.integers(len(requests)))]
        runtime.in_flight += 1
        try:
            sent = runtime.clock()
            answer = self.send(request)
            done = runtime.clock()
        finally:
            runtime.in_flight -= 1
        if not runtime.finished.is_set():
            runtime.record(
                request.name, answer.ok, sent, sent, done, answer.checked, answer.correct
            )


def _wait_time() -> Any:
    load = SCENARIO.load
    if isinstance(load, OpenLoad):
        return constant(0)
    wait = load.wait_time
    return between(*wait) if isinstance(wait, tuple) else constant(wait)


def _user_class() -> type:
    base = PROTOCOL_USERS[SCENARIO.target.protocol]
    mixin = _OpenLoopMixin if isinstance(SCENARIO.load, OpenLoad) else _ClosedLoopMixin
    attrs: dict[str, Any] = {"abstract": False, "host": SPEC.target_url, "wait_time": _wait_time()}
    # Locust collects @task methods only from User classes, not from plain mixins.
    attrs["tasks"] = [mixin.drive if mixin is _OpenLoopMixin else mixin.one_request]
    if isinstance(SCENARIO.load, OpenLoad):
        attrs["concurrency"] = SCENARIO.load.max_outstanding  # FastHttp connection pool
    return type("HarnessUser", (mixin, base), attrs)


HarnessUser = _user_class()


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        runtime = MasterRuntime(environment, SPEC)
        _RUNTIME["master"] = runtime
        if environment.shape_class is not None:
            environment.shape_class.runtime = runtime
    elif isinstance(runner, WorkerRunner):
        _RUNTIME["worker"] = WorkerRuntime(environment, SPEC)
    else:
        log.error("scenarios/locustfile.py runs as a Locust master + workers (harness run)")

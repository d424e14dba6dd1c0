"""Dynamic batching for one model version, the way Triton's dynamic batcher does it.

Why: a batch-1 call into ONNX Runtime costs about as much as a batch of 16, so a server that
runs each request alone wastes most of its compute. Requests (from HTTP and gRPC alike,
they all come through `InferenceCore.infer`) are queued; a batch is dispatched as soon as
an instance is free and either the largest preferred batch size (or `max_batch_size` when
none is configured) is waiting, a smaller preferred size can be formed, or the oldest
request has waited `max_queue_delay`; only then does a batch grow to `max_batch_size`, as
in Triton, whose preferred sizes cap a batch formed within the delay. While every instance is
busy the queue keeps growing, so batches grow with load. Inputs are concatenated along
axis 0 and the session runs in a worker thread (one per instance, ONNX Runtime releases
the GIL); outputs are split back by each request's row count and each request's future
gets its own rows (or the exception).

Inline execution: a process confined to one CPU (`taskset -c 0`, a one-CPU container) with
one instance gains no parallelism from the worker thread, only its cost: the executor
hand-off, a cross-thread wake-up of the event loop and GIL ping-pong (~75 us extra per
batch measured at concurrency 1 on `mlp`, as much as the inference itself). There the
batch runs on the loop's own thread, and the batcher yields to the loop once after each
batch, so the requests that arrived meanwhile are queued before the next batch forms.

Triton's queue policy bounds the queue: past `max_queue_size` a request is refused at once,
and one that waited longer than the queue timeout is rejected instead of run (both raise
`Rejected`, an Unavailable: an overloaded server sheds load instead of queueing without
limit, and answers the requests it accepts within the bound).

Overload: when the queue holds a full batch, a worker thread that finishes a batch takes the
next one itself (the queue is shared under a lock), instead of handing its instance back to
the event loop and waiting for it to dispatch: under overload one loop iteration reads every
busy socket and may last longer than a batch, and an instance idle between iterations is
capacity lost exactly when it is needed (measured on `cnn` at ~4x capacity: the instance
thread got a tenth of the loop thread's CPU without this, about three quarters with it).
Answers still go back through the loop.

Cancellation: a caller that stops waiting (its task cancelled because the HTTP client closed
the connection or the gRPC call was cancelled / passed its deadline) cancels its future;
`withdraw` marks the queue, and the cancelled requests are taken out before the next batch
forms, so no batch slot and no inference is spent on them.

Adaptive eager dispatch: an idle instance dispatches whatever is queued at once, so a lone
request never pays the queue delay, unless the process is saturated: when it used at least
`SATURATED` of its CPUs over the last `LOAD_WINDOW_NS` (a gRPC front end on one core at
full load), dispatching eagerly runs one-row batches (the front end feeds the queue one
request at a time), and waiting costs no throughput, since the CPU has other requests to
parse meanwhile. Then an idle instance waits like a busy one (up to `max_queue_delay` or
a preferred size). A closed loop at concurrency 1 leaves the server partly idle (the round
trip through the client), so it keeps eager dispatch and its latency.

The decision is a pure function of (pending row counts, oldest arrival, now, idle,
saturated): `BatchPolicy.plan` (batch_policy.py), tested with a fake clock; the clocks the
batcher uses are injected (`clock_ns`, `cpu_clock_ns`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from reference_server.batch_policy import BatchPolicy
from reference_server.errors import BackendFailure, Rejected, ServerError, Unavailable
from reference_server.stats import VersionStats

__all__ = ["BatchPolicy", "BatchRunner", "Batcher", "cpu_count", "single_cpu"]

logger = logging.getLogger(__name__)

Outputs = dict[str, np.ndarray]

SATURATED = 0.95  # share of the process's CPUs used, past which eager dispatch stops
LOAD_WINDOW_NS = 20_000_000  # how often (and over how long) that share is measured


class BatchRunner(Protocol):
    """What the batcher runs batches on (runtime.ModelRuntime satisfies it)."""

    output_names: tuple[str, ...]

    def run(self, instance: int, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...


class _Pending:
    __slots__ = ("arrival_ns", "future", "inputs", "rows")

    def __init__(
        self, inputs: dict[str, np.ndarray], rows: int, future: asyncio.Future, arrival_ns: int
    ) -> None:
        self.inputs = inputs
        self.rows = rows
        self.future = future
        self.arrival_ns = arrival_ns


class Batcher:
    """The queue, batch formation and execution of one model version."""

    def __init__(
        self,
        runner: BatchRunner,
        policy: BatchPolicy,
        stats: VersionStats,
        *,
        instances: int = 1,
        name: str = "model",
        clock_ns: Callable[[], int] = time.monotonic_ns,
        inline: bool | None = None,
        cpu_clock_ns: Callable[[], int] = time.process_time_ns,
    ) -> None:
        """`inline`: run batches on the loop thread; None decides (one instance, one CPU)."""
        self.runner = runner
        self.policy = policy
        self.stats = stats
        self.instances = max(1, instances)
        self.name = name
        self._clock = clock_ns
        self._pending: deque[_Pending] = deque()
        self._pending_rows = 0
        self._lock = threading.Lock()  # the queue: taken on the loop and on worker threads
        self._withdrawn = False  # a queued caller cancelled: purge before the next batch
        self._refusal: Rejected | None = None  # built once: see refusal()
        self._refusal_limit = 0
        self._free: list[int] = list(range(self.instances))
        self._queue_waker: asyncio.Future | None = None
        self._instance_waker: asyncio.Future | None = None
        # A submit wakes a waiting batcher only when it can change the decision.
        self._wake_rows = min(policy.preferred) if policy.preferred else policy.max_batch_size
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.running_batches = 0
        self.inline = (self.instances == 1 and single_cpu()) if inline is None else inline
        self._cpu_clock = cpu_clock_ns
        self._cpus = cpu_count()
        self._load_at = (clock_ns(), cpu_clock_ns())
        self.saturated = False

    @property
    def queue_depth(self) -> int:
        """Requests waiting to be batched (not yet running)."""
        return len(self._pending)

    def start(self) -> None:
        """Start the batching task on the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            self.instances, thread_name_prefix=f"ort-{self.name}"
        )
        self._task = self._loop.create_task(self._run(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        """Stop batching; requests still queued fail with Unavailable."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._fail_pending(Unavailable(f"{self.name}: server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=False)  # a running batch finishes on its own
            self._executor = None

    def submit(self, inputs: dict[str, np.ndarray], rows: int) -> asyncio.Future:
        """Queue one request of `rows` rows; the future resolves to its outputs."""
        if self._loop is None or self._task is None:
            raise Unavailable(f"{self.name}: batcher is not running")
        if self.full():  # raised: a fresh copy of the shared refusal, which is never raised
            raise Rejected(*self.refusal().args)
        future = self._loop.create_future()
        with self._lock:
            self._pending.append(_Pending(inputs, rows, future, self._clock()))
            self._pending_rows += rows
        waker = self._queue_waker
        if (
            waker is not None
            and not waker.done()
            and (self._pending_rows >= self._wake_rows or len(self._pending) == 1)
        ):
            waker.set_result(None)
        return future

    def full(self) -> bool:
        """True when the queue policy's `max_queue_size` requests are waiting."""
        limit = self.policy.max_queue_size
        if not limit or len(self._pending) < limit:
            return False
        if self._withdrawn:
            with self._lock:
                self._purge_cancelled()
        return len(self._pending) >= limit

    def refusal(self) -> Rejected:
        """The error a request gets when the queue is full (Triton's wording): one object per
        batcher, answered, never raised (a raised exception would keep its traceback)."""
        limit = self.policy.max_queue_size
        if self._refusal is None or self._refusal_limit != limit:
            self._refusal = Rejected(f"{self.name}: exceeds maximum queue size ({limit})")
            self._refusal_limit = limit
        return self._refusal

    def withdraw(self) -> None:
        """A caller cancelled its future: drop it (and any other cancelled) before it runs."""
        self._withdrawn = True

    def _purge_cancelled(self) -> None:
        """Under the lock: take every cancelled request out of the queue."""
        self._withdrawn = False
        pending = self._pending
        kept = [item for item in pending if not item.future.cancelled()]
        if len(kept) != len(pending):
            pending.clear()
            pending.extend(kept)
            self._pending_rows = sum(item.rows for item in kept)

    async def _wait_queue(self, timeout_ns: int) -> None:
        """Sleep until a submit that matters, or `timeout_ns` (< 0: no timeout)."""
        assert self._loop is not None
        waker = self._queue_waker = self._loop.create_future()
        handle = None
        if timeout_ns >= 0:
            handle = self._loop.call_later(timeout_ns / 1e9, _wake, waker)
        try:
            await waker
        finally:
            self._queue_waker = None
            if handle is not None:
                handle.cancel()

    async def _wait_instance(self) -> None:
        assert self._loop is not None
        waker = self._instance_waker = self._loop.create_future()
        try:
            await waker
        finally:
            self._instance_waker = None

    async def _run(self) -> None:
        while True:
            try:
                await self._next_batch()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must fail requests, not hang them forever
                logger.exception("%s: batcher error; failing queued requests", self.name)
                self._fail_pending(ServerError(f"{self.name}: internal batching error"))

    async def _next_batch(self) -> None:
        """Wait for a free instance and a batch worth dispatching, then dispatch it."""
        while True:
            while not self._free:
                await self._wait_instance()
            batch, wait_ns = self._plan_now()
            if batch:
                break
            await self._wait_queue(wait_ns)
        self._dispatch(batch)
        if self.inline:
            await asyncio.sleep(0)  # let answered callers go and new requests queue up

    def _plan_now(self) -> tuple[list[_Pending], int]:
        """On the loop: (the batch to run now, or [] and the ns to wait before re-planning)."""
        batch, expired, wait_ns = self._take(self.running_batches == 0, self.saturated)
        self._reject(expired)
        return batch, wait_ns

    def _take(self, idle: bool, saturated: bool) -> tuple[list[_Pending], list[_Pending], int]:
        """(batch taken off the queue, requests past the queue timeout, ns to wait).

        Called on the loop and on a worker thread that just finished a batch, so the queue
        changes under the lock; cancelled requests are dropped (never run), whatever thread
        notices them. Timed-out requests are handed back to be failed on the loop.
        """
        with self._lock:
            if self._withdrawn:
                self._purge_cancelled()
            pending = self._pending
            expired: list[_Pending] = []
            if pending and self.policy.queue_timeout_ns:
                oldest_allowed = self._clock() - self.policy.queue_timeout_ns
                while pending and pending[0].arrival_ns < oldest_allowed:
                    expired.append(pending.popleft())
                    self._pending_rows -= expired[-1].rows
            if not pending:
                return [], expired, -1
            take, wait_ns = self.policy.plan(
                [p.rows for p in pending],
                self._pending_rows,
                pending[0].arrival_ns,
                self._clock(),
                idle,
                saturated,
            )
            batch = [pending.popleft() for _ in range(take)]
            self._pending_rows -= sum(item.rows for item in batch)
        return [item for item in batch if not item.future.cancelled()], expired, wait_ns

    def _reject(self, expired: list[_Pending]) -> None:
        """Fail the requests that waited past the queue timeout (loop thread)."""
        for item in expired:
            if not item.future.done():
                item.future.set_exception(Rejected(f"{self.name}: request timed out in the queue"))

    def _fail_pending(self, exc: BaseException) -> None:
        with self._lock:
            items = list(self._pending)
            self._pending.clear()
            self._pending_rows = 0
        for item in items:
            if not item.future.done():
                item.future.set_exception(exc)

    def _dispatch(self, batch: list[_Pending]) -> None:
        """Run `batch` on a free instance: inline, or on its worker thread."""
        assert self._loop is not None
        instance = self._free.pop()
        self.running_batches += 1
        if self.inline:
            outcome = _run_batch(self._execute, instance, batch, self._clock())
            self._finished(instance, outcome, [], release=True)
            return
        assert self._executor is not None
        self._executor.submit(self._work, self._loop, instance, batch)

    def _work(self, loop: asyncio.AbstractEventLoop, instance: int, batch: list[_Pending]) -> None:
        """Worker thread: run `batch`, then, while a full batch is waiting, the next one.

        Taking the next batch here instead of on the loop keeps the instance busy when the
        loop is not free to dispatch: under overload one loop iteration reads every busy
        socket and can last longer than a batch. Only a full batch (or a preferred size, or
        one past the queue delay) is taken here; otherwise the instance goes back to the loop,
        which plans as usual (eager dispatch when idle).
        """
        while batch:
            outcome = _run_batch(self._execute, instance, batch, self._clock())
            batch, expired, _ = self._take(idle=False, saturated=True)
            try:
                loop.call_soon_threadsafe(self._finished, instance, outcome, expired, not batch)
            except RuntimeError:  # the loop closed during shutdown
                return

    def _finished(
        self, instance: int, outcome: _Outcome, expired: list[_Pending], release: bool
    ) -> None:
        """On the loop: answer a finished batch; when `release`, its instance is free again."""
        self._reject(expired)
        if release:
            self._free.append(instance)
            self.running_batches -= 1
            self._measure_load()
        self._answer(outcome)
        if release and not self.inline and self._task is not None:
            # The next batch goes out now, not after a hop through the batcher task.
            batch, _ = self._plan_now()
            if batch:
                self._dispatch(batch)
        if release:
            for waker in (self._instance_waker, self._queue_waker):  # re-plan: idle/free
                if waker is not None and not waker.done():
                    waker.set_result(None)

    def _execute(self, instance: int, batch: list[_Pending]) -> tuple[list[Outputs], int, int, int]:
        """Worker thread: concatenate, run, split. Returns per-request outputs and timings."""
        t0 = time.perf_counter_ns()
        if len(batch) == 1:
            feeds = batch[0].inputs
        else:
            feeds = {
                name: np.concatenate([item.inputs[name] for item in batch])
                for name in batch[0].inputs
            }
        t1 = time.perf_counter_ns()
        arrays = self.runner.run(instance, feeds)
        t2 = time.perf_counter_ns()
        names = self.runner.output_names
        if len(batch) == 1:
            results = [dict(zip(names, arrays, strict=True))]
        else:
            results = []
            start = 0
            for item in batch:
                end = start + item.rows
                results.append({n: a[start:end] for n, a in zip(names, arrays, strict=True)})
                start = end
        t3 = time.perf_counter_ns()
        return results, t1 - t0, t2 - t1, t3 - t2

    def _measure_load(self) -> None:
        """Every LOAD_WINDOW_NS: did the process use (nearly) all of its CPUs?"""
        now = self._clock()
        wall0, cpu0 = self._load_at
        if now - wall0 < LOAD_WINDOW_NS:
            return
        cpu = self._cpu_clock()
        self.saturated = (cpu - cpu0) >= SATURATED * (now - wall0) * self._cpus
        self._load_at = (now, cpu)

    def _answer(self, outcome: _Outcome) -> None:
        """Resolve each caller's future with its rows of the outputs, or the exception."""
        exc = outcome.error
        if exc is not None:
            if not isinstance(exc, ServerError):
                logger.warning("%s: batch of %d rows failed: %s", self.name, outcome.rows, exc)
                exc = BackendFailure(f"{self.name}: inference failed: {exc}")
            for item in outcome.batch:  # one exception object per caller: separate tracebacks
                if not item.future.done():
                    item.future.set_exception(type(exc)(*exc.args))
            return
        results, input_ns, infer_ns, output_ns = outcome.result
        self.stats.record_batch(
            outcome.rows, len(outcome.batch), outcome.queue_ns, input_ns, infer_ns, output_ns
        )
        for item, result in zip(outcome.batch, results, strict=True):
            if not item.future.done():
                item.future.set_result(result)


@dataclass(slots=True)
class _Outcome:
    """A batch that ran: its requests, rows, summed queue wait, and result or error."""

    batch: list[_Pending]
    rows: int
    queue_ns: int
    result: tuple[list[Outputs], int, int, int] = ([], 0, 0, 0)
    error: BaseException | None = None


def _run_batch(
    execute: Callable[[int, list[_Pending]], tuple[list[Outputs], int, int, int]],
    instance: int,
    batch: list[_Pending],
    now_ns: int,
) -> _Outcome:
    rows = sum(item.rows for item in batch)
    queue_ns = sum(now_ns - item.arrival_ns for item in batch)
    outcome = _Outcome(batch, rows, queue_ns)
    try:
        outcome.result = execute(instance, batch)
    except Exception as exc:  # delivered to every caller of the batch
        outcome.error = exc
    return outcome


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def single_cpu() -> bool:
    """True when this process may run on one CPU only (affinity), where threads buy nothing."""
    try:
        return len(os.sched_getaffinity(0)) == 1
    except (AttributeError, OSError):  # not Linux: keep the worker thread
        return False


def _wake(waker: asyncio.Future) -> None:
    if not waker.done():
        waker.set_result(None)

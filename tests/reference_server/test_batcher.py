"""Dynamic batching: the pure decision with a fake clock, then the real queue and threads."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from reference_server.batcher import Batcher, BatchPolicy
from reference_server.errors import ServerError, Unavailable
from reference_server.stats import VersionStats
from tests.reference_server.core_helpers import until

MS = 1_000_000  # ns

POLICY = BatchPolicy(max_batch_size=8, max_queue_delay_ns=2 * MS, preferred=(4,))


class TestPlan:
    def test_empty_queue_waits_for_a_request(self) -> None:
        assert POLICY.plan([], 0, 0, 0) == (0, -1)

    def test_waits_out_the_delay_from_the_oldest_request(self) -> None:
        # 2 rows pending, oldest arrived at t=10 ms, now 10.5 ms: wait 1.5 ms more
        assert POLICY.plan([1, 1], 2, 10 * MS, 10 * MS + MS // 2) == (0, 3 * MS // 2)
        # once the delay has passed, everything pending goes
        assert POLICY.plan([1, 1], 2, 10 * MS, 12 * MS) == (2, 0)

    def test_preferred_size_dispatches_at_once(self) -> None:
        assert POLICY.plan([1, 1, 1, 1, 1], 5, 0, 0) == (4, 0)

    def test_full_batch_dispatches_at_once_and_never_exceeds_max(self) -> None:
        # past the queue delay: rows 3+3+3 = 9 > 8, only the first two requests fit
        assert POLICY.plan([3, 3, 3], 9, 0, 2 * MS) == (2, 0)
        # a single request bigger than the rest still goes alone
        assert POLICY.plan([8, 1], 9, 0, 0) == (1, 0)
        no_preferred = BatchPolicy(max_batch_size=8, max_queue_delay_ns=2 * MS)
        assert no_preferred.plan([3, 3, 3], 9, 0, 0) == (2, 0)

    def test_preferred_sizes_cap_the_batch_until_the_delay(self) -> None:
        # Triton's rule: within the queue delay a batch grows to the largest preferred size
        # (4 here), not to max_batch_size, however much is queued
        assert POLICY.plan([1] * 10, 10, 0, 0) == (4, 0)
        assert POLICY.plan([3, 3, 3], 9, 0, 0) == (1, 0)  # 3 rows: 6 would pass 4
        assert POLICY.plan([1] * 10, 10, 0, 0, idle=True) == (4, 0)
        # once the oldest request has waited the delay, the batch takes up to max_batch_size
        assert POLICY.plan([1] * 10, 10, 0, 2 * MS) == (8, 0)
        assert BatchPolicy(8, 2 * MS, (16,)).largest_preferred == 8  # never past the max

    def test_idle_server_does_not_wait(self) -> None:
        assert POLICY.plan([1], 1, 0, 0, idle=True) == (1, 0)
        patient = BatchPolicy(8, 2 * MS, (), eager_when_idle=False)
        assert patient.plan([1], 1, 0, 0, idle=True) == (0, 2 * MS)

    def test_saturated_process_waits_even_when_idle(self) -> None:
        # one request, instance idle: eager at spare CPU, waits out the delay when saturated
        assert POLICY.plan([1], 1, 0, 0, idle=True, saturated=False) == (1, 0)
        assert POLICY.plan([1], 1, 0, 0, idle=True, saturated=True) == (0, 2 * MS)
        assert POLICY.plan([1], 1, 0, 2 * MS, idle=True, saturated=True) == (1, 0)
        # a preferred size still goes at once
        assert POLICY.plan([1] * 4, 4, 0, 0, idle=True, saturated=True) == (4, 0)

    def test_no_batching_model_takes_one_request(self) -> None:
        assert BatchPolicy(0).plan([1, 1, 1], 3, 0, 0) == (1, 0)


class _DoublingRunner:
    """Stands in for ModelRuntime: output = 2 * input; records batch sizes and threads."""

    output_names = ("y",)

    def __init__(self, delay_s: float = 0.0, fail: bool = False) -> None:
        self.delay_s = delay_s
        self.fail = fail
        self.batches: list[int] = []
        self.threads: set[int] = set()
        self.concurrent = 0
        self.max_concurrent = 0
        self._lock = threading.Lock()

    def run(self, instance: int, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            self.concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self.concurrent)
            self.batches.append(len(feeds["x"]))
            self.threads.add(threading.get_ident())
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            if self.fail:
                raise RuntimeError("boom")
            return [feeds["x"] * 2]
        finally:
            with self._lock:
                self.concurrent -= 1


async def _with_batcher(
    runner: _DoublingRunner, policy: BatchPolicy, instances: int, body, inline: bool = False
):
    stats = VersionStats("m", "1")
    batcher = Batcher(runner, policy, stats, instances=instances, name="m:1", inline=inline)
    batcher.start()
    try:
        return await body(batcher), stats
    finally:
        await batcher.stop()


def test_concurrent_requests_are_batched_and_split_back() -> None:
    runner = _DoublingRunner(delay_s=0.005)
    rows = [1, 2, 3, 1, 4, 2, 1, 1, 3, 2] * 4

    async def body(batcher: Batcher):
        inputs = [np.full((n, 2), i, np.float32) for i, n in enumerate(rows)]
        futures = [batcher.submit({"x": x}, len(x)) for x in inputs]
        results = await asyncio.gather(*futures)
        for x, result in zip(inputs, results, strict=True):
            np.testing.assert_array_equal(result["y"], x * 2)  # each caller gets its rows

    _, stats = asyncio.run(_with_batcher(runner, POLICY, 1, body))
    assert len(runner.batches) < len(rows)
    assert max(runner.batches) > 1 and max(runner.batches) <= 8
    assert sum(runner.batches) == sum(rows)
    assert stats.execution_count == len(runner.batches)
    assert stats.inference_count == sum(rows) and stats.queue_count == len(rows)
    assert sum(b.count for b in stats.batches.values()) == len(runner.batches)
    assert stats.compute_infer_ns > 0 and stats.queue_ns > 0


def test_instances_run_batches_in_parallel_threads() -> None:
    runner = _DoublingRunner(delay_s=0.05)
    policy = BatchPolicy(max_batch_size=1)

    async def body(batcher: Batcher):
        futures = [batcher.submit({"x": np.ones((1, 2), np.float32)}, 1) for _ in range(4)]
        started = time.perf_counter()
        await asyncio.gather(*futures)
        return time.perf_counter() - started

    elapsed, _ = asyncio.run(_with_batcher(runner, policy, 2, body))
    assert runner.max_concurrent == 2 and len(runner.threads) == 2
    assert elapsed < 4 * 0.05  # two at a time, not one after the other


def test_delay_collects_requests_while_another_batch_runs() -> None:
    """With two instances, a free one waits max_queue_delay to fill its batch."""
    runner = _DoublingRunner(delay_s=0.15)
    policy = BatchPolicy(max_batch_size=64, max_queue_delay_ns=100 * MS)

    async def body(batcher: Batcher):
        first = batcher.submit({"x": np.ones((1, 2), np.float32)}, 1)
        await until(lambda: runner.batches == [1], 5, "the first batch running on instance A")
        later = []
        for _ in range(5):
            later.append(batcher.submit({"x": np.ones((1, 2), np.float32)}, 1))
            await asyncio.sleep(0.001)  # pacing, not waiting: arrivals 1 ms apart
        await asyncio.gather(first, *later)

    asyncio.run(_with_batcher(runner, policy, 2, body))
    assert runner.batches == [1, 5]


def test_model_errors_reach_every_caller_of_the_batch() -> None:
    runner = _DoublingRunner(fail=True)

    async def body(batcher: Batcher):
        futures = [batcher.submit({"x": np.ones((1, 2), np.float32)}, 1) for _ in range(3)]
        return await asyncio.gather(*futures, return_exceptions=True)

    results, stats = asyncio.run(_with_batcher(runner, POLICY, 1, body))
    assert all(isinstance(r, ServerError) and "boom" in str(r) for r in results)
    assert stats.execution_count == 0


def test_stop_fails_queued_requests_and_refuses_new_ones() -> None:
    runner = _DoublingRunner(delay_s=0.05)

    async def main() -> None:
        batcher = Batcher(runner, BatchPolicy(1), VersionStats("m", "1"), name="m:1", inline=False)
        batcher.start()
        futures = [batcher.submit({"x": np.ones((1, 2), np.float32)}, 1) for _ in range(3)]
        await until(lambda: runner.batches == [1], 5, "the first request running")
        assert batcher.queue_depth == 2  # the other two are queued behind it
        await batcher.stop()
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        assert sum(isinstance(o, Unavailable) for o in outcomes) == 2
        with pytest.raises(Unavailable):
            batcher.submit({"x": np.ones((1, 2), np.float32)}, 1)

    asyncio.run(main())


class _FlakyPolicy:
    """A policy whose first decision blows up (stands in for a batching bug)."""

    max_batch_size = 8
    preferred = ()
    max_queue_size = 0
    queue_timeout_ns = 0

    def __init__(self) -> None:
        self.calls = 0

    def plan(self, *args: object) -> tuple[int, int]:
        self.calls += 1
        if self.calls == 1:
            raise ValueError("bug")
        return POLICY.plan(*args)


def test_a_batching_bug_fails_requests_instead_of_hanging_them() -> None:
    runner = _DoublingRunner()

    async def body(batcher: Batcher):
        first = batcher.submit({"x": np.ones((1, 2), np.float32)}, 1)
        with pytest.raises(ServerError, match="internal batching error"):
            await asyncio.wait_for(first, 5)
        second = batcher.submit({"x": np.ones((1, 2), np.float32)}, 1)
        return await asyncio.wait_for(second, 5)

    result, _ = asyncio.run(_with_batcher(runner, _FlakyPolicy(), 1, body))
    np.testing.assert_array_equal(result["y"], np.full((1, 2), 2, np.float32))


def test_queue_policy_bounds_the_queue_and_rejects_stale_requests() -> None:
    runner = _DoublingRunner(delay_s=0.1)
    policy = BatchPolicy(max_batch_size=1, max_queue_size=2, queue_timeout_ns=20 * MS)

    async def body(batcher: Batcher):
        x = np.ones((1, 2), np.float32)
        running = batcher.submit({"x": x}, 1)
        await until(lambda: runner.batches == [1], 5, "the first request executing")
        # the next two wait in the queue
        queued = [batcher.submit({"x": x}, 1) for _ in range(2)]
        with pytest.raises(Unavailable, match="maximum queue size"):
            batcher.submit({"x": x}, 1)
        outcomes = await asyncio.gather(running, *queued, return_exceptions=True)
        return outcomes

    outcomes, _ = asyncio.run(_with_batcher(runner, policy, 1, body))
    np.testing.assert_array_equal(outcomes[0]["y"], np.full((1, 2), 2, np.float32))
    # they waited ~90 ms behind the running batch, past the 20 ms queue timeout
    assert all(isinstance(o, Unavailable) and "timed out" in str(o) for o in outcomes[1:])
    assert runner.batches == [1]


def test_inline_batches_run_on_the_loop_thread_and_still_batch() -> None:
    runner = _DoublingRunner(delay_s=0.002)
    rows = [1, 2, 1, 3, 1, 1, 2, 1] * 3

    async def body(batcher: Batcher):
        inputs = [np.full((n, 2), i, np.float32) for i, n in enumerate(rows)]
        results = await asyncio.gather(*(batcher.submit({"x": x}, len(x)) for x in inputs))
        for x, result in zip(inputs, results, strict=True):
            np.testing.assert_array_equal(result["y"], x * 2)
        return threading.get_ident()

    loop_thread, stats = asyncio.run(_with_batcher(runner, POLICY, 1, body, inline=True))
    assert runner.threads == {loop_thread}  # no worker thread involved
    assert len(runner.batches) < len(rows) and sum(runner.batches) == sum(rows)
    assert stats.execution_count == len(runner.batches)


def test_inline_model_errors_reach_every_caller() -> None:
    async def body(batcher: Batcher):
        futures = [batcher.submit({"x": np.ones((1, 2), np.float32)}, 1) for _ in range(3)]
        return await asyncio.gather(*futures, return_exceptions=True)

    results, _ = asyncio.run(_with_batcher(_DoublingRunner(fail=True), POLICY, 1, body, True))
    assert all(isinstance(r, ServerError) and "boom" in str(r) for r in results)


def test_inline_is_chosen_only_for_one_instance_on_one_cpu(monkeypatch) -> None:
    import reference_server.batcher as batcher_module

    stats, runner = VersionStats("m", "1"), _DoublingRunner()
    monkeypatch.setattr(batcher_module.os, "sched_getaffinity", lambda pid: {0})
    assert Batcher(runner, POLICY, stats, instances=1).inline
    assert not Batcher(runner, POLICY, stats, instances=2).inline
    monkeypatch.setattr(batcher_module.os, "sched_getaffinity", lambda pid: {0, 1})
    assert not Batcher(runner, POLICY, stats, instances=1).inline
    assert Batcher(runner, POLICY, stats, instances=1, inline=True).inline


def _batches_after_a_first_batch(cpu_clock_ns) -> list[int]:
    """One 30 ms batch (so the 20 ms load window closes), then 3 requests 1 ms apart."""
    runner = _DoublingRunner(delay_s=0.03)
    policy = BatchPolicy(max_batch_size=8, max_queue_delay_ns=60 * MS)

    async def main() -> None:
        batcher = Batcher(
            runner, policy, VersionStats("m", "1"), inline=False, cpu_clock_ns=cpu_clock_ns
        )
        batcher.start()
        try:
            x = np.ones((1, 2), np.float32)
            await batcher.submit({"x": x}, 1)
            later = []
            for _ in range(3):
                later.append(batcher.submit({"x": x}, 1))
                await asyncio.sleep(0.001)  # pacing, not waiting: arrivals 1 ms apart
            await asyncio.gather(*later)
        finally:
            await batcher.stop()

    asyncio.run(main())
    return runner.batches


def test_saturated_process_batches_instead_of_dispatching_eagerly() -> None:
    # a CPU clock running 4x faster than the wall clock: every CPU busy (saturated)
    assert _batches_after_a_first_batch(lambda: 4 * time.monotonic_ns()) == [1, 3]


def test_process_with_spare_cpu_dispatches_eagerly() -> None:
    batches = _batches_after_a_first_batch(lambda: 0)
    assert batches[:2] == [1, 1] and sum(batches) == 4

"""The batcher under overload: cancelled requests never run; a busy loop does not idle the
instance (its worker thread takes the next full batch itself)."""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from reference_server.batcher import Batcher, BatchPolicy
from reference_server.stats import VersionStats

WAIT_S = 10.0  # generous bound for each hand-off between threads


class _GatedRunner:
    """Each run waits for its gate; records the rows of every batch it ran."""

    output_names = ("y",)

    def __init__(self) -> None:
        self.gates: list[threading.Event] = [threading.Event() for _ in range(8)]
        self.started: list[threading.Event] = [threading.Event() for _ in range(8)]
        self.batches: list[list[float]] = []

    def run(self, instance: int, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        n = len(self.batches)
        self.batches.append([float(v) for v in feeds["x"][:, 0]])
        self.started[n].set()
        assert self.gates[n].wait(WAIT_S), "gate never opened"
        return [feeds["x"] * 2]


def _batcher(runner: _GatedRunner, policy: BatchPolicy) -> Batcher:
    return Batcher(runner, policy, VersionStats("m", "1"), inline=False)


def _row(value: float) -> dict[str, np.ndarray]:
    return {"x": np.full((1, 1), value, np.float32)}


async def _started(runner: _GatedRunner, n: int) -> None:
    assert await asyncio.to_thread(runner.started[n].wait, WAIT_S), f"batch {n} never started"


def test_a_cancelled_queued_request_never_runs_and_frees_its_place() -> None:
    async def main() -> tuple[list[list[float]], bool, float]:
        runner = _GatedRunner()
        batcher = _batcher(runner, BatchPolicy(max_batch_size=4, max_queue_size=2))
        batcher.start()
        try:
            first = batcher.submit(_row(1), 1)
            await _started(runner, 0)
            left = batcher.submit(_row(2), 1)
            stays = batcher.submit(_row(3), 1)
            full_before = batcher.full()
            left.cancel()  # what awaiting it in a cancelled task does
            batcher.withdraw()
            room = not batcher.full()  # the cancelled request no longer holds a place
            runner.gates[0].set()
            await first
            await _started(runner, 1)
            runner.gates[1].set()
            out = await stays
            return runner.batches, full_before and room, float(out["y"][0, 0])
        finally:
            for gate in runner.gates:
                gate.set()
            await batcher.stop()

    batches, room, answer = asyncio.run(main())
    assert batches == [[1.0], [3.0]]  # the 2.0 row never reached the model
    assert room and answer == 6.0


def test_a_busy_loop_does_not_idle_the_instance() -> None:
    """While the event loop is blocked, the worker finishes batch 0 and starts batch 1 (a
    full batch was waiting) on its own; handing back to the loop would stall until the
    loop is free."""

    async def main() -> tuple[bool, list[list[float]], list[float]]:
        runner = _GatedRunner()
        batcher = _batcher(runner, BatchPolicy(max_batch_size=2, max_queue_delay_ns=10**9))
        batcher.start()
        try:
            futures = [batcher.submit(_row(1), 1)]
            await _started(runner, 0)
            futures += [batcher.submit(_row(v), 1) for v in (2, 3)]  # one full batch waits
            runner.gates[0].set()
            # Block the loop thread (no await) until the worker has started batch 1.
            chained = runner.started[1].wait(WAIT_S)
            runner.gates[1].set()
            answers = [float((await f)["y"][0, 0]) for f in futures]
            return chained, runner.batches, answers
        finally:
            for gate in runner.gates:
                gate.set()
            await batcher.stop()

    chained, batches, answers = asyncio.run(main())
    assert chained
    assert batches == [[1.0], [2.0, 3.0]]
    assert answers == [2.0, 4.0, 6.0]

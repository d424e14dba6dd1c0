"""Triton's dynamic-batching decision as a pure function: dispatch now, or wait how long.

Kept apart from the batcher (queues, threads, futures) so that the policy is read and tested
alone, with a fake clock: `BatchPolicy.plan(rows, total_rows, oldest_ns, now_ns, idle,
saturated)`. The queue policy's bounds (`max_queue_size`, `queue_timeout_ns`) live here too,
as configured; the batcher enforces them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["BatchPolicy"]


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """Triton's dynamic_batching settings; max_batch_size 0 means no batching at all."""

    max_batch_size: int
    max_queue_delay_ns: int = 0
    preferred: tuple[int, ...] = ()
    eager_when_idle: bool = True
    max_queue_size: int = 0  # Triton's default_queue_policy: 0 = unbounded
    queue_timeout_ns: int = 0  # 0 = wait forever; else reject requests queued longer

    def plan(
        self,
        rows: Sequence[int],
        total_rows: int,
        oldest_ns: int,
        now_ns: int,
        idle: bool = False,
        saturated: bool = False,
    ) -> tuple[int, int]:
        """(requests to dispatch now, 0) or (0, ns to wait before deciding again).

        `rows` are the pending requests' row counts in arrival order, `total_rows` their sum.
        `idle`: no batch of this model is running. With `eager_when_idle` the queue is then
        dispatched at once: waiting helps only while another batch runs (requests pile up
        anyway while an instance is busy), and event-loop timers have a 1 ms resolution, so
        a 100-500 us delay would cost an idle server a full millisecond per request.
        `saturated`: the process has no CPU to spare; an idle instance then waits too.
        Within the delay a batch grows to `largest_preferred`; once the oldest request has
        waited `max_queue_delay_ns`, to `max_batch_size` (Triton's dynamic batcher does both).
        """
        if not rows:
            return 0, -1
        if self.max_batch_size <= 0:
            return 1, 0
        if now_ns - oldest_ns >= self.max_queue_delay_ns:  # waited enough: the biggest batch
            return _prefix(rows, self.max_batch_size), 0
        largest = self.largest_preferred
        if total_rows >= largest or (idle and self.eager_when_idle and not saturated):
            return _prefix(rows, largest), 0
        reachable = [p for p in self.preferred if p <= total_rows]
        if reachable:
            return _prefix(rows, max(reachable)), 0
        return 0, self.max_queue_delay_ns - (now_ns - oldest_ns)

    @property
    def largest_preferred(self) -> int:
        """How far a batch grows before the queue delay: the largest preferred size (Triton's
        rule: preferred sizes cap the batch), else `max_batch_size`."""
        return (
            min(max(self.preferred), self.max_batch_size) if self.preferred else self.max_batch_size
        )


def _prefix(rows: Sequence[int], limit: int) -> int:
    """How many leading requests fit in `limit` rows (always at least one)."""
    total = 0
    for i, n in enumerate(rows):
        total += n
        if total > limit:
            return max(i, 1)
    return len(rows)

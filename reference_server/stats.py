"""Per model-version inference statistics, in the shape of Triton's statistics extension.

Why Triton's exact field names: perf_analyzer and model_analyzer read
`/v2/models/{m}/stats` to split server time into queue / compute_input / compute_infer /
compute_output, and the harness reads the same numbers from Triton or from this server.
As in Triton, queue and compute durations are counted per *request* (each request of a
batch is charged the batch's compute time), `batch_stats` per batch size counts executions,
`inference_count` counts rows (samples) and `execution_count` counts batches. Failures are
also counted by Triton's reason (REJECTED by the queue policy, CANCELED because the client
left, BACKEND, OTHER) for `nv_inference_request_failure{reason}`.

This is also the single source of truth for the Prometheus counters (metrics.py reads it
at scrape time), so the hot path pays a few integer additions per batch and per request and
nothing more. Updated only on the event-loop thread.
"""

from __future__ import annotations

import time

from reference_server.errors import FAILURE_REASONS

DURATION_FIELDS = (
    "success",
    "fail",
    "queue",
    "compute_input",
    "compute_infer",
    "compute_output",
    "cache_hit",
    "cache_miss",
)


class BatchSizeStats:
    """Executions of one batch size: count and cumulative compute durations (ns)."""

    __slots__ = ("count", "infer_ns", "input_ns", "output_ns")

    def __init__(self) -> None:
        self.count = 0
        self.input_ns = 0
        self.infer_ns = 0
        self.output_ns = 0


class VersionStats:
    """Cumulative statistics of one model version (mutable counters, loop thread only)."""

    __slots__ = (
        "batches",
        "compute_infer_ns",
        "compute_input_ns",
        "compute_output_ns",
        "execution_count",
        "fail_count",
        "fail_ns",
        "failures_by_reason",
        "inference_count",
        "last_inference_ms",
        "model",
        "queue_count",
        "queue_ns",
        "success_count",
        "success_ns",
        "version",
    )

    def __init__(self, model: str, version: str) -> None:
        self.model = model
        self.version = version
        self.success_count = self.success_ns = 0
        self.fail_count = self.fail_ns = 0
        self.failures_by_reason = dict.fromkeys(FAILURE_REASONS, 0)
        self.queue_count = self.queue_ns = 0
        self.compute_input_ns = self.compute_infer_ns = self.compute_output_ns = 0
        self.inference_count = self.execution_count = 0
        self.last_inference_ms = 0
        self.batches: dict[int, BatchSizeStats] = {}

    def record_batch(
        self, rows: int, requests: int, queue_ns: int, input_ns: int, infer_ns: int, output_ns: int
    ) -> None:
        """One execution of `rows` samples from `requests` requests (queue_ns summed over them)."""
        self.execution_count += 1
        self.inference_count += rows
        self.queue_count += requests
        self.queue_ns += queue_ns
        self.compute_input_ns += input_ns * requests
        self.compute_infer_ns += infer_ns * requests
        self.compute_output_ns += output_ns * requests
        self.last_inference_ms = int(time.time() * 1000)
        batch = self.batches.get(rows)
        if batch is None:
            batch = self.batches[rows] = BatchSizeStats()
        batch.count += 1
        batch.input_ns += input_ns
        batch.infer_ns += infer_ns
        batch.output_ns += output_ns

    def record_success(self, duration_ns: int) -> None:
        self.success_count += 1
        self.success_ns += duration_ns

    def record_failure(self, duration_ns: int, reason: str = "OTHER") -> None:
        """A failed request; `reason` is one of Triton's FAILURE_REASONS."""
        self.fail_count += 1
        self.fail_ns += duration_ns
        self.failures_by_reason[reason] += 1

    @property
    def compute_count(self) -> int:
        """Requests that reached the model (each is charged its batch's compute time)."""
        return self.queue_count

    def to_dict(self) -> dict:
        """Triton's ModelStatistics JSON object for this version."""
        n = self.compute_count
        durations = {
            "success": (self.success_count, self.success_ns),
            "fail": (self.fail_count, self.fail_ns),
            "queue": (self.queue_count, self.queue_ns),
            "compute_input": (n, self.compute_input_ns),
            "compute_infer": (n, self.compute_infer_ns),
            "compute_output": (n, self.compute_output_ns),
            "cache_hit": (0, 0),
            "cache_miss": (0, 0),
        }
        return {
            "name": self.model,
            "version": self.version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {k: {"count": c, "ns": ns} for k, (c, ns) in durations.items()},
            "batch_stats": [
                {
                    "batch_size": size,
                    "compute_input": {"count": b.count, "ns": b.input_ns},
                    "compute_infer": {"count": b.count, "ns": b.infer_ns},
                    "compute_output": {"count": b.count, "ns": b.output_ns},
                }
                for size, b in sorted(self.batches.items())
            ],
            "memory_usage": [],
        }


class StatsRegistry:
    """VersionStats for every loaded model version, in repository order."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], VersionStats] = {}

    def add(self, model: str, version: str) -> VersionStats:
        stats = self._by_key.get((model, version))
        if stats is None:
            stats = self._by_key[(model, version)] = VersionStats(model, version)
        return stats

    def get(self, model: str, version: str) -> VersionStats | None:
        return self._by_key.get((model, version))

    def all(self) -> list[VersionStats]:
        return list(self._by_key.values())

    def select(self, model: str | None = None, version: str | None = None) -> list[VersionStats]:
        return [
            s
            for s in self._by_key.values()
            if (model is None or s.model == model) and (version is None or s.version == version)
        ]

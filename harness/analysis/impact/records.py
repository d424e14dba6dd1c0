"""The records of a game day's impact analysis: what goes in, what comes out.

Why a Protocol for the input: the per-second statistics already exist one floor up
(`harness.results.windows.SecondStats`); this package must not import it (the analysis is
pure and sits beside `results`), so it states the four attributes it reads and anything that
has them -- that record, or a hand-made one in a test -- fits. Latencies are microseconds,
as in every `SparseHist`; times are seconds on the load's clock (window `s` holds the
requests intended in [s, s + 1)).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from harness.latency.sparse import SparseHist

__all__ = [
    "FaultTimeline",
    "Impact",
    "PhaseStats",
    "RecoveryTolerance",
    "SecondLike",
    "Slo",
]


class SecondLike(Protocol):
    """One second of the load: every request, the failed ones, the successes' latencies, and
    whether the load generator was healthy then (an unhealthy second's latency holds the
    generator's own lag, so it is no evidence about the target either way)."""

    @property
    def second(self) -> int: ...
    @property
    def requests(self) -> int: ...
    @property
    def failures(self) -> int: ...
    @property
    def hist(self) -> SparseHist: ...
    @property
    def healthy(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Slo:
    """The scenario's SLO: a p99 latency bound and the error rate allowed."""

    p99_ms: float
    error_rate: float
    quantile: float = 0.99

    def __post_init__(self) -> None:
        if self.p99_ms <= 0 or not 0 <= self.error_rate <= 1 or not 0 < self.quantile < 1:
            raise ValueError("Slo: p99_ms > 0, 0 <= error_rate <= 1, 0 < quantile < 1")


@dataclass(frozen=True, slots=True)
class FaultTimeline:
    """When the fault went on and when it was taken off (the rollback), load-clock seconds.

    `baseline_from_s` is the first second of the baseline: the baseline is every whole
    window from there up to the fault's start (s + 1 <= fault_start_s).
    """

    fault_start_s: float
    fault_end_s: float
    baseline_from_s: int = 0

    def __post_init__(self) -> None:
        if self.fault_end_s < self.fault_start_s:
            raise ValueError("FaultTimeline: the fault must end at or after its start")


@dataclass(frozen=True, slots=True)
class RecoveryTolerance:
    """When a window counts as "back within tolerance of the baseline".

    Its error rate is at most the baseline's plus `error_rate_slack`, and its p99 at most
    `p99_factor` x the baseline p99 plus `p99_slack_ms` (one second holds few requests, so
    its p99 is close to its maximum: the slack keeps ordinary noise from reading as an
    unrecovered system). `k` consecutive such windows make a recovery.
    """

    k: int = 3
    p99_factor: float = 2.0
    p99_slack_ms: float = 5.0
    error_rate_slack: float = 0.01

    def __post_init__(self) -> None:
        if self.k < 1 or self.p99_factor < 1 or self.p99_slack_ms < 0:
            raise ValueError("RecoveryTolerance: k >= 1, p99_factor >= 1, p99_slack_ms >= 0")


@dataclass(frozen=True, slots=True)
class PhaseStats:
    """Requests, failures and latency of one phase (before / during / after the fault)."""

    seconds: int
    requests: int
    failures: int
    error_rate: float | None
    p99_ms: float | None
    mean_ms: float | None


@dataclass(frozen=True, slots=True)
class Impact:
    """What the fault cost, measured on the load's own windows (see `analyse_impact`)."""

    time_to_detect_s: float | None
    time_to_recover_s: float | None
    recovered_at_s: int | None
    failed_requests: int
    slowed_requests: int
    excess_latency_s: float | None
    impact_seconds: tuple[int, int]
    before: PhaseStats
    during: PhaseStats
    after: PhaseStats
    error_budget: dict[str, float | int | None]
    latency_budget: dict[str, float | int | None]
    notes: tuple[str, ...] = field(default=())

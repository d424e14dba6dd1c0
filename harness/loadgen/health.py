"""Load-generator self-health: is this second's measurement trustworthy?

Why: a saturated generator reports its own queueing as server latency (one Locust process
measured here reports 25 ms against a true 0.5 ms when CPU-bound), and an open-loop generator
that falls behind its schedule, or hits its cap on outstanding requests, no longer offers the
load it claims. So every worker summarises each second (CPU, schedule lag, requests sent,
dropped and late) and a second that breaks a threshold is flagged unhealthy; its windows are
kept but excluded from verdicts. Pure: lists of numbers in, a frozen record out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["HealthThresholds", "SecondHealth", "evaluate_second", "quantile"]


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    max_cpu_percent: float = 90.0
    max_lag_p99_ms: float = 10.0
    late_ms: float = 10.0  # a request sent more than this after its intended start is "late"
    # The lag rule also needs this many requests over max_lag_p99_ms: at low rates p99 is one
    # of the second's few largest lags, and one stall of the host (a VM descheduled for 25 ms
    # delays two or three requests at 100/s) must not flag the whole second. From 300
    # requests a second up, p99 over the limit already means 3 or more over it.
    min_lagging: int = 3

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class SecondHealth:
    """One worker's view of one second of the run."""

    second: int
    worker: int
    cpu_percent: float
    sent: int
    dropped: int
    late: int
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    outstanding_max: int
    healthy: bool
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        return data


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of already sorted values (0.0 for an empty list)."""
    if len(sorted_values) == 0:
        return 0.0
    rank = max(1, math.ceil(q * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def evaluate_second(
    second: int,
    worker: int,
    lags_s: Sequence[float],
    cpu_percent: float,
    dropped: int,
    outstanding_max: int,
    thresholds: HealthThresholds,
) -> SecondHealth:
    """Summarise a second's schedule lags (seconds) and judge it against `thresholds`."""
    # numpy: thousands of lags a second; a Python sort here stalls the generator's loop
    lags_ms = np.sort(np.asarray(lags_s, dtype=np.float64)) * 1000.0
    p99 = quantile(lags_ms, 0.99)
    late = int(np.count_nonzero(lags_ms > thresholds.late_ms))
    lagging = int(np.count_nonzero(lags_ms > thresholds.max_lag_p99_ms))
    # reasons quote the values as the record rounds them (whole percents read "cpu 90% > 90%")
    reasons = []
    if cpu_percent > thresholds.max_cpu_percent:
        reasons.append(f"cpu {cpu_percent:.1f}% > {thresholds.max_cpu_percent:g}%")
    if p99 > thresholds.max_lag_p99_ms and lagging >= thresholds.min_lagging:
        reasons.append(
            f"schedule lag p99 {p99:.3f} ms > {thresholds.max_lag_p99_ms:g} ms "
            f"({lagging} requests over it)"
        )
    if dropped:
        reasons.append(f"{dropped} requests dropped at max_outstanding")
    return SecondHealth(
        second=second,
        worker=worker,
        cpu_percent=round(cpu_percent, 1),
        sent=len(lags_ms),
        dropped=dropped,
        late=late,
        lag_p50_ms=round(quantile(lags_ms, 0.5), 3),
        lag_p99_ms=round(p99, 3),
        lag_max_ms=round(float(lags_ms[-1]), 3) if len(lags_ms) else 0.0,
        outstanding_max=outstanding_max,
        healthy=not reasons,
        reasons=tuple(reasons),
    )

"""Capacity first: will the replicas left after a fault carry the load within the SLO?

Why before the fault: a game day that takes one of N replicas away from a stack whose N - 1
cannot carry the load does not test resilience, it only overloads the survivors; the answer
is known beforehand. The prediction treats each replica as an M/M/c queue (c requests in
flight per replica) served in the baseline's mean latency S (an upper bound of the service
time: it also holds the network and any queueing already there) and takes the p99 as the
baseline p99 plus Erlang C's p99 waiting time at the new per-replica rate lambda / (N - 1)
(`harness.analysis.capacity.queueing`, as the capacity planner does). Conservative on both
counts. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.analysis.capacity.queueing import mmc_wait_quantile
from harness.analysis.impact.records import PhaseStats, Slo

__all__ = ["CapacityPrediction", "observed_carried", "predict_survivors"]


@dataclass(frozen=True, slots=True)
class CapacityPrediction:
    """Whether `replicas - lost` replicas carry `rate_rps` within the SLO, and why."""

    applicable: bool
    carries: bool | None
    replicas: int
    lost: int
    rate_rps: float
    per_replica_rps: float | None
    utilisation: float | None
    predicted_p99_ms: float | None
    slo_p99_ms: float
    reason: str


def predict_survivors(
    baseline: PhaseStats,
    replicas: int,
    slo: Slo,
    lost: int = 1,
    concurrency_per_replica: int = 1,
) -> CapacityPrediction:
    """Predict from the baseline whether `replicas - lost` replicas carry its load."""
    rate = baseline.requests / baseline.seconds if baseline.seconds else 0.0
    common = {"replicas": replicas, "lost": lost, "rate_rps": rate, "slo_p99_ms": slo.p99_ms}
    if lost < 1 or replicas - lost < 1:
        return _not_applicable(f"{replicas} replica(s), {lost} lost: no survivors", common)
    if baseline.mean_ms is None or baseline.p99_ms is None or rate <= 0:
        return _not_applicable("no baseline latency to predict from", common)
    service_s = baseline.mean_ms / 1000
    per_replica = rate / (replicas - lost)
    c = concurrency_per_replica
    utilisation = per_replica * service_s / c
    wait_ms = mmc_wait_quantile(c, service_s, per_replica, slo.quantile) * 1000
    p99 = baseline.p99_ms + wait_ms
    carries = utilisation < 1 and p99 <= slo.p99_ms
    reason = (
        f"{rate:.1f} req/s over {replicas - lost} replica(s) = {per_replica:.1f} req/s each; "
        f"x mean {baseline.mean_ms:.2f} ms / {c} in flight = utilisation {utilisation:.3f}; "
        f"p99 {baseline.p99_ms:.2f} + wait {wait_ms:.2f} = {p99:.2f} ms "
        f"{'<=' if carries else 'exceeds'} SLO {slo.p99_ms:g} ms"
    )
    return CapacityPrediction(
        True, carries, per_replica_rps=per_replica, utilisation=utilisation,
        predicted_p99_ms=p99, reason=reason, **common,
    )  # fmt: skip


def _not_applicable(reason: str, common: dict) -> CapacityPrediction:
    return CapacityPrediction(
        False, None, per_replica_rps=None, utilisation=None, predicted_p99_ms=None,
        reason=reason, **common,
    )  # fmt: skip


def observed_carried(during: PhaseStats, slo: Slo) -> bool | None:
    """Did the stack carry the load within the SLO while the fault was on? None: no data."""
    if during.requests == 0 or during.error_rate is None:
        return None
    p99_ok = during.p99_ms is not None and during.p99_ms <= slo.p99_ms
    return p99_ok and during.error_rate <= slo.error_rate

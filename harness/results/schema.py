"""The shape of summary.json, declared once (readers get types instead of guessing keys).

`summarize` produces a `Summary`; `load_run(dir).summary` is one (or None before a run has
been summarised). Keys marked NotRequired appear only when they apply.
"""

# No `from __future__ import annotations` here: TypedDict must see NotRequired at runtime.
from typing import Any, NotRequired, TypedDict

__all__ = [
    "EndpointSummary",
    "GoodputStage",
    "GoodputSummary",
    "LatencyMs",
    "LoadgenSummary",
    "SloCheckSummary",
    "SloSummary",
    "Summary",
    "ValiditySummary",
]


class LatencyMs(TypedDict):
    """Milliseconds, from merged HDR histograms; None when nothing was measured."""

    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    p999: float | None
    max: float | None
    mean: float | None


class ValiditySummary(TypedDict):
    stable: bool
    reasons: list[str]
    warmup_s: float | None
    warmup_detected: bool
    analysed_from_s: int
    measured_s: int
    excluded_windows: int
    excluded_seconds: list[int]
    stable_from_s: int | None
    stability_note: str | None
    """None when stability was judged; else why not (a trace replay, a ramp never holds)."""
    more_requests_needed_for_p99: int | None
    more_requests_needed_for_p999: int | None


class SloCheckSummary(TypedDict):
    name: str
    threshold: float
    observed: float | None
    passed: bool
    conclusive: bool | None


class SloSummary(TypedDict):
    passed: bool
    checks: list[SloCheckSummary]


class EndpointSummary(TypedDict):
    requests: int
    failures: int
    throughput_rps: float | None
    latency_ms: LatencyMs
    latency_uncorrected_ms: LatencyMs
    accuracy: float | None


class LoadgenSummary(TypedDict):
    """How the load generator itself did (runs of the load engine only)."""

    mode: str
    workers_expected: int
    workers_finished: int
    workers_lost: list[Any]
    sent: int
    dropped: int
    abandoned: int
    rejected: int
    schedule_lag_ms: dict[str, float | None]
    worker_cpu_s: float
    max_cpu_percent: float | None
    unhealthy_seconds: list[int]
    unhealthy_reasons: list[str]
    per_worker: NotRequired[list[dict[str, Any]]]  # worker, host, sent, dropped, cpu, lag
    remote_workers: NotRequired[list[dict[str, Any]]]  # host, clock_skew_ms, rtt_ms, refused
    planned_requests: NotRequired[float]
    planned_rps: NotRequired[float | None]


class GoodputStage(TypedDict):
    """One stage of a staged load: seconds [from_s, to_s) of the run, the healthy ones."""

    from_s: float
    to_s: float
    seconds: int  # healthy seconds of the stage the rates are over
    offered_rps: float | None
    throughput_rps: float | None  # successful answers per second
    goodput_rps: float | None  # successful answers within threshold_ms per second


class GoodputSummary(TypedDict):
    """Answers within the SLO latency per second, beside throughput (harness.results.goodput).

    threshold_ms: the scenario's `slo.p99_ms` (the section is absent without one). A request
    is *good* when it succeeded and its latency (as in `latency_ms`: from the intended start
    in open loop, from the send in closed loop) is at or below threshold_ms, counted from the
    HDR windows: the requests in slots whose highest equivalent value is <= threshold_ms
    (3 significant digits, the same rule as for `p99 <= threshold`: no value above it counts,
    one within 0.1 % below it may be left out). goodput_rps: good requests per measured
    second (the seconds `throughput_rps` is over); good_share: good / successful over those
    seconds. stages: for a staged load, offered, throughput and goodput per stage (goodput vs
    offered load).
    """

    threshold_ms: float
    goodput_rps: float | None
    good_share: float | None
    stages: list[GoodputStage]


class Summary(TypedDict):
    schema_version: int
    run_id: str | None
    scenario: str | None
    kind: str
    status: str
    started_at: str | None
    ended_at: str | None
    duration_s: float
    requests: int
    failures: int
    rejected: int
    offered_rps: float | None
    throughput_rps: float | None
    error_rate: float | None
    latency_ms: LatencyMs
    latency_uncorrected_ms: LatencyMs
    latency_ci_ms: dict[str, list[float | None]]
    confidence: float
    slo: SloSummary
    valid: bool
    validity: ValiditySummary
    endpoints: dict[str, EndpointSummary]
    loadgen: NotRequired[LoadgenSummary]
    goodput: NotRequired[GoodputSummary]  # when the SLO has a p99 threshold

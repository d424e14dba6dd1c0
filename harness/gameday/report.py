"""gameday.json: the game day's record, built from the run directory after the load ended.

Why rebuilt from files: measuring and reporting are split as everywhere in the harness --
the windows (windows.parquet), the fault's moments (events.jsonl) and the journal are the
measurement; this module only reads them (through `load_run`) and asks the pure analysis
(`harness.analysis.impact`) what they mean. Layout (schema_version 1):

    hypothesis      before / during / after: met (true/false/null = not checked)
    impact          time_to_detect_s, time_to_recover_s, failed_requests, slowed_requests,
                    excess_latency_s, before/during/after {p99_ms, error_rate, ...},
                    error_budget, latency_budget (definitions: harness.analysis.impact.analysis)
    capacity_check  predicted (N - lost replicas carry the load?) vs observed (during fault)
    rollback        stack state before vs after: replicas, server faults, proxy toxics; equal
    verdict         result pass/fail, reasons, exit_code
    settings        k, baseline_s, max_fault_s, capacity_gate, recovery_tolerance (k,
                    p99_factor, p99_slack_ms, error_rate_slack) as this game day used them
    stack_logs      where the stack's logs were copied (<run>/stack/), for the post-mortem
    timeline        the fault's moments on the windows' clock; steady windows; the load
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from harness.analysis.impact import (
    CapacityPrediction,
    FaultTimeline,
    Impact,
    RecoveryTolerance,
    Slo,
    analyse_impact,
    observed_carried,
)
from harness.results import Run
from harness.results.windows import decode_windows, per_second

__all__ = [
    "SCHEMA_VERSION",
    "capacity_section",
    "fault_timeline",
    "impact_of",
    "timeline_of",
    "tolerance_dict",
]

SCHEMA_VERSION = 1
TIMELINE_EVENTS = ("method_start", "fault_start", "fault_end", "method_end", "rollback_start",
                   "rollback_end")  # fmt: skip


def timeline_of(run: Run) -> dict[str, float | None]:
    """First occurrence of each fault event (seconds on the windows' clock)."""
    found: dict[str, float | None] = dict.fromkeys(TIMELINE_EVENTS)
    for event in run.events:
        kind = event.get("type")
        if kind in found and found[kind] is None:
            found[kind] = float(event["ts"])
    return found


def fault_timeline(moments: dict[str, float | None], baseline_from: int) -> FaultTimeline | None:
    """Fault on at `fault_start`; off at `fault_end` (else the rollback's start, else the
    method's end). None when no fault was injected."""
    start = moments.get("fault_start")
    if start is None:
        return None
    end = next(
        (moments[k] for k in ("fault_end", "rollback_start", "method_end") if moments.get(k)),
        start,
    )
    return FaultTimeline(start, max(start, end), baseline_from_s=baseline_from)


def impact_of(
    run: Run, timeline: FaultTimeline, slo: Slo, tolerance: RecoveryTolerance
) -> Impact | None:
    seconds = per_second(decode_windows(run.windows))
    if not seconds:
        return None
    return analyse_impact(seconds, timeline, slo, tolerance)


def tolerance_dict(tolerance: RecoveryTolerance) -> dict[str, Any]:
    return asdict(tolerance)


def impact_dict(impact: Impact | None) -> dict[str, Any] | None:
    return None if impact is None else _clean(asdict(impact))


def capacity_section(
    prediction: CapacityPrediction | None, impact: Impact | None, slo: Slo, gate: bool
) -> dict[str, Any]:
    carried = None if impact is None else observed_carried(impact.during, slo)
    predicted = None if prediction is None else prediction.carries
    return {
        "gate": gate,
        "predicted": None if prediction is None else asdict(prediction),
        "observed": {
            "carried": carried,
            "during_p99_ms": None if impact is None else impact.during.p99_ms,
            "during_error_rate": None if impact is None else impact.during.error_rate,
        },
        "agreed": None if predicted is None or carried is None else predicted == carried,
    }


def _clean(value: Any) -> Any:
    """JSON-ready: tuples to lists, non-finite floats to None."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

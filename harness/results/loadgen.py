"""The summary's `loadgen` section: how the load generator itself did during the run.

Why it is reported next to the latency numbers: an open-loop generator that dropped requests
at its `max_outstanding` cap, fell behind its schedule, saturated a CPU or lost a worker did
not offer the load the scenario asked for, and the reader must see that in the same place as
the percentiles. Built from the master's stream (per-second health lines and each worker's
final totals, including an HDR histogram of schedule lag).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.config import Scenario
from harness.latency.hdr import decode_histogram, new_histogram
from harness.loadgen import stream
from harness.loadgen.arrivals import offered_total, run_length_s
from harness.loadgen.spec import RunSpec


def _lag_ms(workers: list[dict[str, Any]]) -> dict[str, float | None]:
    merged = new_histogram()
    for totals in workers:
        blob = totals.get("lag_hdr")
        if blob:
            merged.add(decode_histogram(blob.encode("ascii")))
    if not merged.get_total_count():
        return {"p50": None, "p99": None, "max": None}
    return {
        "p50": merged.get_value_at_percentile(50) / 1000.0,
        "p99": merged.get_value_at_percentile(99) / 1000.0,
        "max": merged.get_max_value() / 1000.0,
    }


def loadgen_section(run_dir: Path, scenario: Scenario) -> dict[str, Any]:
    """The section, from `<run_dir>/stream` (and run_spec.json for the planned load)."""
    stream_dir = run_dir / "stream"
    health, _ = stream.read_lines(stream_dir / stream.HEALTH)
    final = stream.read_json(stream_dir / stream.FINAL) or {}
    workers = list(final.get("workers", []))
    events, _ = stream.read_lines(stream_dir / stream.EVENTS)
    unhealthy = sorted({int(h["second"]) for h in health if not h.get("healthy", True)})
    reasons = sorted({r for h in health for r in h.get("reasons", [])})
    section: dict[str, Any] = {
        "mode": scenario.load.mode,
        "workers_expected": scenario.workers,
        "workers_finished": len(workers),
        "workers_lost": [e.get("worker") for e in events if e.get("type") == "worker_lost"],
        "sent": sum(int(w.get("sent", 0)) for w in workers),
        "dropped": sum(int(w.get("dropped", 0)) for w in workers),
        "abandoned": sum(int(w.get("abandoned", 0)) for w in workers),
        "rejected": sum(int(w.get("rejected", 0)) for w in workers),
        "schedule_lag_ms": _lag_ms(workers),
        "worker_cpu_s": round(sum(float(w.get("cpu_s", 0.0)) for w in workers), 3),
        "max_cpu_percent": max((float(h.get("cpu_percent", 0)) for h in health), default=None),
        "unhealthy_seconds": unhealthy,
        "unhealthy_reasons": reasons[:20],
        **planned_load(run_dir, scenario),
    }
    return section


def planned_load(run_dir: Path, scenario: Scenario) -> dict[str, Any]:
    """Open loop: what the schedule asked for (requests and requests/s over the run)."""
    if scenario.load.mode != "open":
        return {}
    spec_path = run_dir / "run_spec.json"
    trace_path = RunSpec.from_json(spec_path.read_text()).trace_path if spec_path.exists() else None
    try:
        planned = offered_total(scenario, trace_path)
        length = run_length_s(scenario, trace_path)
    except (OSError, ValueError):  # the trace is gone: say nothing rather than guess
        return {}
    return {
        "planned_requests": round(planned, 1),
        "planned_rps": round(planned / length, 3) if length else None,
    }


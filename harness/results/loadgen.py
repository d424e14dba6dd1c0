"""The summary's `loadgen` section: how the load generator itself did during the run.

Why it is reported next to the latency numbers: an open-loop generator that dropped requests
at its `max_outstanding` cap, fell behind its schedule, saturated a CPU or lost a worker did
not offer the load the scenario asked for, and the reader must see that in the same place as
the percentiles. Built from the master's stream (per-second health lines and each worker's
final totals, including an HDR histogram of schedule lag). With workers on several machines,
`per_worker` says the same per worker (one slow machine is visible, not averaged away) and
`remote_workers` keeps each remote worker's join verdict: its clock skew to the master's.
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


def per_worker(health: list[dict[str, Any]], workers: list[dict[str, Any]]) -> list[dict]:
    """Each worker's self-health: CPU, schedule lag, drops, unhealthy seconds (by index)."""
    out = []
    for totals in sorted(workers, key=lambda w: int(w.get("worker", 0))):
        index = int(totals.get("worker", 0))
        mine = [h for h in health if int(h.get("worker", -1)) == index]
        out.append(
            {
                "worker": index,
                "host": totals.get("host"),
                "sent": int(totals.get("sent", 0)),
                "dropped": int(totals.get("dropped", 0)),
                "cpu_s": float(totals.get("cpu_s", 0.0)),
                "max_cpu_percent": max((float(h["cpu_percent"]) for h in mine), default=None),
                "schedule_lag_ms": _lag_ms([totals]),
                "unhealthy_seconds": sorted({int(h["second"]) for h in mine if not h["healthy"]}),
            }
        )
    return out


def _expected_workers(run_dir: Path, scenario: Scenario) -> tuple[int, list[dict[str, Any]]]:
    """Every worker the master waited for (local + remote) and the remote join verdicts."""
    roster = stream.read_json(run_dir / "stream" / stream.ROSTER) or {}
    return int(roster.get("expected", scenario.workers)), list(roster.get("remote", []))


def loadgen_section(run_dir: Path, scenario: Scenario) -> dict[str, Any]:
    """The section, from `<run_dir>/stream` (and run_spec.json for the planned load)."""
    stream_dir = run_dir / "stream"
    health, _ = stream.read_lines(stream_dir / stream.HEALTH)
    final = stream.read_json(stream_dir / stream.FINAL) or {}
    workers = list(final.get("workers", []))
    events, _ = stream.read_lines(stream_dir / stream.EVENTS)
    unhealthy = sorted({int(h["second"]) for h in health if not h.get("healthy", True)})
    reasons = sorted({r for h in health for r in h.get("reasons", [])})
    expected, remote = _expected_workers(run_dir, scenario)
    section: dict[str, Any] = {
        "mode": scenario.load.mode,
        "workers_expected": expected,
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
        "per_worker": per_worker(health, workers),
        "remote_workers": remote,
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

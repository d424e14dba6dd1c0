"""A complete summary.json for stand-in runs (fake engines in sweep and plan tests).

Readers index the summary by its declared keys (`harness.results.schema.Summary`), so a
stand-in must have every key: this builds one with neutral values and the caller's
overrides (nested dicts are merged one level deep). `tests/harness/results/test_schema.py`
holds it to the declaration, like the real summaries.
"""

from __future__ import annotations

from typing import Any

from harness.results.schema import Summary


def _latency(**ms: float | None) -> dict[str, float | None]:
    return {key: ms.get(key) for key in ("p50", "p90", "p95", "p99", "p999", "max", "mean")}


def full_summary(**fields: Any) -> Summary:
    requests = int(fields.get("requests", 0))
    base: dict[str, Any] = {
        "schema_version": 1,
        "run_id": None,
        "scenario": "stand-in",
        "kind": "run",
        "status": "complete",
        "started_at": None,
        "ended_at": None,
        "duration_s": 10.0,
        "requests": requests,
        "failures": 0,
        "rejected": 0,
        "offered_rps": None,
        "throughput_rps": None,
        "error_rate": 0.0 if requests else None,
        "latency_ms": _latency(),
        "latency_uncorrected_ms": _latency(),
        "latency_ci_ms": {},
        "confidence": 0.95,
        "slo": {"passed": True, "checks": []},
        "valid": True,
        "validity": {
            "stable": True, "reasons": [], "warmup_s": None, "warmup_detected": False,
            "analysed_from_s": 0, "measured_s": 10, "excluded_windows": 0,
            "excluded_seconds": [], "stable_from_s": 0, "more_requests_needed_for_p99": None,
            "more_requests_needed_for_p999": None, "stability_note": None,
        },
        "endpoints": {},
    }
    if "loadgen" in fields:  # a run of the load engine: its section, complete
        base["loadgen"] = {
            "mode": "open", "workers_expected": 1, "workers_finished": 1, "workers_lost": [],
            "sent": requests, "dropped": 0, "abandoned": 0, "rejected": 0,
            "schedule_lag_ms": {"p50": 0.1, "p99": 1.0}, "worker_cpu_s": 1.0,
            "max_cpu_percent": 20.0, "unhealthy_seconds": [], "unhealthy_reasons": [],
        }  # fmt: skip
    for key, value in fields.items():
        if key in ("latency_ms", "latency_uncorrected_ms"):
            base[key] = _latency(**value)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base  # type: ignore[return-value]

"""summary.json: the numbers and verdicts of one run, rebuilt from the stored windows.

The summary is derived data: `summarize(load_run(dir))` can be re-run at any time (the
measurement is the windows; this is the report). What the numbers mean:

- `requests` / `failures`: every request of the run (warm-up and unhealthy seconds included).
- Everything else — `throughput_rps` (successful responses per measured second),
  `offered_rps` (requests scheduled per measured second), `latency_ms` (successful requests,
  from the intended start in open loop / the send in closed loop), `latency_uncorrected_ms`
  (from the actual send), `latency_ci_ms`, the SLO checks and the per-endpoint numbers — is
  over the *measured* seconds only: after the warm-up, where the load generator was healthy,
  and (for staged loads) within the last stage. `validity` says which seconds those were.
- `goodput` (when the SLO sets `p99_ms`): successful answers within that latency per
  measured second, and per stage for staged loads (harness.results.goodput).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.config.scenario import Scenario, SloConfig, ValidityConfig
from harness.latency.sparse import SparseHist
from harness.results.goodput import goodput_section
from harness.results.history import append_run
from harness.results.loadgen import loadgen_section
from harness.results.schema import EndpointSummary, LatencyMs, Summary
from harness.results.slo import evaluate_slo
from harness.results.store import SCHEMA_VERSION, Run, atomic_write_json, load_run
from harness.results.validity import Validity, assess, percentile_ci
from harness.results.windows import Window, decode_windows, latency_hist, per_second, select

logger = logging.getLogger(__name__)

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


def _ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1000, 4)


def latency_stats_ms(hist: SparseHist) -> LatencyMs:
    at = {name: _ms(hist.percentile(p)) for name, p in PERCENTILES.items()}
    return LatencyMs(
        p50=at["p50"],
        p90=at["p90"],
        p95=at["p95"],
        p99=at["p99"],
        p999=at["p999"],
        max=_ms(hist.max()),
        mean=_ms(hist.mean()),
    )


def latency_ci_ms(hist: SparseHist, confidence: float) -> dict[str, list[float | None]]:
    out = {}
    for name, p in PERCENTILES.items():
        ci = percentile_ci(hist, p, confidence)
        out[name] = [_ms(ci.low_us), _ms(ci.high_us)]
    return out


def _scenario(run: Run) -> Scenario | None:
    try:
        return Scenario.model_validate(run.meta.get("scenario_config") or {})
    except ValidationError:
        logger.info("%s: scenario_config does not validate; using defaults", run.run_dir)
        return None


def _analysis_start(scenario: Scenario | None) -> int:
    """Staged loads are judged on their last stage (the plateau whose numbers matter)."""
    if scenario is None or not scenario.load.stages:
        return 0
    return int(sum(s.duration for s in scenario.load.stages[:-1]))


def _offered_rps(scenario: Scenario | None, seconds: Sequence[int], requests: int) -> float | None:
    """Open loop: what the schedule asked for (so requests the generator could not send still
    count as offered); otherwise the requests recorded per measured second."""
    if not seconds:
        return None
    if scenario is not None and scenario.load.mode == "open" and not scenario.load.is_trace():
        rates = [scenario.rate_at(s + 0.5) for s in seconds]
        known = [r for r in rates if r is not None]
        if known:
            return round(sum(known) / len(known), 3)
    return round(requests / len(seconds), 3)


def _duration_s(run: dict[str, Any], span_s: int) -> float:
    try:
        start = datetime.fromisoformat(run["started_at"])
        end = datetime.fromisoformat(run["ended_at"])
        return round((end - start).total_seconds(), 3)
    except (KeyError, TypeError, ValueError):
        return float(span_s)


def endpoint_stats(windows: Sequence[Window], seconds: int) -> EndpointSummary:
    requests = sum(w.count for w in windows)
    failures = sum(w.count for w in windows if not w.ok)
    checked = sum(w.checked for w in windows)
    hist = latency_hist(windows)
    return {
        "requests": requests,
        "failures": failures,
        "throughput_rps": round(hist.total / seconds, 3) if seconds else None,
        "latency_ms": latency_stats_ms(hist),
        "latency_uncorrected_ms": latency_stats_ms(latency_hist(windows, corrected=False)),
        "accuracy": round(sum(w.correct for w in windows) / checked, 6) if checked else None,
    }


def _judge(
    run: Run, scenario: Scenario | None, windows: Sequence[Window], config: ValidityConfig
) -> tuple[Validity, list[str]]:
    """Validity of the run and the reasons it is not valid (run status, rejects included)."""
    last = max((w.second for w in windows), default=-1)
    warmup = scenario.load.warmup if scenario else "auto"
    verdict = assess(
        per_second(windows, range(0, last + 1)),
        config,
        warmup_s=None if warmup == "auto" else float(warmup),
        start=_analysis_start(scenario),
        unsteady=scenario.load.unsteady_reason() if scenario else None,
    )
    reasons = list(verdict.reasons)
    status = run.meta.get("status", "incomplete")
    if status != "complete":
        reasons.append(f"run status is {status}")
    rejected = sum(w.rejected for w in select(windows, seconds=verdict.measured_seconds))
    if rejected:
        reasons.append(f"{rejected} latencies outside 1 us..60 s are missing from the percentiles")
    return verdict, reasons


def _measured(
    measured: Sequence[Window], n_seconds: int, slo: SloConfig, confidence: float
) -> dict[str, Any]:
    """The numbers over the measured seconds, and the SLO verdict on them."""
    hist = latency_hist(measured)
    requests = sum(w.count for w in measured)
    error_rate = sum(w.count for w in measured if not w.ok) / requests if requests else None
    throughput = round(hist.total / n_seconds, 3) if n_seconds else None
    latency = latency_stats_ms(hist)
    return {
        "throughput_rps": throughput,
        "error_rate": error_rate,
        "latency_ms": latency,
        "latency_uncorrected_ms": latency_stats_ms(latency_hist(measured, corrected=False)),
        "latency_ci_ms": latency_ci_ms(hist, confidence),
        "confidence": confidence,
        "slo": evaluate_slo(
            slo, latency, error_rate, throughput, hist, confidence, requests=requests
        ).to_dict(),
    }


def summarize(
    run: Run,
    *,
    slo: SloConfig | None = None,
    validity: ValidityConfig | None = None,
    confidence: float = 0.95,
) -> Summary:
    """The summary.json dict of `run`; `slo` / `validity` default to the run's scenario."""
    scenario = _scenario(run)
    slo = slo or (scenario.slo if scenario else SloConfig())
    validity = validity or (scenario.validity if scenario else ValidityConfig())
    windows = decode_windows(run.windows)
    verdict, reasons = _judge(run, scenario, windows, validity)
    measured = select(windows, seconds=verdict.measured_seconds)
    n_seconds = len(verdict.measured_seconds)
    requests = sum(w.count for w in measured)
    summary: Summary = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run.meta.get("run_id"),
        "scenario": run.meta.get("scenario"),
        "kind": run.meta.get("kind", "run"),
        "status": run.meta.get("status", "incomplete"),
        "started_at": run.meta.get("started_at"),
        "ended_at": run.meta.get("ended_at"),
        "duration_s": _duration_s(run.meta, max((w.second for w in windows), default=-1) + 1),
        "requests": sum(w.count for w in windows),
        "failures": sum(w.count for w in windows if not w.ok),
        "rejected": sum(w.rejected for w in windows),
        "offered_rps": _offered_rps(scenario, verdict.measured_seconds, requests),
        **_measured(measured, n_seconds, slo, confidence),
        "valid": not reasons,
        "validity": {**verdict.to_dict(), "reasons": reasons},
        "endpoints": {
            name: endpoint_stats(select(measured, endpoint=name), n_seconds)
            for name in sorted({w.endpoint for w in windows})
        },
    }
    if scenario is not None and (run.run_dir / "stream").is_dir():  # a run of the load engine
        summary["loadgen"] = loadgen_section(run.run_dir, scenario)
    goodput = goodput_section(scenario, slo.p99_ms, windows, measured, n_seconds)
    if goodput is not None:
        summary["goodput"] = goodput
    return summary


def finalize_run(
    run_dir: str | os.PathLike[str], *, history: bool = True, **options: Any
) -> dict[str, Any]:
    """Summarise a run directory, write its summary.json and append it to the history
    (`<run_dir>/../history.duckdb`). `options` go to `summarize`. Returns the summary."""
    path = Path(run_dir)
    summary = summarize(load_run(path), **options)
    atomic_write_json(path / "summary.json", summary)
    if history:
        append_run(path.parent, summary, path)
    return summary

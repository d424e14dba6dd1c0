"""Data shaping for reports and notebooks: a run's files as pandas DataFrames, nothing drawn.

Why one module: the report's figures and the notebooks must show the same numbers, so both
read them from here. Per-second percentiles come from each second's merged HDR histogram
(`harness.latency.SparseHist`, HdrHistogram's own percentile rule), never from averages of
averages: a p99 over time is the p99 of the requests *intended* in that second. Latencies are
milliseconds, times are seconds on the load's clock (window `s` holds the requests intended in
[s, s + 1)). Server-side queue/compute times are means per request over each scrape interval
(Prometheus counters hold sums, so a mean is all they can give).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.latency.sparse import SparseHist
from harness.results.store import Run, read_json
from harness.results.windows import Window, decode_windows, latency_hist, per_second, select

__all__ = [
    "PERCENTILES",
    "cdf_frame",
    "endpoint_hist",
    "hist_percentiles_ms",
    "hpa_frame",
    "latency_frame",
    "read_optional_json",
    "server_breakdown_frame",
    "sweep_frame",
]

PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
"""The per-second percentiles a report draws (column `<name>_ms`)."""

QUEUE_METRIC = "nv_inference_queue_duration_us"
COMPUTE_METRIC = "nv_inference_compute_infer_duration_us"
SUCCESS_METRIC = "nv_inference_request_success"


def hist_percentiles_ms(hist: SparseHist) -> dict[str, float]:
    """p50/p90/p99/p99.9 of one histogram in ms (NaN when it holds no request)."""
    out = {}
    for name, p in PERCENTILES.items():
        value = hist.percentile(p)
        out[f"{name}_ms"] = math.nan if value is None else value / 1000.0
    return out


def latency_frame(run: Run, endpoint: str | None = None) -> pd.DataFrame:
    """One row per second (empty seconds included): `requests` (all outcomes, by intended
    second: the offered load), `failures`, `successes` (= achieved req/s), `healthy` (the
    generator's flag), and p50/p90/p99/p999 in ms of that second's successful requests."""
    windows = decode_windows(run.windows)
    if endpoint is not None:
        windows = select(windows, endpoint=endpoint)
    rows = []
    for stats in per_second(windows):
        rows.append(
            {
                "second": stats.second,
                "requests": stats.requests,
                "failures": stats.failures,
                "successes": stats.hist.total,
                "healthy": stats.healthy,
                **hist_percentiles_ms(stats.hist),
            }
        )
    columns = [
        "second",
        "requests",
        "failures",
        "successes",
        "healthy",
        *(f"{n}_ms" for n in PERCENTILES),
    ]
    frame = pd.DataFrame(rows, columns=columns)
    frame["error_rate"] = frame["failures"] / frame["requests"].where(frame["requests"] > 0)
    return frame


def endpoint_hist(run: Run, endpoint: str, from_s: float | None = None) -> SparseHist:
    """Merged latency of one endpoint's successful requests from second `from_s` on (the
    measured part of the run: after warm-up)."""
    windows: list[Window] = select(decode_windows(run.windows), endpoint=endpoint)
    if from_s is not None:
        windows = [w for w in windows if w.second >= from_s]
    return latency_hist(windows)


def cdf_frame(hist: SparseHist) -> pd.DataFrame:
    """The empirical CDF of a histogram: `latency_ms` (each non-empty slot's value) and
    `fraction` of requests at or below it."""
    counts = hist.counts.astype(np.float64)
    fraction = np.cumsum(counts) / counts.sum() if counts.size else counts
    return pd.DataFrame({"latency_ms": hist.values / 1000.0, "fraction": fraction})


def server_breakdown_frame(run: Run) -> pd.DataFrame | None:
    """Server-side mean queue and compute time per request, per scrape interval, summed over
    replicas/models: (delta queue_us, delta compute_us) / delta successes of Triton's
    counters. None when the run scraped no such counters."""
    table = run.server_metrics
    if table is None or table.num_rows == 0:
        return None
    df = table.to_pandas()
    df["metric"] = df["metric"].str.removesuffix("_total")
    wanted = {QUEUE_METRIC, COMPUTE_METRIC, SUCCESS_METRIC}
    df = df[df["metric"].isin(wanted)]
    if set(df["metric"]) != wanted:
        return None
    df = df.sort_values("ts")
    # a counter per (metric, labels): its increase between consecutive scrapes, resets clipped
    df["delta"] = df.groupby(["metric", "labels"])["value"].diff().clip(lower=0)
    df["second"] = np.floor(df["ts"]).astype(int)
    sums = df.dropna(subset=["delta"]).pivot_table(
        index="second", columns="metric", values="delta", aggfunc="sum"
    )
    done = sums[SUCCESS_METRIC].where(sums[SUCCESS_METRIC] > 0)
    out = pd.DataFrame(
        {
            "second": sums.index.astype(int),
            "queue_ms": (sums[QUEUE_METRIC] / done / 1000.0).to_numpy(),
            "compute_ms": (sums[COMPUTE_METRIC] / done / 1000.0).to_numpy(),
            "requests": sums[SUCCESS_METRIC].to_numpy(),
        }
    )
    return out.reset_index(drop=True)


def sweep_frame(columns: Mapping[str, Iterable[Any]]) -> pd.DataFrame:
    """sweep.parquet's steps (`harness.results.sweeps.SweepData.columns`), sorted by load."""
    return pd.DataFrame({k: list(v) for k, v in columns.items()}).sort_values(["load", "step"])


def hpa_frame(path: Path) -> pd.DataFrame | None:
    """hpa_sim.csv (setting, t_s, traffic_rps, replicas, ready, p99_ms); None if absent."""
    if not path.is_file():
        return None
    return pd.read_csv(path)


def read_optional_json(path: Path) -> dict[str, Any] | None:
    """A versioned JSON object of the run directory (plan.json, gameday.json ...), or None
    when absent; an unknown schema_version raises SchemaVersionError as for any run file."""
    return read_json(path) if path.is_file() else None

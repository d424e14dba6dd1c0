"""Seeded synthetic latency for calibrating and benchmarking the A/B statistics.

Why: a judge is only trustworthy if its false-positive rate is measured under realistic
conditions. Real serving latency is heavy-tailed *and* autocorrelated: a busy second makes
every request in it slower. The generator draws lognormal latency whose log-median moves
with a per-second AR(1) load factor, so consecutive seconds are correlated. In a split run
both arms share the load factor (concurrent arms); two separate runs draw their own.

Pure: a NumPy generator in, arrays, `ArmWindows` or windows.parquet rows out (`window_rows`;
`harness.results.write_synthetic_run` writes them as a run directory). Used by the tests,
the benchmark, and handy in notebooks to see what a given run length can detect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from hdrh.histogram import HdrHistogram

from harness.analysis.ab.histdata import ArmWindows, HdrLayout, arm_from_samples

__all__ = [
    "ArmSpec",
    "Samples",
    "encode_window",
    "load_factor",
    "simulate_arm",
    "simulate_pair",
    "window_rows",
]


@dataclass(frozen=True, slots=True)
class ArmSpec:
    """One arm's traffic. Latency = median * exp(load_t + sigma * Z) * scale (us)."""

    rate: float = 100.0  # requests/s (Poisson)
    median_us: float = 5_000.0
    sigma: float = 0.5
    scale: float = 1.0  # multiplies every latency (a 10 % slower B: 1.1)
    error_rate: float = 0.0
    accuracy: float | None = None  # share of checked answers that are correct
    slow_share: float = 0.0  # share of requests on a slow path (bimodal B, same median)
    slow_factor: float = 3.0


@dataclass(frozen=True, slots=True)
class Samples:
    seconds: np.ndarray
    latency_us: np.ndarray
    failed: np.ndarray
    correct: np.ndarray  # per request, meaningful where checked
    checked: np.ndarray


def load_factor(n: int, sd: float, phi: float, rng: np.random.Generator) -> np.ndarray:
    """Stationary AR(1) series of log load factors with marginal sd `sd`."""
    if n <= 0 or sd <= 0:
        return np.zeros(max(n, 0))
    innov = rng.normal(0.0, sd * math.sqrt(1 - phi * phi), n)
    out = np.empty(n)
    out[0] = rng.normal(0.0, sd)
    for t in range(1, n):
        out[t] = phi * out[t - 1] + innov[t]
    return out


def simulate_arm(
    spec: ArmSpec, load: np.ndarray, rng: np.random.Generator, start: int = 0
) -> Samples:
    """Requests of one arm for len(load) seconds under the given log load factors."""
    per_second = rng.poisson(spec.rate, load.size)
    seconds = np.repeat(np.arange(start, start + load.size), per_second)
    z = rng.standard_normal(seconds.size)
    lat = np.exp(np.log(spec.median_us) + np.repeat(load, per_second) + spec.sigma * z)
    lat *= spec.scale
    if spec.slow_share > 0:  # only requests above the median: the median does not move
        slow = (z > 0) & (rng.random(seconds.size) < 2 * spec.slow_share)
        lat = np.where(slow, lat * spec.slow_factor, lat)
    failed = rng.random(seconds.size) < spec.error_rate
    checked = np.full(seconds.size, spec.accuracy is not None) & ~failed
    correct = checked & (rng.random(seconds.size) < (spec.accuracy or 0.0))
    return Samples(seconds, lat, failed, correct, checked)


def _to_arm(name: str, s: Samples) -> ArmWindows:
    arm = arm_from_samples(name, s.seconds, s.latency_us, s.failed)
    return replace(arm, checked=int(s.checked.sum()), correct=int(s.correct.sum()))


def simulate_pair(
    a: ArmSpec,
    b: ArmSpec,
    seconds: int,
    rng: np.random.Generator,
    *,
    design: str = "split",
    load_sd: float = 0.15,
    load_phi: float = 0.7,
) -> tuple[ArmWindows, ArmWindows]:
    """Two arms as `ArmWindows`: shared load for a split run, independent for two runs."""
    load_a = load_factor(seconds, load_sd, load_phi, rng)
    load_b = load_a if design == "split" else load_factor(seconds, load_sd, load_phi, rng)
    return (
        _to_arm("A", simulate_arm(a, load_a, rng)),
        _to_arm("B", simulate_arm(b, load_b, rng)),
    )


# --- windows.parquet rows from per-request arrays (synthetic runs) ---------------------


def encode_window(latencies_us: np.ndarray, layout: HdrLayout | None = None) -> tuple[bytes, int]:
    """Encode latencies into one HDR window; returns (encoded bytes, rejected count)."""
    layout = layout or HdrLayout()
    h = HdrHistogram(layout.lowest, layout.highest, layout.significant_figures)
    lat = np.rint(np.asarray(latencies_us, dtype=np.float64)).astype(np.int64)
    ok = (lat >= 0) & (lat <= layout.highest)
    idx = layout.index_of(lat[ok])
    counts = np.ctypeslib.as_array(h.counts)
    if idx.size:
        counts[:] = np.bincount(idx, minlength=h.counts_len)[: h.counts_len]
        nz = np.flatnonzero(counts)
        h.set_internal_tacking_values(int(nz[0]), int(nz[-1]), int(idx.size))
    return h.encode(), int((~ok).sum())


def window_rows(endpoint: str, seconds, latency_us, failed, checked=None, correct=None):
    """Rows of windows.parquet for one endpoint from per-request arrays."""
    seconds = np.asarray(seconds)
    failed = np.asarray(failed, dtype=bool)
    checked = np.zeros(seconds.size, bool) if checked is None else np.asarray(checked, bool)
    correct = np.zeros(seconds.size, bool) if correct is None else np.asarray(correct, bool)
    order = np.argsort(seconds, kind="stable")
    bounds = np.flatnonzero(np.diff(seconds[order])) + 1
    rows = []
    for group in np.split(order, bounds):
        for outcome, mask in (("success", ~failed[group]), ("failure", failed[group])):
            sel = group[mask]
            if sel.size == 0:
                continue
            blob, rejected = encode_window(latency_us[sel])
            rows.append(
                {
                    "second": int(seconds[sel[0]]),
                    "endpoint": endpoint,
                    "outcome": outcome,
                    "count": int(sel.size),
                    "hdr": blob,
                    "hdr_uncorrected": blob,
                    "checked": int(checked[sel].sum()),
                    "correct": int(correct[sel].sum()),
                    "rejected": rejected,
                    "healthy": True,
                }
            )
    return rows

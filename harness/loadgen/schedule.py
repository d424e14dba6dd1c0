"""Open-loop arrival schedules as pure functions: when each request is *meant* to start.

Why a module of its own, with no I/O and no Locust: the honesty of an open-loop test rests on
the schedule being decided before and independently of the responses, so it is computed here
from (rate profile, seed, worker index) alone and tested as plain arrays. The Locust side
(`scenarios/openloop.py`) only walks the times this module hands it.

Every rate shape is a piecewise-linear *rate profile* r(t) (constant, step, ramp, spike and
soak are all lists of segments). Its cumulative intensity L(t) = integral of r maps a unit-rate
point process onto the profile: t_k = L^-1(u_k). With u_k = k (k = 0, 1, ...) that is the
constant-rate schedule; with u_k the partial sums of Exp(1) draws it is a (non-homogeneous)
Poisson process. Splitting across W workers:
  * constant: worker w takes u = w, w+W, w+2W, ... (round robin of one global schedule);
  * Poisson: worker w draws Exp(W) gaps from its own seeded stream, i.e. an independent
    Poisson process of rate r(t)/W; their superposition is Poisson with rate r(t);
  * trace replay: arrivals are dealt round robin, arrival i to worker i mod W.
Schedules are yielded in chunks so a one-hour soak never materialises millions of floats.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from harness.config.shapes import Level, Segment, segments_of, value_at

__all__ = [
    "RateProfile",
    "Segment",
    "constant_arrivals",
    "constant_profile",
    "pick_arms",
    "poisson_arrivals",
    "stages_profile",
    "trace_arrivals",
]

CHUNK = 4096


@dataclass(frozen=True, slots=True)
class RateProfile:
    """A piecewise-linear rate r(t) from t = 0 to `duration_s`."""

    segments: tuple[Segment, ...]

    def __post_init__(self) -> None:
        for seg in self.segments:
            if seg.duration <= 0 or seg.start < 0 or seg.end < 0:
                raise ValueError(f"invalid segment {seg}: need duration > 0, rates >= 0")

    @property
    def duration_s(self) -> float:
        return float(sum(s.duration for s in self.segments))

    @property
    def total(self) -> float:
        """L(duration): the expected number of arrivals over the whole profile."""
        return float(sum(s.area for s in self.segments))

    def _starts(self) -> tuple[np.ndarray, np.ndarray]:
        t0 = np.concatenate([[0.0], np.cumsum([s.duration for s in self.segments])])
        c0 = np.concatenate([[0.0], np.cumsum([s.area for s in self.segments])])
        return t0, c0

    def rate_at(self, t: float) -> float:
        """r(t); 0 outside [0, duration)."""
        rate = value_at(self.segments, t)
        return 0.0 if rate is None else rate

    def cumulative(self, t: np.ndarray | float) -> np.ndarray:
        """L(t), the expected arrivals in [0, t)."""
        t = np.clip(np.asarray(t, dtype=np.float64), 0.0, self.duration_s)
        t0, c0 = self._starts()
        i = np.clip(np.searchsorted(t0, t, side="right") - 1, 0, len(self.segments) - 1)
        r0, r1, d = self._arrays()
        tau = t - t0[i]
        return c0[i] + r0[i] * tau + 0.5 * (r1[i] - r0[i]) / d[i] * tau * tau

    def inverse(self, u: np.ndarray) -> np.ndarray:
        """L^-1(u): times at which the cumulative intensity reaches u (NaN past the end)."""
        u = np.asarray(u, dtype=np.float64)
        t0, c0 = self._starts()
        r0, r1, d = self._arrays()
        i = np.clip(np.searchsorted(c0, u, side="right") - 1, 0, len(self.segments) - 1)
        delta = np.maximum(u - c0[i], 0.0)
        a = 0.5 * (r1[i] - r0[i]) / d[i]
        root = np.sqrt(np.maximum(r0[i] * r0[i] + 4.0 * a * delta, 0.0))
        denom = r0[i] + root
        with np.errstate(divide="ignore", invalid="ignore"):
            tau = np.where(denom > 0, 2.0 * delta / denom, 0.0)
        out = t0[i] + tau
        return np.where(u < c0[-1], out, np.nan)

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r0 = np.array([s.start for s in self.segments], dtype=np.float64)
        r1 = np.array([s.end for s in self.segments], dtype=np.float64)
        d = np.array([s.duration for s in self.segments], dtype=np.float64)
        return r0, r1, d


def constant_profile(rate: float, duration_s: float) -> RateProfile:
    return RateProfile((Segment(duration_s, rate, rate),))


def stages_profile(
    stages: Sequence[tuple[float, float, bool]], start_rate: float = 0.0
) -> RateProfile:
    """Stages as (duration_s, rate, ramp): `ramp` goes linearly from the previous stage's rate
    (or `start_rate` for the first) to `rate`; otherwise the rate steps to `rate` at once."""
    return RateProfile(segments_of([Level(*stage) for stage in stages], start_rate))


def _check_worker(worker: int, n_workers: int) -> None:
    if n_workers < 1 or not 0 <= worker < n_workers:
        raise ValueError(f"worker {worker} out of range for {n_workers} workers")


def constant_arrivals(
    profile: RateProfile, worker: int = 0, n_workers: int = 1, chunk: int = CHUNK
) -> Iterator[np.ndarray]:
    """Evenly spaced arrivals (u_k = k) dealt round robin; yields sorted chunks of times."""
    _check_worker(worker, n_workers)
    total = profile.total
    k = worker
    while k < total:
        u = k + n_workers * np.arange(chunk, dtype=np.float64)
        u = u[u < total]
        yield profile.inverse(u)
        k += n_workers * chunk


def poisson_arrivals(
    profile: RateProfile, seed: int, worker: int = 0, n_workers: int = 1, chunk: int = CHUNK
) -> Iterator[np.ndarray]:
    """This worker's share of a Poisson process with rate r(t): rate r(t)/W, own seeded stream."""
    _check_worker(worker, n_workers)
    rng = np.random.default_rng([seed, worker, n_workers])
    total = profile.total
    u_last = 0.0
    while True:
        u = u_last + np.cumsum(rng.exponential(float(n_workers), size=chunk))
        u_last = float(u[-1])
        inside = u[u < total]
        if inside.size:
            yield profile.inverse(inside)
        if u_last >= total:
            return


def trace_arrivals(
    offsets: np.ndarray,
    speedup: float = 1.0,
    worker: int = 0,
    n_workers: int = 1,
    duration_s: float | None = None,
    chunk: int = CHUNK,
) -> Iterator[np.ndarray]:
    """Replay recorded arrival offsets (s since the first), `speedup` times faster, dealt
    round robin across workers and cut at `duration_s` (scaled time) when given."""
    _check_worker(worker, n_workers)
    if speedup <= 0:
        raise ValueError("speedup must be > 0")
    times = np.asarray(offsets, dtype=np.float64)[worker::n_workers] / speedup
    if duration_s is not None:
        times = times[times < duration_s]
    for start in range(0, times.size, chunk):
        yield times[start : start + chunk]


def pick_arms(weights: Sequence[float], n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the traffic-split arm for `n` requests, drawn with probability ~ weight."""
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0 or np.any(w < 0) or not math.isfinite(w.sum()) or w.sum() <= 0:
        raise ValueError(f"traffic-split weights must be >= 0 with a positive sum, got {weights}")
    if w.size == 1:
        return np.zeros(n, dtype=np.int64)
    cumulative = np.cumsum(w / w.sum())
    cumulative[-1] = 1.0
    return np.searchsorted(cumulative, rng.random(n), side="right").astype(np.int64)

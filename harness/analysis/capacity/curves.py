"""Throughput and latency curves fitted to a load sweep.

Why: a sweep gives a handful of noisy (load, throughput, p99) points; a planning review needs
the *shape* — where throughput peaks, where latency turns up (the knee), and the highest
throughput that still meets the p99 SLO. Two models, both fitted with SciPy's bounded, robust
`least_squares` (soft-L1 loss, so one bad step does not drag the fit; the USL's residuals
are relative to the measured throughput):

* Universal Scalability Law (Gunther), throughput vs concurrency N:
  X(N) = lambda*N / (1 + sigma*(N-1) + kappa*N*(N-1)); peak at N* = sqrt((1-sigma)/kappa).
  Mean latency follows from Little's law, R(N) = N / X(N) - think time.
* Queueing-style latency vs throughput: p99(X) = a + b * u/(1-u), u = X / c — the M/M/1
  waiting-time shape with a fitted saturation throughput c.

Estimators follow scikit-learn's style (parameters in `__init__`, `fit()` returns self, fitted
values end in `_`); results are frozen records. Pure: arrays in, records out, no I/O.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from harness.errors import AnalysisError, InsufficientData

__all__ = [
    "Knee",
    "LatencyFit",
    "LatencyModel",
    "MaxUnderSLO",
    "ParamEstimate",
    "USLFit",
    "USLModel",
    "find_knee",
    "max_throughput_under_slo",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ParamEstimate:
    """A fitted parameter with its standard error and confidence interval (clipped to bounds)."""

    value: float
    stderr: float
    lo: float
    hi: float


@dataclass(frozen=True, slots=True)
class USLFit:
    lambda_: ParamEstimate  # throughput of one unit of concurrency (requests/s per N)
    sigma: ParamEstimate  # contention
    kappa: ParamEstimate  # coherency (crosstalk)
    r2: float
    n_star: float  # concurrency of peak throughput (inf when kappa == 0)
    x_max: float  # X(N*) (lambda/sigma asymptote when kappa == 0)
    n_points: int
    ci_level: float


@dataclass(frozen=True, slots=True)
class LatencyFit:
    a_ms: ParamEstimate  # latency at zero load
    b_ms: ParamEstimate  # queueing scale
    saturation: ParamEstimate  # throughput at which latency diverges
    r2: float
    n_points: int
    ci_level: float


@dataclass(frozen=True, slots=True)
class Knee:
    x: float
    y: float
    index: int  # index into the (sorted) points it was found on
    distance: float  # normalised distance from the chord; 0 means no knee


@dataclass(frozen=True, slots=True)
class MaxUnderSLO:
    slo_ms: float
    throughput: float | None  # highest measured throughput meeting the SLO, fitted and measured
    load: float | None  # the load (N or offered rate) of that point
    p99_measured_ms: float | None
    p99_fitted_ms: float | None
    fitted_crossing: float | None  # throughput where the fitted p99 equals the SLO
    first_failing_load: float | None


def _r2(y: np.ndarray, fitted: np.ndarray) -> float:
    ss_res = float(np.sum((y - fitted) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")


def _jacobian(fun, p: np.ndarray) -> np.ndarray:
    """Central-difference Jacobian of the raw residuals (no robust-loss reweighting)."""
    p = np.asarray(p, dtype=np.float64)
    cols = []
    for i in range(p.size):
        h = 1e-6 * max(abs(p[i]), 1e-8)
        up, dn = p.copy(), p.copy()
        up[i] += h
        dn[i] -= h
        cols.append((fun(up) - fun(dn)) / (2 * h))
    return np.column_stack(cols)


def _estimates(fun, p: np.ndarray, bounds: tuple, level: float) -> list[ParamEstimate]:
    """Parameter CIs from the Gauss-Newton covariance s^2 (J^T J)^-1 with a t quantile."""
    resid = fun(p)
    jac = _jacobian(fun, p)
    m, k = jac.shape
    dof = max(m - k, 1)
    s2 = float(np.sum(resid**2)) / dof
    cov = np.linalg.pinv(jac.T @ jac) * s2
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    t = float(stats.t.ppf(0.5 + level / 2, dof))
    lo_b, hi_b = bounds
    return [
        ParamEstimate(
            value=float(v),
            stderr=float(e),
            lo=float(max(v - t * e, lo_b[i])),
            hi=float(min(v + t * e, hi_b[i])),
        )
        for i, (v, e) in enumerate(zip(p, se, strict=True))
    ]


def _best_fit(
    fun, starts: list[list[float]], bounds: tuple, loss: str, what: str, f_scale: float = 0.05
):
    """Bounded robust least squares from several starting points; the lowest cost wins
    (the USL surface has flat valleys where one start can stall). Residuals beyond about
    `f_scale` count less and less (the robust loss)."""
    best = None
    for x0 in starts:
        res = optimize.least_squares(
            fun, x0=x0, bounds=bounds, loss=loss, f_scale=f_scale, x_scale="jac"
        )
        if res.success and (best is None or res.cost < best.cost):
            best = res
    if best is None:
        raise AnalysisError(f"{what} did not converge from any starting point")
    return best


def _clean(x: np.ndarray, y: np.ndarray, what: str, need: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise AnalysisError(f"{what}: x and y differ in length ({x.size} vs {y.size})")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    distinct = np.unique(x).size
    if distinct < need:
        raise InsufficientData(
            f"{what} needs at least {need} distinct load levels, got {distinct}",
            needed=need - distinct,
        )
    order = np.argsort(x, kind="stable")
    return x[order], y[order]


# The USL's residuals are relative to the measured throughput: a step off by more than about
# 3 % is more than a load step's noise (3 % instead of 5 % keeps one halved step from moving
# kappa by more than ~6 %, as before the residuals became relative).
USL_NOISE = 0.03


def usl_throughput(n: np.ndarray, lam: float, sigma: float, kappa: float) -> np.ndarray:
    n = np.asarray(n, dtype=np.float64)
    return lam * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))


class USLModel:
    """Universal Scalability Law fitted to (concurrency, throughput) points."""

    def __init__(self, loss: str = "soft_l1", ci_level: float = 0.95) -> None:
        self.loss = loss
        self.ci_level = ci_level

    def fit(self, concurrency: np.ndarray, throughput: np.ndarray) -> USLModel:
        n, x = _clean(concurrency, throughput, "USL fit", need=4)
        # N is an average (the server's in-flight requests, X x R): below 1 at light load
        if np.any(n <= 0) or np.any(x < 0):
            raise AnalysisError("USL fit needs concurrency > 0 and throughput >= 0")
        scale = float(x.max()) or 1.0
        y = x / scale
        lam0 = float(np.max(y / n))
        bounds = ([0.0, 0.0, 0.0], [np.inf, 1.0, np.inf])

        # Relative residuals: throughput noise grows with the rate (a few % of X at every
        # step), so absolute residuals would let the high-N steps, where kappa is decided,
        # count as if they were as precise as the low ones (intervals too short).
        weight = 1.0 / np.maximum(y, 1e-3)

        def resid(p: np.ndarray) -> np.ndarray:
            return (usl_throughput(n, *p) - y) * weight

        starts = [[lam0, sg, kp] for sg in (0.01, 0.1, 0.5) for kp in (1e-6, 1e-4, 1e-2)]
        res = _best_fit(resid, starts, bounds, self.loss, "USL fit", f_scale=USL_NOISE)
        est = _estimates(resid, res.x, bounds, self.ci_level)
        lam_e = est[0]
        est[0] = ParamEstimate(
            lam_e.value * scale, lam_e.stderr * scale, lam_e.lo * scale, lam_e.hi * scale
        )
        self.lambda_, self.sigma_, self.kappa_ = (e.value for e in est)
        self.r2_ = _r2(x, self.predict(n))
        self.n_star_ = self._n_star()
        self.x_max_ = self._x_max()
        self.result_ = USLFit(
            est[0], est[1], est[2], self.r2_, self.n_star_, self.x_max_, int(n.size), self.ci_level
        )
        log.debug("USL fit %s", self.result_)
        return self

    def _n_star(self) -> float:
        if self.kappa_ <= 0:
            return math.inf
        return math.sqrt(max(1.0 - self.sigma_, 0.0) / self.kappa_)

    def _x_max(self) -> float:
        if math.isfinite(self.n_star_):
            return float(self.predict(np.array([self.n_star_]))[0])
        return self.lambda_ / self.sigma_ if self.sigma_ > 0 else math.inf

    def predict(self, concurrency: np.ndarray) -> np.ndarray:
        """Throughput X(N)."""
        return usl_throughput(concurrency, self.lambda_, self.sigma_, self.kappa_)

    def mean_latency_s(self, concurrency: np.ndarray, think_time_s: float = 0.0) -> np.ndarray:
        """Little's law on the fit: R(N) = N / X(N) - Z (seconds when X is in requests/s)."""
        n = np.asarray(concurrency, dtype=np.float64)
        return n / self.predict(n) - think_time_s


def latency_curve(x: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    u = np.asarray(x, dtype=np.float64) / c
    with np.errstate(divide="ignore", invalid="ignore"):
        out = a + b * u / (1.0 - u)
    return np.where(u < 1.0, out, np.inf)


class LatencyModel:
    """p99(X) = a + b*u/(1-u), u = X/saturation: queueing-shaped latency vs throughput."""

    def __init__(
        self, loss: str = "soft_l1", ci_level: float = 0.95, max_saturation_factor: float = 50.0
    ) -> None:
        self.loss = loss
        self.ci_level = ci_level
        self.max_saturation_factor = max_saturation_factor

    def fit(self, throughput: np.ndarray, latency_ms: np.ndarray) -> LatencyModel:
        x, y = _clean(throughput, latency_ms, "latency fit", need=4)
        xmax, yscale = float(x.max()), float(max(y.max(), 1e-9))
        lo = [0.0, 0.0, xmax * (1 + 1e-6)]
        hi = [np.inf, np.inf, xmax * self.max_saturation_factor]
        a0, b0 = float(y.min()), float(y.min()) * 0.1 + 1e-9
        starts = [[a0, b0, xmax * f] for f in (1.05, 1.2, 2.0, 5.0)]

        def resid(p: np.ndarray) -> np.ndarray:
            return (latency_curve(x, *p) - y) / yscale

        res = _best_fit(resid, starts, (lo, hi), self.loss, "latency fit")
        est = _estimates(resid, res.x, (lo, hi), self.ci_level)
        self.a_ms_, self.b_ms_, self.saturation_ = (float(v) for v in res.x)
        self.r2_ = _r2(y, self.predict(x))
        self.result_ = LatencyFit(est[0], est[1], est[2], self.r2_, int(x.size), self.ci_level)
        return self

    def predict(self, throughput: np.ndarray) -> np.ndarray:
        return latency_curve(throughput, self.a_ms_, self.b_ms_, self.saturation_)

    def throughput_at(self, latency_ms: float) -> float:
        """Inverse: the throughput at which the fitted latency equals `latency_ms`."""
        if latency_ms <= self.a_ms_:
            return 0.0
        if self.b_ms_ <= 0:
            return self.saturation_
        # a + b*u/(1-u) = L  =>  u = (L-a) / (L-a+b)
        d = latency_ms - self.a_ms_
        return self.saturation_ * d / (d + self.b_ms_)


def find_knee(x: np.ndarray, y: np.ndarray, curve: str = "convex") -> Knee:
    """Kneedle: the point farthest from the chord joining the first and last points.

    Both axes are normalised to [0, 1] over the points given. `curve="convex"` is for an
    increasing curve that bends *up* (latency vs load): the knee is where the normalised curve
    lies farthest *below* the chord. `curve="concave"` is for one that bends *down*
    (throughput vs concurrency): farthest *above* the chord. Feed measured points, or a dense
    grid of a fitted curve for a smooth answer.
    """
    if curve not in ("convex", "concave"):
        raise ValueError("curve must be 'convex' or 'concave'")
    xs, ys = _clean(x, y, "knee", need=3)
    xn = (xs - xs[0]) / (xs[-1] - xs[0])
    span = ys.max() - ys.min()
    if span <= 0:
        return Knee(float(xs[0]), float(ys[0]), 0, 0.0)
    yn = (ys - ys.min()) / span
    chord = yn[0] + (yn[-1] - yn[0]) * xn
    diff = chord - yn if curve == "convex" else yn - chord
    i = int(np.argmax(diff))
    return Knee(float(xs[i]), float(ys[i]), i, float(max(diff[i], 0.0)))


def max_throughput_under_slo(
    load: np.ndarray,
    throughput: np.ndarray,
    p99_ms: np.ndarray,
    slo_ms: float,
    model: LatencyModel | None = None,
    error_rate: np.ndarray | None = None,
    max_error_rate: float = 0.01,
) -> MaxUnderSLO:
    """Highest measured throughput whose measured AND fitted p99 meet the SLO.

    Points are taken in order of load; only points at loads below the first failing load count
    (a lucky point past a failure is not trusted). The fitted model's own crossing (throughput
    where fitted p99 == SLO) is reported beside it. `model` defaults to a LatencyModel fitted
    to the points given.
    """
    ld = np.asarray(load, dtype=np.float64)
    order = np.argsort(ld, kind="stable")
    ld = ld[order]
    xs = np.asarray(throughput, dtype=np.float64)[order]
    p99 = np.asarray(p99_ms, dtype=np.float64)[order]
    err = (
        np.zeros_like(xs) if error_rate is None else np.asarray(error_rate, dtype=np.float64)[order]
    )
    if model is None:
        model = LatencyModel().fit(xs, p99)
    fitted = model.predict(xs)
    ok = (p99 <= slo_ms) & (fitted <= slo_ms) & (err <= max_error_rate)
    failing = np.flatnonzero(~ok)
    first_fail = float(ld[failing[0]]) if failing.size else None
    usable = ok if first_fail is None else ok & (ld < first_fail)
    crossing = model.throughput_at(slo_ms)
    if not usable.any():
        return MaxUnderSLO(slo_ms, None, None, None, None, crossing, first_fail)
    idx = np.flatnonzero(usable)
    best = int(idx[np.argmax(xs[idx])])
    return MaxUnderSLO(
        slo_ms=slo_ms,
        throughput=float(xs[best]),
        load=float(ld[best]),
        p99_measured_ms=float(p99[best]),
        p99_fitted_ms=float(fitted[best]),
        fitted_crossing=float(crossing),
        first_failing_load=first_fail,
    )

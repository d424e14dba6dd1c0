"""Per-instance operating points: what one instance does where the plan will run it.

Why separate from `capacity`: the operating point is where measurements enter the plan
(by hand, or from a closed- or open-loop sweep through the curve fits), while `capacity`
is the arithmetic on top of it. By hand, X_op = c_op / L (Little's law, L the MEAN time in
system). From a closed-loop sweep: the USL fit gives N*, and c_op = the largest integer
N <= N* whose (interpolated, measured) p99 meets the SLO, X_op = X(c_op). From an open-loop
sweep: the highest throughput meeting the SLO below the first failing rate, with
c_op = X_op x mean latency there. Pure: arrays in, frozen records out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from harness.analysis.capacity.curves import LatencyModel, USLModel, latency_curve, usl_throughput
from harness.errors import AnalysisError, InsufficientData

__all__ = [
    "OperatingPoint",
    "operating_point_closed_loop",
    "operating_point_manual",
    "operating_point_open_loop",
    "with_concurrency",
]


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """What one instance does at its planned operating point."""

    source: str  # "manual" | "sweep-closed" | "sweep-open"
    concurrency: float  # c_op, requests in flight per instance
    throughput: float  # X_op, requests/s per instance
    mean_latency_s: float  # time in system at c_op (Little: c_op / X_op)
    p99_ms: float | None = None  # measured/interpolated p99 at c_op, when known
    n_star: float | None = None
    x_max: float | None = None
    usl: dict[str, float] | None = None  # lambda, sigma, kappa, r2 when fitted
    latency_model: dict[str, float] | None = None  # a_ms, b_ms, saturation when fitted
    notes: tuple[str, ...] = ()
    # requests in flight AT THE SERVER at c_op (X_op x measured mean latency). In a closed loop
    # each user also spends time in the load generator between requests, so this is below
    # c_op; it is what a server-side in-flight metric (the HPA's) reads. None: = concurrency.
    server_inflight: float | None = None

    @property
    def inflight_at_server(self) -> float:
        return self.concurrency if self.server_inflight is None else self.server_inflight


def operating_point_manual(
    latency_ms: float, concurrency: float, p99_ms: float | None = None
) -> OperatingPoint:
    """By hand: mean time in system L and concurrency c per instance; X_op = c / L.

    `p99_ms`, the measured p99 at that concurrency, replaces the exponential service-time tail
    in the Erlang C utilisation target (exponential service is pessimistic for ML inference).
    """
    if latency_ms <= 0 or concurrency <= 0:
        raise AnalysisError("latency and concurrency must be > 0")
    lat_s = latency_ms / 1000.0
    return OperatingPoint("manual", float(concurrency), concurrency / lat_s, lat_s, p99_ms)


def _interp_p99(n: float, ns: np.ndarray, p99: np.ndarray) -> float:
    return float(np.interp(n, ns, p99))


def operating_point_closed_loop(
    concurrency: np.ndarray,
    throughput: np.ndarray,
    p99_ms: np.ndarray,
    slo_p99_ms: float,
    error_rate: np.ndarray | None = None,
    max_error_rate: float = 0.01,
    mean_ms: np.ndarray | None = None,
    at_server: bool = False,
) -> OperatingPoint:
    """From a closed-loop sweep: USL fit, c_op = largest integer N <= N* meeting the SLO.

    "Meeting the SLO" uses the measured p99 interpolated linearly between measured levels,
    and every measured level up to N must pass (p99 and error rate); no extrapolation past
    the largest level measured. With the measured mean latencies, the server-side in-flight
    count at c_op is X_op x mean (Little at the server) — what the HPA metric will read.

    `at_server`: `concurrency` is already the server's in-flight count (the sweep measured it:
    X x mean latency per step). Then N is an average, c_op is searched on a fine grid rather
    than whole users, and it is itself the server-side in-flight count.
    """
    ns = np.asarray(concurrency, dtype=np.float64)
    order = np.argsort(ns)
    ns, xs = ns[order], np.asarray(throughput, dtype=np.float64)[order]
    p99 = np.asarray(p99_ms, dtype=np.float64)[order]
    err = np.zeros_like(ns) if error_rate is None else np.asarray(error_rate, float)[order]
    usl = USLModel().fit(ns, xs)
    passing = (p99 <= slo_p99_ms) & (err <= max_error_rate)
    if not passing[0]:
        raise AnalysisError(
            f"the lowest concurrency measured ({ns[0]:g}) already misses the SLO "
            f"(p99 {p99[0]:.1f} ms > {slo_p99_ms:g} ms): no operating point"
        )
    c_op = _largest_passing_n(ns, p99, passing, usl.n_star_, slo_p99_ms, whole=not at_server)
    x_op = float(usl.predict(np.array([c_op]))[0])
    rising = ns <= max(usl.n_star_, ns[0])  # latency vs throughput is single-valued here
    lat = _latency_model_dict(xs[rising], p99[rising])
    if at_server:
        server, notes = c_op, ("N is the server's in-flight requests (X x mean latency)",)
    else:
        means = None if mean_ms is None else np.asarray(mean_ms, dtype=np.float64)[order]
        server, notes = _server_inflight(c_op, x_op, ns, means)
    return OperatingPoint(
        source="sweep-closed",
        concurrency=c_op,
        throughput=x_op,
        mean_latency_s=c_op / x_op,
        p99_ms=_interp_p99(c_op, ns, p99),
        n_star=float(usl.n_star_),
        x_max=float(usl.x_max_),
        usl={"lambda": usl.lambda_, "sigma": usl.sigma_, "kappa": usl.kappa_, "r2": usl.r2_},
        latency_model=lat,
        notes=(*_fit_warnings(usl.r2_, lat), *notes),
        server_inflight=server,
    )


def _server_inflight(
    c_op: float, x_op: float, ns: np.ndarray, mean_ms: np.ndarray | None
) -> tuple[float | None, tuple[str, ...]]:
    if mean_ms is None or not np.all(np.isfinite(mean_ms)):
        return None, ()
    mean_s = float(np.interp(c_op, ns, mean_ms)) / 1000.0
    server = min(c_op, x_op * mean_s)
    if server >= 0.9 * c_op:
        return server, ()
    client_ms = (c_op / x_op - mean_s) * 1000.0
    return server, (
        f"at c_op each user spends {client_ms:.2f} ms per request in the load generator "
        f"(N/X - mean latency): {server:.2f} requests are in flight at the server, not "
        f"{c_op:g}; the HPA's in-flight target uses the server-side count",
    )


MIN_R2 = 0.9


def _fit_warnings(usl_r2: float, lat: dict[str, float] | None) -> tuple[str, ...]:
    """Say so when the curves do not describe the measurements (noisy host, short steps)."""
    notes = []
    if not usl_r2 >= MIN_R2:
        notes.append(
            f"USL fit is poor (R^2 = {usl_r2:.2f} < {MIN_R2}): the sweep's throughput is "
            "noisy (a busy load generator or host, or steps too short); treat X_op and N* "
            "as rough and re-run the sweep with longer steps on a quiet machine"
        )
    if lat is not None and not lat["r2"] >= MIN_R2:
        notes.append(f"p99-vs-throughput fit is poor (R^2 = {lat['r2']:.2f})")
    return tuple(notes)


def _largest_passing_n(
    ns: np.ndarray,
    p99: np.ndarray,
    passing: np.ndarray,
    n_star: float,
    slo_ms: float,
    whole: bool = True,
) -> float:
    """Largest N <= min(N*, last level), below the first failing level, whose interpolated
    measured p99 meets the SLO: a whole number of users, or (`whole=False`, an average
    in-flight count) to 1/1000 of the measured range. The failing level itself is out: it may
    fail on its error rate with a p99 that passes."""
    fails = np.flatnonzero(~passing)
    limit = ns[fails[0]] if fails.size else math.inf
    top = min(n_star, ns[-1])
    if whole:
        grid = np.arange(max(1, int(ns[0])), math.floor(top) + 1, dtype=np.float64)
    else:
        grid = np.unique(np.r_[np.linspace(ns[0], top, 1001), ns[ns <= top]])
    cands = [n for n in grid if n < limit and _interp_p99(n, ns, p99) <= slo_ms]
    if not cands:
        what = "integer concurrency" if whole else "concurrency"
        raise InsufficientData(f"no {what} meets the SLO; sweep lower loads", 1)
    return float(max(cands))


def with_concurrency(op: OperatingPoint, concurrency: float) -> OperatingPoint:
    """A sweep's operating point with c_op chosen by hand: X_op from the USL fit, p99 from
    the fitted latency curve (when there is one)."""
    if op.usl is None:
        raise AnalysisError("overriding the concurrency needs a USL fit (a closed-loop sweep)")
    u = op.usl
    x = float(usl_throughput(np.array([concurrency]), u["lambda"], u["sigma"], u["kappa"])[0])
    p99 = None
    if op.latency_model:
        lm = op.latency_model
        p99 = float(latency_curve(np.array([x]), lm["a_ms"], lm["b_ms"], lm["saturation"])[0])
    ratio = op.inflight_at_server / op.concurrency  # the load generator's share stays
    return replace(
        op,
        server_inflight=float(concurrency) * ratio,
        concurrency=float(concurrency),
        throughput=x,
        mean_latency_s=concurrency / x,
        p99_ms=p99 if p99 is not None and math.isfinite(p99) else None,
        notes=(
            *op.notes,
            f"c_op = {concurrency:g} given by hand (sweep suggested {op.concurrency:g})",
        ),
    )


def _latency_model_dict(xs: np.ndarray, p99: np.ndarray) -> dict[str, float] | None:
    try:
        m = LatencyModel().fit(xs, p99)
    except AnalysisError:
        return None
    return {"a_ms": m.a_ms_, "b_ms": m.b_ms_, "saturation": m.saturation_, "r2": m.r2_}


def operating_point_open_loop(
    rate: np.ndarray,
    throughput: np.ndarray,
    p99_ms: np.ndarray,
    mean_ms: np.ndarray,
    slo_p99_ms: float,
    error_rate: np.ndarray | None = None,
    max_error_rate: float = 0.01,
) -> OperatingPoint:
    """From an open-loop sweep: the highest throughput meeting the SLO below the first
    failing rate; c_op = X_op * mean latency there (Little)."""
    rt = np.asarray(rate, dtype=np.float64)
    order = np.argsort(rt)
    rt, xs = rt[order], np.asarray(throughput, dtype=np.float64)[order]
    p99 = np.asarray(p99_ms, dtype=np.float64)[order]
    mean = np.asarray(mean_ms, dtype=np.float64)[order]
    err = np.zeros_like(rt) if error_rate is None else np.asarray(error_rate, float)[order]
    passing = (p99 <= slo_p99_ms) & (err <= max_error_rate)
    fails = np.flatnonzero(~passing)
    usable = passing if not fails.size else passing & (rt < rt[fails[0]])
    if not usable.any():
        raise AnalysisError("no swept rate meets the SLO: no operating point")
    i = int(np.flatnonzero(usable)[np.argmax(xs[usable])])
    x_op, mean_s = float(xs[i]), float(mean[i]) / 1000.0
    return OperatingPoint(
        source="sweep-open",
        concurrency=x_op * mean_s,
        throughput=x_op,
        mean_latency_s=mean_s,
        p99_ms=float(p99[i]),
        latency_model=_latency_model_dict(xs[rt <= rt[i]], p99[rt <= rt[i]])
        if int(np.sum(rt <= rt[i])) >= 4
        else None,
    )

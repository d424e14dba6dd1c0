"""One pod of a capacity plan as a queue: requests/s per pod -> in-flight and p99.

Why separate: the planner sets the HPA's in-flight target to what this model reads at the
planned per-pod load, and the HPA simulation replays the same model, so the plan's replicas
at peak and the simulated HPA's steady state at peak come from one formula. Pure.
"""

from __future__ import annotations

import math

import numpy as np

from harness.analysis.capacity.curves import latency_curve
from harness.analysis.capacity.operating_point import OperatingPoint
from harness.analysis.capacity.queueing import erlang_c, mmc_response_quantile, mmc_wait_quantile

__all__ = ["QueueingPodModel", "pod_model"]


class QueueingPodModel:
    """A pod as M/M/c (c slots, mean service time from the plan).

    In-flight = rate x (service + Erlang C mean wait) (Little). p99 = the fitted latency curve
    of the sweep (p99 vs per-instance throughput) when the plan has one, else the measured p99
    at c_op plus the Erlang C waiting-time p99, else the exact M/M/c p99. Tabulated once over
    utilisation and interpolated, so calls are vectorised.
    """

    def __init__(
        self,
        c: int,
        service_s: float,
        service_p99_s: float | None = None,
        latency_curve: tuple[float, float, float] | None = None,
        grid: int = 801,
        overload_factor: float = 1000.0,
        inflight_scale: float = 1.0,
    ) -> None:
        self.c = max(1, int(c))
        self.service_s = service_s
        self.capacity = self.c / service_s  # requests/s at utilisation 1
        self.latency_curve = latency_curve
        self.overload_inflight = self.c * overload_factor
        self._rho = np.linspace(0.0, 0.999, grid)
        lam = self._rho * self.capacity
        wait_mean = np.array([_mean_wait(self.c, service_s, x) for x in lam])
        # inflight_scale < 1: part of each closed-loop cycle is spent in the load generator,
        # not at the server (OperatingPoint.server_inflight / concurrency)
        self._inflight = lam * (service_s + wait_mean) * inflight_scale
        self._p99_ms = 1000.0 * np.array(
            [
                (service_p99_s + mmc_wait_quantile(self.c, service_s, x))
                if service_p99_s
                else mmc_response_quantile(self.c, service_s, x)
                if x > 0
                else mmc_response_quantile(self.c, service_s, 1e-12)
                for x in lam
            ]
        )

    def inflight(self, rate_per_pod: np.ndarray) -> np.ndarray:
        rho = np.asarray(rate_per_pod, dtype=np.float64) / self.capacity
        out = np.interp(rho, self._rho, self._inflight)
        return np.where(rho < self._rho[-1], out, self.overload_inflight)

    def p99_ms(self, rate_per_pod: np.ndarray) -> np.ndarray:
        r = np.asarray(rate_per_pod, dtype=np.float64)
        rho = r / self.capacity
        if self.latency_curve is not None:
            out = latency_curve(r, *self.latency_curve)
        else:
            out = np.interp(rho, self._rho, self._p99_ms)
        return np.where(rho < self._rho[-1], out, np.inf)


def _mean_wait(c: int, service_s: float, lam: float) -> float:
    theta = c / service_s - lam
    return erlang_c(c, lam * service_s) / theta if theta > 0 else math.inf


def pod_model(op: OperatingPoint, use_fitted_curve: bool = True) -> QueueingPodModel:
    """One pod of the plan: c = ceil(c_op) slots, service = the mean time at c_op.

    ceil, not floor: an open-loop sweep's c_op is an average (1.82 in flight at 793 req/s,
    2.3 ms), and c = 1 would give the pod a capacity of 1 / 2.3 ms = 435 req/s, below the
    793 req/s it was measured to serve; with c = 2 it is 870 req/s, at utilisation 0.91.
    """
    curve = None
    if use_fitted_curve and op.latency_model:
        lm = op.latency_model
        curve = (lm["a_ms"], lm["b_ms"], lm["saturation"])
    return QueueingPodModel(
        c=max(1, math.ceil(op.concurrency - 1e-9)),
        service_s=op.mean_latency_s,
        service_p99_s=None if op.p99_ms is None else op.p99_ms / 1000.0,
        latency_curve=curve,
        inflight_scale=op.inflight_at_server / op.concurrency,
    )

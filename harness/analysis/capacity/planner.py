"""Capacity plan: how many instances for a peak rate at a p99 SLO, and why.

Why this shape: the plan must be checkable by a reviewer with a calculator, so every step is
one formula, its inputs are recorded, and it is written out as an "arithmetic line":

1. per-instance operating point (`harness.analysis.capacity.operating_point`, re-exported here):
   concurrency c_op and throughput X_op. By hand,
   X_op = c_op / L (Little's law with L the MEAN time in system — a p99 there overstates the
   need). From a sweep, the USL fit gives N*, c_op = the largest N <= N* whose p99 meets the
   SLO, X_op = X(c_op).
2. n0 = ceil(peak / X_op)  (= ceil(peak * L / c) by hand).
3. utilisation target rho_t = min(rho_queue, rho_growth): rho_queue is the highest utilisation
   at which Erlang C (M/M/c, c = c_op per instance) keeps the p99 within the SLO; rho_growth =
   1 / (1 + growth_rate * pod_ready_time) absorbs load growth while new pods start. Either
   may be given by hand; by hand with neither an SLO nor a growth rate, rho_t = 1.
4. n = ceil(peak * (1 + headroom) / (rho_t * X_op)).
5. redundancy R (pods that may be lost: N+R), then one failure domain of share f:
   n_total = ceil((n + R) / (1 - f)). With headroom 0 and R = 0 and f = 0 the count is
   exactly the formula of step 2 (or 4 when rho_t < 1).

6. HPA targets = what one pod carries at n_total pods at peak: requests/s peak / n_total, and
   the in-flight count the pod model (`hpa_pod`, the one `simulate-hpa` replays) reads at
   that rate. The HPA's rule ceil(pods x current / target) then settles on n_total at peak:
   headroom, redundancy and the failure domain stay in the running deployment. (Targets of
   rho_t x c_op and rho_t x X_op would settle on step 4 without headroom: the HPA would give
   the headroom back as soon as it took over.) In-flight is counted at the SERVER: from a
   closed-loop sweep X_op x measured mean latency, which is below the number of users when
   each user also spends time in the load generator between requests.

Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.analysis.capacity.hpa_pod import pod_model
from harness.analysis.capacity.operating_point import (
    OperatingPoint,
    operating_point_closed_loop,
    operating_point_manual,
    operating_point_open_loop,
    with_concurrency,
)
from harness.analysis.capacity.queueing import max_utilisation_for_slo
from harness.errors import AnalysisError

__all__ = [
    "CapacityInputs",
    "CapacityPlan",
    "OperatingPoint",
    "operating_point_closed_loop",
    "operating_point_manual",
    "operating_point_open_loop",
    "plan_capacity",
    "with_concurrency",
]

DEFAULT_GROWTH_RATE_PER_S = 0.002  # 12 % per minute, used when planning from a sweep
P99_NOTE = (
    "Little's law needs the MEAN time in system; using the p99 instead overstates the "
    "instance count by roughly p99/mean."
)


def ceil_exact(x: float) -> int:
    """ceil() that ignores float dust: 500.00000000000006 -> 500."""
    return math.ceil(round(x, 9))


class CapacityInputs(BaseModel):
    """Everything the plan takes besides the operating point; all overridable by hand."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    peak_qps: float = Field(gt=0)
    slo_p99_ms: float | None = Field(default=None, gt=0)
    headroom: float = Field(default=0.0, ge=0)
    redundancy: int = Field(default=0, ge=0)
    failure_share: float = Field(default=0.0, ge=0, lt=1)
    target_utilisation: float | None = Field(default=None, gt=0, le=1)
    growth_rate_per_s: float | None = Field(default=None, ge=0)
    pod_ready_s: float = Field(default=60.0, ge=0)
    min_qps: float | None = Field(default=None, ge=0)
    min_replicas: int | None = Field(default=None, ge=1)
    max_replicas: int | None = Field(default=None, ge=1)
    max_replicas_factor: float = Field(default=1.5, ge=1)

    @model_validator(mode="after")
    def _min_le_max(self) -> CapacityInputs:
        if self.min_replicas and self.max_replicas and self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must be <= max_replicas")
        return self


@dataclass(frozen=True, slots=True)
class CapacityPlan:
    replicas: int
    min_replicas: int
    max_replicas: int
    peak_qps: float
    operating_point: OperatingPoint
    n0: int
    rho_queue: float | None
    rho_growth: float | None
    rho_target: float
    n_before_redundancy: int
    hpa_inflight_target: float  # the pod model's in-flight at peak / replicas
    hpa_rps_target: float  # peak / replicas: each pod's share at the planned count
    inputs: dict[str, Any]
    arithmetic: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (non-finite numbers become None), with a schema version."""
        d = _finite(asdict(self))
        d["schema_version"] = 1
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CapacityPlan:
        d = {k: v for k, v in d.items() if k != "schema_version"}
        op = dict(d.pop("operating_point"))
        op["notes"] = tuple(op.get("notes", ()))
        d["arithmetic"] = tuple(d.get("arithmetic", ()))
        d["notes"] = tuple(d.get("notes", ()))
        return cls(operating_point=OperatingPoint(**op), **d)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _utilisation(
    inp: CapacityInputs, op: OperatingPoint
) -> tuple[float | None, float | None, list[str]]:
    """rho_queue (Erlang C) and rho_growth, each None when it does not apply."""
    lines: list[str] = []
    rho_q: float | None = None
    if inp.slo_p99_ms is not None:
        c = max(1, math.floor(op.concurrency + 1e-9))
        rho_q = max_utilisation_for_slo(
            c,
            op.mean_latency_s,
            inp.slo_p99_ms / 1000.0,
            service_quantile_s=None if op.p99_ms is None else op.p99_ms / 1000.0,
        )
        tail = (
            "exact M/M/c response p99"
            if op.p99_ms is None
            else (f"measured p99 at c_op (interpolated) {op.p99_ms:.2f} ms + Erlang C wait p99")
        )
        lines.append(
            f"rho_queue = {rho_q:.4f}: highest utilisation of M/M/{c} (mean service "
            f"{op.mean_latency_s * 1000:.3f} ms) whose {tail} <= SLO {inp.slo_p99_ms:g} ms"
        )
        if rho_q <= 0:
            raise AnalysisError(
                f"even an idle instance misses the p99 SLO of {inp.slo_p99_ms:g} ms"
            )
    growth = inp.growth_rate_per_s
    if growth is None and op.source != "manual":
        growth = DEFAULT_GROWTH_RATE_PER_S
    rho_g: float | None = None
    if growth is not None:
        rho_g = 1.0 / (1.0 + growth * inp.pod_ready_s)
        lines.append(
            f"rho_growth = 1 / (1 + growth {growth:g}/s x pod ready {inp.pod_ready_s:g} s) "
            f"= {rho_g:.4f}"
        )
    return rho_q, rho_g, lines


def _rho_target(inp: CapacityInputs, rho_q: float | None, rho_g: float | None) -> tuple[float, str]:
    if inp.target_utilisation is not None:
        return inp.target_utilisation, f"rho_t = {inp.target_utilisation:g} (given by hand)"
    known = [r for r in (rho_q, rho_g) if r is not None]
    if not known:
        return 1.0, "rho_t = 1 (no SLO, growth rate or target given: the bare formula)"
    rho = min(known)
    return rho, f"rho_t = min({', '.join(f'{r:.4f}' for r in known)}) = {rho:.4f}"


def _min_max(inp: CapacityInputs, replicas: int, per_pod: float) -> tuple[int, int, str]:
    floor_ = max(1, inp.redundancy + 1)
    why = [f"1 + redundancy {inp.redundancy}"]
    if inp.failure_share > 0:
        domains = ceil_exact(1.0 / inp.failure_share)
        floor_ = max(floor_, domains)
        why.append(f"{domains} failure domains")
    if inp.min_qps is not None:
        need = ceil_exact(inp.min_qps / per_pod)
        floor_ = max(floor_, need)
        why.append(f"ceil(min_qps {inp.min_qps:g} / {per_pod:.3f}) = {need}")
    lo = inp.min_replicas if inp.min_replicas is not None else min(floor_, replicas)
    hi = (
        inp.max_replicas
        if inp.max_replicas is not None
        else max(replicas, ceil_exact(replicas * inp.max_replicas_factor))
    )
    hi = max(hi, lo)
    how = (
        f"min_replicas = {lo} ({'given' if inp.min_replicas else 'max of ' + ', '.join(why)})"
        f"; max_replicas = {hi} ("
        f"{'given' if inp.max_replicas else f'replicas x {inp.max_replicas_factor:g}'})"
    )
    return lo, hi, how


def _operating_lines(op: OperatingPoint) -> list[str]:
    lines = [
        f"operating point ({op.source}): c_op = {op.concurrency:g} in flight per instance, "
        f"X_op = {op.throughput:.4f} req/s per instance, mean time in system "
        f"{op.mean_latency_s * 1000:.3f} ms (Little: X_op = c_op / L)",
    ]
    if op.n_star is not None:
        n_star = (
            f"{op.n_star:.2f}" if op.n_star < 1e6 else "unbounded (no coherency penalty measured)"
        )
        x_max = f"{op.x_max:.2f}" if op.x_max is not None else "n/a"
        lines.append(
            f"USL: N* = {n_star}, X(N*) = {x_max} req/s; "
            f"c_op is the largest N <= N* whose p99 meets the SLO"
        )
    return lines


def _counts(inp: CapacityInputs, x_op: float, rho_t: float) -> tuple[int, int, list[str]]:
    """n (utilisation target and headroom) and n_total (redundancy, failure domain)."""
    n_raw = inp.peak_qps * (1.0 + inp.headroom) / (rho_t * x_op)
    n = ceil_exact(n_raw)
    total_raw = (n + inp.redundancy) / (1.0 - inp.failure_share)
    total = ceil_exact(total_raw)
    return (
        n,
        total,
        [
            f"n = ceil(peak {inp.peak_qps:g} x (1 + headroom {inp.headroom:g}) / "
            f"(rho_t {rho_t:.4f} x X_op {x_op:.4f})) = ceil({n_raw:.4f}) = {n}",
            f"n_total = ceil((n {n} + redundancy {inp.redundancy}) / (1 - failure share "
            f"{inp.failure_share:g})) = ceil({total_raw:.4f}) = {total}",
        ],
    )


def _hpa_targets(
    inp: CapacityInputs, op: OperatingPoint, total: int
) -> tuple[float, float, list[str], list[str]]:
    """Per-pod HPA targets at the planned count: (in-flight, requests/s, arithmetic, notes)."""
    rate = inp.peak_qps / total
    model = pod_model(op, use_fitted_curve=False)
    inflight = float(model.inflight(np.array([rate]))[0])
    how = f"the pod model's (M/M/{model.c} at {rate / model.capacity:.4f} utilisation)"
    notes = []
    if not rate < 0.999 * model.capacity:  # no steady state in the model: Little instead
        inflight = rate * op.inflight_at_server / op.throughput
        how = "Little's law at the measured mean (the pod model has no steady state there)"
        notes.append(
            f"each pod runs at its measured capacity at peak ({rate:.3f} req/s, no utilisation "
            "margin): the queueing model predicts an unbounded queue there, so the simulated "
            "HPA scales past the plan; plan with an SLO, headroom or a utilisation target"
        )
    line = (
        f"HPA targets per pod = one pod's load at n_total {total} (the HPA settles there at "
        f"peak): requests/s peak {inp.peak_qps:g} / {total} = {rate:.3f}; in flight at the "
        f"server at that rate, {how} = {inflight:.3f}"
    )
    return inflight, rate, [line], notes


def plan_capacity(inp: CapacityInputs, op: OperatingPoint) -> CapacityPlan:
    """Turn a peak rate and an operating point into replica counts, with the arithmetic."""
    lines = _operating_lines(op)
    n0_raw = inp.peak_qps / op.throughput
    n0 = ceil_exact(n0_raw)
    lines.append(
        f"n0 = ceil(peak {inp.peak_qps:g} / X_op {op.throughput:.4f}) = ceil({n0_raw:.4f}) = {n0}"
    )
    rho_q, rho_g, rho_lines = _utilisation(inp, op)
    rho_t, rho_line = _rho_target(inp, rho_q, rho_g)
    n, total, count_lines = _counts(inp, op.throughput, rho_t)
    inflight, per_pod, hpa_lines, hpa_notes = _hpa_targets(inp, op, total)
    lo, hi, how = _min_max(inp, total, per_pod)
    lines += [*rho_lines, rho_line, *count_lines, how, *hpa_lines]
    return CapacityPlan(
        replicas=total,
        min_replicas=lo,
        max_replicas=hi,
        peak_qps=inp.peak_qps,
        operating_point=op,
        n0=n0,
        rho_queue=rho_q,
        rho_growth=rho_g,
        rho_target=rho_t,
        n_before_redundancy=n,
        hpa_inflight_target=inflight,
        hpa_rps_target=per_pod,
        inputs=inp.model_dump(),
        arithmetic=tuple(lines),
        notes=(P99_NOTE, *op.notes, *hpa_notes),
    )

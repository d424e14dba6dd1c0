"""SLO checks: each threshold becomes one check with its observed value and a verdict.

Lower-is-better checks (latency percentiles, error rate) pass when observed <= threshold;
`min_throughput_rps` passes when observed >= threshold. A check with nothing observed fails:
an SLO is never met by default. The observed numbers come from the measured seconds only
(after warm-up, load generator healthy) — the caller decides which, see `summary`.

Latency checks also say whether the verdict is *statistically* settled (MLPerf LoadGen's
early-stopping test): with n requests of which t exceeded the threshold, the pass is
`conclusive` when seeing at most t exceedances would have probability <= alpha if the true
exceedance share were as large as the SLO allows (1 - q); a fail is conclusive when seeing
at least t would have probability <= alpha under that same share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

from harness.config.scenario import SloConfig
from harness.latency.sparse import SparseHist, slot_values

LATENCY_CHECKS = {"p50_ms": 50.0, "p95_ms": 95.0, "p99_ms": 99.0, "p999_ms": 99.9}


@dataclass(frozen=True, slots=True)
class SloCheck:
    name: str
    threshold: float
    observed: float | None
    passed: bool
    conclusive: bool | None = None
    """Latency checks: is the verdict settled at the chosen confidence (None: not a test)."""

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "threshold": self.threshold,
            "observed": self.observed,
            "passed": self.passed,
            "conclusive": self.conclusive,
        }


@dataclass(frozen=True, slots=True)
class SloResult:
    passed: bool
    checks: tuple[SloCheck, ...]

    def to_dict(self) -> dict[str, object]:
        return {"passed": self.passed, "checks": [c.to_dict() for c in self.checks]}


def evaluate_slo(
    slo: SloConfig,
    latency_ms: Mapping[str, float | None],
    error_rate: float | None,
    throughput_rps: float | None,
    hist: SparseHist | None = None,
    confidence: float = 0.95,
    requests: int | None = None,
) -> SloResult:
    """Checks for every threshold set in `slo`; `latency_ms` keys are p50/p95/p99/p999.

    `requests`: how many requests were measured; 0 adds a failing `measured_requests` check.
    """
    checks: list[SloCheck] = []
    for name, percentile in LATENCY_CHECKS.items():
        threshold = getattr(slo, name)
        if threshold is None:
            continue
        observed = latency_ms.get(name.removesuffix("_ms"))
        passed = observed is not None and observed <= threshold
        conclusive = None
        if hist is not None and hist.total:
            conclusive = latency_conclusive(hist, threshold, percentile, passed, confidence)
        checks.append(SloCheck(name, threshold, observed, passed, conclusive))
    if slo.error_rate is not None:
        ok = error_rate is not None and error_rate <= slo.error_rate
        checks.append(SloCheck("error_rate", slo.error_rate, error_rate, ok))
    if slo.min_throughput_rps is not None:
        ok = throughput_rps is not None and throughput_rps >= slo.min_throughput_rps
        checks.append(SloCheck("min_throughput_rps", slo.min_throughput_rps, throughput_rps, ok))
    if requests is not None and requests == 0:  # nothing measured meets no SLO, even an empty one
        checks.append(SloCheck("measured_requests", 1, 0, False))
    return SloResult(all(c.passed for c in checks), tuple(checks))


def exceedances(hist: SparseHist, threshold_ms: float) -> int:
    """Requests whose latency slot lies entirely above `threshold_ms`."""
    low = slot_values().low[hist.slots]
    return int(hist.counts[low > threshold_ms * 1000].sum())


def latency_conclusive(
    hist: SparseHist, threshold_ms: float, percentile: float, passed: bool, confidence: float
) -> bool:
    n, t = hist.total, exceedances(hist, threshold_ms)
    allowed = 1 - percentile / 100
    alpha = 1 - confidence
    if passed:
        return bool(stats.binom.cdf(t, n, allowed) <= alpha)
    return bool(stats.binom.sf(t - 1, n, allowed) <= alpha)


def requests_for_conclusive_pass(percentile: float, confidence: float = 0.95) -> int:
    """Fewest requests that can settle a pass at all (zero exceedances): (1 - share)^n <= alpha."""
    allowed = 1 - percentile / 100
    return int(np.ceil(np.log(1 - confidence) / np.log(1 - allowed)))

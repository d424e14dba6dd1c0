"""Error rate and accuracy: exact test and score interval for a difference of proportions.

Why: errors are rare, so normal approximations break exactly where it matters (0 failures
in A, 7 in B). We use Fisher's exact test (conditional, two-sided) for the p-value and
Newcombe's hybrid score interval (method 10, built from Wilson intervals) for the difference
B - A; both behave at zero counts. "No data" for events is zero events: an arm with no
failure rows had 0 failures out of its requests, never a missing value.

Caveat, reported rather than hidden: both assume independent requests. Failures often come
in bursts (a replica restarting), so `dispersion_index` compares the per-second spread of
failures with the binomial one; well above 1 means the exact p-value is optimistic, and the
comparison says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["ProportionDiff", "compare_proportions", "dispersion_index", "wilson_interval"]


@dataclass(frozen=True, slots=True)
class ProportionDiff:
    """Events / trials in each arm and the difference B - A."""

    events_a: int
    trials_a: int
    events_b: int
    trials_b: int
    rate_a: float
    rate_b: float
    difference: float
    ci: tuple[float, float]
    ci_equivalence: tuple[float, float]  # (1 - 2 alpha) interval, for TOST
    p_value: float


def wilson_interval(events: int, trials: int, level: float) -> tuple[float, float]:
    """Wilson score interval for one proportion ((0, 1) when there are no trials)."""
    if trials <= 0:
        return 0.0, 1.0
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = events / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials**2)) / (1 + z * z / trials)
    lo = 0.0 if events == 0 else max(0.0, centre - half)
    hi = 1.0 if events == trials else min(1.0, centre + half)
    return lo, hi


def _newcombe(
    events_a: int, trials_a: int, events_b: int, trials_b: int, level: float
) -> tuple[float, float]:
    p_a = events_a / trials_a if trials_a else 0.0
    p_b = events_b / trials_b if trials_b else 0.0
    l_a, u_a = wilson_interval(events_a, trials_a, level)
    l_b, u_b = wilson_interval(events_b, trials_b, level)
    d = p_b - p_a
    lo = d - math.sqrt((p_b - l_b) ** 2 + (u_a - p_a) ** 2)
    hi = d + math.sqrt((u_b - p_b) ** 2 + (p_a - l_a) ** 2)
    return max(-1.0, lo), min(1.0, hi)


def compare_proportions(
    events_a: int, trials_a: int, events_b: int, trials_b: int, alpha: float = 0.05
) -> ProportionDiff:
    """Fisher's exact test and Newcombe intervals for rate_b - rate_a."""
    for name, e, t in (("A", events_a, trials_a), ("B", events_b, trials_b)):
        if t < 0 or e < 0 or e > t:
            raise ValueError(f"arm {name}: need 0 <= events ({e}) <= trials ({t})")
    if trials_a and trials_b:
        table = [[events_b, trials_b - events_b], [events_a, trials_a - events_a]]
        p_value = float(stats.fisher_exact(table).pvalue)
    else:
        p_value = 1.0
    rate_a = events_a / trials_a if trials_a else math.nan
    rate_b = events_b / trials_b if trials_b else math.nan
    return ProportionDiff(
        events_a=events_a,
        trials_a=trials_a,
        events_b=events_b,
        trials_b=trials_b,
        rate_a=rate_a,
        rate_b=rate_b,
        difference=(rate_b - rate_a) if trials_a and trials_b else math.nan,
        ci=_newcombe(events_a, trials_a, events_b, trials_b, 1 - alpha),
        ci_equivalence=_newcombe(events_a, trials_a, events_b, trials_b, 1 - 2 * alpha),
        p_value=min(1.0, p_value),
    )


def dispersion_index(events: np.ndarray, trials: np.ndarray) -> float:
    """Pearson chi-square / df of per-window event counts against one common rate.

    About 1 for independent events; much larger when events cluster in time. NaN when there
    are too few windows or no events at all.
    """
    e = np.asarray(events, dtype=np.float64)
    t = np.asarray(trials, dtype=np.float64)
    keep = t > 0
    e, t = e[keep], t[keep]
    total = t.sum()
    rate = e.sum() / total if total else 0.0
    if e.size < 3 or rate <= 0 or rate >= 1:
        return math.nan
    expected_var = t * rate * (1 - rate)
    return float(np.sum((e - t * rate) ** 2 / expected_var) / (e.size - 1))

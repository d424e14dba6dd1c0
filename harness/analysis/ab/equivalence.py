"""Verdicts: Holm correction, TOST equivalence, and "how much more data" for inconclusive.

Why: "no significant difference" is not "no regression". With a declared margin (for
example +-5 % of A's p99) two one-sided tests (TOST) can conclude *equivalent*: the
(1 - 2 alpha) interval of the difference lies inside the margin. Each metric gets one of

    better / worse       the difference is significant after Holm's correction across the
                         gating metrics, and not shown to be inside the margin;
    equivalent           the (1 - 2 alpha) interval lies within +-margin (a difference can
                         be detectable and still practically irrelevant);
    inconclusive         neither: the interval is too wide to tell; we say how many
                         requests would make it narrow enough (each side of an interval
                         shrinks towards the estimate as 1/sqrt(n); we take whichever of
                         "exclude 0" or "fit inside the margin" needs fewer requests);
    no significant difference   not significant, and no margin to test equivalence against.

Holm controls the family-wise error of the better/worse calls. The overall "equivalent"
needs *every* gating metric equivalent: an intersection-union test, level alpha without
correction. Overall precedence: worse > better > inconclusive > equivalent > no significant
difference — a regression on any gating metric is a regression.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Decision", "Verdict", "decide", "holm", "overall_verdict"]


class Verdict(StrEnum):
    BETTER = "better"
    WORSE = "worse"
    EQUIVALENT = "equivalent"
    NO_DIFFERENCE = "no significant difference"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    significant: bool
    equivalent: bool
    requests_needed: int | None  # total requests (both arms) for a conclusive interval
    reason: str


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (same order as given)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _needed(
    n: int,
    estimate: float,
    ci: tuple[float, float],
    ci_eq: tuple[float, float],
    margin: float | None,
) -> int | None:
    """Total requests for the interval to exclude 0, or to fit in the margin (the nearer).

    Each side of an interval shrinks towards the estimate as 1/sqrt(n): the side that
    crosses 0 must shrink by estimate / (estimate - side); for equivalence each side beyond
    the margin must shrink to it.
    """
    lo, hi = ci
    factors = []
    if estimate > 0 and lo < 0:
        factors.append(((estimate - lo) / estimate) ** 2)
    elif estimate < 0 and hi > 0:
        factors.append(((hi - estimate) / -estimate) ** 2)
    if margin is not None and abs(estimate) < margin:
        lo_eq, hi_eq = ci_eq
        need = [1.0]
        if hi_eq >= margin:
            need.append(((hi_eq - estimate) / (margin - estimate)) ** 2)
        if lo_eq <= -margin:
            need.append(((estimate - lo_eq) / (margin + estimate)) ** 2)
        factors.append(max(need))
    if not factors or n <= 0:
        return None
    return math.ceil(n * min(factors))


def decide(
    *,
    estimate: float,
    ci: tuple[float, float],
    ci_equivalence: tuple[float, float],
    p_adjusted: float,
    alpha: float,
    margin: float | None,
    higher_is_worse: bool,
    n: int,
) -> Decision:
    """Verdict for one metric; `estimate`, intervals and `margin` share one scale."""
    lo_eq, hi_eq = ci_equivalence
    equivalent = margin is not None and -margin < lo_eq and hi_eq < margin
    significant = p_adjusted < alpha
    if equivalent:
        why = "within the margin" + (" (a small difference is detectable)" if significant else "")
        return Decision(Verdict.EQUIVALENT, significant, True, None, why)
    if significant:
        worse = (estimate > 0) == higher_is_worse
        verdict = Verdict.WORSE if worse else Verdict.BETTER
        return Decision(verdict, True, False, None, "significant after Holm correction")
    if margin is None:
        return Decision(Verdict.NO_DIFFERENCE, False, False, None, "no margin to test against")
    needed = _needed(n, estimate, ci, ci_equivalence, margin)
    return Decision(Verdict.INCONCLUSIVE, False, False, needed, "interval wider than the margin")


def overall_verdict(decisions: Sequence[Decision]) -> Verdict:
    """Combine gating metrics: worse > better > inconclusive > equivalent > no difference."""
    verdicts = {d.verdict for d in decisions}
    for v in (Verdict.WORSE, Verdict.BETTER, Verdict.INCONCLUSIVE):
        if v in verdicts:
            return v
    if verdicts and verdicts <= {Verdict.EQUIVALENT, Verdict.NO_DIFFERENCE}:
        return Verdict.EQUIVALENT if Verdict.EQUIVALENT in verdicts else Verdict.NO_DIFFERENCE
    return Verdict.INCONCLUSIVE

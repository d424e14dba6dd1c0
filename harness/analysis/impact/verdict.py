"""The game day's verdict: pass only when every check passed, with the reasons when not.

Why one function: the exit code rests on it (0 pass, 1 fail), so the rules sit in one
place and are tested as a table. Pure: records in, a frozen `Verdict` out.

Pass requires: the method ran; the steady state held before, during (every check that ran)
and after; no method or rollback activity failed; the fault stayed within its maximum
duration; the load recovered (k windows back within tolerance of the baseline); the stack's
state after the rollback equals its state before (server faults, proxy toxics, replicas).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.analysis.impact.journal import Hypothesis
from harness.analysis.impact.records import Impact

__all__ = ["RollbackCheck", "Verdict", "compare_states", "judge"]


@dataclass(frozen=True, slots=True)
class RollbackCheck:
    """The stack's state before the fault and after the rollback, and what differs."""

    before: Mapping[str, Any]
    after: Mapping[str, Any]
    differences: tuple[str, ...]

    @property
    def equal(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, Any]:
        return {
            "before": dict(self.before),
            "after": dict(self.after),
            "equal": self.equal,
            "differences": list(self.differences),
        }


def compare_states(before: Mapping[str, Any], after: Mapping[str, Any]) -> RollbackCheck:
    """Key by key: every key of either state must have the same value in both."""
    diffs = tuple(
        f"{key}: before {before.get(key)!r}, after {after.get(key)!r}"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    )
    return RollbackCheck(dict(before), dict(after), diffs)


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    reasons: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"result": "pass" if self.passed else "fail", "reasons": list(self.reasons)}


def judge(
    hypothesis: Hypothesis,
    impact: Impact | None,
    rollback: RollbackCheck,
    failed_activities: Sequence[str] = (),
    overran_s: float | None = None,
) -> Verdict:
    """Every rule of the module doc; each broken rule is one reason."""
    reasons = [*_hypothesis_reasons(hypothesis)]
    reasons += [f"activity failed: {a}" for a in failed_activities]
    if overran_s is not None:
        reasons.append(f"the fault overran its maximum duration ({overran_s:g} s): aborted")
    if impact is None:
        reasons.append("no impact measured (no fault was injected, or no windows)")
    elif impact.recovered_at_s is None:
        reasons.append("the load never recovered to within tolerance of its baseline")
    if not rollback.equal:
        reasons.append("the stack after the rollback differs: " + "; ".join(rollback.differences))
    return Verdict(not reasons, tuple(reasons))


def _hypothesis_reasons(h: Hypothesis) -> list[str]:
    if h.before is not True:
        state = "was not checked" if h.before is None else "did not hold"
        return [f"the steady state {state} before the method (the method was skipped)"]
    reasons = []
    if not h.method_ran:
        reasons.append("the method did not run")
    if h.during is False:
        reasons.append("the steady state failed during the method")
    if h.after is not True:
        state = "was not checked" if h.after is None else "did not hold"
        reasons.append(f"the steady state {state} after the method")
    return reasons

"""The hypothesis, read from a Chaos Toolkit journal by its steady states, not its status.

Why not `status`/`deviated`: chaoslib 1.44 reports `status: completed, deviated: false` when
the steady state FAILED before the method (it then skips the method), and checks made during
the method only log. So each phase is judged from `steady_states.before/after`'s
`steady_state_met` and from every entry of `steady_states.during`. Pure: a journal dict in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Hypothesis", "activity_failures", "judge_hypothesis"]


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """Each phase met (True), not met (False) or not checked (None)."""

    before: bool | None
    during: bool | None
    during_checks: int
    after: bool | None
    method_ran: bool
    status: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "before": {"met": self.before},
            "during": {"met": self.during, "checks": self.during_checks},
            "after": {"met": self.after},
            "method_ran": self.method_ran,
            "journal_status": self.status,
        }


def _met(state: Any) -> bool | None:
    if not isinstance(state, Mapping) or "steady_state_met" not in state:
        return None
    return bool(state["steady_state_met"])


def judge_hypothesis(journal: Mapping[str, Any]) -> Hypothesis:
    states = journal.get("steady_states") or {}
    during = [s for s in states.get("during") or [] if isinstance(s, Mapping)]
    verdicts = [_met(s) for s in during]
    judged = [v for v in verdicts if v is not None]
    return Hypothesis(
        before=_met(states.get("before")),
        during=all(judged) if judged else None,
        during_checks=len(judged),
        after=_met(states.get("after")),
        method_ran=bool(journal.get("run")),
        status=str(journal.get("status", "")),
    )


def activity_failures(journal: Mapping[str, Any]) -> list[str]:
    """'name: error' of every method or rollback activity that did not succeed."""
    failed = []
    for entry in [*(journal.get("run") or []), *(journal.get("rollbacks") or [])]:
        if isinstance(entry, Mapping) and entry.get("status") not in (None, "succeeded"):
            name = (entry.get("activity") or {}).get("name", "?")
            failed.append(f"{name}: {_error_of(entry)}")
    return failed


def _error_of(entry: Mapping[str, Any]) -> str:
    trace = entry.get("exception")
    if isinstance(trace, list) and trace:
        return str(trace[-1]).strip()
    return str(entry.get("status"))

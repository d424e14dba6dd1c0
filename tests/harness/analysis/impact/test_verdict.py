"""Hypothesis from the journal's steady states (not its status), rollback check, verdict."""

from __future__ import annotations

from typing import Any

import pytest

from harness.analysis.impact import (
    FaultTimeline,
    Slo,
    activity_failures,
    analyse_impact,
    compare_states,
    judge,
    judge_hypothesis,
)
from tests.harness.analysis.impact.test_analysis import _day

STATE = {"server_faults": {}, "proxy_toxics": {}, "replicas_up": [True, True]}


def _journal(
    before: bool | None = True,
    during: list[bool] = (),
    after: bool | None = True,
    ran: bool = True,
    status: str = "completed",
) -> dict[str, Any]:
    def state(met: bool | None) -> dict[str, Any] | None:
        return None if met is None else {"steady_state_met": met, "probes": []}

    return {
        "status": status,
        "deviated": False,
        "steady_states": {
            "before": state(before),
            "after": state(after),
            "during": [state(m) for m in during],
        },
        "run": [{"activity": {"name": "kill"}, "status": "succeeded"}] if ran else [],
        "rollbacks": [],
    }


def _recovered() -> Any:
    return analyse_impact(_day(), FaultTimeline(20.0, 30.0), Slo(50, 0.01))


def test_before_failed_is_a_failed_game_day_though_chaoslib_says_completed() -> None:
    journal = _journal(before=False, after=None, ran=False)  # what chaoslib 1.44 writes
    assert journal["status"] == "completed" and journal["deviated"] is False
    hypothesis = judge_hypothesis(journal)
    assert hypothesis.before is False and not hypothesis.method_ran
    verdict = judge(hypothesis, _recovered(), compare_states(STATE, STATE))
    assert not verdict.passed
    assert verdict.reasons == (
        "the steady state did not hold before the method (the method was skipped)",
    )


def test_a_failed_check_during_the_method_fails() -> None:
    hypothesis = judge_hypothesis(_journal(during=[True, False, True]))
    assert hypothesis.during is False and hypothesis.during_checks == 3
    verdict = judge(hypothesis, _recovered(), compare_states(STATE, STATE))
    assert verdict.reasons == ("the steady state failed during the method",)


def test_all_held_passes() -> None:
    hypothesis = judge_hypothesis(_journal(during=[True, True]))
    assert hypothesis.to_dict() == {
        "before": {"met": True},
        "during": {"met": True, "checks": 2},
        "after": {"met": True},
        "method_ran": True,
        "journal_status": "completed",
    }
    verdict = judge(hypothesis, _recovered(), compare_states(STATE, STATE))
    assert verdict.passed and verdict.to_dict() == {"result": "pass", "reasons": []}
    assert judge_hypothesis(_journal()).during is None  # no check during: not judged


@pytest.mark.parametrize(
    ("journal", "reason"),
    [
        (_journal(after=False), "the steady state did not hold after the method"),
        (_journal(after=None), "the steady state was not checked after the method"),
        (
            _journal(before=None),
            "the steady state was not checked before the method (the method was skipped)",
        ),
        (_journal(ran=False), "the method did not run"),
    ],
)
def test_each_broken_phase_is_a_reason(journal: dict[str, Any], reason: str) -> None:
    verdict = judge(judge_hypothesis(journal), _recovered(), compare_states(STATE, STATE))
    assert verdict.reasons == (reason,)


def test_rollback_differences_fail_and_are_named() -> None:
    after = {**STATE, "proxy_toxics": {"replica-0": ["latency"]}, "replicas_up": [True, False]}
    check = compare_states(STATE, after)
    assert not check.equal
    assert check.differences == (
        "proxy_toxics: before {}, after {'replica-0': ['latency']}",
        "replicas_up: before [True, True], after [True, False]",
    )
    verdict = judge(judge_hypothesis(_journal()), _recovered(), check)
    assert verdict.reasons == (
        "the stack after the rollback differs: " + "; ".join(check.differences),
    )
    assert compare_states(STATE, {**STATE, "extra": 1}).differences == (
        "extra: before None, after 1",
    )


def test_unrecovered_overrun_and_failed_activities_fail() -> None:
    never = analyse_impact(_day(slow_until=49), FaultTimeline(20.0, 30.0), Slo(50, 0.01))
    verdict = judge(
        judge_hypothesis(_journal()),
        never,
        compare_states(STATE, STATE),
        failed_activities=["kill: boom"],
        overran_s=60,
    )
    assert verdict.reasons == (
        "activity failed: kill: boom",
        "the fault overran its maximum duration (60 s): aborted",
        "the load never recovered to within tolerance of its baseline",
    )
    nothing = judge(judge_hypothesis(_journal()), None, compare_states(STATE, STATE))
    assert nothing.reasons == ("no impact measured (no fault was injected, or no windows)",)


def test_activity_failures_from_the_journal() -> None:
    journal = _journal()
    journal["run"].append(
        {
            "activity": {"name": "restart"},
            "status": "failed",
            "exception": ["Traceback...", "ActivityFailed: no such replica\n"],
        }
    )
    journal["rollbacks"] = [{"activity": {"name": "clear"}, "status": "failed"}]
    assert activity_failures(journal) == [
        "restart: ActivityFailed: no such replica",
        "clear: failed",
    ]

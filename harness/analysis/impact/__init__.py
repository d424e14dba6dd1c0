"""Game-day impact analysis (pure: windows, a journal and states in; frozen records out).

    records         the inputs (SecondLike, FaultTimeline, Slo, RecoveryTolerance) and Impact
    analysis        analyse_impact: detection, recovery, failed/slowed requests, excess
                    latency, p99 and error rate before/during/after, error budget burned
    capacity_check  predict_survivors: do N - lost replicas carry the load within the SLO?
    journal         judge_hypothesis: each steady-state phase read from a Chaos Toolkit journal
    verdict         compare_states (rollback check) and judge (pass/fail with reasons)

No file I/O, no load engine, stack, CLI or chaos imports (import-linter keeps it so).
"""

from harness.analysis.impact.analysis import analyse_impact, phase_stats, slow_count
from harness.analysis.impact.capacity_check import (
    CapacityPrediction,
    observed_carried,
    predict_survivors,
)
from harness.analysis.impact.journal import Hypothesis, activity_failures, judge_hypothesis
from harness.analysis.impact.records import (
    FaultTimeline,
    Impact,
    PhaseStats,
    RecoveryTolerance,
    SecondLike,
    Slo,
)
from harness.analysis.impact.verdict import RollbackCheck, Verdict, compare_states, judge

__all__ = [
    "CapacityPrediction",
    "FaultTimeline",
    "Hypothesis",
    "Impact",
    "PhaseStats",
    "RecoveryTolerance",
    "RollbackCheck",
    "SecondLike",
    "Slo",
    "Verdict",
    "activity_failures",
    "analyse_impact",
    "compare_states",
    "judge",
    "judge_hypothesis",
    "observed_carried",
    "phase_stats",
    "predict_survivors",
    "slow_count",
]

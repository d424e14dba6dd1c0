"""Scheduled-run gates: `harness run --baseline last|RUN_ID` judges a run against a baseline.

    judge   the pure judge on two arms (asv's rule: a ratio beyond the margin AND a
            significant test, Holm across p50, p99, error rate, throughput), and the A/A
            false-positive measurement on synthetic runs
    runs    baseline lookup in history.duckdb, the gate on run directories, gate.json and
            the history row (kind "gate")
    junit   JUnit XML: one testcase per SLO check and per gate metric
"""

from harness.gate.judge import GATE_METRICS, GateConfig, GateMetric, judge_arms
from harness.gate.runs import GateResult, gate_run, no_baseline, record_gate, resolve_baseline

__all__ = [
    "GATE_METRICS",
    "GateConfig",
    "GateMetric",
    "GateResult",
    "gate_run",
    "judge_arms",
    "no_baseline",
    "record_gate",
    "resolve_baseline",
]

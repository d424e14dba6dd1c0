"""The gate on run directories: find the baseline, judge, keep the verdict (gate.json, history).

    from harness.gate import GateConfig, gate_run, resolve_baseline
    baseline = resolve_baseline("last", "results", scenario="nightly", exclude=run_id)
    result = gate_run("results/<run>", baseline, GateConfig(margin=0.05))
    result.regression, result.metrics, result.to_dict()

`last` is the newest *earlier complete* run of the same scenario in `<out>/history.duckdb`;
anything else is a run id known to that history, or a run directory. No baseline yet (the
first scheduled run) is not a failure: the result says so and `regression` is False.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from harness.analysis.ab.compare import WARN_EXCLUDED, WARN_TWO_RUNS
from harness.analysis.ab.histdata import ArmWindows
from harness.compare import read_run_arm
from harness.errors import ConfigError
from harness.files import atomic_write_json
from harness.gate.judge import GateConfig, GateMetric, judge_arms
from harness.results.history import (
    ComparisonRow,
    find_run,
    latest_complete_run,
    record_comparison,
)
from harness.results.store import Run, load_run

__all__ = [
    "GATE_FILE",
    "GateResult",
    "gate_run",
    "no_baseline",
    "record_gate",
    "resolve_baseline",
]

log = logging.getLogger(__name__)

GATE_FILE = "gate.json"
GATE_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class GateResult:
    """The gate's verdict on one run: "regression", "pass" or "no baseline"."""

    run_id: str
    scenario: str | None
    baseline_run_id: str | None
    baseline_dir: str | None
    verdict: str
    regression: bool
    margin: float
    alpha: float
    metrics: tuple[GateMetric, ...]
    summary: str
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "schema_version": GATE_SCHEMA_VERSION,
            "run_id": self.run_id,
            "scenario": self.scenario,
            "baseline_run_id": self.baseline_run_id,
            "baseline_dir": self.baseline_dir,
            "verdict": self.verdict,
            "regression": self.regression,
            "margin": self.margin,
            "alpha": self.alpha,
            "metrics": [m.to_dict() for m in self.metrics],
            "summary": self.summary,
            "warnings": list(self.warnings),
        }


def resolve_baseline(
    spec: str, out_dir: str | os.PathLike[str], *, scenario: str, exclude: str | None = None
) -> Path | None:
    """The baseline run directory `spec` names (None: `last` and no earlier complete run)."""
    if spec == "last":
        row = latest_complete_run(out_dir, scenario, exclude=exclude)
        return None if row is None or row.run_dir is None else Path(row.run_dir)
    path = Path(spec)
    if (path / "run.json").is_file():
        return path
    row = find_run(out_dir, spec)
    if row is not None and row.run_dir and (Path(row.run_dir) / "run.json").is_file():
        return Path(row.run_dir)
    if (Path(out_dir) / spec / "run.json").is_file():
        return Path(out_dir) / spec
    raise ConfigError(
        f"--baseline {spec}: no such run in {Path(out_dir) / 'history.duckdb'} "
        "and no run directory of that name"
    )


def no_baseline(run_id: str, scenario: str | None, config: GateConfig) -> GateResult:
    return GateResult(
        run_id, scenario, None, None, "no baseline", False, config.margin, config.alpha, (),
        "no earlier complete run of this scenario to compare with: nothing to gate (pass)",
    )  # fmt: skip


def _summary(metrics: tuple[GateMetric, ...], baseline_id: str, margin: float) -> str:
    bad = [m.metric for m in metrics if m.verdict == "regressed"]
    if bad:
        return f"REGRESSION against {baseline_id} beyond {margin:.0%} (significant): " + ", ".join(
            bad
        )
    open_ = [m.metric for m in metrics if m.verdict == "inconclusive"]
    tail = f" (inconclusive, too little data: {', '.join(open_)})" if open_ else ""
    return f"no significant regression beyond {margin:.0%} against {baseline_id}{tail}"


def _open_loop_unserved(base: Run, run: Run) -> tuple[int, int] | None:
    """Both runs open loop: each one's requests offered but never answered (dropped at the
    generator's outstanding cap + abandoned at the end); else None (throughput in req/s)."""
    out = []
    for one in (base, run):
        load = (one.meta.get("scenario_config") or {}).get("load") or {}
        if load.get("mode") != "open":
            return None
        loadgen = (one.summary or {}).get("loadgen") or {}
        out.append(int(loadgen.get("dropped", 0)) + int(loadgen.get("abandoned", 0)))
    return out[0], out[1]


def _data_shortfall(
    arms: tuple[ArmWindows, ArmWindows], roles: dict[str, str], config: GateConfig
) -> tuple[str, ...]:
    """Per run, the seconds the gate could use and why others were left out; a run below
    `min_windows` is named, so that "inconclusive" says which run to repeat."""
    out = []
    for arm, (role, run_id) in zip(arms, roles.items(), strict=True):
        if not arm.excluded_windows and arm.n_windows >= config.min_windows:
            continue
        line = (
            f"{role} {run_id!r}: {arm.n_windows} measured seconds, {arm.excluded_windows} "
            "left out (warm-up, or the load generator unhealthy)"
        )
        if arm.n_windows < config.min_windows:
            line += f": below the gate's {config.min_windows}, its latency is not judged"
        out.append(line)
    return tuple(out)


def gate_run(
    run_dir: str | os.PathLike[str],
    baseline_dir: str | os.PathLike[str],
    config: GateConfig | None = None,
) -> GateResult:
    """Judge the run in `run_dir` against the run in `baseline_dir` (whole runs, every
    endpoint merged, warm-up and unhealthy seconds left out)."""
    config = config or GateConfig()
    run, base = load_run(run_dir), load_run(baseline_dir)
    unserved = _open_loop_unserved(base, run)
    arms = (read_run_arm(base), read_run_arm(run))
    metrics, comparison = judge_arms(*arms, config, open_loop_unserved=unserved)
    regression = any(m.verdict == "regressed" for m in metrics)
    roles = {"baseline": base.run_id, "run": run.run_id}
    # a gate always compares two runs, and says itself which seconds it left out
    warnings = comparison.warnings_except(WARN_TWO_RUNS, WARN_EXCLUDED)
    warnings = _data_shortfall(arms, roles, config) + warnings
    if base.meta.get("scenario") != run.meta.get("scenario"):
        warnings += (f"the baseline is a run of scenario {base.meta.get('scenario')!r}",)
    return GateResult(
        run_id=run.run_id,
        scenario=run.meta.get("scenario"),
        baseline_run_id=base.run_id,
        baseline_dir=str(base.run_dir),
        verdict="regression" if regression else "pass",
        regression=regression,
        margin=config.margin,
        alpha=config.alpha,
        metrics=metrics,
        summary=_summary(metrics, base.run_id, config.margin),
        warnings=warnings,
    )


def record_gate(result: GateResult, run_dir: str | os.PathLike[str]) -> None:
    """Write `<run_dir>/gate.json` and the gate's row in `<run_dir>/../history.duckdb`."""
    path = Path(run_dir)
    atomic_write_json(path / GATE_FILE, result.to_dict())
    if result.baseline_run_id is None:
        return
    record_comparison(
        path.parent,
        ComparisonRow(
            compare_id=f"gate:{result.baseline_run_id}:{result.run_id}",
            kind="gate",
            created_at=datetime.now(UTC).replace(tzinfo=None),
            scenario=result.scenario,
            run_a=result.baseline_run_id,
            arm_a="all",
            run_b=result.run_id,
            arm_b="all",
            design="two-runs",
            verdict=result.verdict,
            regression=result.regression,
            margin=f"{result.margin:.0%}",
            summary=result.summary,
            metrics_json=json.dumps([m.to_dict() for m in result.metrics]),
        ),
    )

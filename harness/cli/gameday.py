"""`harness gameday EXPERIMENT --scenario SCENARIO.yaml [--out DIR] [--dry-run]`.

The recovery tolerance (`--k`, `--recovery-p99-factor`, `--recovery-p99-slack-ms`,
`--recovery-error-slack`) is recorded in gameday.json under `settings`.

EXPERIMENT is a Chaos Toolkit file, or the name of one in chaos/experiments/ (`node-kill`).
Parses, calls `harness.gameday.run_gameday` (or prints the plan with --dry-run: nothing is
started, nothing written), prints the verdict, the impact and where gameday.json is. Exit:
0 pass, 1 fail, 2 bad usage / refused plan, 3 infrastructure, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from harness.config import load_scenario
from harness.errors import ConfigError

EXPERIMENTS = Path(__file__).resolve().parents[2] / "chaos" / "experiments"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gameday", help="a chaos experiment under load, impact measured")
    p.add_argument("experiment", help="experiment file, or a name in chaos/experiments/")
    p.add_argument("--scenario", type=Path, required=True, help="scenario YAML (the load)")
    p.add_argument("--out", type=Path, default=Path("results"), help="results directory")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario field (repeatable)")  # fmt: skip
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                   help="override an experiment configuration key, e.g. fault_s=5")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="print the plan; start nothing")
    p.add_argument("--k", type=int, default=3, help="consecutive windows: steady, recovered")
    p.add_argument("--baseline-s", type=int, default=10, help="steady seconds before the fault")
    p.add_argument("--max-fault-s", type=float, default=120.0, help="longest method allowed")
    p.add_argument("--concurrency-per-replica", type=int, default=1,
                   help="requests one replica serves at once (capacity check)")  # fmt: skip
    p.add_argument("--no-capacity-gate", action="store_true",
                   help="record the capacity prediction instead of refusing on it")  # fmt: skip
    p.add_argument("--steady-timeout-s", type=float, help="wait this long for a steady state")
    p.add_argument("--recovery-p99-factor", type=float, default=2.0, metavar="F",
                   help="recovered: window p99 <= F x baseline p99 + slack")  # fmt: skip
    p.add_argument("--recovery-p99-slack-ms", type=float, default=5.0, metavar="MS",
                   help="recovered: the p99 slack in ms (default 5)")  # fmt: skip
    p.add_argument("--recovery-error-slack", type=float, default=0.01, metavar="R",
                   help="recovered: error rate <= baseline + R (default 0.01)")  # fmt: skip
    p.add_argument("--stack-state", type=Path, help="state file of a running stack")
    p.add_argument("--run-id", help="run id (default: time-scenario-random)")


def run(args: argparse.Namespace) -> int:
    from harness.gameday import GamedaySettings, dry_run, run_gameday

    scenario = load_scenario(args.scenario, overrides=args.overrides)
    settings = GamedaySettings(
        k=args.k, baseline_s=args.baseline_s, max_fault_s=args.max_fault_s,
        concurrency_per_replica=args.concurrency_per_replica,
        capacity_gate=not args.no_capacity_gate, steady_timeout_s=args.steady_timeout_s,
        stack_state=args.stack_state, config=_config(args.config),
        recovery_p99_factor=args.recovery_p99_factor,
        recovery_p99_slack_ms=args.recovery_p99_slack_ms,
        recovery_error_slack=args.recovery_error_slack,
    )  # fmt: skip
    experiment = experiment_path(args.experiment)
    console = Console(width=120) if not Console().is_terminal else Console()
    if args.dry_run:
        plan = dry_run(scenario, experiment, settings)
        console.print("[bold]game-day plan[/] (dry run: nothing started, nothing written)")
        for line in plan.describe():
            console.print(f"  {line}", highlight=False, markup=False)
        return 0
    outcome = run_gameday(scenario, experiment, args.out, settings, run_id=args.run_id)
    for line in summary_lines(outcome.gameday):
        console.print(line, highlight=False, markup=False)
    console.print(f"results: {outcome.run_dir}  (exit {outcome.exit_code})", markup=False)
    return outcome.exit_code


def experiment_path(name: str) -> Path:
    path = Path(name)
    if path.exists():
        return path
    named = EXPERIMENTS / f"{name}.json"
    if named.exists():
        return named
    raise ConfigError(f"experiment {name!r}: no such file, nor {named}")


def _config(pairs: list[str]) -> dict[str, Any]:
    config = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--config {pair!r}: expected KEY=VALUE")
        try:
            config[key] = json.loads(raw)
        except ValueError:
            config[key] = raw
    return config


def summary_lines(doc: dict[str, Any]) -> list[str]:
    verdict = doc.get("verdict") or {}
    lines = [f"game day: {str(verdict.get('result', 'fail')).upper()} ({doc.get('status')})"]
    lines += [f"  - {r}" for r in verdict.get("reasons") or doc.get("errors") or []]
    hyp = doc.get("hypothesis") or {}
    if hyp:
        lines.append(
            "hypothesis: "
            + ", ".join(
                f"{p} {_met(hyp.get(p, {}).get('met'))}" for p in ("before", "during", "after")
            )
        )
    impact = doc.get("impact") or {}
    if impact:
        lines.append(
            f"impact: detect {_s(impact.get('time_to_detect_s'))}, recover "
            f"{_s(impact.get('time_to_recover_s'))}, failed {impact.get('failed_requests')}, "
            f"slowed {impact.get('slowed_requests')}, excess latency "
            f"{_s(impact.get('excess_latency_s'))}"
        )
        for phase in ("before", "during", "after"):
            stats = impact.get(phase) or {}
            lines.append(
                f"  {phase:<6} p99 {stats.get('p99_ms')} ms, error rate "
                f"{stats.get('error_rate')}, {stats.get('requests')} requests"
            )
    rollback = doc.get("rollback") or {}
    if rollback:
        lines.append(f"rollback: state {'equal' if rollback.get('equal') else 'DIFFERS'}")
    return lines


def _met(value: object) -> str:
    return {True: "met", False: "NOT met", None: "not checked"}[value]  # type: ignore[index]


def _s(value: object) -> str:
    return "-" if value is None else f"{float(value):.2f} s"  # type: ignore[arg-type]

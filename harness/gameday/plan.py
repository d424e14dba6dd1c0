"""The game-day plan: what will run, for how long, against what -- checked before anything
starts, and printed whole by `--dry-run`.

Why a plan first: a game day injects real faults into real processes, so every refusal that
can be made on paper is made here (exit 2, nothing started): a target off loopback and off
the scenario's allow-list, a scenario without a p99 SLO, a method longer than the maximum
fault duration, and a load too short to hold baseline + fault + recovery (refused with the
arithmetic). The experiment's own configuration is resolved the way chaoslib resolves it
(the harness's values override the experiment's environment defaults), so the pauses the
plan adds up are the ones the run will take.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.analysis.impact import RecoveryTolerance
from harness.config import Scenario
from harness.config.scenario import is_loopback, target_host
from harness.errors import ConfigError

__all__ = ["RESTORING_ACTIONS", "GamedayPlan", "GamedaySettings", "make_plan"]

RESTORING_ACTIONS = frozenset(
    {"restart_replica", "remove_toxic", "remove_all_toxics", "clear_server_faults", "rollback_all"}
)
"""chaos.actions functions that take a fault away: the first one in a method ends the fault."""
CAPACITY_ACTIONS = frozenset({"kill_replica"})
UNREADY_POLICIES = frozenset({"unready"})
AUTO_WARMUP_S = 5.0  # allowance for `warmup: auto` before the steady windows count
MARGIN_S = 5.0  # restarts, rollbacks, the last windows closing


@dataclass(frozen=True, slots=True)
class GamedaySettings:
    """What the user chose besides the scenario and the experiment (CLI flags)."""

    k: int = 3
    baseline_s: int = 10  # steady seconds measured before the fault (at least k)
    max_fault_s: float = 120.0
    concurrency_per_replica: int = 1
    capacity_gate: bool = True
    steady_timeout_s: float | None = None  # None: the plan's warm-up + k windows + 10 s
    stack_state: Path | None = None  # a running (detached) stack, for a non-local scenario
    config: dict[str, Any] = field(default_factory=dict)  # experiment configuration overrides
    # "back within tolerance of the baseline" (see RecoveryTolerance): p99 <= factor x baseline
    # p99 + slack, error rate <= baseline + error slack, for k consecutive windows
    recovery_p99_factor: float = 2.0
    recovery_p99_slack_ms: float = 5.0
    recovery_error_slack: float = 0.01

    @property
    def tolerance(self) -> RecoveryTolerance:
        return RecoveryTolerance(
            k=self.k,
            p99_factor=self.recovery_p99_factor,
            p99_slack_ms=self.recovery_p99_slack_ms,
            error_rate_slack=self.recovery_error_slack,
        )


@dataclass(frozen=True, slots=True)
class GamedayPlan:
    scenario: Scenario
    experiment: dict[str, Any]
    experiment_path: Path
    settings: GamedaySettings
    configuration: dict[str, Any]  # the experiment's configuration as it will run
    method_s: float  # the method's pauses added up
    pauses: tuple[tuple[str, float], ...]
    warmup_s: float
    load_s: float
    needed_s: float
    replicas_lost: int
    rollbacks: tuple[str, ...]

    @property
    def slo_p99_ms(self) -> float:
        return float(self.scenario.slo.p99_ms or 0)

    @property
    def slo_error_rate(self) -> float:
        rate = self.scenario.slo.error_rate
        return 0.01 if rate is None else float(rate)

    @property
    def steady_timeout_s(self) -> float:
        chosen = self.settings.steady_timeout_s
        return chosen if chosen is not None else self.warmup_s + self.settings.k + 10.0

    def describe(self) -> list[str]:
        """The plan in lines a person reads (`--dry-run` prints them)."""
        sc, st = self.scenario, self.settings
        stack = (
            f"local stack: {sc.stack.replicas} replica(s), fault proxies, device {sc.stack.device}"
            if sc.stack is not None and sc.stack.local
            else f"running stack at {sc.target.url} (state {st.stack_state or 'none'})"
        )
        pauses = ", ".join(f"{name} {s:g}" for name, s in self.pauses) or "none"
        return [
            f"experiment: {self.experiment.get('title', '?')} ({self.experiment_path})",
            f"stack: {stack}",
            f"load: {sc.load.mode} loop, level {sc.load.level()}, {self.load_s:g} s "
            f"(scenario {sc.name})",
            f"SLO: p99 <= {self.slo_p99_ms:g} ms, error rate <= {self.slo_error_rate:g}",
            f"steady: {st.k} consecutive windows within the SLO (wait <= "
            f"{self.steady_timeout_s:g} s), then a baseline of {max(st.k, st.baseline_s)} s",
            f"recovered: {st.k} consecutive windows with p99 <= {st.recovery_p99_factor:g} x "
            f"baseline p99 + {st.recovery_p99_slack_ms:g} ms and error rate <= baseline + "
            f"{st.recovery_error_slack:g}",
            f"capacity check: {self.replicas_lost} replica(s) lost -> "
            + ("refuse if the rest cannot carry the load" if st.capacity_gate else "record only"),
            f"fault: method pauses {pauses} = {self.method_s:g} s (max {st.max_fault_s:g} s)",
            f"durations: {self.arithmetic()}",
            f"rollbacks: {', '.join(self.rollbacks) or 'none'}; then every fault and toxic "
            "cleared and dead replicas restarted if anything is left",
        ]

    def arithmetic(self) -> str:
        k, base = self.settings.k, max(self.settings.k, self.settings.baseline_s)
        return (
            f"{self.warmup_s:g} (warm-up) + {base} (baseline) + {self.method_s:g} (method) "
            f"+ {k} (recovery windows) + {MARGIN_S:g} (margin) = {self.needed_s:g} s "
            f"<= load {self.load_s:g} s"
        )


def make_plan(scenario: Scenario, experiment_path: Path, settings: GamedaySettings) -> GamedayPlan:
    """Load and check everything; ConfigError (exit 2) for the first thing that is wrong."""
    experiment = _load_experiment(experiment_path)
    _check_target(scenario, settings)
    if scenario.slo.p99_ms is None:
        raise ConfigError(f"{scenario.name}: a game day needs a p99 SLO (slo.p99_ms)")
    if settings.k < 1:
        raise ConfigError(f"--k: must be >= 1, got {settings.k}")
    _check_tolerance(settings)
    configuration = resolve_configuration(experiment, _harness_config(scenario, settings))
    pauses = method_pauses(experiment, configuration)
    method_s = sum(s for _, s in pauses)
    if method_s > settings.max_fault_s:
        raise ConfigError(
            f"{experiment_path}: the method pauses {method_s:g} s, more than the maximum "
            f"fault duration {settings.max_fault_s:g} s (--max-fault-s)"
        )
    warmup = scenario.load.warmup
    warmup_s = AUTO_WARMUP_S if warmup == "auto" else float(warmup)
    needed = warmup_s + max(settings.k, settings.baseline_s) + method_s + settings.k + MARGIN_S
    plan = GamedayPlan(
        scenario, experiment, experiment_path, settings, configuration, method_s, pauses,
        warmup_s, scenario.total_duration_s(), needed, replicas_lost(experiment, configuration),
        tuple(str(r.get("name", "?")) for r in experiment.get("rollbacks") or ()),
    )  # fmt: skip
    if plan.load_s < needed:
        raise ConfigError(
            f"{scenario.name}: the load is too short for this game day: {plan.arithmetic()} "
            "does not hold; lengthen load.duration"
        )
    return plan


def _check_tolerance(settings: GamedaySettings) -> None:
    checks = (
        ("--recovery-p99-factor", settings.recovery_p99_factor, 1.0, math.inf),
        ("--recovery-p99-slack-ms", settings.recovery_p99_slack_ms, 0.0, math.inf),
        ("--recovery-error-slack", settings.recovery_error_slack, 0.0, 1.0),
    )
    for flag, value, low, high in checks:
        if not (math.isfinite(value) and low <= value <= high):
            bound = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
            raise ConfigError(f"{flag}: must be {bound}, got {value:g}")


def _load_experiment(path: Path) -> dict[str, Any]:
    from chaoslib.exceptions import ChaosException
    from chaoslib.experiment import ensure_experiment_is_valid
    from chaoslib.loader import load_experiment

    try:
        experiment = load_experiment(str(path))
        ensure_experiment_is_valid(experiment)
    except (ChaosException, OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a valid Chaos Toolkit experiment ({exc})") from exc
    return experiment


def _check_target(scenario: Scenario, settings: GamedaySettings) -> None:
    """Loopback or the scenario's explicit allow-list (target.allow_hosts), nothing else."""
    local = scenario.stack is not None and scenario.stack.local
    if local:
        return  # the local stack binds loopback only (LocalStack refuses anything else)
    host = target_host(scenario.target.url) or ""
    if not is_loopback(host) and host not in scenario.target.allow_hosts:
        raise ConfigError(
            f"{scenario.name}: target host {host!r} is neither loopback nor in "
            "target.allow_hosts: no fault is injected there"
        )
    if settings.stack_state is None:
        raise ConfigError(
            f"{scenario.name}: no local stack in the scenario; give the running stack's "
            "state file (--stack-state, written by `harness stack up --detach`)"
        )


def _harness_config(scenario: Scenario, settings: GamedaySettings) -> dict[str, Any]:
    """What the harness decides, as configuration values (the user's --config wins)."""
    ours = {
        "slo_windows": settings.k,
        "max_p99_ms": float(scenario.slo.p99_ms or 0),
        "max_error_rate": 0.01 if scenario.slo.error_rate is None else scenario.slo.error_rate,
        "fault_max_s": settings.max_fault_s,
    }
    return {**ours, **settings.config}


def resolve_configuration(experiment: dict[str, Any], overrides: dict[str, Any]) -> dict:
    """The experiment's configuration with `overrides` applied, as chaoslib will see it
    (keys the experiment does not declare are ignored, as chaoslib ignores them)."""
    from chaoslib.configuration import load_configuration
    from chaoslib.exceptions import ChaosException

    declared = experiment.get("configuration") or {}
    known = {k: v for k, v in overrides.items() if k in declared}
    try:
        return load_configuration(copy.deepcopy(declared), dict(known))
    except ChaosException as exc:
        raise ConfigError(f"experiment configuration: {exc}") from exc


def method_pauses(experiment: dict[str, Any], configuration: dict) -> tuple[tuple[str, float], ...]:
    from chaoslib import substitute

    pauses = []
    for activity in experiment.get("method") or ():
        for when in ("before", "after"):
            raw = (activity.get("pauses") or {}).get(when)
            if raw is None:
                continue
            seconds = float(substitute(raw, configuration, {}))
            if not math.isfinite(seconds) or seconds < 0:
                raise ConfigError(f"{activity.get('name')}: pause {raw!r} is not >= 0 s")
            pauses.append((f"{activity.get('name')} ({when})", seconds))
    return tuple(pauses)


def replicas_lost(experiment: dict[str, Any], configuration: dict) -> int:
    """Replicas the method takes out of service: killed, or made unready by device loss."""
    from chaoslib import substitute

    lost = 0
    for activity in experiment.get("method") or ():
        provider = activity.get("provider") or {}
        func = provider.get("func")
        args = substitute(provider.get("arguments") or {}, configuration, {})
        if func in CAPACITY_ACTIONS or (
            func == "set_device_loss" and args.get("policy") in UNREADY_POLICIES
        ):
            lost += 1
    return lost

"""The sweep driver: the highest load that meets the SLO, one ordinary run per step."""

from harness.sweep.driver import (
    UNMEASURED_NOTE,
    RunStep,
    SweepInterrupted,
    SweepOutcome,
    SweepSettings,
    run_sweep,
    step_scenario,
    sweep_settings,
)

__all__ = [
    "UNMEASURED_NOTE",
    "RunStep",
    "SweepInterrupted",
    "SweepOutcome",
    "SweepSettings",
    "run_sweep",
    "step_scenario",
    "sweep_settings",
]

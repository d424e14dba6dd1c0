"""Serving Harness: load testing, chaos and capacity planning for ML model serving.

The documented library entry points (loaded on first use, so that importing a part of the
harness -- e.g. from a Locust process -- stays cheap):

    load_scenario(path)                    -> Scenario   (validated; errors name the field)
    run_scenario(scenario, out_dir)        -> RunOutcome (run dir, summary, exit code)
    load_run(run_dir)                      -> Run        (meta, summary, events, windows)
    compare_runs(run_a[, run_b])           -> Comparison (A/B verdicts per metric, overall)
    run_sweep(scenario, out, settings)     -> SweepOutcome; sweep_settings(scenario, ...)
    plan_capacity(inputs, operating_point) -> CapacityPlan (every step of the arithmetic)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_scenario": "harness.config",
    "run_scenario": "harness.load.api",
    "load_run": "harness.results.store",
    "compare_runs": "harness.compare",
    "run_sweep": "harness.sweep",
    "sweep_settings": "harness.sweep",
    "plan_capacity": "harness.analysis.capacity.planner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

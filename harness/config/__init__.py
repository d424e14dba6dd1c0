"""Scenario configuration: pydantic models, duration parsing, overrides and the loader.

    from harness.config import load_scenario
    scenario = load_scenario("scenarios/steady.yaml", overrides=["load.rate=300"])
    scenario.total_duration_s(); scenario.rate_at(12.5); scenario.endpoints()

Leaf package: the models do no I/O; only `loader` reads files.
"""

from harness.config.durations import Duration, format_duration, parse_duration
from harness.config.loader import (
    field_path,
    format_validation_error,
    load_scenario,
    validate_scenario,
)
from harness.config.overrides import ENV_PREFIX, apply_overrides, env_overrides, parse_override
from harness.config.scenario import (
    ClosedLoad,
    Endpoint,
    InputsConfig,
    OpenLoad,
    Scenario,
    SloConfig,
    SplitArm,
    StabilityConfig,
    StackConfig,
    Stage,
    TargetConfig,
    TraceConfig,
    ValidityConfig,
    endpoint_name,
    is_loopback,
    target_host,
)
from harness.config.shapes import Level, level_at, stage_index_at

__all__ = [
    "ENV_PREFIX",
    "ClosedLoad",
    "Duration",
    "Endpoint",
    "InputsConfig",
    "Level",
    "OpenLoad",
    "Scenario",
    "SloConfig",
    "SplitArm",
    "StabilityConfig",
    "StackConfig",
    "Stage",
    "TargetConfig",
    "TraceConfig",
    "ValidityConfig",
    "apply_overrides",
    "endpoint_name",
    "env_overrides",
    "field_path",
    "format_duration",
    "format_validation_error",
    "is_loopback",
    "level_at",
    "load_scenario",
    "parse_duration",
    "parse_override",
    "stage_index_at",
    "target_host",
    "validate_scenario",
]

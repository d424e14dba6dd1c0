"""Resolve a validated scenario against a live target into the RunSpec Locust processes read.

Why one step, before any load: everything that can fail without load (the target's readiness,
a model missing from it, a dataset or trace file that is not there) fails here, once, with a
clear error — and everything the workers need (the real URL, each arm's input metadata, the
dataset file, the seed) is fixed and recorded, so every worker runs the same thing.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import Endpoint, Scenario
from harness.errors import ConfigError, HarnessError
from harness.load.locust_side import REPO_ROOT
from harness.load.target import fetch_input_specs, wait_ready
from harness.loadgen.health import HealthThresholds
from harness.loadgen.payloads import TensorSpec
from harness.loadgen.spec import EndpointSpec, RunSpec

log = logging.getLogger(__name__)



@dataclass(frozen=True, slots=True)
class Target:
    """Where the load goes: the URL Locust uses and where to scrape metrics."""

    url: str
    metrics_urls: tuple[str, ...] = ()
    model_repository: Path | None = None
    pids: tuple[int, ...] = field(default=())


def resolve_path(text: str, what: str) -> Path:
    """A file named in a scenario: absolute, or relative to the cwd, then to the repository."""
    path = Path(text).expanduser()
    for candidate in (path, Path.cwd() / path, REPO_ROOT / path):
        if candidate.is_file():
            return candidate.resolve()
    raise ConfigError(f"{what}: file {text!r} not found (relative paths: cwd, then repository)")


def dataset_path(scenario: Scenario, repository: Path | None) -> Path | None:
    """The `.npz` (X, y) for `inputs.source: dataset`: `<repository>/<name>/test_set.npz`."""
    inputs = scenario.target.inputs
    if inputs.source != "dataset":
        return None
    name = str(inputs.dataset)
    if name.endswith(".npz"):
        return resolve_path(name, "target.inputs.dataset")
    from harness.stack.models import default_model_repository, ensure_default_models

    roots = [r for r in (repository, default_model_repository()) if r is not None]
    for root in roots:
        candidate = Path(root) / name / "test_set.npz"
        if candidate.is_file():
            return candidate
    if name == "digits":  # the reference repository builds it locally, no download
        return ensure_default_models() / "digits" / "test_set.npz"
    raise ConfigError(f"target.inputs.dataset: no test set for {name!r} under {roots}")


def _input_specs(scenario: Scenario, target: Target, arm: Endpoint) -> tuple[TensorSpec, ...]:
    """The arm's inputs from its metadata. TF Serving's metadata route is optional for dataset
    inputs: one input in row format (`instances`) needs no name."""
    protocol = scenario.target.protocol
    try:
        return fetch_input_specs(protocol, target.url, arm.model, arm.version)
    except HarnessError as exc:
        if protocol != "tfserving" or scenario.target.inputs.source != "dataset":
            raise
        log.warning(
            "no TF Serving metadata for %s (%s); dataset rows sent as instances", arm.name, exc
        )
        return (TensorSpec("instances", "FP32", (-1,)),)


def resolve_spec(
    scenario: Scenario,
    run_dir: Path,
    target: Target,
    ready_timeout_s: float = 60.0,
    record_raw: bool = False,
) -> RunSpec:
    protocol = scenario.target.protocol
    arms = scenario.endpoints()
    wait_ready(protocol, target.url, [(a.model, a.version) for a in arms], ready_timeout_s)
    endpoints = tuple(
        EndpointSpec(a.name, a.model, a.version, a.weight, _input_specs(scenario, target, a))
        for a in arms
    )
    load = scenario.load
    trace = None
    if load.is_trace() and load.trace is not None:
        trace = str(resolve_path(load.trace.path, "load.trace.path"))
    data = dataset_path(scenario, target.model_repository)
    seed = load.seed if load.seed is not None else secrets.randbits(31)
    return RunSpec(
        run_dir=str(run_dir),
        scenario=scenario.model_dump(mode="json"),
        target_url=target.url,
        endpoints=endpoints,
        seed=seed,
        dataset_path=None if data is None else str(data),
        trace_path=trace,
        health=HealthThresholds(
            max_cpu_percent=scenario.loadgen.max_cpu_percent,
            max_lag_p99_ms=scenario.loadgen.max_lag_p99_ms,
            late_ms=scenario.loadgen.late_ms,
        ),
        drain_s=scenario.loadgen.drain,
        record_raw=record_raw,
    )

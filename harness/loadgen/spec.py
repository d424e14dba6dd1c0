"""RunSpec: everything a Locust process needs to know about a run, resolved by the orchestrator.

Why a file handed over through one environment variable (`HARNESS_RUN_SPEC`): the Locust master
and workers are separate processes (Locust monkey-patches them with gevent), so the scenario
they run must be resolved once — overrides applied, the stack's real URL filled in, model
metadata and the dataset located, the seed fixed — and then read, not re-derived, by every
process. The scenario itself travels as its validated, resolved dict and is re-validated by the
same pydantic models on the other side.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.config import Scenario, validate_scenario
from harness.files import atomic_write_text
from harness.loadgen.health import HealthThresholds
from harness.loadgen.payloads import TensorSpec

ENV_VAR = "HARNESS_RUN_SPEC"


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """One traffic-split arm as the load generator sees it (weights sum to 1)."""

    name: str
    model: str
    version: str | None
    weight: float
    inputs: tuple[TensorSpec, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = [spec.to_dict() for spec in self.inputs]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EndpointSpec:
        inputs = tuple(TensorSpec.from_dict(item) for item in data.get("inputs", ()))
        return cls(data["name"], data["model"], data["version"], float(data["weight"]), inputs)


@dataclass(frozen=True, slots=True)
class RunSpec:
    run_dir: str
    scenario: dict[str, Any]  # the resolved scenario (Scenario.model_dump(mode="json"))
    target_url: str  # the URL Locust uses as host (a stack's real URL when local)
    endpoints: tuple[EndpointSpec, ...]
    seed: int
    dataset_path: str | None = None  # .npz with X, y when inputs.source is "dataset"
    trace_path: str | None = None  # resolved path of the trace for arrival "trace"
    health: HealthThresholds = field(default_factory=HealthThresholds)
    drain_s: float = 10.0  # open loop: how long in-flight requests may finish after the end
    start_lead_s: float = 1.0  # second 0 begins this long after the master starts the test
    random_pool: int = 64  # random-input samples pre-encoded per endpoint and worker
    record_raw: bool = False  # tests: also log every request to stream/raw-<worker>.jsonl

    @property
    def stream_dir(self) -> Path:
        return Path(self.run_dir) / "stream"

    def parsed_scenario(self) -> Scenario:
        return validate_scenario(self.scenario, source="run spec")

    def to_json(self) -> str:
        data = {name: getattr(self, name) for name in self.__slots__}
        data["endpoints"] = [e.to_dict() for e in self.endpoints]
        data["health"] = self.health.to_dict()
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        data = json.loads(text)
        data["endpoints"] = tuple(EndpointSpec.from_dict(e) for e in data["endpoints"])
        data["health"] = HealthThresholds(**data["health"])
        return cls(**data)

    def write(self, path: Path) -> Path:
        atomic_write_text(path, self.to_json())
        return path

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> RunSpec:
        env = os.environ if environ is None else environ
        path = env.get(ENV_VAR)
        if not path:
            raise RuntimeError(
                f"{ENV_VAR} is not set: scenarios/locustfile.py is started by `harness run`, "
                "which writes the resolved run spec and points this variable at it"
            )
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

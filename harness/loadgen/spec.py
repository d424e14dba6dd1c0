"""RunSpec: everything a Locust process needs to know about a run, resolved by the orchestrator.

Why a file handed over through one environment variable (`HARNESS_RUN_SPEC`): the Locust master
and workers are separate processes (Locust monkey-patches them with gevent), so the scenario
they run must be resolved once — overrides applied, the stack's real URL filled in, model
metadata and the dataset located, the seed fixed — and then read, not re-derived, by every
process. The scenario itself travels as its validated, resolved dict and is re-validated by the
same pydantic models on the other side.

Workers on other machines (`harness worker --master HOST:PORT`) share no file system with the
master: they ask the master for the spec over Locust's own messaging before they become Locust
workers (`scenarios.launch`); the master answers with the spec, the files it names (dataset,
trace) and its clock and version. `JOIN_*` below is that exchange's contract; the worker
refuses to join when `join_refusal` says so (another harness version, or a clock further from
the master's than `max_clock_skew_ms`: windows are per second of a common epoch).
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
JOIN_HELLO = "harness_hello"  # worker -> master {version, host, seq}; master -> worker (reply)
JOIN_REPORT = "harness_join"  # worker -> master: the verdict on joining (JoinReport.to_dict)


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
    external_workers: int = 0  # workers on other machines (`harness worker`), beside local ones
    max_clock_skew_ms: float = 50.0  # a remote worker further from the master's clock refuses

    @property
    def total_workers(self) -> int:
        """Every worker the master waits for and the schedule is dealt to."""
        return self.parsed_scenario().workers + self.external_workers

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


# -- joining from another machine ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClockSample:
    """One request/response exchange: worker clock at send and receive, master clock between."""

    sent: float
    master: float
    received: float

    @property
    def rtt(self) -> float:
        return self.received - self.sent

    @property
    def skew(self) -> float:
        """Master minus worker clock, assuming the master answered half way (error <= rtt/2)."""
        return self.master - (self.sent + self.received) / 2.0


def best_sample(samples: list[ClockSample]) -> ClockSample:
    """The exchange with the shortest round trip (the tightest bound, as NTP's filter)."""
    if not samples:
        raise ValueError("no clock samples")
    return min(samples, key=lambda s: s.rtt)


@dataclass(frozen=True, slots=True)
class JoinReport:
    """A remote worker's verdict on joining, sent to the master and kept in the summary."""

    host: str
    version: str
    master_version: str
    clock_skew_ms: float
    rtt_ms: float
    max_clock_skew_ms: float
    refused: str | None = None  # why the worker refused to join; None: it joined

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def join_refusal(
    worker_version: str, master_version: str, skew_ms: float, limit_ms: float, master: str
) -> str | None:
    """Why a worker must not join the master at `master`, in words; None when it may."""
    if worker_version != master_version:
        return (
            f"this worker runs harness {worker_version} but the master at {master} runs "
            f"harness {master_version}: install the same version on every machine"
        )
    if abs(skew_ms) > limit_ms:
        return (
            f"this worker's clock is {skew_ms:+.3f} ms from the master's at {master} "
            f"(limit {limit_ms:g} ms; windows are per second of one epoch): "
            "synchronise the clocks (NTP/chrony) or raise --max-clock-skew-ms"
        )
    return None

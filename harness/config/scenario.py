"""Scenario models: the one declaration of what a scenario YAML file may say.

Every model forbids unknown keys (a typo must fail loudly, not run a different test) and is
frozen (a validated scenario is a value; overrides go through `load_scenario`). Durations are
stored as float seconds (see `durations`). The smallest valid scenario:

    name: steady-digits
    target: {url: "http://127.0.0.1:8000", protocol: kserve-http, model: digits}
    load: {mode: open, arrival: poisson, rate: 200, duration: 30s}
    slo: {p99_ms: 100, error_rate: 0.01}

Safety: a scenario may only aim load at a loopback host (127.0.0.0/8, localhost, ::1) unless
the host is listed in `target.allow_hosts`.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from harness.config.durations import Duration
from harness.config.shapes import Level, level_at

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
PositiveFloat = Annotated[float, Field(gt=0)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputsConfig(StrictModel):
    """How request tensors are made: random from model metadata, or samples of a dataset."""

    source: Literal["random", "dataset"] = "random"
    dataset: str | None = None
    batch_size: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _dataset_named(self) -> InputsConfig:
        if self.source == "dataset" and not self.dataset:
            raise ValueError("source 'dataset' needs a dataset name (e.g. dataset: digits)")
        return self


class TargetConfig(StrictModel):
    allow_hosts: tuple[str, ...] = ()
    """Non-loopback hosts this scenario may load (explicit opt-in; empty = loopback only)."""
    url: str
    protocol: Literal["kserve-http", "kserve-grpc", "tfserving"]
    model: str = Field(min_length=1)
    version: str | None = None
    inputs: InputsConfig = InputsConfig()

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("url")
    @classmethod
    def _host_allowed(cls, url: str, info: ValidationInfo) -> str:
        host = target_host(url)
        if not host:
            raise ValueError(f"{url!r} has no host")
        if not is_loopback(host) and host not in info.data.get("allow_hosts", ()):
            raise ValueError(
                f"host {host!r} is not loopback; loads only target 127.0.0.1/localhost/::1 "
                "unless the host is listed in target.allow_hosts"
            )
        return url


class StackConfig(StrictModel):
    """Start the local reference stack; absent from the scenario = use `target.url` as is."""

    local: bool = True
    replicas: int = Field(1, ge=1, le=64)
    workers: int = Field(1, ge=1, le=64)
    """Server processes per replica sharing its ports (`harness serve --workers`)."""
    model_repository: str | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    monitor: bool = False
    """True: a Prometheus scrapes every replica (harness.monitor); stopped with the stack."""


class Stage(StrictModel):
    """One stage of a step/ramp/spike/soak shape: hold (or ramp to) a rate or user count."""

    duration: Duration
    rate: float | None = Field(None, ge=0)
    users: int | None = Field(None, ge=0)
    spawn_rate: PositiveFloat | None = None
    ramp: bool = False
    """True: change linearly from the previous stage's level (0 before the first)."""


class TraceConfig(StrictModel):
    path: str
    speedup: PositiveFloat = 1.0
    column: str = "TIMESTAMP"


class _LoadBase(StrictModel):
    duration: Duration | None = None
    stages: tuple[Stage, ...] = ()
    warmup: Literal["auto"] | Duration = "auto"
    seed: int | None = None

    def _check_length(self, level: str) -> None:
        if not self.stages:
            if self.duration is None:
                raise ValueError("needs a duration (e.g. duration: 30s) or stages")
            return
        missing = [i for i, s in enumerate(self.stages) if getattr(s, level) is None]
        if missing:
            raise ValueError(f"stages {missing} need a {level} value")
        total = sum(s.duration for s in self.stages)
        if self.duration is not None and abs(self.duration - total) > 1e-9:
            raise ValueError(f"duration {self.duration:g}s differs from the stages' {total:g}s")

    # Load-kind behaviour lives on the models, so callers ask instead of switching on type.
    def level(self) -> float | None:
        """The flat level (rate in req/s, or users); None when stages or a trace set it."""
        raise NotImplementedError

    def is_trace(self) -> bool:
        """True for a trace replay (its level is the trace's, not a number)."""
        return False

    def thinks(self) -> bool:
        """True when users wait between requests (their count is then not the server's
        concurrency)."""
        return False

    def unsteady_reason(self) -> str | None:
        """Why this load never holds one level, so that a stability verdict does not apply
        to it; None when it holds (flat, or a last stage that holds) and must be stable."""
        if self.stages and self.stages[-1].ramp:
            return "the last stage ramps: the load never holds one level"
        return None

    def held_at(self, level: float, duration_s: float) -> _LoadBase:
        """This load held flat at `level` for `duration_s` (stages dropped), validated."""
        raise NotImplementedError

    def _held(self, duration_s: float, **level: float) -> _LoadBase:
        data = {**self.model_dump(mode="json"), "stages": [], "duration": duration_s, **level}
        return type(self).model_validate(data)

    def total_duration_s(self) -> float:
        if self.stages:
            return float(sum(s.duration for s in self.stages))
        if self.duration is None:  # only a trace replay may omit it (validated)
            raise ValueError(
                "a trace replay without a duration lasts the trace's (scaled) span; "
                "read it from the trace (harness.loadgen.arrivals.run_length_s)"
            )
        return self.duration


class OpenLoad(_LoadBase):
    """Open loop: requests start on a schedule whatever the responses do."""

    mode: Literal["open"]
    arrival: Literal["constant", "poisson", "trace"] = "constant"
    rate: PositiveFloat | None = None
    trace: TraceConfig | None = None
    max_outstanding: int = Field(1000, ge=1)
    # The driver wakes at most once per `timer_slack_ms`; what falls due in between is sent
    # together. Waking up costs tens of microseconds of CPU on virtual machines, so at high
    # rates this buys throughput for a bounded, measured lateness (0: wake for every request).
    timer_slack_ms: float = Field(0.2, ge=0.0, le=10.0)

    @model_validator(mode="after")
    def _consistent(self) -> OpenLoad:
        if self.arrival == "trace":
            if self.trace is None:
                raise ValueError("arrival 'trace' needs trace: {path: ...}")
            if self.stages:
                raise ValueError("arrival 'trace' replays the trace; stages do not apply")
            return self  # duration optional: without one the whole trace is replayed
        elif self.trace is not None:
            raise ValueError(f"trace is only used with arrival 'trace', not {self.arrival!r}")
        elif (self.rate is None) == (not self.stages):
            raise ValueError("open load needs either a rate (requests/s) or stages with rates")
        self._check_length("rate")
        return self

    def level(self) -> float | None:
        return self.rate

    def is_trace(self) -> bool:
        return self.arrival == "trace"

    def unsteady_reason(self) -> str | None:
        if self.is_trace():
            return "trace replay: the rate follows the trace (non-stationary by design)"
        return super().unsteady_reason()

    def held_at(self, level: float, duration_s: float) -> OpenLoad:
        if self.is_trace():
            raise ValueError("a trace replay cannot be held at a rate")
        return self._held(duration_s, rate=float(level))  # type: ignore[return-value]


WaitTime = float | tuple[float, float]


class ClosedLoad(_LoadBase):
    """Closed loop: N users, each sends, waits for the answer, waits `wait_time`, repeats."""

    mode: Literal["closed"]
    users: int | None = Field(None, ge=1)
    spawn_rate: PositiveFloat | None = None
    wait_time: WaitTime = 0.0

    @field_validator("wait_time")
    @classmethod
    def _wait_ok(cls, value: WaitTime) -> WaitTime:
        low, high = value if isinstance(value, tuple) else (value, value)
        if low < 0 or high < low:
            raise ValueError("must be seconds >= 0, or [min, max] with 0 <= min <= max")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ClosedLoad:
        if (self.users is None) == (not self.stages):
            raise ValueError("closed load needs either users or stages with users")
        self._check_length("users")
        return self

    def level(self) -> float | None:
        return None if self.users is None else float(self.users)

    def thinks(self) -> bool:
        wait = self.wait_time
        return (wait[1] if isinstance(wait, tuple) else wait) > 0

    def held_at(self, level: float, duration_s: float) -> ClosedLoad:
        users = int(level)
        spawn = max(float(level), float(self.spawn_rate or 0.0))  # all users at once
        return self._held(duration_s, users=users, spawn_rate=spawn)  # type: ignore[return-value]


LoadConfig = Annotated[OpenLoad | ClosedLoad, Field(discriminator="mode")]


class SplitArm(StrictModel):
    """One arm of an A/B traffic split; weights are relative (90/10 == 0.9/0.1)."""

    model: str = Field(min_length=1)
    version: str | None = None
    weight: PositiveFloat

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class SloConfig(StrictModel):
    p50_ms: PositiveFloat | None = None
    p95_ms: PositiveFloat | None = None
    p99_ms: PositiveFloat | None = None
    p999_ms: PositiveFloat | None = None
    error_rate: float | None = Field(None, ge=0, le=1)
    min_throughput_rps: PositiveFloat | None = None


class StabilityConfig(StrictModel):
    """perf_analyzer's rule: `windows` consecutive windows of `window_s` agree within tolerance."""

    windows: int = Field(3, ge=2)
    window_s: Duration = 5.0
    tolerance: float = Field(0.10, gt=0, lt=1)


class ValidityConfig(StrictModel):
    stability: StabilityConfig = StabilityConfig()
    min_duration_s: float = Field(10.0, ge=0)
    min_requests: int = Field(500, ge=0)


class LoadgenConfig(StrictModel):
    """The load generator's own limits: a worker-second beyond them is flagged unhealthy
    and left out of verdicts; `drain` bounds the wait for answers after the load ends."""

    max_cpu_percent: float = Field(90.0, gt=0, le=100)
    max_lag_p99_ms: float = Field(10.0, gt=0)
    late_ms: float = Field(10.0, gt=0)  # a request sent this late counts as "late"
    drain: Duration = 10.0


class Endpoint(StrictModel):
    """A (model, version) the load hits, named like the results' `endpoint` column."""

    name: str
    model: str
    version: str | None
    weight: float


def endpoint_name(model: str, version: str | None) -> str:
    """`digits/1` for a pinned version, `digits` when the server picks the version."""
    return f"{model}/{version}" if version else model


class Scenario(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str | None = None
    target: TargetConfig
    stack: StackConfig | None = None
    load: LoadConfig
    split: tuple[SplitArm, ...] = ()
    slo: SloConfig = SloConfig()
    workers: int = Field(1, ge=1, le=256)
    validity: ValidityConfig = ValidityConfig()
    loadgen: LoadgenConfig = LoadgenConfig()

    def total_duration_s(self) -> float:
        """Planned length of the load in seconds (sum of stages, or `load.duration`)."""
        return self.load.total_duration_s()

    def rate_at(self, t: float) -> float | None:
        """Open loop: target arrival rate (req/s) at `t` s since start; None once finished."""
        if not isinstance(self.load, OpenLoad) or self.load.arrival == "trace":
            raise TypeError("rate_at needs an open load with constant/poisson arrivals")
        return _level(self.load, t, "rate", self.load.rate)

    def users_at(self, t: float) -> int | None:
        """Closed loop: number of users at `t` s since start; None once finished."""
        if not isinstance(self.load, ClosedLoad):
            raise TypeError("users_at needs a closed load")
        level = _level(self.load, t, "users", self.load.users)
        return None if level is None else round(level)

    def endpoints(self) -> tuple[Endpoint, ...]:
        """The split arms (weights normalised to sum 1), or the target alone."""
        if not self.split:
            name = endpoint_name(self.target.model, self.target.version)
            return (
                Endpoint(
                    name=name, model=self.target.model, version=self.target.version, weight=1.0
                ),
            )
        total = sum(arm.weight for arm in self.split)
        return tuple(
            Endpoint(
                name=endpoint_name(a.model, a.version),
                model=a.model,
                version=a.version,
                weight=a.weight / total,
            )
            for a in self.split
        )


def _level(load: _LoadBase, t: float, field: str, flat: float | None) -> float | None:
    if load.stages:
        levels = [Level(s.duration, float(getattr(s, field)), s.ramp) for s in load.stages]
        return level_at(levels, t)
    if t < 0 or t >= load.total_duration_s():
        return None
    return flat


def target_host(url: str) -> str | None:
    """Host part of `url`; a scheme-less `host:port` (gRPC style) is accepted."""
    parts = urlsplit(url if "://" in url else f"//{url}")
    try:
        return parts.hostname
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

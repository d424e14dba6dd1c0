"""InferenceCore: the protocol-independent heart of the server.

Every front end (KServe HTTP, TF-Serving REST, gRPC) decodes its wire format into an
`InferRequest` with NumPy arrays, awaits `InferenceCore.infer`, and encodes the
`InferResponse`. The core validates inputs against the model config, applies chaos
faults, queues the request on the model version's dynamic batcher (so HTTP and gRPC
requests share batches), runs ONNX Runtime off the event loop, and records Triton-style
statistics, from which the Prometheus metrics are rendered at scrape time.

Why one core and thin front ends: behaviour (validation messages, batching, faults,
statistics) is identical whatever the protocol, and is tested once, in-process.

Request validation against the config lives in repository.py (pure functions); sessions
in runtime.py; batching in batcher.py; faults in faults.py; statistics in stats.py and their
Prometheus rendering in metrics.py; the heap given back after a burst in memory.py. The
device-loss fault is handled here because it touches every model's sessions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tritonclient.grpc import model_config_pb2 as mc

from reference_server import SERVER_NAME, __version__
from reference_server.batcher import Batcher
from reference_server.config import ServerConfig, default_model_repository
from reference_server.errors import NotFound, Rejected, ServerError, Unavailable
from reference_server.faults import FaultState
from reference_server.memory import MemoryReclaimer
from reference_server.metrics import InflightIntegral, ServerMetrics
from reference_server.overload import LoopLagShedder
from reference_server.repository import (
    ModelSpec,
    batch_policy,
    check_inputs,
    check_model_io,
    check_outputs,
    scan_repository,
    shape_outputs,
    warmup_feeds,
)
from reference_server.runtime import CPU, CUDA, ModelRuntime, SessionSettings
from reference_server.stats import StatsRegistry, VersionStats

__all__ = ["EXTENSIONS", "InferRequest", "InferResponse", "InferenceCore"]

logger = logging.getLogger(__name__)

# Only what the front ends really implement (classification and shared memory are refused).
EXTENSIONS = ("binary_tensor_data", "model_configuration", "statistics", "model_repository")


@dataclass(frozen=True, slots=True)
class InferRequest:
    model: str
    version: str | None  # None or "" = the newest ready version under the version policy
    inputs: dict[str, np.ndarray]  # decoded; the core checks names, dtypes and shapes
    requested_outputs: tuple[str, ...] | None = None  # None = all outputs
    id: str = ""
    protocol: str = "http"  # "http" | "grpc" | "tfserving": the metrics label


@dataclass(frozen=True, slots=True)
class InferResponse:
    model: str
    version: str
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    id: str = ""


class LoadedVersion:
    """One model version being served: sessions, batcher, statistics."""

    __slots__ = ("batcher", "runtime", "spec", "stats", "version")

    def __init__(
        self,
        spec: ModelSpec,
        version: str,
        settings: SessionSettings,
        stats: VersionStats,
        clock_ns: Callable[[], int],
    ) -> None:
        self.spec = spec
        self.version = version
        self.stats = stats
        groups = spec.config.instance_group
        instances = sum(g.count for g in groups) or 1
        if groups and all(g.kind == mc.ModelInstanceGroup.KIND_CPU for g in groups):
            settings = SessionSettings("cpu", settings.intra_op_threads, settings.log_severity)
        self.runtime = ModelRuntime(spec.model_file(version), settings, instances)
        check_model_io(spec, self.runtime.path, self.runtime.input_names, self.runtime.output_names)
        self.runtime.warmup(warmup_feeds(spec))
        self.batcher = Batcher(
            self.runtime,
            batch_policy(spec),
            stats,
            instances=instances,
            name=f"{spec.name}:{version}",
            clock_ns=clock_ns,
        )

    def prepare(self, inputs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
        return check_inputs(self.spec, inputs)

    def check_outputs(self, requested: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return check_outputs(self.spec, requested)

    def finish(
        self, outputs: dict[str, np.ndarray], rows: int, wanted: tuple[str, ...] | None
    ) -> dict[str, np.ndarray]:
        return shape_outputs(self.spec, outputs, rows, wanted)


class LoadedModel:
    """A model and its loaded versions (those its version policy selects)."""

    def __init__(
        self,
        spec: ModelSpec,
        settings: SessionSettings,
        stats: StatsRegistry,
        *,
        clock_ns: Callable[[], int],
    ) -> None:
        self.spec = spec
        self.versions = {
            v: LoadedVersion(spec, v, settings, stats.add(spec.name, v), clock_ns)
            for v in spec.versions
        }
        self.latest = self.versions[spec.versions[-1]]
        self.metadata = spec.metadata()

    def version(self, version: str | None) -> LoadedVersion:
        """The named version, or the newest loaded one; NotFound otherwise."""
        if not version:
            return self.latest
        loaded = self.versions.get(version)
        if loaded is None:
            raise NotFound(
                f"model '{self.spec.name}' has no loaded version '{version}'; "
                f"loaded: {', '.join(self.versions)}"
            )
        return loaded


def _repository_path(config: ServerConfig) -> Path:
    """The configured repository, or the default one (built on first use)."""
    if config.model_repository is not None:
        return Path(config.model_repository)
    from reference_server.models.build import ensure_repository

    return ensure_repository(default_model_repository())


def _log_rebuild_failure(done: asyncio.Future) -> None:
    if not done.cancelled() and done.exception() is not None:
        logger.error("moving sessions between providers failed: %s", done.exception())


class InferenceCore:
    """Loaded models + batchers + faults + statistics. One per server process.

    Construction loads the repository and creates ONNX Runtime sessions (may raise
    ModelLoadError / DeviceUnavailable). `await start()` before serving (starts batcher
    tasks on the running loop); `begin_shutdown()` turns the server unready; `await
    stop(grace_s)` waits for in-flight requests, then stops the batchers.

    Attributes/methods used by the front ends:
      live: bool, ready: bool (False while shutting down or after device loss, unready policy;
          a worker of `--workers N` is ready only while every worker is: `peers_ready`)
      degraded: bool and provider: str ("CUDAExecutionProvider" | "CPUExecutionProvider")
      faults: reference_server.faults.FaultState (admin API manipulates it)
      in_flight: int
      admit(model, version, protocol) returns a Rejected when that model's queue is full
      server_metadata() -> {"name", "version", "extensions": [...], "provider", "degraded"}
      model_metadata(model, version=None) -> KServe v2 metadata dict
      model_config(model, version=None) -> tritonclient ModelConfig protobuf message
      model_ready(model, version=None) -> bool
      repository_index(ready_only=False) -> [{"name", "version", "state", "reason"}]
      model_statistics(model=None, version=None) -> Triton statistics-extension dict
      metrics_text() -> bytes (Prometheus text exposition of this core's registry)
      async infer(request: InferRequest) -> InferResponse
          raises InvalidInput, NotFound, Unavailable (Rejected when the queue policy sheds
          it), BackendFailure, InjectedFailure; cancelling the awaiting task (the client
          left) takes the request out of the queue and counts it as CANCELED
    """

    def __init__(
        self,
        config: ServerConfig,
        *,
        faults: FaultState | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.config = config
        self.device: str = config.device
        self.settings = SessionSettings(config.device, config.intra_op_threads)
        self.repository = _repository_path(config)
        self.stats = StatsRegistry()
        self.models: dict[str, LoadedModel] = {}
        for name, spec in scan_repository(self.repository).items():
            self.models[name] = LoadedModel(spec, self.settings, self.stats, clock_ns=clock_ns)
        self.provider = self._providers()
        logger.info(
            "loaded %d model(s) from %s on %s (device %s)",
            len(self.models),
            self.repository,
            self.provider,
            self.device,
        )
        self.faults = faults or FaultState()
        self.faults.subscribe(self._on_faults_changed)
        self._degraded = False
        self.live = True
        self.inflight = InflightIntegral(clock_ns)  # the count and its integral (Little's law)
        self.in_flight = 0
        self.requests_by_protocol: dict[str, int] = {}  # inference requests per front end
        self._started = False
        self._shutting_down = False
        self.peers_ready: Callable[[], bool] | None = None  # set by a worker: all ready?
        self._idle: asyncio.Event | None = None
        self._rebuild: asyncio.Future | None = None
        self.metrics = ServerMetrics(self)
        self.memory = MemoryReclaimer(lambda: self.in_flight == 0)
        self.shedder = LoopLagShedder(config.max_loop_lag_ms / 1e3)

    @property
    def in_flight(self) -> int:
        """Inference requests being handled now (`inflight` also integrates it over time)."""
        return self.inflight.count

    @in_flight.setter
    def in_flight(self, count: int) -> None:
        self.inflight.set(count)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start every batcher on the running loop."""
        for model in self.models.values():
            for version in model.versions.values():
                version.batcher.start()
        self._idle = asyncio.Event()
        self._started = True
        self.shedder.start()

    def begin_shutdown(self) -> None:
        """Turn unready: new inference is refused with Unavailable, in-flight ones finish."""
        if not self._shutting_down:
            logger.info("shutting down: %d request(s) in flight", self.in_flight)
        self._shutting_down = True

    async def stop(self, grace_s: float = 10.0) -> None:
        """Wait up to `grace_s` for in-flight requests, then stop the batchers."""
        self.begin_shutdown()
        if self.in_flight and self._idle is not None:
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), max(0.0, grace_s))
            except TimeoutError:
                logger.warning("grace period over with %d request(s) in flight", self.in_flight)
        self.memory.cancel()
        self.shedder.stop()
        self.faults.clear()  # releases hung requests
        for model in self.models.values():
            for version in model.versions.values():
                await version.batcher.stop()
        self._started = False
        self.live = False

    # -- state -------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """This process is ready and, under a supervisor (`--workers N`), so is every worker."""
        return self.local_ready and (self.peers_ready is None or self.peers_ready())

    @property
    def local_ready(self) -> bool:
        """Started, not shutting down, and no device-loss fault with the unready policy."""
        if self._shutting_down or not self._started:
            return False
        return not (self.faults.active and self.faults.device_loss() == "unready")

    def _providers(self) -> str:
        providers = {v.runtime.provider for m in self.models.values() for v in m.versions.values()}
        return CUDA if CUDA in providers else CPU

    @property
    def degraded(self) -> bool:
        """True while a device-loss fault with the cpu-fallback policy is active."""
        if self.faults.active:
            self.faults.device_loss()  # lets an expired fault end (listeners run)
        return self._degraded

    def _on_faults_changed(self) -> None:
        want_degraded = self.faults.device_loss() == "cpu-fallback"
        if want_degraded == self._degraded:
            return
        self._degraded = want_degraded
        if self._shutting_down:
            return
        if want_degraded:
            logger.warning("device lost (cpu-fallback): moving sessions to the CPU provider")
            self._move_sessions("cpu", lambda v: v.runtime.provider != CPU)
        else:
            logger.warning("device restored: sessions back as loaded")
            self._move_sessions(None, lambda v: v.runtime.provider != v.runtime.initial_provider)

    def _move_sessions(self, device: str | None, needed: Callable[[LoadedVersion], bool]) -> None:
        """Recreate the sessions that need it on `device` (None: as loaded), off the loop."""
        todo = [v for m in self.models.values() for v in m.versions.values() if needed(v)]
        if not todo:
            return

        def rebuild() -> None:
            for version in todo:
                if device is None:
                    version.runtime.restore()
                else:
                    version.runtime.rebuild(device)
            self.provider = self._providers()

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            rebuild()
            return
        self._rebuild = loop.run_in_executor(None, rebuild)
        self._rebuild.add_done_callback(_log_rebuild_failure)

    # -- lookup ------------------------------------------------------------------------------
    def _model(self, name: str) -> LoadedModel:
        model = self.models.get(name)
        if model is None:
            raise NotFound(f"unknown model '{name}'; available: {', '.join(sorted(self.models))}")
        return model

    def _version(self, name: str, version: str | None) -> LoadedVersion:
        return self._model(name).version(version)

    # -- metadata ------------------------------------------------------------------------------
    def server_metadata(self) -> dict:
        return {
            "name": SERVER_NAME,
            "version": __version__,
            "extensions": list(EXTENSIONS),
            "provider": self.provider,
            "device": self.device,
            "degraded": self.degraded,
        }

    def model_metadata(self, model: str, version: str | None = None) -> dict:
        loaded = self._model(model)
        if version:
            loaded.version(version)
        return loaded.metadata

    def model_config(self, model: str, version: str | None = None) -> mc.ModelConfig:
        loaded = self._model(model)
        if version:
            loaded.version(version)
        config = mc.ModelConfig()
        config.CopyFrom(loaded.spec.config)
        return config

    def model_ready(self, model: str, version: str | None = None) -> bool:
        loaded = self._model(model)
        if version and version not in loaded.versions:
            if version in loaded.spec.available:
                return False  # on disk, not selected by the version policy
            loaded.version(version)  # raises NotFound
        return self.ready

    def repository_index(self, ready_only: bool = False) -> list[dict]:
        rows = []
        for name, loaded in sorted(self.models.items()):
            for version in loaded.spec.available:
                if version in loaded.versions:
                    state, reason = ("READY", "") if self.ready else ("UNAVAILABLE", "not ready")
                else:
                    state, reason = "UNAVAILABLE", "unloaded: not selected by version policy"
                if not ready_only or state == "READY":
                    rows.append(
                        {"name": name, "version": version, "state": state, "reason": reason}
                    )
        return rows

    def model_statistics(self, model: str | None = None, version: str | None = None) -> dict:
        if model:
            loaded = self._model(model)
            if version:
                loaded.version(version)
        elif version:
            raise NotFound("a version needs a model name")
        return {
            "model_stats": [s.to_dict() for s in self.stats.select(model or None, version or None)]
        }

    def metrics_text(self) -> bytes:
        return self.metrics.render()

    def queue_depth(self, model: str, version: str) -> int:
        return self._version(model, version).batcher.queue_depth

    # -- inference -------------------------------------------------------------------------------
    def admit(self, model: str, version: str | None, protocol: str = "http") -> Rejected | None:
        """The refusal (counted) of a request for a model whose queue is full, or while the
        event loop is behind (overload.py), before it is decoded; None to admit it.

        Every front end asks before decoding (KServe and TF Serving HTTP at the headers, gRPC
        before its tensors are decoded), so shedding load costs little CPU; `infer` itself
        does not shed on lag (a full queue still refuses there).
        The refusal is returned, not raised: it is the same object for every request the
        model refuses, so the front end can answer it with bytes serialised once.
        Unknown models and versions pass: `infer` answers them with the right error.
        """
        loaded = self.models.get(model)
        batcher = None
        if loaded is not None:
            target = loaded.versions.get(version) if version else loaded.latest
            batcher = target.batcher if target is not None else None
        if batcher is None:
            return None
        refusal = batcher.refusal() if batcher.full() else self.shedder.refusal()
        if refusal is None:
            return None
        by_protocol = self.requests_by_protocol
        by_protocol[protocol] = by_protocol.get(protocol, 0) + 1
        batcher.stats.record_failure(0, refusal.failure_reason)
        return refusal

    async def infer(self, request: InferRequest) -> InferResponse:
        """Validate, apply faults, batch, run; raises a ServerError subclass on failure."""
        if self._shutting_down or not self._started:
            raise Unavailable("server is not ready (starting or shutting down)")
        loaded = self._version(request.model, request.version)
        start = time.perf_counter_ns()
        by_protocol = self.requests_by_protocol
        by_protocol[request.protocol] = by_protocol.get(request.protocol, 0) + 1
        self.in_flight += 1
        self.memory.busy(self.in_flight)
        try:
            if self.faults.active:
                if self.faults.device_loss() == "unready":
                    raise Unavailable("device lost: server is unready (device_loss fault)")
                await self.faults.apply(request.model)
            feeds, rows = loaded.prepare(request.inputs)
            wanted = loaded.check_outputs(request.requested_outputs)
            outputs = await loaded.batcher.submit(feeds, rows)
            result = loaded.finish(outputs, rows, wanted)
        except ServerError as exc:
            loaded.stats.record_failure(time.perf_counter_ns() - start, exc.failure_reason)
            raise
        except asyncio.CancelledError:  # the client left: its queued request must not run
            loaded.batcher.withdraw()
            loaded.stats.record_failure(time.perf_counter_ns() - start, "CANCELED")
            raise
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self.memory.idle()
                if self._idle is not None:
                    self._idle.set()
        loaded.stats.record_success(time.perf_counter_ns() - start)
        return InferResponse(request.model, loaded.version, result, request.id)

"""InferenceCore: the protocol-independent heart of the server (INTERFACE STUB - being built).

Every front end (KServe HTTP, TF-Serving REST, gRPC) decodes its wire format into an
`InferRequest` with NumPy arrays, awaits `InferenceCore.infer`, and encodes the
`InferResponse`. The core validates inputs against the model metadata, applies chaos
faults, queues the request on the model's dynamic batcher, runs ONNX Runtime off the
event loop, and records Triton-style statistics and Prometheus metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reference_server.config import ServerConfig


@dataclass(frozen=True, slots=True)
class InferRequest:
    model: str
    version: str | None  # None or "" = the newest ready version under the version policy
    inputs: dict[str, np.ndarray]  # decoded; the core checks names, dtypes and shapes
    requested_outputs: tuple[str, ...] | None = None  # None = all outputs
    id: str = ""
    protocol: str = "http"  # "http" | "grpc" | "tfserving", a label for metrics only


@dataclass(frozen=True, slots=True)
class InferResponse:
    model: str
    version: str
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    id: str = ""


class InferenceCore:
    """Loaded models + batchers + faults + statistics. One per server process.

    Construction loads the repository and creates ONNX Runtime sessions (may raise
    ModelLoadError / DeviceUnavailable). `await start()` before serving (starts batcher
    tasks on the running loop); `begin_shutdown()` turns the server unready; `await
    stop(grace_s)` waits for in-flight requests, then stops the batchers.

    Attributes/methods used by the front ends:
      live: bool, ready: bool (False while shutting down or after device loss, unready policy)
      degraded: bool and provider: str ("CUDAExecutionProvider" | "CPUExecutionProvider")
      faults: reference_server.faults.FaultState (admin API manipulates it)
      in_flight: int
      server_metadata() -> {"name", "version", "extensions": [...]}
      model_metadata(model, version=None) -> KServe v2 metadata dict
      model_config(model, version=None) -> tritonclient ModelConfig protobuf message
      model_ready(model, version=None) -> bool
      repository_index(ready_only=False) -> [{"name", "version", "state", "reason"}]
      model_statistics(model=None, version=None) -> Triton statistics-extension dict
      async infer(request: InferRequest) -> InferResponse
          raises InvalidInput, NotFound, Unavailable, InjectedFailure
    """

    def __init__(self, config: ServerConfig) -> None:
        raise NotImplementedError

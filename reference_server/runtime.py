"""ONNX Runtime sessions for each model version, on the device asked for.

Why the care about devices: onnxruntime-gpu lists CUDAExecutionProvider as *available* on a
machine without a GPU and then silently falls back to the CPU provider when a session is
created. So the provider actually in use is read back from the created session
(`session.get_providers()`), never from `get_available_providers()`:

  device "cpu"   CPU provider only
  device "cuda"  CUDA provider required; DeviceUnavailable (clear message) when there is no
                 GPU device node / driver, or when the session fell back to the CPU
  device "auto"  CUDA when a GPU is plausibly present and the session really got it, CPU
                 otherwise; the choice is logged. Without /dev/nvidia* or libcuda the CUDA
                 attempt is skipped entirely (it is slow and logs errors).

Several instances of a model (instance_group count) are several sessions that run in
parallel threads; `ModelRuntime.rebuild("cpu")` recreates them on the CPU provider (the
device-loss fault's cpu-fallback policy).
"""

from __future__ import annotations

import ctypes
import glob
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from reference_server.errors import DeviceUnavailable, ModelLoadError

logger = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")


def cuda_device_present() -> bool:
    """A cheap check that a CUDA device could be used: a device node and a driver library."""
    if not glob.glob("/dev/nvidia[0-9]*"):
        return False
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class SessionSettings:
    device: str = "auto"  # auto | cpu | cuda
    intra_op_threads: int = 1  # 0 = ONNX Runtime's default (all cores)
    log_severity: int = 3  # ORT: 0 verbose .. 4 fatal; 3 keeps the fallback noise out


def _options(settings: SessionSettings) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(0, settings.intra_op_threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = settings.log_severity
    return opts


def create_session(path: Path, settings: SessionSettings) -> tuple[ort.InferenceSession, str]:
    """One InferenceSession and the provider it really runs on (see module docstring)."""
    if settings.device not in DEVICES:
        raise ModelLoadError(f"device must be one of {DEVICES}, got '{settings.device}'")
    want_cuda = settings.device == "cuda" or (settings.device == "auto" and cuda_device_present())
    if settings.device == "cuda" and not cuda_device_present():
        raise DeviceUnavailable(
            "device 'cuda' requested but no usable NVIDIA GPU is present "
            "(no /dev/nvidia* device node or no libcuda.so.1 driver); use --device auto or cpu"
        )
    providers = [CUDA, CPU] if want_cuda else [CPU]
    try:
        session = ort.InferenceSession(str(path), _options(settings), providers=providers)
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
        raise ModelLoadError(f"{path}: ONNX Runtime cannot load the model: {exc}") from exc
    provider = session.get_providers()[0]
    if settings.device == "auto":
        why = "" if want_cuda else " (no CUDA device/driver present)"
        logger.info("device auto: %s runs on %s%s", path, provider, why)
        if want_cuda and provider != CUDA:
            logger.warning("device auto: CUDA present but ONNX Runtime fell back to %s", provider)
    if settings.device == "cuda" and provider != CUDA:
        raise DeviceUnavailable(
            f"device 'cuda' requested but ONNX Runtime fell back to {provider} for {path} "
            "(CUDA/cuDNN libraries missing or the GPU is unusable); use --device auto or cpu"
        )
    return session, provider


class ModelRuntime:
    """The sessions (one per instance) of one model version; runs batches on them.

    `run(instance, feeds, outputs)` is called from worker threads (ONNX Runtime releases the
    GIL), one thread per instance, so instances never share a session concurrently.
    """

    def __init__(self, path: Path, settings: SessionSettings, instances: int = 1) -> None:
        self.path = Path(path)
        self.settings = settings
        self.instances = max(1, instances)
        self._lock = threading.Lock()
        self._sessions, self.provider = self._create(settings)
        self.initial_settings, self.initial_provider = settings, self.provider
        self.output_names: tuple[str, ...] = tuple(o.name for o in self._sessions[0].get_outputs())
        self.input_names: tuple[str, ...] = tuple(i.name for i in self._sessions[0].get_inputs())

    def _create(self, settings: SessionSettings) -> tuple[list[ort.InferenceSession], str]:
        sessions, providers = [], set()
        for _ in range(self.instances):
            session, provider = create_session(self.path, settings)
            sessions.append(session)
            providers.add(provider)
        return sessions, providers.pop() if len(providers) == 1 else CPU

    def run(
        self, instance: int, feeds: dict[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> list[np.ndarray]:
        """Run one batch on instance `instance` (0-based); outputs in `outputs` order."""
        return self._sessions[instance].run(outputs or self.output_names, feeds)

    def warmup(self, feeds: dict[str, np.ndarray]) -> None:
        """Run `feeds` once on every instance (first runs allocate; keep that off requests)."""
        for instance in range(self.instances):
            try:
                self.run(instance, feeds)
            except Exception as exc:  # data-dependent graphs may reject zeros: not fatal
                logger.warning("%s: warmup run failed: %s", self.path, exc)
                return

    def restore(self) -> str:
        """Recreate the sessions as first loaded (after a device-loss fault is over)."""
        return self.rebuild(self.initial_settings.device)

    def rebuild(self, device: str) -> str:
        """Recreate every instance's session on `device` (e.g. "cpu" after device loss)."""
        settings = SessionSettings(
            device, self.settings.intra_op_threads, self.settings.log_severity
        )
        sessions, provider = self._create(settings)
        with self._lock:
            self._sessions, self.provider, self.settings = sessions, provider, settings
        logger.info("rebuilt %d session(s) of %s on %s", self.instances, self.path, provider)
        return provider

"""Fixtures: a test model repository and real `python -m reference_server` processes.

The repository holds the project's default models (built locally by
reference_server.models.build: digits v1+v2, mlp, cnn; the `model_repository` fixture of
tests/conftest.py) plus `pair`, a tiny two-input,
two-output model (sum and difference) that exercises multi-tensor paths. Servers bind
port 0 everywhere and announce their ports in their one stdout line; they are stopped by
PID (SIGTERM, then SIGKILL after a deadline) in `finally`.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

REPO_ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(rb"listening http=(\d+) grpc=(\d+) metrics=(\d+)")
ADMIN_TOKEN = "test-token-123"

PAIR_CONFIG = """
name: "pair"
platform: "onnxruntime_onnx"
max_batch_size: 8
input { name: "a" data_type: TYPE_FP32 dims: [ 4 ] }
input { name: "b" data_type: TYPE_FP32 dims: [ 4 ] }
output { name: "sum" data_type: TYPE_FP32 dims: [ 4 ] }
output { name: "diff" data_type: TYPE_FP32 dims: [ 4 ] }
instance_group { count: 1 }
dynamic_batching { max_queue_delay_microseconds: 200 }
"""


def _pair_model() -> bytes:
    def tensor(name: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 4])

    graph = helper.make_graph(
        [
            helper.make_node("Add", ["a", "b"], ["sum"]),
            helper.make_node("Sub", ["a", "b"], ["diff"]),
        ],
        "pair",
        [tensor("a"), tensor("b")],
        [tensor("sum"), tensor("diff")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture(scope="session")
def http_model_repository(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's default models (tests/conftest.py builds them once) plus `pair`."""
    root = tmp_path_factory.mktemp("http-models") / "repo"
    shutil.copytree(model_repository, root)
    (root / "pair" / "1").mkdir(parents=True)
    (root / "pair" / "config.pbtxt").write_text(PAIR_CONFIG)
    (root / "pair" / "1" / "model.onnx").write_bytes(_pair_model())
    return root


@dataclass
class RunningServer:
    proc: subprocess.Popen
    http: int
    grpc: int
    metrics: int
    log_path: Path
    stopped: bool = field(default=False)

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM by PID; SIGKILL if it does not exit in time. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        """Wait for the exit (SIGKILL after `timeout`); returns the exit code."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise
        finally:
            self.stopped = True
            if self.proc.stdout is not None:
                self.proc.stdout.close()


def read_ports(proc: subprocess.Popen, deadline: float) -> tuple[int, int, int] | None:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            buf += chunk
            m = LISTENING.search(buf)
            if m:
                return int(m[1]), int(m[2]), int(m[3])
        elif proc.poll() is not None:
            return None
    return None


def start_server(
    log_dir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> RunningServer:
    """Start `python -m reference_server` on port 0 and wait for its `listening` line."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"server-{time.monotonic_ns()}.log"
    cmd = [sys.executable, "-m", "reference_server", "--host", "127.0.0.1"]
    cmd += ["--http-port", "0", "--grpc-port", "0", "--metrics-port", "0", *args]
    base = {k: v for k, v in os.environ.items() if k != "HARNESS_ADMIN_TOKEN"}
    full_env = {**base, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=log, env=full_env
        )
    ports = read_ports(proc, time.monotonic() + timeout)
    if ports is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(5)
        raise RuntimeError(f"server did not start: {log_path.read_text(errors='replace')[-3000:]}")
    return RunningServer(proc, *ports, log_path)


@contextlib.contextmanager
def running_server(log_dir: Path, *args: str, **kwargs: object) -> Iterator[RunningServer]:
    server = start_server(log_dir, *args, **kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        if not server.stopped:
            server.terminate()


@pytest.fixture
def config(model_repository: Path, server_config: Callable[..., object]) -> object:
    """A ServerConfig on the built test repository (in-process core tests)."""
    return server_config(model_repository)


@pytest.fixture(scope="session")
def unqueued_repository(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built repository without the shipped queue policies (no queue timeout): for tests
    of batching and routing that pile up requests on purpose, where a 100 ms queue timeout on
    a busy host would reject some -- a test of the queue policy, not of what they check."""
    import shutil

    copy = tmp_path_factory.mktemp("unqueued") / "repo"
    shutil.copytree(model_repository, copy)
    for path in copy.glob("*/config.pbtxt"):
        text = path.read_text()
        path.write_text(re.sub(r"\n\s*default_queue_policy \{[^}]*\}", "", text))
    return copy


@pytest.fixture
def unqueued_config(unqueued_repository: Path, server_config: Callable[..., object]) -> object:
    return server_config(unqueued_repository)


@pytest.fixture(scope="session")
def server(
    http_model_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One shared server with the admin API enabled (tests must clear faults they add)."""
    log_dir = tmp_path_factory.mktemp("server-logs")
    with running_server(
        log_dir,
        "--model-repository",
        str(http_model_repository),
        "--device",
        "cpu",
        "--intra-op-threads",
        "1",
        "--max-body-bytes",
        str(4 * 1024 * 1024),
        env={"HARNESS_ADMIN_TOKEN": ADMIN_TOKEN},
    ) as srv:
        yield srv


@pytest.fixture(scope="session")
def reference_outputs(
    http_model_repository: Path,
) -> Callable[..., dict[str, np.ndarray]]:
    """In-process ONNX Runtime: run(model, version, feeds) -> dict of outputs."""
    import onnxruntime as ort

    sessions: dict[tuple[str, str], ort.InferenceSession] = {}

    def run(model: str, version: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        key = (model, version)
        if key not in sessions:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            path = http_model_repository / model / version / "model.onnx"
            sessions[key] = ort.InferenceSession(
                str(path), opts, providers=["CPUExecutionProvider"]
            )
        sess = sessions[key]
        names = [o.name for o in sess.get_outputs()]
        return dict(zip(names, sess.run(names, feeds), strict=True))

    return run

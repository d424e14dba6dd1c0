"""Graceful shutdown and start-up failures of the real server process.

Shutdown: with HTTP and gRPC requests in flight (held by an injected latency fault), SIGTERM
turns the server unready at once, refuses new connections, answers every in-flight request
correctly and exits 0 within the grace period. Start-up: `--device cuda` on a machine
without a usable GPU and a bad repository fail with one clear line and a documented code.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from reference_server.runtime import cuda_device_present
from tests.reference_server.conftest import (
    ADMIN_TOKEN,
    REPO_ROOT,
    RunningServer,
    read_ports,
    running_server,
)

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HTTP_CLIENTS = 8
GRPC_CLIENTS = 2


@pytest.fixture(scope="module")
def small_repository(http_model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("small") / "repo"
    shutil.copytree(http_model_repository / "pair", root / "pair")
    return root


def _request(port: int, method: str, path: str, doc: object = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            method, path, body=None if doc is None else json.dumps(doc), headers=headers or {}
        )
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _pair_doc(k: int) -> dict:
    return {
        "inputs": [
            {"name": "a", "datatype": "FP32", "shape": [1, 4], "data": [k, k, k, k]},
            {"name": "b", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]},
        ]
    }


def _inflight(srv: RunningServer) -> float:
    _, body = _request(srv.metrics, "GET", "/metrics")
    m = re.search(rb"^reference_server_inflight_requests (\S+)$", body, re.M)
    return float(m[1]) if m else -1.0


def _grpc_call(port: int, k: int, out: list) -> None:
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        a = grpcclient.InferInput("a", [1, 4], "FP32")
        a.set_data_from_numpy(np.full((1, 4), k, np.float32))
        b = grpcclient.InferInput("b", [1, 4], "FP32")
        b.set_data_from_numpy(np.array([[1, 2, 3, 4]], np.float32))
        out.append(("grpc", k, client.infer("pair", [a, b]).as_numpy("sum").tolist()))
    except Exception as exc:  # recorded, asserted in the test
        out.append(("grpc", k, repr(exc)))
    finally:
        client.close()


def _http_call(port: int, k: int, out: list) -> None:
    try:
        status, body = _request(port, "POST", "/v2/models/pair/infer", _pair_doc(k))
        out.append(("http", k, status, json.loads(body)["outputs"][0]["data"]))
    except Exception as exc:
        out.append(("http", k, repr(exc)))


def test_sigterm_drains_in_flight_requests_and_exits_0(
    small_repository: Path, tmp_path: Path
) -> None:
    with running_server(
        tmp_path, "--model-repository", str(small_repository), "--admin-token", ADMIN_TOKEN
    ) as srv:
        status, _ = _request(
            srv.http, "POST", "/admin/faults", {"type": "latency", "fixed_ms": 1500}, AUTH
        )
        assert status == 201
        keep = http.client.HTTPConnection("127.0.0.1", srv.http, timeout=10)  # opened before
        keep.request("GET", "/v2/health/ready")
        assert keep.getresponse().read() == b""
        results: list = []
        threads = [
            threading.Thread(target=_http_call, args=(srv.http, k, results))
            for k in range(HTTP_CLIENTS)
        ]
        threads += [
            threading.Thread(target=_grpc_call, args=(srv.grpc, 100 + k, results))
            for k in range(GRPC_CLIENTS)
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while _inflight(srv) < HTTP_CLIENTS + GRPC_CLIENTS:
            assert time.monotonic() < deadline, "requests never got in flight"
            time.sleep(0.02)
        sigterm_at = time.monotonic()
        srv.proc.send_signal(15)
        # Unready at once (asked on a connection opened before the signal) ...
        deadline = time.monotonic() + 2
        while True:
            keep.request("GET", "/v2/health/ready")
            resp = keep.getresponse()
            resp.read()
            if resp.status == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        keep.close()
        assert resp.status == 503 and resp.getheader("Connection") == "close"
        # ... and no new connections.
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", srv.http), timeout=1).close()
            except OSError:
                break
            assert time.monotonic() < deadline, "still accepting connections"
            time.sleep(0.02)
        code = srv.wait(20)
        elapsed = time.monotonic() - sigterm_at
        for t in threads:
            t.join(10)
    assert code == 0, srv.log()[-2000:]
    assert elapsed < 10  # within the default grace period
    assert sorted(r[:2] for r in results) == sorted(
        [("http", k) for k in range(HTTP_CLIENTS)]
        + [("grpc", 100 + k) for k in range(GRPC_CLIENTS)]
    )
    for r in results:
        k = r[1]
        want = [[k + 1.0, k + 2.0, k + 3.0, k + 4.0]]
        assert r[-1] == (want if r[0] == "grpc" else want[0]), r
        if r[0] == "http":
            assert r[2] == 200


def test_idle_server_exits_0_quickly_on_sigterm(small_repository: Path, tmp_path: Path) -> None:
    with running_server(tmp_path, "--model-repository", str(small_repository)) as srv:
        keep = http.client.HTTPConnection("127.0.0.1", srv.http, timeout=10)
        keep.request("GET", "/v2/health/live")
        keep.getresponse().read()  # an idle keep-alive connection must not hold shutdown
        start = time.monotonic()
        assert srv.terminate() == 0
        assert time.monotonic() - start < 5
        keep.close()


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "reference_server", "--http-port", "0", "--grpc-port", "0"]
    cmd += ["--metrics-port", "0", *args]
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(cuda_device_present(), reason="a CUDA device is present on this host")
def test_device_cuda_without_gpu_fails_clearly(small_repository: Path) -> None:
    proc = _run_cli("--model-repository", str(small_repository), "--device", "cuda")
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == ""
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        "error: device 'cuda' requested but no usable NVIDIA GPU is present "
        "(no /dev/nvidia* device node or no libcuda.so.1 driver); use --device auto or cpu"
    )


@pytest.mark.skipif(not cuda_device_present(), reason="no CUDA device on this host")
def test_device_auto_runs_on_cuda_when_a_gpu_is_present(
    small_repository: Path, tmp_path: Path
) -> None:
    # The provider the server reports is read back from its ONNX Runtime sessions
    # (session.get_providers()), not from get_available_providers(), which lists CUDA
    # wherever onnxruntime-gpu is installed.
    with running_server(
        tmp_path, "--model-repository", str(small_repository), "--device", "auto"
    ) as srv:
        status, body = _request(srv.http, "GET", "/v2")
        assert status == 200
        meta = json.loads(body)
        assert (meta["device"], meta["provider"]) == ("auto", "CUDAExecutionProvider"), meta
        _, metrics = _request(srv.metrics, "GET", "/metrics")
        assert b'provider="CUDAExecutionProvider"' in metrics
        status, body = _request(srv.http, "POST", "/v2/models/pair/infer", _pair_doc(1))
        assert status == 200 and json.loads(body)["outputs"][0]["data"] == [2, 3, 4, 5]


def test_bad_repository_is_a_config_error(tmp_path: Path) -> None:
    proc = _run_cli("--model-repository", str(tmp_path / "missing"))
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last == f"error: {tmp_path / 'missing'}: model repository directory does not exist"


def test_bad_option_is_a_usage_error() -> None:
    proc = _run_cli("--device", "tpu")
    assert proc.returncode == 2
    assert "argument --device: invalid choice: 'tpu' (choose from 'auto', 'cpu', 'cuda')" in (
        proc.stderr
    )
    proc = _run_cli("--max-body-bytes", "0")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == (
        "error: invalid server configuration: max_body_bytes: Input should be greater than 0"
    )


def test_harness_serve_is_the_same_server(small_repository: Path) -> None:
    cmd = [sys.executable, "-m", "harness.cli.main", "serve", "--model-repository"]
    cmd += [str(small_repository), "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        ports = read_ports(proc, time.monotonic() + 60)
        assert ports is not None, "harness serve never announced its ports"
        status, _ = _request(ports[0], "POST", "/v2/models/pair/infer", _pair_doc(1))
        assert status == 200
    finally:
        proc.send_signal(15)
        code = proc.wait(20)
        proc.stdout.close()  # type: ignore[union-attr]
    assert code == 0


def test_port_in_use_is_an_infrastructure_error(small_repository: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cmd = [sys.executable, "-m", "reference_server", "--model-repository"]
        cmd += [str(small_repository), "--http-port", str(port)]
        cmd += ["--grpc-port", "0", "--metrics-port", "0"]
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot start the server") and str(port) in last


def test_options_map_onto_server_config() -> None:
    from reference_server.cli import build_parser, config_from_args

    parser = build_parser()
    env = {"HARNESS_ADMIN_TOKEN": "from-env"}
    assert config_from_args(parser.parse_args([]), env).admin_token == "from-env"
    args = parser.parse_args(["--admin-token", "from-cli", "--http-port", "0", "--device", "cpu"])
    config = config_from_args(args, env)
    assert (config.admin_token, config.http_port, config.device) == ("from-cli", 0, "cpu")
    config = config_from_args(parser.parse_args([]), {})
    assert config.admin_token is None and config.host == "127.0.0.1"  # loopback by default

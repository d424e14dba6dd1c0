"""`--workers 2`: two real worker processes on one port under a real supervisor.

Every test starts `python -m reference_server --workers 2` on port 0 (the `pair` model only,
so a start takes about a second) and stops it by PID. Which worker a connection reaches is
the kernel's choice (SO_REUSEPORT hashes the connection), so the tests open a new
connection per request and read from the supervisor's per-worker series which workers
served; 24 connections all landing on one of two workers has probability 2**-23.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from tests.integration.cli_helpers import wait_for
from tests.reference_server.conftest import (
    ADMIN_TOKEN,
    PAIR_CONFIG,
    REPO_ROOT,
    RunningServer,
    _pair_model,
    running_server,
)

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CONNECTIONS = 24


@pytest.fixture(scope="module")
def pair_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pair-only") / "repo"
    (root / "pair" / "1").mkdir(parents=True)
    (root / "pair" / "config.pbtxt").write_text(PAIR_CONFIG)
    (root / "pair" / "1" / "model.onnx").write_bytes(_pair_model())
    return root


def _start(repo: Path, log_dir: Path):
    return running_server(
        log_dir, "--model-repository", str(repo), "--device", "cpu", "--workers", "2",
        "--admin-token", ADMIN_TOKEN,
    )  # fmt: skip


@pytest.fixture(scope="module")
def server(pair_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    with _start(pair_repository, tmp_path_factory.mktemp("workers-log")) as srv:
        yield srv


def _request(port: int, method: str, path: str, doc: object = None, headers: dict | None = None):
    """One request on a new connection (so the kernel picks a worker for each)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = None if doc is None else json.dumps(doc)
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _pair_doc(k: float, name: str = "a") -> dict:
    return {
        "inputs": [
            {"name": name, "datatype": "FP32", "shape": [1, 4], "data": [k] * 4},
            {"name": "b", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]},
        ]
    }


def _ready_status(port: int) -> int | None:
    """/v2/health/ready's status; None when the connection was reset (it reached the socket
    of a worker being killed: connections in a dead listener's queue are reset)."""
    try:
        return _request(port, "GET", "/v2/health/ready")[0]
    except ConnectionError:
        return None


def _infer(port: int, k: float) -> list[float]:
    status, body = _request(port, "POST", "/v2/models/pair/infer", _pair_doc(k))
    assert status == 200, body
    return json.loads(body)["outputs"][0]["data"]


def _metrics(port: int) -> str:
    status, body = _request(port, "GET", "/metrics")
    assert status == 200
    return body.decode()


def _value(text: str, series: str) -> float:
    m = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert m, f"{series} not in /metrics"
    return float(m[1])


def _per_worker(text: str) -> dict[int, tuple[int, float]]:
    """worker index -> (pid, inference requests it received)."""
    rows = re.findall(
        r'^reference_server_worker_inference_requests\{worker="(\d+)",pid="(\d+)"\} (\S+)$',
        text,
        re.M,
    )
    return {int(i): (int(pid), float(n)) for i, pid, n in rows}


SUCCESS = 'nv_inference_request_success{model="pair",version="1"}'
FAIL_OTHER = 'nv_inference_request_failure{model="pair",version="1",reason="OTHER"}'


def test_both_workers_serve_and_metrics_sum_exactly(server: RunningServer) -> None:
    before = _metrics(server.metrics)
    served_before = _per_worker(before)
    pids = {pid for pid, _ in served_before.values()}
    assert len(pids) == 2 and all(p != server.proc.pid for p in pids)
    for k in range(CONNECTIONS):
        assert _infer(server.http, k) == [k + 1.0, k + 2.0, k + 3.0, k + 4.0]
    for _ in range(3):  # a wrong input name: counted as a failure, reason OTHER
        status, _ = _request(server.http, "POST", "/v2/models/pair/infer", _pair_doc(1, "x"))
        assert status == 400
    after = _metrics(server.metrics)
    assert _value(after, SUCCESS) - _value(before, SUCCESS) == CONNECTIONS
    assert _value(after, FAIL_OTHER) - _value(before, FAIL_OTHER) == 3
    served = _per_worker(after)
    rises = [served[i][1] - served_before[i][1] for i in (0, 1)]
    assert sum(rises) == CONNECTIONS + 3 and min(rises) > 0, rises  # both workers served
    assert _value(after, "reference_server_workers") == 2
    assert _value(after, "reference_server_ready") == 1  # min over workers, not a sum
    # the HTTP port's /metrics (whichever worker answers) is the same merged exposition
    via_http = _metrics(server.http)
    assert _value(via_http, SUCCESS) == _value(after, SUCCESS)
    assert _per_worker(via_http).keys() == {0, 1}


def test_tritonclient_http_and_grpc_work_unchanged(server: RunningServer) -> None:
    a = np.full((1, 4), 5, np.float32)
    b = np.array([[1, 2, 3, 4]], np.float32)
    before = _per_worker(_metrics(server.metrics))
    for _ in range(8):  # a new client, so a new connection, each time
        hc = httpclient.InferenceServerClient(server.http_url)
        assert hc.is_server_ready() and hc.is_model_ready("pair")
        inputs = [httpclient.InferInput(n, [1, 4], "FP32") for n in ("a", "b")]
        inputs[0].set_data_from_numpy(a)
        inputs[1].set_data_from_numpy(b)  # binary tensor extension, tritonclient's default
        np.testing.assert_array_equal(hc.infer("pair", inputs).as_numpy("diff"), a - b)
        hc.close()
        gc = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc}")
        assert gc.is_server_ready() and gc.get_model_metadata("pair").name == "pair"
        ginputs = [grpcclient.InferInput(n, [1, 4], "FP32") for n in ("a", "b")]
        ginputs[0].set_data_from_numpy(a)
        ginputs[1].set_data_from_numpy(b)
        np.testing.assert_array_equal(gc.infer("pair", ginputs).as_numpy("sum"), a + b)
        gc.close()
    after = _per_worker(_metrics(server.metrics))
    assert sum(after[i][1] - before[i][1] for i in (0, 1)) == 16


def test_an_admin_latency_fault_reaches_every_worker(server: RunningServer) -> None:
    before = _per_worker(_metrics(server.metrics))
    status, body = _request(
        server.http, "POST", "/admin/faults", {"type": "latency", "fixed_ms": 300}, AUTH
    )
    assert status == 201
    fault_id = json.loads(body)["id"]
    try:
        slow = []
        for k in range(CONNECTIONS):
            start = time.monotonic()
            _infer(server.http, k)
            slow.append(time.monotonic() - start >= 0.3)
        listed = {_request(server.http, "GET", "/admin/faults", None, AUTH)[1] for _ in range(8)}
    finally:
        status, _ = _request(server.http, "DELETE", "/admin/faults", None, AUTH)
    assert status == 200
    served = _per_worker(_metrics(server.metrics))
    assert all(served[i][1] > before[i][1] for i in (0, 1))  # both workers took requests...
    assert all(slow), slow  # ... and every request was delayed: the fault is on both
    assert [json.loads(x)["faults"][0]["id"] for x in listed] == [fault_id]  # one id for all
    start = time.monotonic()
    _infer(server.http, 1)
    assert time.monotonic() - start < 0.3  # removed everywhere (this worker at least)


def test_device_loss_makes_every_worker_unready_until_removed(server: RunningServer) -> None:
    status, _ = _request(
        server.http, "POST", "/admin/faults", {"type": "device_loss", "policy": "unready"}, AUTH
    )
    assert status == 201
    try:
        probes = [_ready_status(server.http) for _ in range(CONNECTIONS)]
        gc = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc}")
        grpc_ready = [gc.is_server_ready() for _ in range(4)]
        gc.close()
        merged = _value(_metrics(server.metrics), "reference_server_ready")
    finally:
        status, _ = _request(server.http, "DELETE", "/admin/faults", None, AUTH)
    assert status == 200
    assert probes == [503] * CONNECTIONS and grpc_ready == [False] * 4 and merged == 0
    wait_for(lambda: all(_ready_status(server.http) == 200 for _ in range(8)), 5, "ready again")


def _http_call(port: int, k: int, out: list) -> None:
    try:
        out.append((k, _infer(port, k)))
    except Exception as exc:  # recorded, asserted in the test
        out.append((k, repr(exc)))


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] == "Z"
    except (FileNotFoundError, IndexError):
        return True


def test_sigterm_drains_every_worker_and_leaves_no_process(
    pair_repository: Path, tmp_path: Path
) -> None:
    with _start(pair_repository, tmp_path) as srv:
        workers = _children(srv.proc.pid)
        assert len(workers) == 2
        status, _ = _request(
            srv.http, "POST", "/admin/faults", {"type": "latency", "fixed_ms": 1500}, AUTH
        )
        assert status == 201
        results: list = []
        threads = [
            threading.Thread(target=_http_call, args=(srv.http, k, results)) for k in range(12)
        ]
        for t in threads:
            t.start()

        def all_in_flight_on_both() -> bool:
            text = _metrics(srv.metrics)
            served = _per_worker(text)
            in_flight = _value(text, "reference_server_inflight_requests")
            return in_flight == 12 and all(n > 0 for _, n in served.values())

        wait_for(all_in_flight_on_both, 10, "12 requests in flight on both workers")
        srv.proc.send_signal(signal.SIGTERM)
        code = srv.wait(30)
        for t in threads:
            t.join(10)
    assert code == 0, srv.log()[-2000:]
    assert sorted(results) == [(k, [k + 1.0, k + 2.0, k + 3.0, k + 4.0]) for k in range(12)]
    assert all(_gone(pid) for pid in workers)


def test_a_killed_worker_is_reported_restarted_and_given_the_active_faults(
    pair_repository: Path, tmp_path: Path
) -> None:
    with _start(pair_repository, tmp_path) as srv:
        before = _per_worker(_metrics(srv.metrics))
        status, _ = _request(
            srv.http, "POST", "/admin/faults", {"type": "latency", "fixed_ms": 200}, AUTH
        )
        assert status == 201
        victim = before[1][0]
        os.kill(victim, signal.SIGKILL)
        unready = wait_for(
            lambda: _ready_status(srv.http) == 503, 5,
            "the server unready while a worker is missing",
        )  # fmt: skip

        def restarted() -> str:
            text = _metrics(srv.metrics)
            return text if 'reference_server_worker_restarts_total{worker="1"} 1' in text else ""

        text = wait_for(restarted, 30, "worker 1 restarted")
        new_pid = _per_worker(text)[1][0]
        assert new_pid not in (victim, before[0][0]) and not _gone(new_pid)
        assert f"worker 1 (pid {victim}) exited with signal SIGKILL" in srv.log()
        assert f"worker 1 restarted: pid {new_pid}" in srv.log()
        wait_for(lambda: _ready_status(srv.http) == 200, 5, "ready")
        served_at_restart = _per_worker(_metrics(srv.metrics))[1][1]
        slow = []
        for k in range(CONNECTIONS):
            start = time.monotonic()
            _infer(srv.http, k)
            slow.append(time.monotonic() - start >= 0.2)
        served = _per_worker(_metrics(srv.metrics))[1][1]
        assert served > served_at_restart  # the new worker served ...
        assert all(slow), slow  # ... under the fault it was given at its start
        # one id for a fault on every worker, though the new worker has added fewer faults
        status, body = _request(
            srv.http, "POST", "/admin/faults", {"type": "latency", "fixed_ms": 0}, AUTH
        )
        assert status == 201
        second = json.loads(body)["id"]
        listed = {_request(srv.http, "GET", "/admin/faults", None, AUTH)[1] for _ in range(12)}
        assert len(listed) == 1 and len(json.loads(listed.pop())["faults"]) == 2
        status, _ = _request(srv.http, "DELETE", f"/admin/faults/{second}", None, AUTH)
        assert status == 200
        listed = {_request(srv.http, "GET", "/admin/faults", None, AUTH)[1] for _ in range(12)}
        assert [f["id"] for f in json.loads(listed.pop())["faults"]] == ["latency-1"]
        assert not listed  # every worker lists the same one fault
        workers = _children(srv.proc.pid)
        assert srv.terminate() == 0
    assert unready
    assert all(_gone(pid) for pid in workers)


def test_a_killed_supervisor_leaves_no_worker(pair_repository: Path, tmp_path: Path) -> None:
    with _start(pair_repository, tmp_path) as srv:
        workers = _children(srv.proc.pid)
        assert len(workers) == 2
        srv.proc.kill()
        srv.wait(10)
        wait_for(lambda: all(_gone(pid) for pid in workers), 15, "the orphaned workers to exit")


def test_a_stack_with_workers_starts_each_replica_with_them(
    pair_repository: Path, tmp_path: Path
) -> None:
    from harness.config import StackConfig
    from harness.stack import LocalStack

    cfg = StackConfig.model_validate({"workers": 2, "model_repository": str(pair_repository)})
    stack = LocalStack(
        replicas=1, model_repository=pair_repository, device="cpu", workers=cfg.workers,
        workdir=tmp_path / "stack",
    )  # fmt: skip
    with stack:
        replica = stack.replicas[0]
        workers = _children(replica.pid)
        port = int(stack.url.rsplit(":", 1)[1])
        assert _infer(port, 2) == [3.0, 4.0, 5.0, 6.0]
        status, body = _request(replica.ports.metrics, "GET", "/metrics")
    assert status == 200 and _value(body.decode(), "reference_server_workers") == 2
    assert len(workers) == 2 and all(_gone(pid) for pid in workers)


def test_a_worker_that_cannot_start_ends_the_server_with_its_code(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    cmd = [sys.executable, "-m", "reference_server", "--http-port", "0", "--grpc-port", "0"]
    cmd += ["--metrics-port", "0", "--workers", "2", "--model-repository", str(missing)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr  # the worker's own exit code (configuration)
    lines = proc.stderr.splitlines()
    assert f"error: {missing}: model repository directory does not exist" in lines  # its line
    assert "listening" not in proc.stdout

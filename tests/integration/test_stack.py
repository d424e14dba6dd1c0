"""The local stack with real processes: 3 replicas behind the real nginx.

Killing one replica (SIGKILL, no drain) mid-traffic must be absorbed: nginx's passive health
check marks it failed and retries its requests on the others, so clients see no errors.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from harness.stack import LocalStack
from harness.stack.server_process import pid_alive
from tests.integration.cli_helpers import wait_for

pytestmark = pytest.mark.integration


def _metadata(url: str, model: str) -> dict:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", f"/v2/models/{model}")
    body = json.loads(conn.getresponse().read())
    conn.close()
    return body


def _successes(metrics_url: str) -> float:
    host_port, path = metrics_url.removeprefix("http://").split("/", 1)
    host, port = host_port.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/" + path)
    text = conn.getresponse().read().decode()
    conn.close()
    pattern = r'^nv_inference_request_success(?:_total)?\{[^}]*model="digits"[^}]*\} ([0-9.e+]+)'
    return sum(float(m) for m in re.findall(pattern, text, flags=re.M))


class _Client(threading.Thread):
    """Keep-alive JSON inference loop against one URL until told to stop."""

    def __init__(self, url: str, body: bytes, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.body, self.stop = url, body, stop
        self.ok = 0
        self.errors: list[str] = []

    def run(self) -> None:
        host, port = self.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        while not self.stop.is_set() and self.ok + len(self.errors) < 20_000:
            try:
                conn.request(
                    "POST",
                    "/v2/models/digits/versions/1/infer",
                    self.body,
                    {"Content-Type": "application/json"},
                )
                resp = conn.getresponse()
                data = resp.read()
                if resp.status == 200:
                    self.ok += 1
                else:
                    self.errors.append(f"{resp.status} {data[:120]!r}")
            except OSError as exc:
                self.errors.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.close()


def test_stack_of_three_absorbs_a_killed_replica(model_repository: Path, tmp_path: Path) -> None:
    with LocalStack(
        replicas=3, model_repository=model_repository, device="cpu", workdir=tmp_path / "stack"
    ) as stack:
        assert stack.nginx is not None and len(stack.replicas) == 3
        meta = _metadata(stack.url, "digits")
        inp = meta["inputs"][0]
        sample = np.random.default_rng(0).uniform(0, 16, size=(1, 64)).astype(np.float32)
        body = json.dumps(
            {
                "inputs": [
                    {
                        "name": inp["name"],
                        "datatype": "FP32",
                        "shape": [1, 64],
                        "data": sample.ravel().tolist(),
                    }
                ]
            }
        ).encode()
        stop = threading.Event()
        clients = [_Client(stack.url, body, stop) for _ in range(4)]

        def every_replica_served() -> list[float] | None:
            counts = [_successes(u) for u in stack.metrics_urls]
            return counts if all(n > 0 for n in counts) else None

        def answered() -> int:
            return sum(c.ok for c in clients)

        def survivors_served() -> bool:
            return all(_successes(stack.metrics_urls[i]) > before[i] for i in (0, 2))

        for c in clients:
            c.start()
        try:
            before = wait_for(every_replica_served, 30, "least_conn to use every replica")
            victim_pid = stack.kill_replica(1)
            assert not pid_alive(victim_pid)
            after_kill = answered()
            # Traffic keeps flowing: 300 answers after the kill is far more than nginx needs
            # to find the dead replica (each client's next request would otherwise reach it),
            # so an error nginx let through would be among them. An error ends the wait.
            wait_for(
                lambda: answered() - after_kill > 300 or any(c.errors for c in clients),
                60,
                "300 answers after the kill",
            )
            wait_for(survivors_served, 30, "both survivors serving")
        finally:
            stop.set()
            for c in clients:
                c.join(timeout=15)
        total_ok = sum(c.ok for c in clients)
        errors = [e for c in clients for e in c.errors]
        assert errors == [], f"nginx let {len(errors)} failures through: {errors[:3]}"
        assert total_ok - after_kill > 300, "traffic must keep flowing after the kill"


def test_grpc_through_nginx_reaches_replicas(model_repository: Path, tmp_path: Path) -> None:
    with LocalStack(
        replicas=2, model_repository=model_repository, device="cpu", workdir=tmp_path / "stack"
    ) as stack:
        client = grpcclient.InferenceServerClient(stack.grpc_url)
        try:
            assert client.is_server_ready()
            meta = client.get_model_metadata("digits", "1", as_json=True)
            name = meta["inputs"][0]["name"]
            x = np.random.default_rng(1).uniform(0, 16, size=(3, 64)).astype(np.float32)
            inp = grpcclient.InferInput(name, list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            labels = set()
            for _ in range(6):  # spread over both upstreams
                result = client.infer("digits", [inp], model_version="1")
                out = result.as_numpy(meta["outputs"][0]["name"])
                assert out.shape[0] == 3
                labels.add(tuple(np.asarray(out).ravel().tolist()))
            assert len(labels) == 1, "replicas serve the same model: same answers"
        finally:
            client.close()
        served = [_successes(u) for u in stack.metrics_urls]
        assert sum(served) >= 6 and all(s > 0 for s in served)


def test_stack_stops_every_process_it_started(model_repository: Path, tmp_path: Path) -> None:
    stack = LocalStack(
        replicas=2, model_repository=model_repository, device="cpu", workdir=tmp_path / "stack"
    ).start()
    pids = [r.pid for r in stack.replicas] + [stack.nginx.pid]
    assert all(pid_alive(p) for p in pids)
    stack.stop()
    assert not any(pid_alive(p) for p in pids)

"""The queue policy in a real server: refusals answered at once, with the right status.

A `slow` model (a chain of 1024x1024 MatMuls, ~0.1-0.3 s for 64 rows on one thread) keeps
its single instance busy for a known while, so the queue's state is set by the test, not by
timing luck: one request running, then the queue filled, then the request that must be
refused. Two copies of the model: `slow_bounded` (max_queue_size 2, no timeout) and
`slow_timeout` (no size bound, a 20 ms queue timeout).
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import grpc
import numpy as np
import onnx
import pytest
import tritonclient.grpc as grpcclient
from onnx import TensorProto, helper, numpy_helper
from prometheus_client.parser import text_string_to_metric_families

from tests.reference_server.conftest import RunningServer, running_server

WIDTH = 1024
ROWS = 64
CONFIG = """
name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 64
input {{ name: "input" data_type: TYPE_FP32 dims: [ {width} ] }}
output {{ name: "output" data_type: TYPE_FP32 dims: [ {width} ] }}
instance_group {{ count: 1 kind: KIND_CPU }}
dynamic_batching {{
  max_queue_delay_microseconds: 0
  default_queue_policy {{ {policy} }}
}}
"""
POLICIES = {
    "slow_bounded": "max_queue_size: 2",
    "slow_timeout": "default_timeout_microseconds: 20000 timeout_action: REJECT",
}


def _slow_model(depth: int = 100) -> bytes:
    weight = numpy_helper.from_array(np.eye(WIDTH, dtype=np.float32), "w")
    names = ["input", *(f"m{i}" for i in range(depth - 1)), "output"]
    nodes = [helper.make_node("MatMul", [a, "w"], [b]) for a, b in itertools.pairwise(names)]
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", WIDTH])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("slow") / "repo"
    blob = _slow_model()
    for name, policy in POLICIES.items():
        (root / name / "1").mkdir(parents=True)
        (root / name / "1" / "model.onnx").write_bytes(blob)
        config = CONFIG.format(name=name, width=WIDTH, policy=policy)
        (root / name / "config.pbtxt").write_text(config)
    log_dir = tmp_path_factory.mktemp("slow-logs")
    args = ("--model-repository", str(root), "--device", "cpu", "--intra-op-threads", "1")
    with running_server(log_dir, *args) as server:
        yield server


def metrics(server: RunningServer) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics}/metrics", timeout=5).read()
    return {
        (s.name.removesuffix("_total"), tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def of(sample: dict, name: str, model: str, **labels: str) -> float:
    key = tuple(sorted({"model": model, "version": "1", **labels}.items()))
    return sample[(name, key)]


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def http_infer(server: RunningServer, model: str, rows: int) -> tuple[int, dict, dict, float]:
    """(status, headers, JSON body, seconds) of one KServe JSON inference."""
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [rows, WIDTH],
                    "data": [0.5] * (rows * WIDTH),
                }
            ]
        }
    ).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.http}/v2/models/{model}/infer", body, method="POST"
    )
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, headers, data = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, headers, data = exc.code, dict(exc.headers), exc.read()
    return status, headers, json.loads(data), time.perf_counter() - start


class Background:
    """HTTP inferences in threads; `join()` returns their statuses."""

    def __init__(self, server: RunningServer, model: str, count: int) -> None:
        self.statuses: list[int] = []
        self.threads = [
            threading.Thread(target=self._one, args=(server, model)) for _ in range(count)
        ]
        for t in self.threads:
            t.start()

    def _one(self, server: RunningServer, model: str) -> None:
        self.statuses.append(http_infer(server, model, ROWS)[0])

    def join(self) -> list[int]:
        for t in self.threads:
            t.join(30)
        return sorted(self.statuses)


def _running_then_queued(server: RunningServer, model: str, queued: int) -> list[Background]:
    """One request running on the instance, then `queued` more waiting behind it."""
    running = Background(server, model, 1)
    wait_for(
        lambda: (
            metrics(server)[("reference_server_inflight_requests", ())] == 1
            and of(metrics(server), "nv_inference_pending_request_count", model) == 0
        ),
        what="the first request to start running",
    )
    waiting = Background(server, model, queued)
    wait_for(
        lambda: of(metrics(server), "nv_inference_pending_request_count", model) == queued,
        what="the queue to fill",
    )
    return [running, waiting]


def test_full_queue_refuses_at_once_http_503_retry_after_grpc_unavailable(
    slow_server: RunningServer,
) -> None:
    model = "slow_bounded"
    before = metrics(slow_server)
    loads = _running_then_queued(slow_server, model, queued=2)
    status, headers, body, seconds = http_infer(slow_server, model, ROWS)
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{slow_server.grpc}")
    x = grpcclient.InferInput("input", [1, WIDTH], "FP32")
    x.set_data_from_numpy(np.zeros((1, WIDTH), np.float32))
    with pytest.raises(grpcclient.InferenceServerException) as refused:
        client.infer(model, [x])
    still_queued = of(metrics(slow_server), "nv_inference_pending_request_count", model)
    statuses = [s for load in loads for s in load.join()]
    client.close()

    assert still_queued == 2  # the refusals came while the queue was full, not after
    assert status == 503 and headers["Retry-After"] == "1"
    assert body == {"error": "slow_bounded:1: exceeds maximum queue size (2)"}
    assert refused.value.status() == f"StatusCode.{grpc.StatusCode.UNAVAILABLE.name}"
    assert refused.value.message() == "slow_bounded:1: exceeds maximum queue size (2)"
    assert statuses == [200, 200, 200]
    after = metrics(slow_server)
    # One 64-row run takes ~0.1-0.3 s (each of the 3 requests ran alone and is charged its
    # run's compute time); the refusal did not wait for the run in progress.
    name = "nv_inference_compute_infer_duration_us"
    service_s = (of(after, name, model) - of(before, name, model)) / 3 / 1e6
    assert seconds < 0.25 * service_s, (seconds, service_s)
    rejected = of(after, "nv_inference_request_failure", model, reason="REJECTED") - of(
        before, "nv_inference_request_failure", model, reason="REJECTED"
    )
    assert rejected == 2
    assert of(after, "nv_inference_count", model) - of(before, "nv_inference_count", model) == (
        3 * ROWS
    )


def test_request_queued_past_its_timeout_is_rejected_without_running(
    slow_server: RunningServer,
) -> None:
    model = "slow_timeout"
    before = metrics(slow_server)
    loads = _running_then_queued(slow_server, model, queued=2)
    statuses = [s for load in loads for s in load.join()]
    after = metrics(slow_server)
    # the running one answers; both queued ones waited the whole ~0.1-0.3 s run (> 20 ms)
    assert statuses == [200, 503, 503]
    rejected = of(after, "nv_inference_request_failure", model, reason="REJECTED") - of(
        before, "nv_inference_request_failure", model, reason="REJECTED"
    )
    assert rejected == 2
    assert of(after, "nv_inference_count", model) - of(before, "nv_inference_count", model) == ROWS


def test_a_full_queue_refuses_before_the_body_is_sent(slow_server: RunningServer) -> None:
    """Admission at the headers: a client that waits for `100 Continue` before sending its
    (declared) 60 MB body gets the 503 at once instead; the body is never sent nor read."""
    model = "slow_bounded"
    loads = _running_then_queued(slow_server, model, queued=2)
    with socket.create_connection(("127.0.0.1", slow_server.http), timeout=5) as sock:
        sock.sendall(
            b"POST /v2/models/slow_bounded/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Length: 60000000\r\nExpect: 100-continue\r\n\r\n"
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            assert chunk, "connection closed without an answer"
            answer += chunk
    statuses = [s for load in loads for s in load.join()]
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"\r\nRetry-After: 1\r\n" in answer
    assert statuses == [200, 200, 200]


def _raw_infer(model: str, rows: int) -> bytes:
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [rows, WIDTH],
                    "data": [0.5] * (rows * WIDTH),
                }
            ]
        }
    ).encode()
    head = f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    return head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body


def test_a_client_that_leaves_frees_its_place_in_a_full_queue(slow_server: RunningServer) -> None:
    """Two queued requests fill `slow_bounded`'s queue; one client hangs up: its place is
    free at once (not when batch formation reaches it), so the next request is accepted."""
    model = "slow_bounded"
    before = metrics(slow_server)
    running = Background(slow_server, model, 1)
    wait_for(
        lambda: (
            metrics(slow_server)[("reference_server_inflight_requests", ())] == 1
            and of(metrics(slow_server), "nv_inference_pending_request_count", model) == 0
        ),
        what="the first request to start running",
    )
    stays = Background(slow_server, model, 1)
    leaving = socket.create_connection(("127.0.0.1", slow_server.http), timeout=5)
    leaving.sendall(_raw_infer(model, ROWS))
    wait_for(
        lambda: of(metrics(slow_server), "nv_inference_pending_request_count", model) == 2,
        what="the queue to fill",
    )
    leaving.close()
    wait_for(
        lambda: (
            of(metrics(slow_server), "nv_inference_request_failure", model, reason="CANCELED")
            == of(before, "nv_inference_request_failure", model, reason="CANCELED") + 1
        ),
        what="the cancellation to be counted",
    )
    still_running = metrics(slow_server)[("reference_server_inflight_requests", ())] == 2
    status, _, body, _ = http_infer(slow_server, model, ROWS)
    statuses = running.join() + stays.join()
    assert still_running  # the first run had not finished when the place was taken
    assert (status, statuses) == (200, [200, 200]), body

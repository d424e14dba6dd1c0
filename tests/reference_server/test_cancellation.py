"""A request whose client left is dropped before it runs, and counted as CANCELED.

A real server (one intra-op thread) is kept busy by a burst of 32-row `cnn` requests sent
over gRPC; behind them, one single-row request whose client then goes away: an HTTP client
that closes its connection, a gRPC call past its deadline, a gRPC call cancelled. Every
burst request is 32 rows, so the model's row count says exactly whether the single row ran:
`nv_inference_count` must stay a multiple of 32 while `nv_inference_request_failure
{reason="CANCELED"}` rises by one.

The queue timeout is switched off in this repository copy (the shipped 100 ms would reject
the waiting request before its client leaves, which tests the queue policy instead).
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from google.protobuf import text_format
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from tests.reference_server.conftest import RunningServer, running_server

BURST = 80  # 32-row requests: ~0.3-0.6 s of work for one intra-op thread
ROWS = 32
ONE_ROW = np.zeros((1, 3, 64, 64), np.float32)


@pytest.fixture(scope="module")
def busy_server(
    model_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("cancel") / "repo"
    shutil.copytree(model_repository / "cnn", root / "cnn")
    path = root / "cnn" / "config.pbtxt"
    config = text_format.Parse(path.read_text(), mc.ModelConfig())
    config.dynamic_batching.default_queue_policy.default_timeout_microseconds = 0
    path.write_text(text_format.MessageToString(config))
    log_dir = tmp_path_factory.mktemp("cancel-logs")
    args = ("--model-repository", str(root), "--device", "cpu", "--intra-op-threads", "1")
    # The burst (1.5 MB gRPC requests, all at once) is decoded on the loop; on a busy CI host
    # that can run the loop late twice in a row, and overload shedding would refuse part of
    # the burst: a test of shedding (test_overload_shedding.py), not of what this one checks.
    args += ("--max-loop-lag-ms", "0")
    with running_server(log_dir, *args) as server:
        yield server


def metrics(server: RunningServer) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics}/metrics", timeout=5).read()
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            name = s.name.removesuffix("_total")
            out[(name, tuple(sorted(s.labels.items())))] = s.value
    return out


CNN = (("model", "cnn"), ("version", "1"))


def cnn(sample: dict, name: str, reason: str | None = None) -> float:
    labels = CNN if reason is None else tuple(sorted((*CNN, ("reason", reason))))
    return sample[(name, labels)]


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


class Burst:
    """BURST 32-row requests in flight over gRPC; `wait()` until every answer is back."""

    def __init__(self, server: RunningServer) -> None:
        self.client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc}")
        self.done = threading.Semaphore(0)
        self.errors: list[object] = []
        x = grpcclient.InferInput("input", [ROWS, 3, 64, 64], "FP32")
        x.set_data_from_numpy(np.ones((ROWS, 3, 64, 64), np.float32))
        for _ in range(BURST):
            self.client.async_infer("cnn", [x], self._answered)

    def _answered(self, result: object, error: object) -> None:
        if error is not None:
            self.errors.append(error)
        self.done.release()

    def wait(self) -> None:
        for _ in range(BURST):
            assert self.done.acquire(timeout=30), "the burst did not finish"
        self.client.close()
        assert not self.errors, self.errors[:3]


def protocol_count(sample: dict, protocol: str) -> float:
    return sample.get(("reference_server_inference_requests", (("protocol", protocol),)), 0)


def _leave_behind_the_burst(
    server: RunningServer, protocol: str, leave: Callable[[], None], send: Callable[[], None]
) -> tuple[dict, dict]:
    """Queue the burst, then one request (`send`) behind it, then its client goes (`leave`);
    the metrics before and after everything settled."""
    before = metrics(server)
    burst = Burst(server)
    wait_for(
        lambda: protocol_count(metrics(server), "grpc") >= protocol_count(before, "grpc") + BURST,
        what="the whole burst to arrive",
    )
    sent_before = protocol_count(metrics(server), protocol)
    send()
    wait_for(
        lambda: protocol_count(metrics(server), protocol) > sent_before,
        what="the single request to reach the queue",
    )
    # It is last in a FIFO queue: anything else pending is ahead of it, so it has not run.
    assert cnn(metrics(server), "nv_inference_pending_request_count") >= 2, "burst already done"
    leave()
    burst.wait()
    wait_for(lambda: metrics(server)[("reference_server_inflight_requests", ())] == 0)
    return before, metrics(server)


def _assert_dropped_and_counted(before: dict, after: dict) -> None:
    rows = cnn(after, "nv_inference_count") - cnn(before, "nv_inference_count")
    assert rows == BURST * ROWS  # the single row never ran
    answered = cnn(after, "nv_inference_request_success") - cnn(
        before, "nv_inference_request_success"
    )
    assert answered == BURST
    cancelled = cnn(after, "nv_inference_request_failure", "CANCELED") - cnn(
        before, "nv_inference_request_failure", "CANCELED"
    )
    assert cancelled == 1
    assert cnn(after, "nv_inference_pending_request_count") == 0


def _http_request(model: str) -> bytes:
    tensor = ONE_ROW.tobytes()
    header = (
        b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1,3,64,64],'
        b'"parameters":{"binary_data_size":%d}}]}' % len(tensor)
    )
    body = header + tensor
    return (
        b"POST /v2/models/%s/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Inference-Header-Content-Length: %d\r\nContent-Length: %d\r\n\r\n"
        % (model.encode(), len(header), len(body))
    ) + body


def test_http_client_that_closes_its_connection_is_not_served(busy_server: RunningServer) -> None:
    sock = socket.create_connection(("127.0.0.1", busy_server.http))

    def send() -> None:
        sock.sendall(_http_request("cnn"))

    before, after = _leave_behind_the_burst(busy_server, "http", sock.close, send)
    _assert_dropped_and_counted(before, after)


def _grpc_request() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="cnn")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 3, 64, 64])
    request.raw_input_contents.append(ONE_ROW.tobytes())
    return request


def test_grpc_call_past_its_deadline_is_not_run(busy_server: RunningServer) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{busy_server.grpc}")
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    calls: list[grpc.Future] = []

    def send() -> None:
        calls.append(stub.ModelInfer.future(_grpc_request(), timeout=0.05))

    def leave() -> None:  # the deadline passes while the burst still runs
        assert calls[0].exception(timeout=5).code() == grpc.StatusCode.DEADLINE_EXCEEDED

    try:
        before, after = _leave_behind_the_burst(busy_server, "grpc", leave, send)
    finally:
        channel.close()
    _assert_dropped_and_counted(before, after)


def test_cancelled_grpc_call_is_not_run(busy_server: RunningServer) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{busy_server.grpc}")
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    calls: list[grpc.Future] = []

    def send() -> None:
        calls.append(stub.ModelInfer.future(_grpc_request(), timeout=30))

    def leave() -> None:
        assert calls[0].cancel()

    try:
        before, after = _leave_behind_the_burst(busy_server, "grpc", leave, send)
    finally:
        channel.close()
    _assert_dropped_and_counted(before, after)

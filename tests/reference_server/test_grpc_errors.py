"""Every bad gRPC request gets the right status code and a clear message, and the server
keeps serving: a good inference succeeds after each one.

Requests are built with tritonclient's own protobuf stubs (tritonclient.grpc refuses to
send most of these malformed requests itself) and sent through a real channel.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from tests.reference_server.conftest import ADMIN_TOKEN, RunningServer

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
ONES = np.ones((1, 4), dtype=np.float32)


@pytest.fixture(scope="module")
def channel(server: RunningServer) -> Iterator[grpc.Channel]:
    ch = grpc.insecure_channel(f"127.0.0.1:{server.grpc}")
    try:
        yield ch
    finally:
        ch.close()


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> pb_grpc.GRPCInferenceServiceStub:
    return pb_grpc.GRPCInferenceServiceStub(channel)


def pair_request(
    a: np.ndarray = ONES, b: np.ndarray = ONES, names: tuple[str, str] = ("a", "b"), **kw: str
) -> pb.ModelInferRequest:
    """A raw-contents request for the two-input `pair` model (fields overridable)."""
    request = pb.ModelInferRequest(model_name=kw.get("model", "pair"), model_version="")
    request.model_version = kw.get("version", "")
    for name, array in zip(names, (a, b), strict=True):
        request.inputs.add(name=name, datatype=kw.get("datatype", "FP32"), shape=array.shape)
        request.raw_input_contents.append(array.tobytes())
    return request


def _extra_input() -> pb.ModelInferRequest:
    request = pair_request()
    request.inputs.add(name="c", datatype="FP32", shape=[1, 4])
    request.raw_input_contents.append(ONES.tobytes())
    return request


def _missing_input() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="pair")
    request.inputs.add(name="a", datatype="FP32", shape=[1, 4])
    request.raw_input_contents.append(ONES.tobytes())
    return request


def _raw_count_mismatch() -> pb.ModelInferRequest:
    request = pair_request()
    del request.raw_input_contents[1]
    return request


def _short_raw() -> pb.ModelInferRequest:
    request = pair_request()
    request.raw_input_contents[0] = ONES.tobytes()[:-4]
    return request


def _typed(count: int, datatype: str = "FP32") -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="pair")
    for name in ("a", "b"):
        tensor = request.inputs.add(name=name, datatype=datatype, shape=[1, 4])
        tensor.contents.fp32_contents.extend([1.0] * count)
    return request


def _shared_memory() -> pb.ModelInferRequest:
    request = pair_request()
    request.inputs[0].parameters["shared_memory_region"].string_param = "region0"
    return request


def _classification() -> pb.ModelInferRequest:
    request = pair_request()
    request.outputs.add(name="sum").parameters["classification"].int64_param = 2
    return request


def _unknown_output() -> pb.ModelInferRequest:
    request = pair_request()
    request.outputs.add(name="product")
    return request


def _negative_shape() -> pb.ModelInferRequest:
    request = pair_request()
    request.inputs[0].shape[:] = [-1, 4]
    return request


BAD_REQUESTS: dict[str, tuple[Callable[[], pb.ModelInferRequest], grpc.StatusCode, str]] = {
    "unknown model": (
        lambda: pair_request(model="no-such-model"),
        NOT_FOUND,
        "unknown model 'no-such-model'; available: cnn, digits, mlp, pair",
    ),
    "unknown version": (
        lambda: pair_request(version="9"),
        NOT_FOUND,
        "model 'pair' has no loaded version '9'; loaded: 1",
    ),
    "missing model name": (lambda: pair_request(model=""), INVALID, "model_name is required"),
    "wrong input name": (
        lambda: pair_request(names=("a", "z")),
        INVALID,
        "model 'pair': unexpected input 'z'; got 2 input(s), expected 2: a, b",
    ),
    "unknown datatype": (
        lambda: pair_request(datatype="FP17"),
        INVALID,
        "unknown datatype 'FP17'; expected one of BOOL,",
    ),
    "wrong datatype": (
        lambda: pair_request(ONES.astype(np.int32), ONES.astype(np.int32), datatype="INT32"),
        INVALID,
        "input 'a' of model 'pair': datatype INT32 does not match the model's FP32",
    ),
    "raw bytes short of the shape": (
        _short_raw,
        INVALID,
        "input 'a': shape [1, 4] of FP32 needs 16 bytes, got 12",
    ),
    "raw entries != inputs": (
        _raw_count_mismatch,
        INVALID,
        "raw_input_contents has 1 entries for 2 inputs; send raw contents for every input",
    ),
    "typed count != shape": (
        lambda: _typed(3),
        INVALID,
        "input 'a': shape [1, 4] needs 4 elements, got 3 in fp32_contents",
    ),
    "FP16 in typed contents": (
        lambda: _typed(4, "FP16"),
        INVALID,
        "input 'a': datatype FP16 must be sent in raw_input_contents",
    ),
    "too many inputs": (
        _extra_input,
        INVALID,
        "model 'pair': unexpected input 'c'; got 3 input(s), expected 2: a, b",
    ),
    "missing input": (_missing_input, INVALID, "model 'pair': missing input 'b'"),
    "duplicate input": (
        lambda: pair_request(names=("a", "a")),
        INVALID,
        "input 'a' given more than once",
    ),
    "batch over max_batch_size": (
        lambda: pair_request(np.ones((9, 4), np.float32), np.ones((9, 4), np.float32)),
        INVALID,
        "input 'a' of model 'pair': batch size 9 is outside 1..8 (max_batch_size)",
    ),
    "shape of the wrong rank": (
        lambda: pair_request(np.ones((1, 2, 2), np.float32), np.ones((1, 2, 2), np.float32)),
        INVALID,
        "input 'a' of model 'pair': shape [1, 2, 2] does not match the model's [-1, 4]",
    ),
    "negative dimension": (
        _negative_shape,
        INVALID,
        "input 'a': shape must be non-negative, got [-1, 4]",
    ),
    "unknown requested output": (
        _unknown_output,
        INVALID,
        "model 'pair': unknown output 'product'; outputs: sum, diff",
    ),
    "shared memory": (_shared_memory, INVALID, "input 'a': shared memory is not supported"),
    "classification extension": (
        _classification,
        INVALID,
        "output 'sum': parameter 'classification' is not supported",
    ),
}


def _assert_still_serving(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    a = np.arange(4, dtype=np.float32).reshape(1, 4)
    response = stub.ModelInfer(pair_request(a, ONES), timeout=30)
    got = {
        out.name: np.frombuffer(raw, np.float32)
        for out, raw in zip(response.outputs, response.raw_output_contents, strict=True)
    }
    np.testing.assert_array_equal(got["sum"], (a + 1).ravel())
    np.testing.assert_array_equal(got["diff"], (a - 1).ravel())


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_infer_request_gets_right_code_and_server_survives(
    stub: pb_grpc.GRPCInferenceServiceStub, case: str
) -> None:
    build, code, message = BAD_REQUESTS[case]
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelInfer(build(), timeout=30)
    assert err.value.code() == code, err.value.details()
    # the whole distinctive message (a word such as the input's name matches almost any)
    assert err.value.details().startswith(message), err.value.details()
    _assert_still_serving(stub)


def test_message_over_the_size_limit_is_resource_exhausted(
    stub: pb_grpc.GRPCInferenceServiceStub,
) -> None:
    big = np.ones((1, 5 * 1024 * 1024 // 4), dtype=np.float32)  # server limit: 4 MiB
    request = pb.ModelInferRequest(model_name="mlp")
    request.inputs.add(name="input", datatype="FP32", shape=big.shape)
    request.raw_input_contents.append(big.tobytes())
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelInfer(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    _assert_still_serving(stub)


def test_undecodable_protobuf_is_refused_and_server_survives(
    channel: grpc.Channel, stub: pb_grpc.GRPCInferenceServiceStub
) -> None:
    raw_call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    with pytest.raises(grpc.RpcError) as err:
        raw_call(b"\xff\xff\xff\xff not a protobuf", timeout=30)
    assert err.value.code() == INVALID
    assert "inference.ModelInferRequest" in err.value.details()
    _assert_still_serving(stub)


def test_rpcs_not_offered_are_unimplemented(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    _assert_still_serving(stub)


UNKNOWN_MODEL = "unknown model 'no-such-model'; available: cnn, digits, mlp, pair"


@pytest.mark.parametrize(
    ("call", "request_", "message"),
    [
        ("ModelMetadata", pb.ModelMetadataRequest(name="no-such-model"), UNKNOWN_MODEL),
        (
            "ModelMetadata",
            pb.ModelMetadataRequest(name="pair", version="9"),
            "model 'pair' has no loaded version '9'; loaded: 1",
        ),
        ("ModelConfig", pb.ModelConfigRequest(name="no-such-model"), UNKNOWN_MODEL),
        ("ModelStatistics", pb.ModelStatisticsRequest(name="no-such-model"), UNKNOWN_MODEL),
    ],
)
def test_unknown_model_in_metadata_calls_is_not_found(
    stub: pb_grpc.GRPCInferenceServiceStub, call: str, request_: object, message: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        getattr(stub, call)(request_, timeout=10)
    assert err.value.code() == NOT_FOUND
    assert err.value.details() == message


def _admin(server: RunningServer, method: str, body: bytes | None = None) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.http}/admin/faults",
        data=body,
        method=method,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status in (200, 201)
        return json.loads(resp.read())


def test_unready_server_answers_unavailable_then_recovers(
    server: RunningServer, stub: pb_grpc.GRPCInferenceServiceStub
) -> None:
    _admin(server, "POST", b'{"type": "device_loss", "policy": "unready", "duration_s": 60}')
    try:
        assert not stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(pair_request(), timeout=30)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert err.value.details() == "device lost: server is unready (device_loss fault)"
    finally:
        _admin(server, "DELETE")
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
    _assert_still_serving(stub)


def test_injected_failure_is_internal_with_a_message(
    server: RunningServer, stub: pb_grpc.GRPCInferenceServiceStub
) -> None:
    spec = b'{"type": "failure", "ratio": 1.0, "model": "pair", "duration_s": 60}'
    fault_id = _admin(server, "POST", spec)["id"]
    try:
        with pytest.raises(grpc.RpcError) as err:
            stub.ModelInfer(pair_request(), timeout=30)
        assert err.value.code() == grpc.StatusCode.INTERNAL
        assert err.value.details() == f"injected failure (fault {fault_id}, ratio 1.0)"
    finally:
        _admin(server, "DELETE")
    _assert_still_serving(stub)

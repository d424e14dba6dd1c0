"""KServe v2 HTTP body codec against the real tritonclient encoder/decoder (no server).

`InferenceServerClient.generate_request_body` / `parse_response_body` are the exact code
paths `tritonclient.http` uses on the wire, so a round trip through them proves the
binary tensor extension and the JSON form match what the client sends and expects.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.grpc import model_config_pb2 as mc

from reference_server.core import InferResponse
from reference_server.errors import InvalidInput
from reference_server.http.kserve import OutputPlan, config_to_json, encode_infer, parse_infer

Client = httpclient.InferenceServerClient


def _inputs(binary: bool) -> tuple[list[httpclient.InferInput], dict[str, np.ndarray]]:
    arrays = {
        "x": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
        "ids": np.array([[1, -2], [3, 2**40]], dtype=np.int64),
        "names": np.array([b"alpha", b"", "β".encode()], dtype=object),
    }
    items = []
    for name, array in arrays.items():
        dtype = {"x": "FP32", "ids": "INT64", "names": "BYTES"}[name]
        item = httpclient.InferInput(name, list(array.shape), dtype)
        item.set_data_from_numpy(array, binary_data=binary)
        items.append(item)
    return items, arrays


@pytest.mark.parametrize("binary", [True, False])
def test_request_decoding_matches_tritonclient(binary: bool) -> None:
    items, arrays = _inputs(binary)
    outputs = [httpclient.InferRequestedOutput("y", binary_data=binary)]
    body, json_size = Client.generate_request_body(items, outputs, request_id="r-7")
    assert (json_size is not None) == binary
    header = None if json_size is None else str(json_size)
    request, plan = parse_infer(body, header, "m", "2")
    assert (request.model, request.version, request.id) == ("m", "2", "r-7")
    assert request.requested_outputs == ("y",)
    assert plan.binary == {"y": binary}
    for name, array in arrays.items():
        got = request.inputs[name]
        assert got.shape == array.shape
        assert got.tolist() == array.tolist()


def test_no_requested_outputs_means_all_outputs_in_binary() -> None:
    items, _ = _inputs(True)
    body, json_size = Client.generate_request_body(items)
    request, plan = parse_infer(body, str(json_size), "m", None)
    assert request.requested_outputs is None and request.version is None
    assert plan.binary_default is True


@pytest.mark.parametrize("binary", [True, False])
def test_response_encoding_parses_in_tritonclient(binary: bool) -> None:
    outputs = {
        "probs": np.random.default_rng(0).random((2, 10), dtype=np.float32),
        "label": np.array([[3], [9]], dtype=np.int64),
        "text": np.array([b"cat", b"dog"], dtype=object),
    }
    resp = InferResponse("m", "1", outputs, "id-1")
    plan = OutputPlan(("label", "probs", "text"), {"label": binary, "probs": binary}, False)
    encoded = encode_infer(resp, plan)
    header = dict(encoded.headers).get("Inference-Header-Content-Length")
    assert (header is not None) == binary
    result = Client.parse_response_body(encoded.body, header_length=header)
    assert result.get_response()["model_version"] == "1"
    assert result.get_response()["id"] == "id-1"
    assert [o["name"] for o in result.get_response()["outputs"]] == ["label", "probs", "text"]
    np.testing.assert_array_equal(result.as_numpy("label"), outputs["label"])
    np.testing.assert_array_equal(result.as_numpy("probs"), outputs["probs"])
    assert result.as_numpy("text").tolist() == ["cat", "dog"]  # JSON BYTES come back as str
    assert "parameters" not in result.get_output("text")


def _body(doc: dict) -> bytes:
    return json.dumps(doc).encode()


GOOD_INPUT = {"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}


@pytest.mark.parametrize(
    ("body", "header", "message"),
    [
        (b"{not json", None, "malformed JSON"),
        (b"[1, 2]", None, "must be a JSON object"),
        (_body({}), None, "non-empty 'inputs'"),
        (_body({"inputs": [{**GOOD_INPUT, "datatype": "FP33"}]}), None, "unknown datatype"),
        (_body({"inputs": [{**GOOD_INPUT, "shape": [2, 2]}]}), None, "needs 4 elements, got 2"),
        (_body({"inputs": [{**GOOD_INPUT, "data": ["a", "b"]}]}), None, "does not match"),
        (_body({"inputs": [GOOD_INPUT, GOOD_INPUT]}), None, "more than once"),
        (_body({"inputs": [{**GOOD_INPUT, "shape": "12"}]}), None, "shape must be"),
        (_body({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}), None, "neither"),
        (_body({"inputs": [GOOD_INPUT], "outputs": {"a": 1}}), None, "'outputs' must be a list"),
        (b'{"inputs": []}', "999", "exceeds the body length"),
        (b'{"inputs": []}', "abc", "not an integer"),
    ],
)
def test_bad_requests_raise_invalid_input(body: bytes, header: str | None, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_infer(body, header, "m", None)


def _binary_body(sizes: list[int], tail: bytes) -> tuple[bytes, str]:
    inputs = [
        {"name": f"i{k}", "datatype": "UINT8", "shape": [s], "parameters": {"binary_data_size": s}}
        for k, s in enumerate(sizes)
    ]
    head = _body({"inputs": inputs})
    return head + tail, str(len(head))


def test_binary_sizes_claiming_more_than_sent_are_rejected() -> None:
    body, header = _binary_body([4, 8], b"\x01" * 10)
    with pytest.raises(InvalidInput, match="runs past the end"):
        parse_infer(body, header, "m", None)


def test_binary_bytes_left_over_are_rejected() -> None:
    body, header = _binary_body([4], b"\x01" * 6)
    with pytest.raises(InvalidInput, match="belong to no input"):
        parse_infer(body, header, "m", None)


def test_binary_sizes_consumed_consecutively() -> None:
    body, header = _binary_body([2, 3], b"\x01\x02\x03\x04\x05")
    request, _ = parse_infer(body, header, "m", None)
    assert request.inputs["i0"].tolist() == [1, 2]
    assert request.inputs["i1"].tolist() == [3, 4, 5]


def test_unsupported_parameters_are_refused_clearly() -> None:
    out = {"name": "y", "parameters": {"classification": 3}}
    with pytest.raises(InvalidInput, match="classification"):
        parse_infer(_body({"inputs": [GOOD_INPUT], "outputs": [out]}), None, "m", None)
    shm = {**GOOD_INPUT, "parameters": {"shared_memory_region": "r"}}
    with pytest.raises(InvalidInput, match="shared_memory_region"):
        parse_infer(_body({"inputs": [shm]}), None, "m", None)


def test_model_config_json_has_triton_field_names_and_int64_numbers() -> None:
    cfg = mc.ModelConfig(name="m", platform="onnxruntime_onnx", max_batch_size=8)
    cfg.input.add(name="x", data_type=mc.TYPE_FP32, dims=[-1, 4])
    cfg.dynamic_batching.max_queue_delay_microseconds = 500
    cfg.dynamic_batching.preferred_batch_size.extend([4, 8])
    doc = config_to_json(cfg)
    assert doc["max_batch_size"] == 8
    assert doc["input"][0] == {"name": "x", "data_type": "TYPE_FP32", "dims": [-1, 4]}
    assert doc["dynamic_batching"]["max_queue_delay_microseconds"] == 500
    assert doc["dynamic_batching"]["preferred_batch_size"] == [4, 8]


@pytest.mark.parametrize(
    ("data", "shape", "expected"),
    [
        ([1.5, 2, True, -3], [2, 2], [[1.5, 2.0], [1.0, -3.0]]),  # ints and bools are numbers
        ([[1.0, 2.0], [3.0, 4.0]], [2, 2], [[1.0, 2.0], [3.0, 4.0]]),  # nested row-major
        ([[1.0, 2.0], [3.0, 4.0]], [4], [1.0, 2.0, 3.0, 4.0]),
    ],
)
def test_json_float_tensors(data: list, shape: list, expected: list) -> None:
    body = _body({"inputs": [{"name": "x", "datatype": "FP32", "shape": shape, "data": data}]})
    request, _ = parse_infer(body, None, "m", None)
    assert request.inputs["x"].dtype == np.float32
    assert request.inputs["x"].tolist() == expected


@pytest.mark.parametrize(
    ("data", "shape", "message"),
    [
        (["1.0", "2.0"], [2], "does not match datatype FP32"),
        ([1.0, None], [2], "does not match datatype FP32"),
        ([1.0, 2.0, 3.0], [2], "needs 2 elements, got 3"),
        ([1.0, 2.0], [-1], "shape must be"),
    ],
)
def test_json_float_tensor_errors(data: list, shape: list, message: str) -> None:
    body = _body({"inputs": [{"name": "x", "datatype": "FP32", "shape": shape, "data": data}]})
    with pytest.raises(InvalidInput, match=message):
        parse_infer(body, None, "m", None)

"""The harness's own KServe v2 codec agrees with tritonclient and with the reference server.

Three independent implementations of one protocol: ours (harness.kserve), NVIDIA's client
(`tritonclient.utils` / `tritonclient.http`) and the server's (`reference_server.tensors`,
imported here only, never by the harness). A bug shared by the load tester and the server
would pass every load test; it cannot pass this one unless tritonclient shares it too.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import (
    deserialize_bytes_tensor,
    np_to_triton_dtype,
    serialize_byte_tensor,
    triton_to_np_dtype,
)

from harness import kserve
from reference_server import tensors as server_tensors

ARRAYS = {
    "FP32": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
    "FP64": np.array([[1e-300, -2.5]], dtype=np.float64),
    "FP16": np.array([0.5, 65504.0], dtype=np.float16),
    "INT8": np.array([-128, 127], dtype=np.int8),
    "INT64": np.array([[-(2**62), 3]], dtype=np.int64),
    "UINT16": np.array([65535], dtype=np.uint16),
    "BOOL": np.array([True, False, True]),
    "BYTES": np.array([b"", b"ab", "ü".encode()], dtype=object),
}


@pytest.mark.parametrize("datatype", sorted(kserve.DATATYPES))
def test_datatype_names_and_dtypes_agree_with_tritonclient(datatype):
    ours = kserve.numpy_dtype(datatype)
    theirs = np.dtype(triton_to_np_dtype(datatype))
    if datatype == "BYTES":
        assert ours.kind == theirs.kind == "O"
    else:
        assert ours == theirs
        assert kserve.datatype_of(np.zeros(2, dtype=ours)) == np_to_triton_dtype(ours) == datatype


def test_big_endian_arrays_keep_their_datatype_and_are_sent_little_endian():
    big = np.array([1.5, -2.0], dtype=">f4")
    assert kserve.datatype_of(big) == "FP32"
    assert kserve.encode_tensor(big) == np.array([1.5, -2.0], dtype="<f4").tobytes()


@pytest.mark.parametrize("datatype", sorted(ARRAYS))
def test_tensor_bytes_equal_tritonclient_and_the_server_decodes_them(datatype):
    array = ARRAYS[datatype]
    raw = kserve.encode_tensor(array)
    if datatype == "BYTES":
        assert raw == serialize_byte_tensor(array).item()  # a 0-d object array of bytes
        assert list(deserialize_bytes_tensor(raw)) == list(array)
    else:
        assert raw == array.astype(array.dtype.newbyteorder("<")).tobytes()
    decoded = kserve.decode_tensor(datatype, array.shape, raw)
    served = server_tensors.decode_raw_tensor("x", datatype, list(array.shape), raw)
    for got in (decoded, served):
        assert got.shape == array.shape and list(got.reshape(-1)) == list(array.reshape(-1))


def test_binary_request_body_is_what_tritonclient_sends():
    inputs = {"x": ARRAYS["FP32"], "s": ARRAYS["BYTES"]}
    body, header_length = kserve.binary_request_body(inputs, outputs=["y"])
    theirs = []
    for name, array in inputs.items():
        tensor = httpclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array, binary_data=True)
        theirs.append(tensor)
    wanted = [httpclient.InferRequestedOutput("y", binary_data=True)]
    their_body, their_length = httpclient.InferenceServerClient.generate_request_body(
        theirs, outputs=wanted
    )
    # same tensors, same sizes, same order; JSON key order may differ, so compare parsed
    assert json.loads(body[:header_length]) == json.loads(their_body[:their_length])
    assert body[header_length:] == their_body[their_length:]


def test_json_request_body_round_trips_through_the_server_decoder():
    inputs = {"x": ARRAYS["FP32"], "n": ARRAYS["INT64"], "s": ARRAYS["BYTES"]}
    doc = json.loads(kserve.json_request_body(inputs))
    for tensor, (name, array) in zip(doc["inputs"], inputs.items(), strict=True):
        assert (tensor["name"], tensor["shape"]) == (name, list(array.shape))
        got = server_tensors.decode_json_tensor(
            name, tensor["datatype"], tensor["shape"], tensor["data"]
        )
        assert list(got.reshape(-1)) == list(array.reshape(-1))


def test_binary_answer_decodes_like_tritonclient_parses_it():
    outputs = {"probabilities": ARRAYS["FP32"], "label": np.array([3, 7], dtype=np.int64)}
    raws = [kserve.encode_tensor(a) for a in outputs.values()]
    header = {
        "model_name": "m",
        "outputs": [
            {"name": n, "datatype": kserve.datatype_of(a), "shape": list(a.shape),
             "parameters": {"binary_data_size": len(r)}}
            for (n, a), r in zip(outputs.items(), raws, strict=True)
        ],
    }
    head = json.dumps(header).encode()
    body = head + b"".join(raws)
    ours = kserve.decode_response(body, len(head))
    theirs = httpclient.InferenceServerClient.parse_response_body(body, header_length=len(head))
    for name, array in outputs.items():
        np.testing.assert_array_equal(ours[name], theirs.as_numpy(name))
        np.testing.assert_array_equal(ours[name], array)
    with pytest.raises(ValueError, match=r"^answer holds 4 bytes no output claims$"):
        kserve.decode_response(body + b"\0\0\0\0", len(head))


def test_json_answer_decodes():
    body = json.dumps({"outputs": [
        {"name": "label", "datatype": "INT64", "shape": [2], "data": [3, 7]},
        {"name": "s", "datatype": "BYTES", "shape": [1], "data": ["ok"]},
    ]}).encode()
    arrays = kserve.decode_response(body)
    assert arrays["label"].dtype == np.int64 and arrays["label"].tolist() == [3, 7]
    assert arrays["s"].tolist() == [b"ok"]


@pytest.mark.parametrize(
    ("datatype", "shape", "raw", "message"),
    [
        ("FP32", [2], b"\0" * 7, r"^FP32 tensor of shape \[2\] needs 8 bytes, got 7$"),
        ("BYTES", [1], b"\1\0", "^BYTES tensor ends inside an element length$"),
        ("BYTES", [1], b"\5\0\0\0ab", "^BYTES element of 5 bytes runs past the end$"),
        ("BYTES", [2], b"\1\0\0\0a", r"^BYTES tensor of shape \[2\] needs 2 elements, got 1$"),
        ("FP8", [1], b"\0", "^unknown KServe datatype 'FP8'$"),
    ],
)
def test_malformed_tensors_are_refused_with_a_reason(datatype, shape, raw, message):
    with pytest.raises(ValueError, match=message):
        kserve.decode_tensor(datatype, shape, raw)


def test_unsupported_numpy_dtype_is_refused():
    with pytest.raises(ValueError, match=r"^no KServe datatype for NumPy dtype complex64$"):
        kserve.datatype_of(np.zeros(1, dtype=np.complex64))

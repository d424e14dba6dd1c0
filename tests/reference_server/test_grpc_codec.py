"""The gRPC tensor codec, pure: typed InferTensorContents and raw contents to NumPy and back.

Every KServe datatype with a typed field decodes to the right dtype and values; raw and
typed encodings of one array decode identically; out-of-range values and mismatched
counts are InvalidInput; responses carry each output's datatype, shape and raw bytes in
the layout tritonclient decodes.
"""

from __future__ import annotations

import numpy as np
import pytest
from tritonclient.grpc import InferResult
from tritonclient.grpc import service_pb2 as pb

from reference_server.core import InferResponse
from reference_server.errors import InvalidInput
from reference_server.grpc_service import TYPED_FIELD, decode_inputs, to_grpc_response
from reference_server.tensors import encode_raw_tensor

SAMPLES: dict[str, np.ndarray] = {
    "BOOL": np.array([[True, False, True]]),
    "INT8": np.array([[-128, 0, 127]], dtype=np.int8),
    "INT16": np.array([[-32768, 1, 32767]], dtype=np.int16),
    "INT32": np.array([[-(2**31), 2, 2**31 - 1]], dtype=np.int32),
    "INT64": np.array([[-(2**63), 3, 2**63 - 1]], dtype=np.int64),
    "UINT8": np.array([[0, 1, 255]], dtype=np.uint8),
    "UINT16": np.array([[0, 1, 65535]], dtype=np.uint16),
    "UINT32": np.array([[0, 1, 2**32 - 1]], dtype=np.uint32),
    "UINT64": np.array([[0, 1, 2**64 - 1]], dtype=np.uint64),
    "FP32": np.array([[-1.5, 0.0, 3.25]], dtype=np.float32),
    "FP64": np.array([[-1.5e300, 0.0, 3.25]], dtype=np.float64),
    "BYTES": np.array([[b"a", b"", b"\xff\x00z"]], dtype=object),
}


def _typed_request(datatype: str, array: np.ndarray) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype=datatype, shape=array.shape)
    getattr(tensor.contents, TYPED_FIELD[datatype]).extend(array.ravel().tolist())
    return request


def _raw_request(datatype: str, array: np.ndarray) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="x", datatype=datatype, shape=array.shape)
    request.raw_input_contents.append(encode_raw_tensor(array))
    return request


@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_typed_and_raw_contents_decode_to_the_same_array(datatype: str) -> None:
    want = SAMPLES[datatype]
    for request in (_typed_request(datatype, want), _raw_request(datatype, want)):
        got = decode_inputs(request)["x"]
        assert got.shape == want.shape
        if datatype == "BYTES":
            assert got.tolist() == want.tolist()
        else:
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


def test_typed_value_out_of_range_is_invalid_input() -> None:
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype="INT8", shape=[1])
    tensor.contents.int_contents.append(300)
    with pytest.raises(InvalidInput, match="out of range for INT8"):
        decode_inputs(request)


def test_typed_contents_in_the_wrong_field_count_as_missing() -> None:
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[2])
    tensor.contents.fp64_contents.extend([1.0, 2.0])
    with pytest.raises(InvalidInput, match="needs 2 elements, got 0 in fp32_contents"):
        decode_inputs(request)


def test_response_round_trips_through_tritonclient() -> None:
    outputs = {
        "probabilities": np.arange(6, dtype=np.float32).reshape(2, 3),
        "label": np.array([[4], [7]], dtype=np.int64),
        "names": np.array([[b"cat"], [b"dog"]], dtype=object),
    }
    message = to_grpc_response(InferResponse("m", "2", outputs, "id-1"))
    assert (message.model_name, message.model_version, message.id) == ("m", "2", "id-1")
    assert [o.datatype for o in message.outputs] == ["FP32", "INT64", "BYTES"]
    result = InferResult(pb.ModelInferResponse.FromString(message.SerializeToString()))
    for name, want in outputs.items():
        got = result.as_numpy(name)
        assert got.shape == want.shape
        assert got.tolist() == want.tolist()

"""Wire-format helpers: round trips and the errors bad tensors get."""

from __future__ import annotations

import numpy as np
import pytest

from reference_server.errors import InvalidInput
from reference_server.tensors import (
    DATATYPE_TO_NUMPY,
    datatype_of,
    decode_json_tensor,
    decode_raw_tensor,
    encode_raw_tensor,
)


@pytest.mark.parametrize("datatype", [d for d in DATATYPE_TO_NUMPY if d != "BYTES"])
def test_raw_round_trip_every_numeric_datatype(datatype: str) -> None:
    rng = np.random.default_rng(0)
    arr = (
        rng.uniform(0, 100, size=(2, 3)) > 50
        if datatype == "BOOL"
        else rng.uniform(0, 100, size=(2, 3))
    ).astype(DATATYPE_TO_NUMPY[datatype])
    assert datatype_of(arr) == datatype
    back = decode_raw_tensor("x", datatype, [2, 3], encode_raw_tensor(arr))
    np.testing.assert_array_equal(back, arr)


def test_big_endian_arrays_are_sent_little_endian() -> None:
    arr = np.arange(4, dtype=">f4")
    raw = encode_raw_tensor(arr)
    assert raw == np.arange(4, dtype="<f4").tobytes()
    assert datatype_of(arr) == "FP32"


def test_bytes_round_trip_with_length_prefixes() -> None:
    arr = np.array([b"", b"ab", "caf\u00e9".encode()], dtype=object)
    raw = encode_raw_tensor(arr)
    assert raw[:4] == b"\x00\x00\x00\x00" and len(raw) == 3 * 4 + 0 + 2 + 5
    assert list(decode_raw_tensor("s", "BYTES", [3], raw)) == list(arr)


def test_json_nested_and_flat_agree() -> None:
    flat = decode_json_tensor("x", "FP32", [2, 2], [1, 2, 3, 4])
    nested = decode_json_tensor("x", "FP32", [2, 2], [[1, 2], [3, 4]])
    np.testing.assert_array_equal(flat, nested)
    assert flat.dtype == np.float32


@pytest.mark.parametrize(
    ("datatype", "shape", "data", "message"),
    [
        ("FP32", [3], [[1], [2, 3]], "does not match"),  # ragged nesting is not flattened
        ("FP32", [3], [1, "2", 3], "does not match"),  # no silent string parsing
        ("FP32", [3], [1, None, 3], "does not match"),
        ("FP32", [3], [1, 2], "needs 3 elements, got 2"),
        ("INT8", [1], [300], "does not match"),  # overflow
        ("FP99", [1], [1], "unknown datatype"),
        ("FP32", [-1], [1], "non-negative"),
        ("BYTES", [2], ["a", 3], "does not match"),
        ("FP32", [1], 5, "must be a list"),
    ],
)
def test_bad_json_tensors_are_rejected_with_a_message(datatype, shape, data, message) -> None:
    with pytest.raises(InvalidInput, match=message):
        decode_json_tensor("x", datatype, shape, data)


def test_raw_size_mismatch_and_truncated_bytes_elements() -> None:
    with pytest.raises(InvalidInput, match="needs 12 bytes, got 8"):
        decode_raw_tensor("x", "FP32", [3], b"\x00" * 8)
    with pytest.raises(InvalidInput, match="past the end"):
        decode_raw_tensor("s", "BYTES", [1], b"\x05\x00\x00\x00ab")
    with pytest.raises(InvalidInput, match="truncated"):
        decode_raw_tensor("s", "BYTES", [1], b"\x05\x00")

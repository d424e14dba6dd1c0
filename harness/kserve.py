"""The KServe v2 wire format as a client sees it: datatypes, JSON bodies, the binary extension.

Why the harness has its own codec instead of importing the reference server's: a load tester
that encodes requests with the codec of the server it tests would let a bug shared by both
sides pass unseen. This one is written from the protocol spec and cross-checked against
`tritonclient.utils` and against the server (tests/harness/test_kserve_codec.py). Pure
functions, no I/O; importable from Locust's gevent processes.

Binary tensor data extension: a request body is a JSON header followed by the raw tensors;
the header length travels in the `Inference-Header-Content-Length` HTTP header, and each
binary input says its size in `parameters.binary_data_size`. Raw tensors are little-endian,
row-major; a BYTES element is a 4-byte little-endian length and then its bytes.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from math import prod
from typing import Any

import numpy as np

__all__ = [
    "DATATYPES",
    "HEADER_LENGTH",
    "binary_request_body",
    "datatype_of",
    "decode_response",
    "decode_tensor",
    "encode_tensor",
    "json_request_body",
    "numpy_dtype",
]

HEADER_LENGTH = "Inference-Header-Content-Length"

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(np.object_),
}

# Both byte orders map to one name: a big-endian array is still an FP32 tensor.
_NAME_OF_DTYPE: dict[np.dtype, str] = {}
for _name, _dtype in DATATYPES.items():
    if _name != "BYTES":
        _NAME_OF_DTYPE[_dtype] = _name
        _NAME_OF_DTYPE[_dtype.newbyteorder(">")] = _name


def numpy_dtype(datatype: str) -> np.dtype:
    """The NumPy dtype of a KServe datatype name; ValueError for a name the protocol lacks."""
    try:
        return DATATYPES[datatype]
    except KeyError:
        raise ValueError(f"unknown KServe datatype {datatype!r}") from None


def datatype_of(array: np.ndarray) -> str:
    """The KServe datatype name of `array` (strings and bytes are BYTES)."""
    name = _NAME_OF_DTYPE.get(array.dtype)
    if name is not None:
        return name
    if array.dtype.kind in ("O", "S", "U"):
        return "BYTES"
    raise ValueError(f"no KServe datatype for NumPy dtype {array.dtype}")


def encode_tensor(array: np.ndarray) -> bytes:
    """`array` in the binary layout: little-endian row-major, or length-prefixed BYTES."""
    if datatype_of(array) == "BYTES":
        parts = []
        for item in np.asarray(array).reshape(-1):
            raw = item.encode() if isinstance(item, str) else bytes(item)
            parts += [struct.pack("<I", len(raw)), raw]
        return b"".join(parts)
    little = array.dtype.newbyteorder("<")
    return np.ascontiguousarray(array, dtype=little).tobytes()


def decode_tensor(datatype: str, shape: Sequence[int], raw: bytes | memoryview) -> np.ndarray:
    """The array held in `raw` (binary layout); ValueError when sizes do not add up."""
    dtype, count = numpy_dtype(datatype), prod(shape)
    if datatype != "BYTES":
        if len(raw) != count * dtype.itemsize:
            raise ValueError(
                f"{datatype} tensor of shape {list(shape)} needs {count * dtype.itemsize} "
                f"bytes, got {len(raw)}"
            )
        return np.frombuffer(raw, dtype=dtype).reshape(shape)
    view, items, offset = memoryview(raw), [], 0
    while offset < len(view):
        if offset + 4 > len(view):
            raise ValueError("BYTES tensor ends inside an element length")
        (length,) = struct.unpack_from("<I", view, offset)
        offset += 4
        if offset + length > len(view):
            raise ValueError(f"BYTES element of {length} bytes runs past the end")
        items.append(bytes(view[offset : offset + length]))
        offset += length
    if len(items) != count:
        raise ValueError(f"BYTES tensor of shape {list(shape)} needs {count} elements, "
                         f"got {len(items)}")
    return np.array(items, dtype=object).reshape(shape)


def _json_data(array: np.ndarray) -> list[Any]:
    if datatype_of(array) == "BYTES":
        return [v.decode() if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]
    return array.reshape(-1).tolist()


def json_request_body(inputs: Mapping[str, np.ndarray]) -> bytes:
    """A KServe v2 JSON infer request: every input's data inline, flat row-major."""
    tensors = [
        {"name": name, "shape": list(a.shape), "datatype": datatype_of(a), "data": _json_data(a)}
        for name, a in inputs.items()
    ]
    return json.dumps({"inputs": tensors}, separators=(",", ":")).encode()


def binary_request_body(
    inputs: Mapping[str, np.ndarray], outputs: Sequence[str] = ()
) -> tuple[bytes, int]:
    """(body, header length) of an infer request in the binary extension.

    Every input travels as raw bytes after the JSON header; `outputs`, when given, are asked
    for in binary too. Send the header length as `Inference-Header-Content-Length`.
    """
    raws = [encode_tensor(a) for a in inputs.values()]
    header: dict[str, Any] = {
        "inputs": [
            {
                "name": name,
                "shape": list(a.shape),
                "datatype": datatype_of(a),
                "parameters": {"binary_data_size": len(raw)},
            }
            for (name, a), raw in zip(inputs.items(), raws, strict=True)
        ]
    }
    if outputs:
        header["outputs"] = [{"name": n, "parameters": {"binary_data": True}} for n in outputs]
    head = json.dumps(header, separators=(",", ":")).encode()
    return head + b"".join(raws), len(head)


def decode_response(body: bytes, header_length: int | None = None) -> dict[str, np.ndarray]:
    """Output arrays by name from an infer answer, JSON or binary extension.

    `header_length` is the answer's `Inference-Header-Content-Length` (None: all JSON).
    """
    head = body if header_length is None else body[:header_length]
    answer = json.loads(head)
    offset = 0 if header_length is None else header_length
    arrays = {}
    for output in answer.get("outputs", []):
        shape = [int(d) for d in output["shape"]]
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            arrays[output["name"]] = decode_tensor(
                output["datatype"], shape, body[offset : offset + size]
            )
            offset += size
        elif output["datatype"] == "BYTES":
            data = [v.encode() if isinstance(v, str) else v for v in output["data"]]
            arrays[output["name"]] = np.array(data, dtype=object).reshape(shape)
        else:
            dtype = numpy_dtype(output["datatype"])
            arrays[output["name"]] = np.asarray(output["data"], dtype=dtype).reshape(shape)
    if offset != len(body) and header_length is not None:
        raise ValueError(f"answer holds {len(body) - offset} bytes no output claims")
    return arrays

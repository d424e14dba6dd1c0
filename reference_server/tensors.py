"""Tensor wire formats shared by every protocol front end.

KServe v2 datatypes <-> NumPy, JSON tensor data, the binary tensor data extension (raw
little-endian bytes; BYTES elements carry a 4-byte little-endian length prefix) and gRPC
`raw_input_contents`, which use the same byte layout. Pure functions, no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from math import prod

import numpy as np

from reference_server.errors import InvalidInput

DATATYPE_TO_NUMPY: dict[str, np.dtype] = {
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

# Triton's model-config enum names (TYPE_FP32 ...) -> KServe datatype names (FP32 ...).
CONFIG_TYPE_TO_DATATYPE: dict[str, str] = {
    "TYPE_BOOL": "BOOL",
    "TYPE_UINT8": "UINT8",
    "TYPE_UINT16": "UINT16",
    "TYPE_UINT32": "UINT32",
    "TYPE_UINT64": "UINT64",
    "TYPE_INT8": "INT8",
    "TYPE_INT16": "INT16",
    "TYPE_INT32": "INT32",
    "TYPE_INT64": "INT64",
    "TYPE_FP16": "FP16",
    "TYPE_FP32": "FP32",
    "TYPE_FP64": "FP64",
    "TYPE_STRING": "BYTES",
}


def numpy_dtype(datatype: str) -> np.dtype:
    """The NumPy dtype for a KServe datatype name; InvalidInput for an unknown name."""
    try:
        return DATATYPE_TO_NUMPY[datatype]
    except KeyError:
        raise InvalidInput(
            f"unknown datatype '{datatype}'; expected one of {', '.join(DATATYPE_TO_NUMPY)}"
        ) from None


_DTYPE_TO_DATATYPE: dict[np.dtype, str] = {
    dt: name for name, dt in DATATYPE_TO_NUMPY.items() if name != "BYTES"
}
_DTYPE_TO_DATATYPE.update(
    {dt.newbyteorder(">"): name for dt, name in list(_DTYPE_TO_DATATYPE.items())}
)


def datatype_of(array: np.ndarray) -> str:
    """The KServe datatype name of a NumPy array (a dict lookup: this is on the hot path)."""
    name = _DTYPE_TO_DATATYPE.get(array.dtype)
    if name is not None:
        return name
    if array.dtype.kind in ("O", "S", "U"):
        return "BYTES"
    raise InvalidInput(f"unsupported array dtype {array.dtype}")


def check_shape(name: str, shape: Sequence[int]) -> tuple[int, ...]:
    """Validate a declared shape: a list of non-negative ints."""
    if not isinstance(shape, (list, tuple)) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise InvalidInput(f"input '{name}': shape must be a list of non-negative integers")
    return tuple(shape)


def decode_json_tensor(name: str, datatype: str, shape: Sequence[int], data: object) -> np.ndarray:
    """Decode a JSON tensor (`"data": [...]`, flat or nested row-major) into an array.

    Nested data must be rectangular: NumPy refuses ragged lists, so `[[1], [2, 3]]` for shape
    [3] is an error rather than silently flattened.
    """
    dims = check_shape(name, shape)
    dtype = numpy_dtype(datatype)
    expected = prod(dims)
    if not isinstance(data, list):
        raise InvalidInput(f"input '{name}': 'data' must be a list")
    try:
        if datatype == "BYTES":
            nested = np.array(data, dtype=object)
            if any(not isinstance(v, (str, bytes)) for v in nested.reshape(-1)):
                raise TypeError("BYTES elements must be strings")
            arr = np.array(
                [v.encode() if isinstance(v, str) else v for v in nested.reshape(-1)], dtype=object
            )
        else:
            # Strings, None, dicts or lists inside a numeric tensor fail here (object dtype first,
            # so "1" is not silently parsed as a number).
            raw = np.array(data, dtype=object)
            if raw.dtype == object and any(
                isinstance(v, (str, bytes, list, dict)) or v is None for v in raw.reshape(-1)
            ):
                raise TypeError("non-numeric element")
            arr = np.asarray(raw.reshape(-1).tolist(), dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(
            f"input '{name}': data does not match datatype {datatype} and shape {list(dims)}: {exc}"
        ) from None
    if arr.size != expected:
        raise InvalidInput(
            f"input '{name}': shape {list(dims)} needs {expected} elements, got {arr.size}"
        )
    return arr.reshape(dims)


def decode_raw_tensor(
    name: str, datatype: str, shape: Sequence[int], raw: bytes | memoryview
) -> np.ndarray:
    """Decode binary tensor data (HTTP binary extension or gRPC raw contents)."""
    dims = check_shape(name, shape)
    dtype = numpy_dtype(datatype)
    count = prod(dims)
    if datatype == "BYTES":
        items = _split_bytes_elements(name, raw, count)
        return np.array(items, dtype=object).reshape(dims)
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise InvalidInput(
            f"input '{name}': shape {list(dims)} of {datatype} needs {expected} bytes, "
            f"got {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(dims)


def _split_bytes_elements(name: str, raw: bytes | memoryview, count: int) -> list[bytes]:
    buf = memoryview(raw)
    items: list[bytes] = []
    offset = 0
    while offset < len(buf):
        if offset + 4 > len(buf):
            raise InvalidInput(f"input '{name}': truncated BYTES element length")
        (length,) = struct.unpack_from("<I", buf, offset)
        offset += 4
        if offset + length > len(buf):
            raise InvalidInput(f"input '{name}': BYTES element claims {length} bytes past the end")
        items.append(bytes(buf[offset : offset + length]))
        offset += length
    if len(items) != count:
        raise InvalidInput(f"input '{name}': shape needs {count} BYTES elements, got {len(items)}")
    return items


def encode_raw_tensor(array: np.ndarray) -> bytes:
    """Serialize an array in the binary tensor layout (little-endian, row-major)."""
    if datatype_of(array) == "BYTES":
        parts = []
        for item in array.reshape(-1):
            b = item.encode() if isinstance(item, str) else bytes(item)
            parts.append(struct.pack("<I", len(b)))
            parts.append(b)
        return b"".join(parts)
    dtype = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
    return np.ascontiguousarray(array, dtype=dtype).tobytes()


def to_json_data(array: np.ndarray) -> list:
    """Flat row-major list for a JSON response."""
    if datatype_of(array) == "BYTES":
        return [
            b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b)
            for b in array.reshape(-1)
        ]
    return array.reshape(-1).tolist()

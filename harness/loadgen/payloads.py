"""Request payloads: input tensors (random from metadata, or dataset samples) and wire bodies.

Why here and not in the Locust users: building and encoding inputs is pure data work that both
the orchestrator (which reads model metadata and the dataset once, before any load) and the
Locust workers (which pre-encode a pool of bodies so the hot path only picks one) need, and it
must be testable without gevent. Answers are decoded to class labels so that dataset samples
can be checked (`checked`/`correct` counts in every window).

Wire formats: KServe v2 JSON (`{"inputs": [{"name", "shape", "datatype", "data"}]}`) and TF
Serving REST (`{"instances": [...]}` or `{"inputs": {...}}`). gRPC tensors are built by
`scenarios.users` with tritonclient's own `InferInput`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.kserve import DATATYPES, json_request_body

__all__ = [
    "Sample",
    "TensorSpec",
    "dataset_samples",
    "kserve_json_body",
    "kserve_path",
    "label_from_kserve",
    "label_from_tfserving",
    "random_samples",
    "specs_from_metadata",
    "tfserving_body",
    "tfserving_input_specs",
    "tfserving_path",
]

LABEL_OUTPUT = "label"


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One model input as metadata declares it; -1 marks a variable (batch) dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        return cls(str(data["name"]), str(data["datatype"]), tuple(int(d) for d in data["shape"]))


@dataclass(frozen=True, slots=True)
class Sample:
    """Input tensors for one request and, for dataset samples, the expected labels."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None = None


def specs_from_metadata(metadata: Mapping[str, Any]) -> tuple[TensorSpec, ...]:
    """Input specs from a KServe v2 model-metadata answer."""
    try:
        return tuple(TensorSpec.from_dict(item) for item in metadata["inputs"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"model metadata has no usable 'inputs': {exc}") from exc


def _concrete(shape: Sequence[int], batch: int) -> tuple[int, ...]:
    dims = [batch if i == 0 and d < 0 else (1 if d < 0 else d) for i, d in enumerate(shape)]
    return tuple(dims)


def random_samples(
    specs: Sequence[TensorSpec], n: int, seed: int, batch_size: int = 1
) -> list[Sample]:
    """`n` samples of random tensors shaped like `specs` (a leading -1 becomes `batch_size`)."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n):
        inputs = {}
        for spec in specs:
            dtype = DATATYPES.get(spec.datatype)
            shape = _concrete(spec.shape, batch_size)
            if dtype is None or dtype.kind == "O":
                raise ValueError(f"input {spec.name!r}: random {spec.datatype} is not supported")
            if dtype.kind == "f":
                inputs[spec.name] = rng.standard_normal(shape).astype(dtype)
            elif dtype.kind == "b":
                inputs[spec.name] = rng.random(shape) < 0.5
            else:
                inputs[spec.name] = rng.integers(0, 16, size=shape).astype(dtype)
        samples.append(Sample(inputs))
    return samples


def dataset_samples(path: Path, input_name: str, batch_size: int = 1) -> list[Sample]:
    """Samples from an `.npz` holding `X` and `y` (e.g. the digits test set), in order."""
    with np.load(path) as data:
        x, y = np.asarray(data["X"], dtype=np.float32), np.asarray(data["y"], dtype=np.int64)
    if x.shape[0] != y.shape[0] or x.shape[0] < batch_size:
        raise ValueError(f"{path}: X and y disagree in length or hold fewer than one batch")
    stop = x.shape[0] - x.shape[0] % batch_size
    return [
        Sample({input_name: x[i : i + batch_size]}, y[i : i + batch_size])
        for i in range(0, stop, batch_size)
    ]


def kserve_path(model: str, version: str | None) -> str:
    base = f"/v2/models/{model}"
    return f"{base}/versions/{version}/infer" if version else f"{base}/infer"


def kserve_json_body(sample: Sample) -> bytes:
    return json_request_body(sample.inputs)


def label_from_kserve(body: bytes | str) -> np.ndarray:
    """Predicted labels from a KServe v2 JSON answer: output `label`, else argmax of the first."""
    answer = json.loads(body)
    outputs = answer["outputs"]
    chosen = next((o for o in outputs if o.get("name") == LABEL_OUTPUT), None)
    if chosen is not None:
        return np.asarray(chosen["data"], dtype=np.int64).ravel()
    first = outputs[0]
    data = np.asarray(first["data"], dtype=np.float64).reshape(first["shape"])
    return np.argmax(data.reshape(data.shape[0], -1), axis=1) if data.ndim else data


def tfserving_path(model: str, version: str | None) -> str:
    base = f"/v1/models/{model}"
    return f"{base}/versions/{version}:predict" if version else f"{base}:predict"


def tfserving_body(sample: Sample) -> bytes:
    """Row format (`instances`) for a single input, columnar (`inputs`) for several."""
    if len(sample.inputs) == 1:
        (array,) = sample.inputs.values()
        return json.dumps({"instances": array.tolist()}, separators=(",", ":")).encode()
    columns = {name: array.tolist() for name, array in sample.inputs.items()}
    return json.dumps({"inputs": columns}, separators=(",", ":")).encode()


def label_from_tfserving(body: bytes | str) -> np.ndarray:
    """Predicted labels from a TF Serving answer (`predictions` rows or `outputs` columns)."""
    answer = json.loads(body)
    rows = answer.get("predictions", answer.get("outputs"))
    if isinstance(rows, dict):
        rows = rows.get(LABEL_OUTPUT, next(iter(rows.values())))
    labels = []
    for row in rows:
        if isinstance(row, dict):
            row = row.get(LABEL_OUTPUT, next(iter(row.values())))
        value = np.asarray(row, dtype=np.float64).ravel()
        labels.append(int(value[0]) if value.size == 1 else int(np.argmax(value)))
    return np.asarray(labels, dtype=np.int64)


def tfserving_input_specs(metadata: Mapping[str, Any]) -> list[dict[str, Any]]:
    """KServe-style input specs from TF Serving's metadata answer (serving_default)."""
    sig = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    specs = []
    for name, info in sig["inputs"].items():
        dims = [int(d["size"]) for d in info.get("tensor_shape", {}).get("dim", [])]
        dtype = {"DT_FLOAT": "FP32", "DT_DOUBLE": "FP64", "DT_INT32": "INT32"}.get(
            info.get("dtype", "DT_FLOAT"), "FP32"
        )
        specs.append({"name": name, "datatype": dtype, "shape": dims})
    return specs


def count_correct(expected: np.ndarray | None, predicted: np.ndarray | None) -> tuple[int, int]:
    """(checked, correct) for one answer; (0, 0) when there is nothing to check against."""
    if expected is None or predicted is None:
        return 0, 0
    if predicted.size != expected.size:
        return int(expected.size), 0
    return int(expected.size), int(np.count_nonzero(predicted.ravel() == expected.ravel()))

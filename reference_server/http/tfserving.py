"""TF-Serving REST API: predict (row and columnar formats) and model status.

Load tools and clients written for TensorFlow Serving post
`POST /v1/models/{m}[/versions/{v}]:predict` with either
  - row format    `{"instances": [...]}`  -> `{"predictions": [...]}`, or
  - columnar      `{"inputs": ...}`       -> `{"outputs": ...}`,
and poll `GET /v1/models/{m}[/versions/{v}]` for `model_version_status`. A single-input
model takes bare values (`"instances": [[...], [...]]`); several inputs take one object per
instance (row) or one object of named batches (columnar). With one output the answer holds
bare values, with several an object per instance / per name, as TF Serving does. BYTES
values may be sent as `{"b64": "..."}`. Errors are `{"error": "..."}` like TF Serving's.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

from reference_server.core import InferenceCore, InferRequest
from reference_server.errors import InvalidInput, NotFound, ServerError
from reference_server.http.routing import Request, Response, Router, json_loads, json_response
from reference_server.tensors import datatype_of, numpy_dtype, to_json_data

_STATE = {"READY": "AVAILABLE", "LOADING": "LOADING", "UNLOADING": "UNLOADING"}


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def _unb64(value: Any) -> Any:
    if _is_b64(value):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, TypeError, ValueError) as exc:
            raise InvalidInput(f"invalid base64 value: {exc}") from None
    if isinstance(value, list):
        return [_unb64(v) for v in value]
    if isinstance(value, str):
        return value.encode()
    return value


def _to_array(name: str, datatype: str, value: Any) -> np.ndarray:
    dtype = numpy_dtype(datatype)
    try:
        if datatype == "BYTES":
            return np.array(_unb64(value), dtype=object)
        array = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(
            f"input '{name}': values do not form a {datatype} tensor: {exc}"
        ) from None
    if array.dtype == object:
        raise InvalidInput(f"input '{name}': ragged or non-numeric values")
    return array


def _input_types(meta: dict) -> dict[str, str]:
    return {item["name"]: item["datatype"] for item in meta["inputs"]}


def _row_inputs(instances: Any, types: dict[str, str]) -> dict[str, np.ndarray]:
    if not isinstance(instances, list) or not instances:
        raise InvalidInput("'instances' must be a non-empty list")
    if all(isinstance(i, dict) and not _is_b64(i) for i in instances):
        names = set(instances[0])
        if any(set(i) != names for i in instances):
            raise InvalidInput("every instance must name the same inputs")
        return {n: _to_array(n, _dtype_for(n, types), [i[n] for i in instances]) for n in names}
    if len(types) != 1:
        raise InvalidInput(
            f"the model has {len(types)} inputs ({', '.join(types)}): each instance must be "
            "an object naming them"
        )
    ((name, datatype),) = types.items()
    return {name: _to_array(name, datatype, instances)}


def _columnar_inputs(inputs: Any, types: dict[str, str]) -> dict[str, np.ndarray]:
    if isinstance(inputs, dict) and not _is_b64(inputs):
        return {n: _to_array(n, _dtype_for(n, types), v) for n, v in inputs.items()}
    if len(types) != 1:
        raise InvalidInput(
            f"the model has {len(types)} inputs ({', '.join(types)}): 'inputs' must be an "
            "object naming them"
        )
    ((name, datatype),) = types.items()
    return {name: _to_array(name, datatype, inputs)}


def _dtype_for(name: str, types: dict[str, str]) -> str:
    try:
        return types[name]
    except KeyError:
        raise InvalidInput(
            f"unknown input '{name}'; the model's inputs are {', '.join(types)}"
        ) from None


def parse_predict(body: bytes, meta: dict) -> tuple[dict[str, np.ndarray], bool]:
    """Decode a predict body; returns (inputs, row_format)."""
    try:
        doc = json_loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"malformed JSON in the predict request: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("the predict request must be a JSON object")
    has_rows, has_cols = "instances" in doc, "inputs" in doc
    if has_rows == has_cols:
        raise InvalidInput("the predict request needs exactly one of 'instances' or 'inputs'")
    types = _input_types(meta)
    if has_rows:
        return _row_inputs(doc["instances"], types), True
    return _columnar_inputs(doc["inputs"], types), False


def encode_predict(outputs: dict[str, np.ndarray], row_format: bool) -> dict[str, Any]:
    """Encode outputs as TF Serving does for the request's format."""

    def values(array: np.ndarray) -> Any:
        if datatype_of(array) != "BYTES":
            return array.tolist()
        return np.array(to_json_data(array), dtype=object).reshape(array.shape).tolist()

    if not row_format:
        if len(outputs) == 1:
            return {"outputs": values(next(iter(outputs.values())))}
        return {"outputs": {n: values(a) for n, a in outputs.items()}}
    if len(outputs) == 1:
        return {"predictions": values(next(iter(outputs.values())))}
    columns = {n: values(a) for n, a in outputs.items()}
    batch = len(next(iter(columns.values())))
    return {"predictions": [{n: col[i] for n, col in columns.items()} for i in range(batch)]}


class TfServingRoutes:
    def __init__(self, core: InferenceCore) -> None:
        self.core = core

    async def predict(self, req: Request, params: dict[str, str]) -> Response:
        model, version = params["model"], params.get("version")
        meta = self.core.model_metadata(model, version)
        inputs, row_format = parse_predict(req.body, meta)
        result = await self.core.infer(InferRequest(model, version, inputs, protocol="tfserving"))
        return json_response(encode_predict(result.outputs, row_format))

    def status(self, req: Request, params: dict[str, str]) -> Response:
        model, version = params["model"], params.get("version")
        rows = [r for r in self.core.repository_index() if r.get("name") == model]
        if version is not None:
            rows = [r for r in rows if str(r.get("version")) == version]
        if not rows:
            what = f"version {version} of model '{model}'" if version else f"model '{model}'"
            raise NotFound(f"Could not find {what}")
        statuses = [
            {
                "version": str(r.get("version", "")),
                "state": _STATE.get(str(r.get("state", "")).upper(), "END"),
                "status": {"error_code": "OK", "error_message": r.get("reason", "") or ""},
            }
            for r in sorted(rows, key=lambda r: _version_key(r.get("version")), reverse=True)
        ]
        return json_response({"model_version_status": statuses})

    def metadata(self, req: Request, params: dict[str, str]) -> Response:
        model, version = params["model"], params.get("version")
        meta = self.core.model_metadata(model, version)
        served = version or max(meta.get("versions") or [""], key=_version_key)
        return json_response(signature_metadata(meta, str(served)))


_TF_DTYPES = {
    "FP32": "DT_FLOAT",
    "FP64": "DT_DOUBLE",
    "FP16": "DT_HALF",
    "INT8": "DT_INT8",
    "INT16": "DT_INT16",
    "INT32": "DT_INT32",
    "INT64": "DT_INT64",
    "UINT8": "DT_UINT8",
    "UINT16": "DT_UINT16",
    "UINT32": "DT_UINT32",
    "UINT64": "DT_UINT64",
    "BOOL": "DT_BOOL",
    "BYTES": "DT_STRING",
}


def _tensor_info(tensor: dict) -> dict[str, Any]:
    dims = [{"size": str(d), "name": ""} for d in tensor["shape"]]
    return {
        "dtype": _TF_DTYPES.get(tensor["datatype"], "DT_INVALID"),
        "tensor_shape": {"dim": dims, "unknown_rank": False},
        "name": tensor["name"],
    }


def signature_metadata(meta: dict, version: str) -> dict[str, Any]:
    """TF Serving's `GET .../metadata` answer: one `serving_default` predict signature."""
    signature = {
        "inputs": {t["name"]: _tensor_info(t) for t in meta["inputs"]},
        "outputs": {t["name"]: _tensor_info(t) for t in meta["outputs"]},
        "method_name": "tensorflow/serving/predict",
    }
    return {
        "model_spec": {"name": meta["name"], "signature_name": "", "version": version},
        "metadata": {"signature_def": {"signature_def": {"serving_default": signature}}},
    }


def _version_key(version: Any) -> tuple[int, str]:
    text = str(version)
    return (int(text), text) if text.isdigit() else (-1, text)


def add_admission(admission: Router, core: InferenceCore) -> None:
    """Refuse predict as soon as the headers are in (see InferenceCore.admit)."""

    def admit_predict(headers: dict[str, str], params: dict[str, str]) -> ServerError | None:
        return core.admit(params["model"], params.get("version"), "tfserving")

    for base in ("/v1/models/{model}", "/v1/models/{model}/versions/{version}"):
        admission.add("POST", base + ":predict", admit_predict)  # type: ignore[arg-type]


def add_routes(router: Router, core: InferenceCore) -> TfServingRoutes:
    """Register the TF-Serving REST routes on `router`."""
    r = TfServingRoutes(core)
    for base in ("/v1/models/{model}", "/v1/models/{model}/versions/{version}"):
        router.add("POST", base + ":predict", r.predict)
        router.add("GET", base, r.status)
        router.add("GET", base + "/metadata", r.metadata)
    return r

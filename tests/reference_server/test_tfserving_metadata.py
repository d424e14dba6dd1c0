"""TF Serving's model metadata route (`GET /v1/models/{m}[/versions/{v}]/metadata`)."""

from __future__ import annotations

from harness.loadgen.payloads import tfserving_input_specs
from tests.reference_server.conftest import RunningServer
from tests.reference_server.test_tfserving import _call


def test_metadata_describes_the_serving_default_signature(server: RunningServer) -> None:
    status, doc = _call(server, "GET", "/v1/models/digits/metadata")
    assert status == 200, doc
    assert doc["model_spec"] == {"name": "digits", "signature_name": "", "version": "2"}
    sig = doc["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    inp = sig["inputs"]["input"]
    assert inp["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in inp["tensor_shape"]["dim"]] == ["-1", "64"]
    assert sig["outputs"]["label"]["dtype"] == "DT_INT64"
    # The load engine's reader understands it (random inputs for TF-Serving scenarios).
    assert tfserving_input_specs(doc) == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]


def test_metadata_of_a_pinned_version_and_of_unknown_models(server: RunningServer) -> None:
    status, doc = _call(server, "GET", "/v1/models/digits/versions/1/metadata")
    assert status == 200 and doc["model_spec"]["version"] == "1"
    status, doc = _call(server, "GET", "/v1/models/nosuch/metadata")
    assert status == 404
    assert doc["error"] == "unknown model 'nosuch'; available: cnn, digits, mlp, pair"

"""TF-Serving REST routes against a real server: predict (row and columnar) and status."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable

import numpy as np
import pytest

from tests.reference_server.conftest import RunningServer


def _call(server: RunningServer, method: str, path: str, doc: object = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.http, timeout=10)
    try:
        body = None if doc is None else (doc if isinstance(doc, bytes) else json.dumps(doc))
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


@pytest.mark.parametrize("path", ["/v1/models/mlp:predict", "/v1/models/mlp/versions/1:predict"])
def test_row_format_single_input(
    server: RunningServer, reference_outputs: Callable[..., dict], path: str
) -> None:
    x = np.random.default_rng(3).standard_normal((3, 256)).astype(np.float32)
    status, doc = _call(server, "POST", path, {"instances": x.tolist()})
    assert status == 200, doc
    want = reference_outputs("mlp", "1", {"input": x})["output"]
    np.testing.assert_allclose(np.array(doc["predictions"], np.float32), want, rtol=1e-4, atol=1e-5)


def test_columnar_format_single_input(
    server: RunningServer, reference_outputs: Callable[..., dict]
) -> None:
    x = np.random.default_rng(4).standard_normal((2, 64)).astype(np.float32)
    status, doc = _call(
        server, "POST", "/v1/models/digits/versions/2:predict", {"inputs": x.tolist()}
    )
    assert status == 200, doc
    want = reference_outputs("digits", "2", {"input": x})
    assert set(doc["outputs"]) == {"label", "probabilities"}  # several outputs: named
    label = want["label"].reshape(-1, 1)  # as the model config declares it: dims [1]
    np.testing.assert_array_equal(np.array(doc["outputs"]["label"]), label)
    got = np.array(doc["outputs"]["probabilities"], np.float32)
    np.testing.assert_allclose(got, want["probabilities"], rtol=1e-4, atol=1e-6)


def test_row_format_multi_input_multi_output(server: RunningServer) -> None:
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.ones((2, 4), np.float32)
    instances = [{"a": a[i].tolist(), "b": b[i].tolist()} for i in range(2)]
    status, doc = _call(server, "POST", "/v1/models/pair:predict", {"instances": instances})
    assert status == 200, doc
    assert doc["predictions"] == [
        {"sum": (a[i] + b[i]).tolist(), "diff": (a[i] - b[i]).tolist()} for i in range(2)
    ]
    status, doc = _call(
        server, "POST", "/v1/models/pair:predict", {"inputs": {"a": a.tolist(), "b": b.tolist()}}
    )
    assert status == 200 and doc["outputs"] == {"sum": (a + b).tolist(), "diff": (a - b).tolist()}


def test_model_status(server: RunningServer) -> None:
    status, doc = _call(server, "GET", "/v1/models/digits")
    assert status == 200
    versions = doc["model_version_status"]
    assert [v["version"] for v in versions] == ["2", "1"]
    assert all(v["state"] == "AVAILABLE" for v in versions)
    assert versions[0]["status"] == {"error_code": "OK", "error_message": ""}
    status, doc = _call(server, "GET", "/v1/models/digits/versions/1")
    assert status == 200 and [v["version"] for v in doc["model_version_status"]] == ["1"]


NOT_A_TENSOR = "input 'input': values do not form a FP32 tensor: "


@pytest.mark.parametrize(
    ("method", "path", "doc", "status", "text"),
    [
        ("GET", "/v1/models/nosuch", None, 404, "Could not find model 'nosuch'"),
        ("GET", "/v1/models/mlp/versions/9", None, 404, "Could not find version 9 of model 'mlp'"),
        (
            "POST",
            "/v1/models/nosuch:predict",
            {"instances": [[1.0]]},
            404,
            "unknown model 'nosuch'; available: cnn, digits, mlp, pair",
        ),
        (
            "POST",
            "/v1/models/mlp:predict",
            b"{oops",
            400,
            "malformed JSON in the predict request: Parse error at offset 1",
        ),
        (
            "POST",
            "/v1/models/mlp:predict",
            {"rows": []},
            400,
            "the predict request needs exactly one of 'instances' or 'inputs'",
        ),
        (
            "POST",
            "/v1/models/mlp:predict",
            {"instances": [[1.0, 2.0]]},
            400,
            "input 'input' of model 'mlp': shape [1, 2] does not match the model's [-1, 256]",
        ),
        (
            "POST",
            "/v1/models/mlp:predict",
            {"instances": [[1.0], [1.0, 2.0]]},
            400,
            NOT_A_TENSOR + "setting an array element with a sequence",
        ),
        (
            "POST",
            "/v1/models/mlp:predict",
            {"instances": [["a"] * 256]},
            400,
            NOT_A_TENSOR + "could not convert string to float: 'a'",
        ),
        (
            "POST",
            "/v1/models/pair:predict",
            {"instances": [[1.0] * 4]},
            400,
            "the model has 2 inputs (a, b): each instance must be an object naming them",
        ),
        (
            "POST",
            "/v1/models/pair:predict",
            {"inputs": {"a": [[1.0] * 4], "z": 1}},
            400,
            "unknown input 'z'; the model's inputs are a, b",
        ),
    ],
)
def test_errors_are_tf_serving_style(
    server: RunningServer, method: str, path: str, doc: object, status: int, text: str
) -> None:
    got_status, body = _call(server, method, path, doc)
    assert got_status == status, body
    assert set(body) == {"error"} and body["error"].startswith(text), body
    ok_status, _ = _call(server, "GET", "/v1/models/mlp")
    assert ok_status == 200

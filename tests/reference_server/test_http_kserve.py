"""KServe v2 over HTTP against a real server process, with the real tritonclient.http.

Every model's answers must equal in-process ONNX Runtime's, with the binary tensor
extension on and off; every bad input gets the right 4xx with a message, and the server
keeps serving afterwards.
"""

from __future__ import annotations

import http.client
import json
import re
import zlib
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.reference_server.conftest import RunningServer

MODELS = [("digits", "1"), ("digits", "2"), ("mlp", "1"), ("cnn", "1"), ("pair", "1")]
_NP = {"FP32": np.float32, "INT64": np.int64}


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[httpclient.InferenceServerClient]:
    c = httpclient.InferenceServerClient(server.http_url, concurrency=4)
    try:
        yield c
    finally:
        c.close()


def _random_inputs(meta: dict, batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for item in meta["inputs"]:
        shape = [batch if d == -1 else d for d in item["shape"]]
        out[item["name"]] = rng.standard_normal(shape).astype(_NP[item["datatype"]])
    return out


def _infer(
    client: httpclient.InferenceServerClient,
    model: str,
    version: str,
    feeds: dict[str, np.ndarray],
    binary: bool,
    outputs: list[str] | None = None,
) -> httpclient.InferResult:
    items = []
    for name, array in feeds.items():
        item = httpclient.InferInput(name, list(array.shape), "FP32")
        item.set_data_from_numpy(array, binary_data=binary)
        items.append(item)
    requested = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in outputs or []]
    return client.infer(model, items, model_version=version, outputs=requested or None)


def _assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize(("model", "version"), MODELS)
def test_results_equal_in_process_onnxruntime(
    client: httpclient.InferenceServerClient,
    reference_outputs: Callable[..., dict[str, np.ndarray]],
    model: str,
    version: str,
    binary: bool,
) -> None:
    meta = client.get_model_metadata(model, version)
    # A seed stable across processes (hash() of a str is salted per process): a failure
    # reproduces with the same inputs.
    feeds = _random_inputs(meta, batch=3, seed=zlib.crc32(f"{model}/{version}".encode()))
    want = reference_outputs(model, version, feeds)
    # The server answers in the shapes the model config declares (digits' label: [-1, 1]).
    shapes = {o["name"]: [3 if d == -1 else d for d in o["shape"]] for o in meta["outputs"]}
    want = {name: want[name].reshape(shape) for name, shape in shapes.items()}
    result = _infer(client, model, version, feeds, binary, outputs=list(shapes))
    assert result.get_response()["model_name"] == model
    assert result.get_response()["model_version"] == version
    for name in shapes:
        _assert_same(result.as_numpy(name), want[name])
    # No outputs requested: tritonclient asks for all of them, in binary.
    result = _infer(client, model, version, feeds, binary)
    assert {o["name"] for o in result.get_response()["outputs"]} == set(shapes)
    for name in shapes:
        _assert_same(result.as_numpy(name), want[name])


def test_async_infer_answers_go_back_to_the_right_caller(
    client: httpclient.InferenceServerClient,
    reference_outputs: Callable[..., dict[str, np.ndarray]],
) -> None:
    feeds = [{"input": np.full((1, 256), i / 10, np.float32)} for i in range(24)]
    handles = []
    for f in feeds:
        item = httpclient.InferInput("input", [1, 256], "FP32")
        item.set_data_from_numpy(f["input"])
        handles.append(client.async_infer("mlp", [item]))
    for f, handle in zip(feeds, handles, strict=True):
        got = handle.get_result(timeout=30).as_numpy("output")
        _assert_same(got, reference_outputs("mlp", "1", f)["output"])


def test_requested_subset_of_outputs(client: httpclient.InferenceServerClient) -> None:
    feeds = _random_inputs(client.get_model_metadata("pair"), 2, 1)
    result = _infer(client, "pair", "", feeds, True, outputs=["diff"])
    assert [o["name"] for o in result.get_response()["outputs"]] == ["diff"]
    _assert_same(result.as_numpy("diff"), feeds["a"] - feeds["b"])


def test_health_and_metadata_routes(client: httpclient.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("digits", "2") and client.is_model_ready("mlp")
    assert not client.is_model_ready("no-such-model")
    meta = client.get_server_metadata()
    assert meta["name"] and meta["version"] and isinstance(meta["extensions"], list)
    mlp = client.get_model_metadata("mlp")
    assert mlp["name"] == "mlp" and mlp["inputs"][0]["shape"] == [-1, 256]
    assert mlp["inputs"][0]["datatype"] == "FP32"
    assert set(client.get_model_metadata("digits")["versions"]) >= {"1", "2"}


def test_model_config_is_triton_json(client: httpclient.InferenceServerClient) -> None:
    config = client.get_model_config("mlp")
    assert config["name"] == "mlp" and config["max_batch_size"] == 64
    assert config["input"][0]["dims"] == [256]  # int64 as a number, as Triton writes it
    assert config["input"][0]["data_type"] == "TYPE_FP32"
    assert "dynamic_batching" in config
    assert client.get_model_config("digits", "2")["name"] == "digits"


def test_statistics_and_repository_index(client: httpclient.InferenceServerClient) -> None:
    feeds = _random_inputs(client.get_model_metadata("pair"), 1, 2)
    before = client.get_inference_statistics("pair", "1")["model_stats"][0]
    for _ in range(3):
        _infer(client, "pair", "1", feeds, True)
    after = client.get_inference_statistics("pair", "1")["model_stats"][0]
    assert after["name"] == "pair" and after["version"] == "1"
    success = after["inference_stats"]["success"]
    assert success["count"] - before["inference_stats"]["success"]["count"] == 3
    assert success["ns"] > 0
    everything = client.get_inference_statistics()["model_stats"]
    assert {(s["name"], s["version"]) for s in everything} >= {("mlp", "1"), ("digits", "2")}
    index = client.get_model_repository_index()
    assert {(m["name"], m["version"]) for m in index} >= {("digits", "1"), ("cnn", "1")}
    assert all(m["state"] == "READY" for m in index)


# -- bad input: right status, clear message, server still serves --------------------------


def _post(
    server: RunningServer, path: str, body: bytes, headers: dict | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.http, timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _json_infer(inputs: list[dict]) -> bytes:
    return json.dumps({"inputs": inputs}).encode()


def _mlp_input(**overrides: object) -> dict:
    return {
        "name": "input",
        "datatype": "FP32",
        "shape": [1, 256],
        "data": [0.5] * 256,
        **overrides,
    }


def _binary_claiming_more() -> tuple[bytes, dict]:
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [1, 256],
                    "parameters": {"binary_data_size": 1024},
                }
            ]
        }
    ).encode()
    return head + b"\0" * 100, {"Inference-Header-Content-Length": str(len(head))}


BAD_REQUESTS = {
    "malformed-json": (
        "/v2/models/mlp/infer",
        b'{"inputs": [',
        {},
        400,
        "malformed JSON in the inference request: Parse error at offset 12",
    ),
    "unknown-datatype": (
        "/v2/models/mlp/infer",
        _json_infer([_mlp_input(datatype="FLOAT99")]),
        {},
        400,
        "unknown datatype 'FLOAT99'; expected one of BOOL,",
    ),
    "shape-data-mismatch": (
        "/v2/models/mlp/infer",
        _json_infer([_mlp_input(shape=[2, 256])]),
        {},
        400,
        "input 'input': shape [2, 256] needs 512 elements, got 256",
    ),
    "wrong-shape-for-model": (
        "/v2/models/mlp/infer",
        _json_infer([_mlp_input(shape=[1, 128], data=[0.0] * 128)]),
        {},
        400,
        "input 'input' of model 'mlp': shape [1, 128] does not match the model's [-1, 256]",
    ),
    "wrong-input-name": (
        "/v2/models/mlp/infer",
        _json_infer([_mlp_input(name="nope")]),
        {},
        400,
        "model 'mlp': unexpected input 'nope'; got 1 input(s), expected 1: input",
    ),
    "too-many-inputs": (
        "/v2/models/mlp/infer",
        _json_infer([_mlp_input(), _mlp_input(name="extra")]),
        {},
        400,
        "model 'mlp': unexpected input 'extra'; got 2 input(s), expected 1: input",
    ),
    "binary-claims-more": (
        "/v2/models/mlp/infer",
        *_binary_claiming_more(),
        400,
        "input 'input': binary_data_size 1024 runs past the end of the body (100 binary bytes",
    ),
    "header-longer-than-body": (
        "/v2/models/mlp/infer",
        b"{}",
        {"Inference-Header-Content-Length": "50"},
        400,
        "Inference-Header-Content-Length 50 exceeds the body length 2",
    ),
    "unknown-model": (
        "/v2/models/nosuch/infer",
        _json_infer([_mlp_input()]),
        {},
        404,
        "unknown model 'nosuch'; available: cnn, digits, mlp, pair",
    ),
    "unknown-version": (
        "/v2/models/mlp/versions/7/infer",
        _json_infer([_mlp_input()]),
        {},
        404,
        "model 'mlp' has no loaded version '7'; loaded: 1",
    ),
    "body-over-limit": (
        "/v2/models/mlp/infer",
        b"x" * (5 * 1024 * 1024),
        {},
        413,
        "request body of 5242880 bytes exceeds the limit of 4194304",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_gets_4xx_and_server_survives(
    server: RunningServer, client: httpclient.InferenceServerClient, case: str
) -> None:
    path, body, headers, status, text = BAD_REQUESTS[case]
    got_status, got_body = _post(server, path, body, headers)
    assert got_status == status, got_body
    message = json.loads(got_body)["error"]
    assert message.startswith(text), message  # the whole distinctive message, not a word
    # Still serving, correctly:
    feeds = {"a": np.ones((1, 4), np.float32), "b": np.full((1, 4), 2, np.float32)}
    result = _infer(client, "pair", "1", feeds, True)
    _assert_same(result.as_numpy("sum"), np.full((1, 4), 3, np.float32))


def test_tritonclient_sees_errors_as_exceptions(client: httpclient.InferenceServerClient) -> None:
    unknown = re.escape("unknown model 'nosuch'; available: cnn, digits, mlp, pair")
    with pytest.raises(InferenceServerException, match=unknown) as info:
        client.get_model_metadata("nosuch")
    assert info.value.status() == "404"
    feeds = {"wrong": np.ones((1, 4), np.float32)}
    unexpected = re.escape("model 'pair': unexpected input 'wrong'; got 1 input(s), expected 2")
    with pytest.raises(InferenceServerException, match=unexpected) as info:
        _infer(client, "pair", "1", feeds, True)
    assert info.value.status() == "400"


def test_asyncio_tritonclient_works_too(
    server: RunningServer, reference_outputs: Callable[..., dict[str, np.ndarray]]
) -> None:
    import asyncio

    import tritonclient.http.aio as aioclient

    feeds = [np.full((1, 256), k / 7, np.float32) for k in range(8)]

    async def main() -> list[np.ndarray]:
        client = aioclient.InferenceServerClient(server.http_url)
        try:
            assert await client.is_server_ready()
            assert (await client.get_model_config("mlp"))["name"] == "mlp"

            async def one(x: np.ndarray, binary: bool) -> np.ndarray:
                item = aioclient.InferInput("input", [1, 256], "FP32")
                item.set_data_from_numpy(x, binary_data=binary)
                out = aioclient.InferRequestedOutput("output", binary_data=binary)
                result = await client.infer("mlp", [item], outputs=[out])
                return result.as_numpy("output")

            return await asyncio.gather(*(one(x, k % 2 == 0) for k, x in enumerate(feeds)))
        finally:
            await client.close()

    for x, got in zip(feeds, asyncio.run(main()), strict=True):
        _assert_same(got, reference_outputs("mlp", "1", {"input": x})["output"])


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests_from_tritonclient(
    client: httpclient.InferenceServerClient, algorithm: str
) -> None:
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    items = []
    for name, array in (("a", a), ("b", a * 2)):
        item = httpclient.InferInput(name, [2, 4], "FP32")
        item.set_data_from_numpy(array)
        items.append(item)
    result = client.infer(
        "pair",
        items,
        request_compression_algorithm=algorithm,
        response_compression_algorithm=algorithm,  # may be ignored by the server; still works
    )
    _assert_same(result.as_numpy("diff"), -a)

"""gRPC front end against a real `python -m reference_server`, driven by real tritonclient.grpc.

Proves: every built model answers over gRPC exactly what in-process ONNX Runtime computes,
with raw contents (tritonclient's default) and with typed InferTensorContents; the
health, metadata, config, statistics and repository-index RPCs carry the server's truth;
the streaming RPC answers each request (errors in-band); and requests from HTTP and gRPC
meet in one dynamic batch.
"""

from __future__ import annotations

import queue
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from tests.reference_server.conftest import ADMIN_TOKEN, RunningServer

RefFn = Callable[[str, str, dict[str, np.ndarray]], dict[str, np.ndarray]]


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[grpcclient.InferenceServerClient]:
    c = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc}")
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def stub(server: RunningServer) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc}")
    try:
        yield pb_grpc.GRPCInferenceServiceStub(channel)
    finally:
        channel.close()


def _feeds(model: str, repository: Path, batch: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    if model == "digits":
        return {"input": np.load(repository / "digits" / "test_set.npz")["X"][:batch]}
    if model == "mlp":
        return {"input": rng.standard_normal((batch, 256), dtype=np.float32)}
    if model == "cnn":
        return {"input": rng.standard_normal((batch, 3, 64, 64), dtype=np.float32)}
    return {
        "a": rng.standard_normal((batch, 4), dtype=np.float32),
        "b": rng.standard_normal((batch, 4), dtype=np.float32),
    }


def _assert_outputs_equal(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for name, expected in want.items():
        actual = got[name]
        assert actual.dtype == expected.dtype, name
        # digits' per-row label is [batch] in ONNX and [batch, 1] on the wire (Triton's reshape)
        np.testing.assert_allclose(actual.reshape(expected.shape), expected, rtol=1e-5, atol=1e-6)


MODELS = [("digits", "1"), ("digits", "2"), ("mlp", "1"), ("cnn", "1"), ("pair", "1")]


@pytest.mark.parametrize(("model", "version"), MODELS)
def test_raw_contents_infer_equals_onnxruntime(
    client: grpcclient.InferenceServerClient,
    http_model_repository: Path,
    reference_outputs: RefFn,
    model: str,
    version: str,
) -> None:
    feeds = _feeds(model, http_model_repository)
    inputs = []
    for name, array in feeds.items():
        tensor = grpcclient.InferInput(name, list(array.shape), "FP32")
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    result = client.infer(model, inputs, model_version=version, request_id="req-7")
    response = result.get_response()
    assert response.id == "req-7"
    assert (response.model_name, response.model_version) == (model, version)
    assert len(response.raw_output_contents) == len(response.outputs)  # raw, like Triton
    got = {out.name: result.as_numpy(out.name) for out in response.outputs}
    _assert_outputs_equal(got, reference_outputs(model, version, feeds))


@pytest.mark.parametrize(("model", "version"), MODELS)
def test_typed_contents_infer_equals_onnxruntime(
    stub: pb_grpc.GRPCInferenceServiceStub,
    http_model_repository: Path,
    reference_outputs: RefFn,
    model: str,
    version: str,
) -> None:
    feeds = _feeds(model, http_model_repository, batch=2)
    request = pb.ModelInferRequest(model_name=model, model_version=version)
    for name, array in feeds.items():
        tensor = request.inputs.add(name=name, datatype="FP32", shape=array.shape)
        tensor.contents.fp32_contents.extend(array.ravel().tolist())
    request.outputs.add(name=next(iter(reference_outputs(model, version, feeds))))
    response = stub.ModelInfer(request, timeout=30)
    got = {}
    for out, raw in zip(response.outputs, response.raw_output_contents, strict=True):
        dtype = {"FP32": np.float32, "INT64": np.int64}[out.datatype]
        got[out.name] = np.frombuffer(raw, dtype=dtype).reshape(tuple(out.shape))
    want = reference_outputs(model, version, feeds)
    first = next(iter(want))
    _assert_outputs_equal(got, {first: want[first]})  # only the requested output came back


def test_health_and_metadata(client: grpcclient.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mlp") and client.is_model_ready("digits", "2")
    assert not client.is_model_ready("no-such-model")
    meta = client.get_server_metadata()
    assert meta.name and "statistics" in meta.extensions
    assert "model_configuration" in meta.extensions
    model = client.get_model_metadata("cnn")
    assert model.name == "cnn" and list(model.versions) == ["1"]
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [
        ("input", "FP32", [-1, 3, 64, 64])
    ]
    assert [(t.name, t.datatype, list(t.shape)) for t in model.outputs] == [
        ("output", "FP32", [-1, 10])
    ]


def test_model_config_is_the_repository_config(
    client: grpcclient.InferenceServerClient, http_model_repository: Path
) -> None:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    on_disk = text_format.Parse(
        (http_model_repository / "pair" / "config.pbtxt").read_text(), mc.ModelConfig()
    )
    config = client.get_model_config("pair").config
    assert config.name == "pair" and config.max_batch_size == on_disk.max_batch_size
    assert [i.name for i in config.input] == ["a", "b"]
    assert [o.name for o in config.output] == ["sum", "diff"]
    assert config.dynamic_batching.max_queue_delay_microseconds == 200


def test_statistics_count_grpc_requests(client: grpcclient.InferenceServerClient) -> None:
    def digits_v1() -> pb.ModelStatistics:
        stats = client.get_inference_statistics("digits", "1").model_stats
        assert [(s.name, s.version) for s in stats] == [("digits", "1")]
        return stats[0]

    before = digits_v1()
    x = np.zeros((2, 64), dtype=np.float32)
    tensor = grpcclient.InferInput("input", [2, 64], "FP32")
    tensor.set_data_from_numpy(x)
    for _ in range(3):
        client.infer("digits", [tensor], model_version="1")
    after = digits_v1()
    assert after.inference_stats.success.count - before.inference_stats.success.count == 3
    assert after.inference_count - before.inference_count == 6  # rows, not requests
    assert after.execution_count - before.execution_count in (1, 2, 3)
    assert after.inference_stats.success.ns > before.inference_stats.success.ns
    assert after.last_inference >= before.last_inference and after.last_inference > 0
    assert sum(b.compute_infer.count for b in after.batch_stats) == after.execution_count
    every = client.get_inference_statistics().model_stats
    assert {("digits", "1"), ("digits", "2"), ("mlp", "1")} <= {(s.name, s.version) for s in every}


def test_repository_index(
    client: grpcclient.InferenceServerClient, stub: pb_grpc.GRPCInferenceServiceStub
) -> None:
    index = client.get_model_repository_index().models
    rows = {(m.name, m.version): m.state for m in index}
    for key in MODELS:
        assert rows[key] == "READY"
    ready_only = stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True), timeout=10).models
    assert {(m.name, m.version) for m in ready_only} == {k for k, v in rows.items() if v == "READY"}
    with pytest.raises(grpc.RpcError) as err:
        stub.RepositoryIndex(pb.RepositoryIndexRequest(repository_name="elsewhere"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_stream_answers_each_request_and_errors_in_band(
    client: grpcclient.InferenceServerClient, reference_outputs: RefFn
) -> None:
    answers: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        rng = np.random.default_rng(3)
        sent = {}
        for i in range(4):
            x = rng.standard_normal((1, 256), dtype=np.float32)
            tensor = grpcclient.InferInput("input", [1, 256], "FP32")
            tensor.set_data_from_numpy(x)
            client.async_stream_infer("mlp", [tensor], request_id=f"s{i}")
            sent[f"s{i}"] = x
        client.async_stream_infer("no-such-model", [tensor], request_id="bad")
        got, errors = {}, []
        for _ in range(5):
            result, error = answers.get(timeout=30)
            if error is not None:
                errors.append(str(error))
            else:
                got[result.get_response().id] = result.as_numpy("output")
    finally:
        client.stop_stream()
    assert len(errors) == 1 and "no-such-model" in errors[0]
    assert set(got) == set(sent)
    for rid, x in sent.items():
        np.testing.assert_allclose(
            got[rid], reference_outputs("mlp", "1", {"input": x})["output"], rtol=1e-5, atol=1e-6
        )


def _admin(server: RunningServer, method: str, path: str, body: bytes | None = None) -> None:
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.http}{path}",
        data=body,
        method=method,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status in (200, 201)


def _inflight(server: RunningServer) -> float:
    url = f"http://127.0.0.1:{server.metrics}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("reference_server_inflight_requests "):
                return float(line.split()[1])
    raise AssertionError("no reference_server_inflight_requests gauge")


def _max_batch_seen(client: grpcclient.InferenceServerClient) -> dict[int, int]:
    stats = client.get_inference_statistics("mlp", "1").model_stats[0]
    return {b.batch_size: b.compute_infer.count for b in stats.batch_stats}


def test_http_and_grpc_requests_share_one_batch(
    server: RunningServer, client: grpcclient.InferenceServerClient, reference_outputs: RefFn
) -> None:
    """Hold N gRPC + N HTTP requests with a hang fault, release them: one batch > N rows."""
    n = 10
    rng = np.random.default_rng(11)
    xs = [rng.standard_normal((1, 256), dtype=np.float32) for _ in range(2 * n)]
    before = _max_batch_seen(client)
    http = httpclient.InferenceServerClient(server.http_url, concurrency=n)
    grpc_client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc}")

    def via_grpc(x: np.ndarray) -> np.ndarray:
        tensor = grpcclient.InferInput("input", [1, 256], "FP32")
        tensor.set_data_from_numpy(x)
        return grpc_client.infer("mlp", [tensor], client_timeout=60).as_numpy("output")

    def via_http(x: np.ndarray) -> np.ndarray:
        tensor = httpclient.InferInput("input", [1, 256], "FP32")
        tensor.set_data_from_numpy(x)
        return http.infer("mlp", [tensor], timeout=60).as_numpy("output")

    _admin(server, "POST", "/admin/faults", b'{"type": "hang", "model": "mlp", "duration_s": 60}')
    try:
        with ThreadPoolExecutor(2 * n) as pool:
            futures = [pool.submit(via_grpc, x) for x in xs[:n]]
            futures += [pool.submit(via_http, x) for x in xs[n:]]
            deadline = time.monotonic() + 30
            while _inflight(server) < 2 * n:
                assert time.monotonic() < deadline, "requests never reached the server"
                time.sleep(0.02)
            _admin(server, "DELETE", "/admin/faults")
            results = [f.result(timeout=60) for f in futures]
    finally:
        _admin(server, "DELETE", "/admin/faults")  # never leave the shared server hung
        http.close()
        grpc_client.close()
    for x, got in zip(xs, results, strict=True):  # each answer went back to its caller
        np.testing.assert_allclose(
            got, reference_outputs("mlp", "1", {"input": x})["output"], rtol=1e-5, atol=1e-6
        )
    after = _max_batch_seen(client)
    mixed = [size for size, count in after.items() if size > n and count > before.get(size, 0)]
    assert mixed, f"no batch larger than {n} rows: batch stats {after} (before {before})"


def test_tritonclient_grpc_aio_client(server: RunningServer, reference_outputs: RefFn) -> None:
    """tritonclient's asyncio client too: concurrent calls, each answer to its caller."""
    import asyncio

    import tritonclient.grpc.aio as aioclient

    rng = np.random.default_rng(21)
    xs = [rng.standard_normal((1, 256), dtype=np.float32) for _ in range(8)]

    async def main() -> list[np.ndarray]:
        client = aioclient.InferenceServerClient(f"127.0.0.1:{server.grpc}")
        try:
            assert await client.is_server_ready()
            calls = []
            for x in xs:
                tensor = aioclient.InferInput("input", [1, 256], "FP32")
                tensor.set_data_from_numpy(x)
                calls.append(client.infer("mlp", [tensor], client_timeout=30))
            return [r.as_numpy("output") for r in await asyncio.gather(*calls)]
        finally:
            await client.close()

    for x, got in zip(xs, asyncio.run(main()), strict=True):
        want = reference_outputs("mlp", "1", {"input": x})["output"]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

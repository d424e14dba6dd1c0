"""InferenceCore in-process: real ONNX Runtime answers, real batching, every validation error."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from tritonclient.grpc import model_config_pb2 as mc

from reference_server.core import InferenceCore, InferRequest, InferResponse
from reference_server.errors import DeviceUnavailable, InvalidInput, NotFound, Unavailable
from reference_server.runtime import CPU, cuda_device_present
from tests.reference_server.core_helpers import run_with_core


def _reference(repo: Path, model: str, version: str, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(
        str(repo / model / version / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    return session.run(None, {"input": x})


@pytest.mark.parametrize(
    ("model", "version", "shape"),
    [
        ("mlp", "1", (3, 256)),
        ("cnn", "1", (2, 3, 64, 64)),
        ("digits", "1", (7, 64)),
        ("digits", "2", (7, 64)),
    ],
)
def test_outputs_equal_direct_onnxruntime(
    config: object, model_repository: Path, model: str, version: str, shape: tuple
) -> None:
    x = np.random.default_rng(3).random(shape, np.float32) * 16

    async def body(core: InferenceCore):
        return await core.infer(InferRequest(model, version, {"input": x}, id="r1"))

    response = run_with_core(config, body)
    assert (response.model, response.version, response.id) == (model, version, "r1")
    expected = _reference(model_repository, model, version, x)
    if model == "digits":  # Triton reshape: label [batch] is served as [batch, 1]
        np.testing.assert_array_equal(response.outputs["label"][:, 0], expected[0])
        np.testing.assert_allclose(response.outputs["probabilities"], expected[1], rtol=1e-5)
    else:
        np.testing.assert_allclose(response.outputs["output"], expected[0], rtol=1e-4, atol=1e-5)


def test_concurrent_requests_are_batched_and_answer_the_right_caller(
    unqueued_config: object, model_repository: Path
) -> None:
    rng = np.random.default_rng(4)
    inputs = [rng.random((int(rng.integers(1, 4)), 256), np.float32) for _ in range(120)]

    async def body(core: InferenceCore):
        protocols = ("http", "grpc")
        requests = [
            InferRequest("mlp", None, {"input": x}, protocol=protocols[i % 2])
            for i, x in enumerate(inputs)
        ]
        responses = await asyncio.gather(*(core.infer(r) for r in requests))
        assert core.requests_by_protocol == {"http": 60, "grpc": 60}
        return responses, core.model_statistics("mlp")["model_stats"][0]

    responses, stats = run_with_core(unqueued_config, body)
    expected = _reference(model_repository, "mlp", "1", np.concatenate(inputs))[0]
    start = 0
    for x, response in zip(inputs, responses, strict=True):
        np.testing.assert_allclose(
            response.outputs["output"], expected[start : start + len(x)], rtol=1e-4, atol=1e-5
        )
        start += len(x)
    assert stats["inference_stats"]["success"]["count"] == len(inputs)
    assert stats["inference_count"] == sum(len(x) for x in inputs)
    assert stats["execution_count"] < len(inputs)
    assert max(b["batch_size"] for b in stats["batch_stats"]) > 1


@pytest.mark.parametrize(
    ("request_", "error", "message"),
    [
        (InferRequest("nope", None, {}), NotFound, "unknown model 'nope'"),
        (InferRequest("digits", "7", {}), NotFound, "no loaded version '7'"),
        (
            InferRequest("mlp", None, {"x": np.zeros((1, 256), np.float32)}),
            InvalidInput,
            "unexpected input 'x'",
        ),
        (InferRequest("mlp", None, {}), InvalidInput, "missing input 'input'"),
        (
            InferRequest(
                "mlp",
                None,
                {"input": np.zeros((1, 256), np.float32), "extra": np.zeros((1, 256), np.float32)},
            ),
            InvalidInput,
            "got 2 input",
        ),
        (
            InferRequest("mlp", None, {"input": np.zeros((1, 256), np.float64)}),
            InvalidInput,
            "datatype FP64 does not match the model's FP32",
        ),
        (
            InferRequest("mlp", None, {"input": np.zeros((1, 255), np.float32)}),
            InvalidInput,
            "shape [1, 255] does not match the model's [-1, 256]",
        ),
        (
            InferRequest("mlp", None, {"input": np.zeros(256, np.float32)}),
            InvalidInput,
            "shape [256]",
        ),
        (
            InferRequest("mlp", None, {"input": np.zeros((65, 256), np.float32)}),
            InvalidInput,
            "batch size 65 is outside 1..64",
        ),
        (
            InferRequest("mlp", None, {"input": np.zeros((1, 256), np.float32)}, ("logits",)),
            InvalidInput,
            "unknown output 'logits'",
        ),
    ],
)
def test_validation_errors(
    config: object, request_: InferRequest, error: type, message: str
) -> None:
    async def body(core: InferenceCore):
        with pytest.raises(error) as info:
            await core.infer(request_)
        ok = await core.infer(InferRequest("mlp", None, {"input": np.ones((1, 256), np.float32)}))
        return str(info.value), ok, core.model_statistics("mlp")["model_stats"][0]

    text, ok, stats = run_with_core(config, body)
    assert message in text
    assert ok.outputs["output"].shape == (1, 10)  # still serving afterwards
    if error is InvalidInput:
        assert stats["inference_stats"]["fail"]["count"] == 1


def test_requested_outputs_and_default_version(config: object) -> None:
    async def body(core: InferenceCore):
        x = np.zeros((2, 64), np.float32)
        return await core.infer(InferRequest("digits", "", {"input": x}, ("probabilities",)))

    response = run_with_core(config, body)
    assert response.version == "2"  # the newest loaded version
    assert list(response.outputs) == ["probabilities"]


def test_metadata_config_ready_index_statistics(config: object) -> None:
    async def body(core: InferenceCore):
        assert core.live and core.ready and not core.degraded and core.provider == CPU
        server = core.server_metadata()
        assert {
            "binary_tensor_data",
            "model_configuration",
            "statistics",
            "model_repository",
        } <= set(server["extensions"])
        assert server["provider"] == CPU and server["degraded"] is False
        meta = core.model_metadata("mlp")
        assert meta == {
            "name": "mlp",
            "versions": ["1"],
            "platform": "onnxruntime_onnx",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 256]}],
            "outputs": [{"name": "output", "datatype": "FP32", "shape": [-1, 10]}],
        }
        assert core.model_metadata("digits")["versions"] == ["1", "2"]
        with pytest.raises(NotFound):
            core.model_metadata("digits", "3")
        cfg = core.model_config("cnn")
        assert isinstance(cfg, mc.ModelConfig) and cfg.max_batch_size == 32
        cfg.max_batch_size = 1  # a copy: the core's config is untouched
        assert core.model_config("cnn").max_batch_size == 32
        assert core.model_ready("digits", "1") and core.model_ready("mlp")
        with pytest.raises(NotFound):
            core.model_ready("nope")
        index = {(r["name"], r["version"]): r["state"] for r in core.repository_index()}
        assert index[("digits", "1")] == index[("digits", "2")] == "READY"
        await core.infer(InferRequest("cnn", "1", {"input": np.zeros((2, 3, 64, 64), np.float32)}))
        stats = core.model_statistics("cnn", "1")["model_stats"]
        assert len(stats) == 1 and stats[0]["inference_count"] == 2
        assert set(stats[0]["inference_stats"]) >= {
            "success",
            "fail",
            "queue",
            "compute_input",
            "compute_infer",
            "compute_output",
        }
        assert stats[0]["last_inference"] > 0
        assert stats[0]["batch_stats"][0]["batch_size"] == 2
        assert len(core.model_statistics()["model_stats"]) >= 4
        with pytest.raises(NotFound):
            core.model_statistics("nope")

    run_with_core(config, body)


def test_shutdown_turns_unready_and_drains_in_flight(config: object) -> None:
    async def body(core: InferenceCore):
        core.faults.add({"type": "latency", "fixed_ms": 150})
        x = np.ones((1, 256), np.float32)
        in_flight = [
            asyncio.ensure_future(core.infer(InferRequest("mlp", None, {"input": x})))
            for _ in range(5)
        ]
        await asyncio.sleep(0.02)
        assert core.in_flight == 5
        stopping = asyncio.ensure_future(core.stop(5.0))
        await asyncio.sleep(0)
        assert not core.ready
        with pytest.raises(Unavailable):
            await core.infer(InferRequest("mlp", None, {"input": x}))
        await stopping
        return [f.result() for f in in_flight]

    results = run_with_core(config, body)
    assert len(results) == 5 and all(r.outputs["output"].shape == (1, 10) for r in results)


def test_default_repository_from_environment(
    model_repository: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    server_config: Callable[..., object],
) -> None:
    copy = tmp_path / "default-repo"
    shutil.copytree(model_repository, copy)
    monkeypatch.setenv("HARNESS_MODEL_REPOSITORY", str(copy))
    core = InferenceCore(server_config(None))
    assert core.repository == copy and "mlp" in core.models


@pytest.mark.skipif(cuda_device_present(), reason="a CUDA device is present on this host")
def test_device_cuda_fails_clearly_without_a_gpu(
    model_repository: Path, server_config: Callable[..., object]
) -> None:
    with pytest.raises(DeviceUnavailable, match="no usable NVIDIA GPU"):
        InferenceCore(server_config(model_repository, device="cuda"))


def test_version_policy_decides_what_is_served(
    model_repository: Path, tmp_path: Path, server_config: Callable[..., object]
) -> None:
    repo = tmp_path / "repo"
    (repo / "mlp").mkdir(parents=True)
    shutil.copy(model_repository / "mlp" / "config.pbtxt", repo / "mlp" / "config.pbtxt")
    for version in ("1", "2"):
        (repo / "mlp" / version).mkdir()
        shutil.copy(model_repository / "mlp" / "1" / "model.onnx", repo / "mlp" / version)

    async def body(core: InferenceCore):
        x = np.ones((1, 256), np.float32)
        assert (await core.infer(InferRequest("mlp", None, {"input": x}))).version == "2"
        with pytest.raises(NotFound, match="no loaded version '1'"):
            await core.infer(InferRequest("mlp", "1", {"input": x}))
        assert core.model_ready("mlp", "2") and not core.model_ready("mlp", "1")
        index = {r["version"]: (r["state"], r["reason"]) for r in core.repository_index()}
        assert index["2"] == ("READY", "") and index["1"][0] == "UNAVAILABLE"
        assert "version policy" in index["1"][1]
        assert [r["version"] for r in core.repository_index(ready_only=True)] == ["2"]

    run_with_core(server_config(repo), body)


def test_stop_releases_hung_requests_after_the_grace_period(config: object) -> None:
    async def body(core: InferenceCore):
        core.faults.add({"type": "hang"})
        x = np.ones((1, 256), np.float32)
        hung = asyncio.ensure_future(core.infer(InferRequest("mlp", None, {"input": x})))
        await asyncio.sleep(0.05)
        await asyncio.wait_for(core.stop(0.2), 5)
        return await asyncio.gather(hung, return_exceptions=True)

    (outcome,) = run_with_core(config, body)
    # released, not left hanging: it either slipped through or was refused as shutting down
    assert isinstance(outcome, (InferResponse, Unavailable))

"""ONNX Runtime sessions: the provider is read from the created session, never trusted."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from reference_server.errors import DeviceUnavailable, ModelLoadError
from reference_server.runtime import (
    CPU,
    CUDA,
    ModelRuntime,
    SessionSettings,
    create_session,
    cuda_device_present,
)


@pytest.fixture
def mlp_path(model_repository: Path) -> Path:
    return model_repository / "mlp" / "1" / "model.onnx"


def test_cpu_session_matches_plain_onnxruntime(mlp_path: Path) -> None:
    session, provider = create_session(mlp_path, SessionSettings("cpu", intra_op_threads=1))
    assert provider == CPU == session.get_providers()[0]
    x = np.random.default_rng(1).random((4, 256), np.float32)
    plain = ort.InferenceSession(str(mlp_path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], plain.run(None, {"input": x})[0])


@pytest.mark.skipif(cuda_device_present(), reason="a CUDA device is present on this host")
def test_cuda_without_gpu_fails_clearly(mlp_path: Path) -> None:
    # onnxruntime-gpu lists CUDA as available here; the check must not believe it
    assert "CUDAExecutionProvider" in ort.get_available_providers()
    with pytest.raises(DeviceUnavailable, match=r"device 'cuda' requested.*--device auto or cpu"):
        create_session(mlp_path, SessionSettings("cuda"))


@pytest.mark.skipif(cuda_device_present(), reason="a CUDA device is present on this host")
def test_auto_falls_back_to_cpu_and_says_so(
    mlp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="reference_server.runtime"):
        _, provider = create_session(mlp_path, SessionSettings("auto"))
    assert provider == CPU
    assert "device auto" in caplog.text and CPU in caplog.text


@pytest.mark.skipif(not cuda_device_present(), reason="no CUDA device on this host")
def test_auto_runs_on_cuda_when_a_gpu_is_present(mlp_path: Path) -> None:
    session, provider = create_session(mlp_path, SessionSettings("auto"))
    # what the created session really runs on, not what get_available_providers() lists
    assert provider == CUDA == session.get_providers()[0]
    x = np.random.default_rng(3).random((4, 256), np.float32)
    plain = ort.InferenceSession(str(mlp_path), providers=["CPUExecutionProvider"])
    got, want = session.run(None, {"input": x})[0], plain.run(None, {"input": x})[0]
    np.testing.assert_allclose(got, want, rtol=2e-2, atol=2e-3)  # TF32 matmuls on the GPU


def test_bad_device_and_bad_model_file(tmp_path: Path, mlp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="device must be one of"):
        create_session(mlp_path, SessionSettings("tpu"))
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not an onnx model")
    with pytest.raises(ModelLoadError, match=str(broken)):
        create_session(broken, SessionSettings("cpu"))


def test_instances_run_in_parallel_sessions_and_rebuild(mlp_path: Path) -> None:
    runtime = ModelRuntime(mlp_path, SessionSettings("cpu"), instances=3)
    assert runtime.instances == 3 and runtime.provider == CPU
    assert runtime.output_names == ("output",) and runtime.input_names == ("input",)
    x = np.random.default_rng(2).random((2, 256), np.float32)
    results = [runtime.run(i, {"input": x})[0] for i in range(3)]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    before = runtime.run(0, {"input": x})[0]
    assert runtime.rebuild("cpu") == CPU  # device-loss cpu-fallback path
    np.testing.assert_array_equal(runtime.run(2, {"input": x})[0], before)

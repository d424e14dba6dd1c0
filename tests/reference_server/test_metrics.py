"""Prometheus metrics: Triton's names, values equal to the statistics, one registry per core."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from reference_server.core import InferenceCore, InferRequest
from reference_server.errors import InjectedFailure
from reference_server.metrics import GpuProbe, ServerMetrics
from reference_server.runtime import CUDA

TRITON_COUNTERS = (
    "nv_inference_request_success",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_infer_duration_us",
)


def _samples(text: bytes) -> dict[tuple[str, tuple], float]:
    """Samples by (name, labels); the parser adds `_total` to counters, which we drop."""
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            name = s.name.removesuffix("_total") if family.type == "counter" else s.name
            out[(name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _types(text: bytes) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text.decode())}


def test_triton_counters_match_statistics(config: object) -> None:
    async def main():
        core = InferenceCore(config)
        await core.start()
        try:
            xs = [np.ones((n, 256), np.float32) for n in (1, 2, 3, 1, 1, 2) * 5]
            await asyncio.gather(*(core.infer(InferRequest("mlp", "1", {"input": x})) for x in xs))
            core.faults.add({"type": "failure", "ratio": 1.0})
            with pytest.raises(InjectedFailure):
                await core.infer(InferRequest("mlp", "1", {"input": xs[0]}))
            return core.metrics_text(), core.model_statistics("mlp", "1")["model_stats"][0]
        finally:
            await core.stop(1)

    text, stats = asyncio.run(main())
    assert b"# TYPE nv_inference_request_success counter\n" in text
    assert b"nv_inference_request_success_total" not in text  # Triton's names, no suffix
    samples = _samples(text)
    mlp = (("model", "mlp"), ("version", "1"))
    inference = stats["inference_stats"]
    assert samples[("nv_inference_request_success", mlp)] == inference["success"]["count"] == 30
    # Triton's failure counter carries a reason; every reason is present, an injected fault
    # is OTHER (not the queue's REJECTED, not a client's CANCELED, not the model's BACKEND)
    failures = {
        reason: samples[("nv_inference_request_failure", (*mlp[:1], ("reason", reason), mlp[1]))]
        for reason in ("REJECTED", "CANCELED", "BACKEND", "OTHER")
    }
    assert failures == {"REJECTED": 0, "CANCELED": 0, "BACKEND": 0, "OTHER": 1}
    assert inference["fail"]["count"] == 1
    assert samples[("nv_inference_count", mlp)] == stats["inference_count"] == 50
    assert samples[("nv_inference_exec_count", mlp)] == stats["execution_count"]
    assert samples[("nv_inference_queue_duration_us", mlp)] == inference["queue"]["ns"] // 1000
    infer_us = inference["compute_infer"]["ns"] // 1000
    assert samples[("nv_inference_compute_infer_duration_us", mlp)] == infer_us > 0
    request_us = (inference["success"]["ns"] + inference["fail"]["ns"]) // 1000
    assert samples[("nv_inference_request_duration_us", mlp)] == request_us
    for name in TRITON_COUNTERS:
        assert (name, (("model", "digits"), ("version", "2"))) in samples  # every loaded version
    # batch-size histogram: executions by size, sum = rows
    assert samples[("nv_inference_batch_size_count", mlp)] == stats["execution_count"]
    assert samples[("nv_inference_batch_size_sum", mlp)] == 50
    inf_bucket = ("nv_inference_batch_size_bucket", tuple(sorted((*mlp, ("le", "+Inf")))))
    assert samples[inf_bucket] == stats["execution_count"]
    one = ("nv_inference_batch_size_bucket", tuple(sorted((*mlp, ("le", "1.0")))))
    assert samples[one] == sum(
        b["compute_infer"]["count"] for b in stats["batch_stats"] if b["batch_size"] == 1
    )
    assert samples[("nv_inference_pending_request_count", mlp)] == 0
    assert samples[("reference_server_inflight_requests", ())] == 0
    assert samples[("reference_server_inference_requests", (("protocol", "http"),))] == 31
    info = (
        "reference_server_device_info",
        (("degraded", "false"), ("device", "cpu"), ("provider", "CPUExecutionProvider")),
    )
    assert samples[info] == 1
    types = _types(text)
    assert types["nv_inference_batch_size"] == "histogram"
    assert types["nv_inference_pending_request_count"] == "gauge"
    assert not any(name.startswith("nv_gpu") for name, _ in samples)  # CPU: no GPU gauges


def test_each_core_has_its_own_registry(
    config: object, model_repository: Path, tmp_path: Path, server_config: Callable[..., object]
) -> None:
    other_repo = tmp_path / "only-mlp"
    other_repo.mkdir()
    shutil.copytree(model_repository / "mlp", other_repo / "mlp")
    a = InferenceCore(config)
    b = InferenceCore(server_config(other_repo))
    assert a.metrics.registry is not b.metrics.registry
    assert b'model="digits"' in a.metrics_text() and b'model="digits"' not in b.metrics_text()
    assert b"nv_inference" not in generate_latest(REGISTRY)  # never the global registry


class _FakeGpu(GpuProbe):
    def read(self) -> list[tuple[str, float, float, float]]:
        return [("GPU-1234", 0.42, 1.5e9, 8e10)]


def test_gpu_gauges_only_on_cuda(config: object) -> None:
    core = InferenceCore(config)
    core.metrics = ServerMetrics(core, gpu=_FakeGpu())
    assert b"nv_gpu_utilization" not in core.metrics_text()
    core.provider = CUDA  # as if the sessions ran on the CUDA provider
    samples = _samples(core.metrics_text())
    assert samples[("nv_gpu_utilization", (("gpu_uuid", "GPU-1234"),))] == 0.42
    assert samples[("nv_gpu_memory_used_bytes", (("gpu_uuid", "GPU-1234"),))] == 1.5e9
    assert samples[("nv_gpu_memory_total_bytes", (("gpu_uuid", "GPU-1234"),))] == 8e10


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU host: nvidia-smi exists")
def test_gpu_probe_without_tools_reports_nothing() -> None:
    probe = GpuProbe()
    assert probe.read() == [] and probe.read() == []


@pytest.mark.skipif(
    importlib.util.find_spec("pynvml") is not None,
    reason="pynvml is installed: the probe uses it instead of nvidia-smi",
)
def test_gpu_probe_reads_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'GPU-abc, 37, 1024, 81920'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    rows = GpuProbe(ttl_s=60).read()
    assert rows == [("GPU-abc", 0.37, 1024 * 2**20, 81920 * 2**20)]

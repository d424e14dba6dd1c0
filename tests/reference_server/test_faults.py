"""Chaos faults: validation naming the field, expiry, seeded ratios, each seen via the core."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable

import numpy as np
import pytest

from reference_server.core import InferenceCore, InferRequest
from reference_server.errors import InjectedFailure, InvalidInput, Unavailable
from reference_server.faults import FaultState
from reference_server.runtime import CPU, CUDA
from tests.reference_server.core_helpers import run_with_core

X = np.ones((1, 256), np.float32)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "type"),
        ({"type": "meteor"}, "type"),
        ({"type": "latency", "fixed_ms": -1}, "fixed_ms"),
        ({"type": "latency", "fixed_ms": "slow"}, "fixed_ms"),
        ({"type": "failure"}, "ratio"),
        ({"type": "failure", "ratio": 1.5}, "ratio"),
        ({"type": "device_loss", "policy": "explode"}, "policy"),
        ({"type": "hang", "duration_s": 0}, "duration_s"),
        ({"type": "hang", "color": "red"}, "color"),
        ({"type": "device_loss", "model": "mlp"}, "model"),
    ],
)
def test_invalid_specs_name_the_field(spec: dict, field: str) -> None:
    with pytest.raises(InvalidInput, match=f"fault field '{field}'"):
        FaultState().add(spec)


def test_add_list_remove_clear_and_expiry() -> None:
    clock = FakeClock()
    faults = FaultState(clock=clock)
    changes: list[int] = []
    faults.subscribe(lambda: changes.append(1))
    a = faults.add({"type": "latency", "fixed_ms": 5, "duration_s": 10})
    b = faults.add({"type": "failure", "ratio": 0.5, "model": "mlp"})
    assert a["id"] != b["id"] and a["remaining_s"] == 10 and faults.active
    assert [f["type"] for f in faults.list()] == ["latency", "failure"]
    assert b == {"id": b["id"], "type": "failure", "ratio": 0.5, "model": "mlp"}
    clock.now += 10.5  # the latency fault expires by itself
    assert [f["id"] for f in faults.list()] == [b["id"]]
    assert faults.remove(b["id"]) and not faults.remove(b["id"]) and not faults.active
    faults.add({"type": "hang"})
    faults.add({"type": "hang"})
    assert faults.clear() == 2 and faults.list() == []
    assert len(changes) >= 5


def test_failure_ratio_and_latency_are_seeded_and_scoped() -> None:
    faults = FaultState(rng=random.Random(7))
    faults.add({"type": "failure", "ratio": 0.3, "model": "mlp"})
    failed = 0
    for _ in range(4000):
        try:
            faults.check_failure("mlp")
        except InjectedFailure:
            failed += 1
    assert abs(failed / 4000 - 0.3) < 0.03
    faults.check_failure("cnn")  # scoped to mlp: never fails cnn
    faults.clear()
    faults.add({"type": "latency", "fixed_ms": 50, "jitter_ms": 10})
    delays = [faults.delay_s("any") for _ in range(2000)]
    assert min(delays) >= 0.040 and max(delays) <= 0.060
    assert abs(np.mean(delays) - 0.050) < 0.001


def _infer(core: InferenceCore, model: str = "mlp") -> Awaitable:
    return core.infer(InferRequest(model, None, {"input": X}))


def test_latency_fault_is_observable(config: object) -> None:
    async def body(core: InferenceCore):
        await _infer(core)
        started = time.perf_counter()
        await _infer(core)
        base = time.perf_counter() - started
        core.faults.add({"type": "latency", "fixed_ms": 100})
        started = time.perf_counter()
        await _infer(core)
        return base, time.perf_counter() - started

    base, delayed = run_with_core(config, body)
    assert delayed >= 0.1 and delayed - base >= 0.09


def test_failure_fault_fails_requests_and_counts_them(config: object) -> None:
    async def body(core: InferenceCore):
        core.faults.add({"type": "failure", "ratio": 1.0, "model": "mlp"})
        with pytest.raises(InjectedFailure):
            await _infer(core)
        await core.infer(InferRequest("digits", None, {"input": np.zeros((1, 64), np.float32)}))
        core.faults.clear()
        await _infer(core)
        return core.model_statistics("mlp")["model_stats"][0]["inference_stats"]

    stats = run_with_core(config, body)
    assert stats["fail"]["count"] == 1 and stats["success"]["count"] == 1


def test_device_loss_unready_policy(config: object) -> None:
    async def body(core: InferenceCore):
        fault = core.faults.add({"type": "device_loss", "policy": "unready"})
        assert not core.ready
        with pytest.raises(Unavailable, match="device lost"):
            await _infer(core)
        assert b"reference_server_ready 0" in core.metrics_text()
        core.faults.remove(fault["id"])
        assert core.ready
        return await _infer(core)

    assert run_with_core(config, body).outputs["output"].shape == (1, 10)


def test_device_loss_cpu_fallback_policy(config: object) -> None:
    async def body(core: InferenceCore):
        mlp = core.models["mlp"].versions["1"].runtime
        mlp.provider = CUDA  # pretend mlp's sessions sit on the GPU that is about to vanish
        core.faults.add({"type": "device_loss", "policy": "cpu-fallback"})
        assert core.ready and core.degraded
        deadline = time.monotonic() + 10
        while mlp.provider != CPU:  # sessions are rebuilt in a worker thread
            assert time.monotonic() < deadline, "sessions never moved to the CPU provider"
            await asyncio.sleep(0.01)
        assert core.server_metadata()["degraded"] is True
        text = core.metrics_text().decode()
        assert "reference_server_degraded 1" in text
        assert 'degraded="true"' in text and 'provider="CPUExecutionProvider"' in text
        response = await _infer(core)  # still serving, on the CPU provider
        assert all(
            v.runtime.provider == CPU for m in core.models.values() for v in m.versions.values()
        )
        core.faults.clear()
        assert not core.degraded and core.server_metadata()["degraded"] is False
        return response

    assert run_with_core(config, body).outputs["output"].shape == (1, 10)


def test_hang_holds_requests_until_cleared(config: object) -> None:
    async def body(core: InferenceCore):
        core.faults.add({"type": "hang"})
        hung = [asyncio.ensure_future(_infer(core)) for _ in range(3)]
        await asyncio.sleep(0.2)
        assert not any(f.done() for f in hung) and core.in_flight == 3
        assert core.faults.clear() == 1
        results = await asyncio.wait_for(asyncio.gather(*hung), 5)
        return results, core.in_flight

    results, in_flight = run_with_core(config, body)
    assert len(results) == 3 and in_flight == 0


def test_device_loss_with_duration_ends_by_itself(config: object) -> None:
    async def body(core: InferenceCore):
        core.faults.add({"type": "device_loss", "policy": "cpu-fallback", "duration_s": 0.2})
        assert core.degraded
        await asyncio.sleep(0.3)
        return core.degraded, b"reference_server_degraded 0" in core.metrics_text()

    assert run_with_core(config, body) == (False, True)


def test_hang_with_duration_releases_itself(config: object) -> None:
    async def body(core: InferenceCore):
        core.faults.add({"type": "hang", "duration_s": 0.3, "model": "mlp"})
        await core.infer(InferRequest("digits", None, {"input": np.zeros((1, 64), np.float32)}))
        started = time.perf_counter()
        await asyncio.wait_for(_infer(core), 5)
        return time.perf_counter() - started

    assert 0.25 <= run_with_core(config, body) < 3

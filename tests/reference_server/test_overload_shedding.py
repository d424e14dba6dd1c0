"""Shedding on event-loop lag (reference_server/overload.py), on a real asyncio loop.

The loop is made to fall behind for real: the test blocks it with `time.sleep` inside a
coroutine, as a burst of front-end work would, and lets the shedder's timer observe it. A
single stall (one late check) must never shed; two late checks in a row must, and the
refusal must reach every front end before decoding (KServe and TF-Serving HTTP admission,
gRPC's handler), the failure statistics and /metrics; once the loop keeps time again,
requests are admitted again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.grpc import service_pb2 as pb

from reference_server.app import build_admission_router
from reference_server.core import InferenceCore
from reference_server.errors import Rejected
from reference_server.grpc_service import GRPCInferenceService
from reference_server.http.routing import Router
from reference_server.http.server import HttpServer
from reference_server.overload import LoopLagShedder
from tests.reference_server.core_helpers import run_with_core

LIMIT_S = 0.02
STALL_S = 0.06  # three times the limit: late beyond doubt on a noisy host


async def _stall() -> None:
    """Block the loop for STALL_S, then yield until the overdue check has run."""
    time.sleep(STALL_S)
    await asyncio.sleep(0.001)  # the check was due earlier: it runs before this wake-up


async def _keep_time(shedder: LoopLagShedder, timeout_s: float = 2.0) -> None:
    """Let the loop idle until a check runs on time again."""
    deadline = time.monotonic() + timeout_s
    while shedder.behind or shedder.lag_s > LIMIT_S:
        assert time.monotonic() < deadline, "the loop never caught up"
        await asyncio.sleep(0.005)


def test_one_stall_never_sheds_but_two_late_checks_in_a_row_do() -> None:
    async def main() -> list[tuple[float, bool, Rejected | None]]:
        shedder = LoopLagShedder(LIMIT_S)
        shedder.start()
        await asyncio.sleep(0.02)
        seen = []
        await _stall()  # one stall: a descheduled VM looks like this
        seen.append((shedder.lag_s, shedder.behind, shedder.refusal()))
        await _keep_time(shedder)
        seen.append((shedder.lag_s, shedder.behind, shedder.refusal()))
        await _stall()
        await _stall()  # the next check late too: sustained lag
        seen.append((shedder.lag_s, shedder.behind, shedder.refusal()))
        await _keep_time(shedder)
        seen.append((shedder.lag_s, shedder.behind, shedder.refusal()))
        shedder.stop()
        seen.append((shedder.shed, False, None))
        return seen

    one, recovered, sustained, caught_up, (shed, _, _) = asyncio.run(main())
    assert one[0] >= STALL_S * 0.8 and not one[1] and one[2] is None
    assert recovered[0] <= LIMIT_S and recovered[2] is None
    assert sustained[0] >= STALL_S * 0.8 and sustained[1]
    assert isinstance(sustained[2], Rejected)
    assert "overloaded" in str(sustained[2]) and "20 ms" in str(sustained[2])
    assert caught_up[2] is None  # admitted again once the loop keeps time
    assert shed == 1  # only the one refusal handed out while behind is counted


def test_a_zero_limit_measures_the_lag_and_never_sheds() -> None:
    async def main() -> tuple[float, bool]:
        shedder = LoopLagShedder(0.0)
        shedder.start()
        await asyncio.sleep(0.02)
        await _stall()
        await _stall()
        result = (shedder.lag_s, shedder.refusal() is None)
        shedder.stop()
        return result

    lag, admitted = asyncio.run(main())
    assert lag >= STALL_S * 0.8
    assert admitted


def _metric(text: bytes, name: str) -> float:
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise AssertionError(f"{name} not in /metrics")


def _grpc_request(x: np.ndarray) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="cnn")
    request.inputs.add(name="input", datatype="FP32", shape=x.shape)
    request.raw_input_contents.append(x.tobytes())
    return request


def test_a_core_behind_refuses_every_front_end_before_decoding_and_counts_them(
    server_config: Callable[..., object], model_repository
) -> None:
    config = server_config(model_repository, max_loop_lag_ms=LIMIT_S * 1e3)
    x = np.zeros((1, 3, 64, 64), np.float32)

    async def body(core: InferenceCore) -> dict:
        admission = build_admission_router(core)
        http = HttpServer(Router(), max_body_bytes=1 << 20, admission=admission)
        # the handler itself, without the wrapper that turns errors into a gRPC status
        model_infer = GRPCInferenceService.ModelInfer.__wrapped__  # type: ignore[attr-defined]
        grpc_service = GRPCInferenceService(core)
        out: dict = {"admitted_before": http.admit("POST", "/v2/models/cnn/infer", {})}
        await _stall()
        await _stall()
        out["http"] = http.admit("POST", "/v2/models/cnn/infer", {})
        out["tfserving"] = http.admit("POST", "/v1/models/cnn:predict", {})
        out["other_route"] = http.admit("GET", "/v2/models/cnn/ready", {})
        with pytest.raises(Rejected, match="overloaded") as grpc_refusal:
            await model_infer(grpc_service, _grpc_request(x), None)
        out["grpc"] = grpc_refusal.value
        out["metrics"] = core.metrics_text()
        out["rejected"] = core.stats.select("cnn", None)[0].failures_by_reason["REJECTED"]
        out["by_protocol"] = dict(core.requests_by_protocol)
        await _keep_time(core.shedder)
        out["admitted_after"] = http.admit("POST", "/v1/models/cnn:predict", {})
        out["answer"] = await model_infer(grpc_service, _grpc_request(x), None)
        return out

    out = run_with_core(config, body)
    assert out["admitted_before"] is None
    for front_end in ("http", "tfserving", "grpc"):
        assert isinstance(out[front_end], Rejected) and "overloaded" in str(out[front_end])
    assert out["other_route"] is None  # only inference is shed
    assert out["grpc"] is not out["http"]  # raised: a fresh copy, never the shared object
    assert out["rejected"] == 3
    assert out["by_protocol"] == {"http": 1, "tfserving": 1, "grpc": 1}
    assert _metric(out["metrics"], "reference_server_overload_shed_requests_total") == 3
    assert _metric(out["metrics"], "reference_server_event_loop_lag_seconds") >= STALL_S * 0.8
    assert out["admitted_after"] is None
    assert out["answer"].outputs[0].shape == [1, 10]


def test_shedding_off_admits_whatever_the_lag(
    server_config: Callable[..., object], model_repository
) -> None:
    config = server_config(model_repository, max_loop_lag_ms=0)

    async def body(core: InferenceCore) -> object:
        await _stall()
        await _stall()
        return core.admit("cnn", None)

    assert run_with_core(config, body) is None

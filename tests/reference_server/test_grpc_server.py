"""`start_grpc_server` in-process, over a real InferenceCore and a real grpc.aio channel.

Proves the API the app relies on: port 0 binds a free port and reports it; a taken port
is an OSError at start; `max_message_bytes` bounds requests (RESOURCE_EXHAUSTED); and
`await server.stop(grace)` lets calls already in flight finish and answer.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from reference_server.core import InferenceCore
from reference_server.grpc_service import (
    GRPCInferenceService,
    add_service,
    start_grpc_server,
)
from tests.reference_server.core_helpers import until

Body = Callable[[InferenceCore, grpc.aio.Server, int], Awaitable[Any]]


def _run(config: object, body: Body, max_message_bytes: int = 1 << 20) -> Any:
    async def main() -> Any:
        core = InferenceCore(config)  # type: ignore[arg-type]
        await core.start()
        server, port = await start_grpc_server(core, "127.0.0.1", 0, max_message_bytes)
        try:
            return await body(core, server, port)
        finally:
            await server.stop(0)
            await core.stop(0)

    return asyncio.run(main())


def _mlp_request(x: np.ndarray) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="mlp")
    request.inputs.add(name="input", datatype="FP32", shape=x.shape)
    request.raw_input_contents.append(x.tobytes())
    return request


def _output(response: pb.ModelInferResponse) -> np.ndarray:
    return np.frombuffer(response.raw_output_contents[0], np.float32).reshape(
        tuple(response.outputs[0].shape)
    )


def test_port_zero_binds_a_free_port_and_serves(config: object, model_repository: Path) -> None:
    x = np.random.default_rng(5).standard_normal((2, 256), dtype=np.float32)

    async def body(core: InferenceCore, server: grpc.aio.Server, port: int) -> np.ndarray:
        assert port > 0
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            assert (await stub.ServerReady(pb.ServerReadyRequest())).ready
            return _output(await stub.ModelInfer(_mlp_request(x), timeout=30))

    got = _run(config, body)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        str(model_repository / "mlp" / "1" / "model.onnx"), options, ["CPUExecutionProvider"]
    )
    np.testing.assert_allclose(got, session.run(None, {"input": x})[0], rtol=1e-5, atol=1e-6)


def test_taken_port_is_an_oserror(config: object) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]

        async def body(core: InferenceCore, server: grpc.aio.Server, port: int) -> None:
            with pytest.raises(OSError, match=str(busy)):
                await start_grpc_server(core, "127.0.0.1", busy)

        _run(config, body)


def test_max_message_bytes_bounds_requests(config: object) -> None:
    async def body(core: InferenceCore, server: grpc.aio.Server, port: int) -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            big = np.zeros((80, 256), np.float32)  # 80 KiB > 64 KiB
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.ModelInfer(_mlp_request(big), timeout=30)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            small = np.zeros((4, 256), np.float32)
            assert _output(await stub.ModelInfer(_mlp_request(small), timeout=30)).shape == (4, 10)

    _run(config, body, max_message_bytes=64 * 1024)


def test_stop_with_grace_lets_in_flight_calls_finish(config: object) -> None:
    calls = 5

    async def body(core: InferenceCore, server: grpc.aio.Server, port: int) -> list[Any]:
        core.faults.add({"type": "latency", "fixed_ms": 300, "duration_s": 30})
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            x = np.ones((1, 256), np.float32)
            pending = [
                asyncio.ensure_future(stub.ModelInfer(_mlp_request(x), timeout=30))
                for _ in range(calls)
            ]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while core.in_flight < calls:
                assert loop.time() < deadline, f"only {core.in_flight} calls arrived"
                await asyncio.sleep(0.005)
            core.begin_shutdown()
            await server.stop(5)  # what the app does on SIGTERM
            return await asyncio.gather(*pending, return_exceptions=True)

    results = _run(config, body)
    assert all(isinstance(r, pb.ModelInferResponse) for r in results), results
    assert all(_output(r).shape == (1, 10) for r in results)


class _CountingService(GRPCInferenceService):
    """The real service; counts the stream requests it has taken off the wire."""

    pulled = 0

    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[pb.ModelInferRequest], context: Any
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        async def counted() -> AsyncIterator[pb.ModelInferRequest]:
            async for request in request_iterator:
                self.pulled += 1
                yield request

        async for item in super().ModelStreamInfer(counted(), context):
            yield item


def test_stream_stops_reading_past_its_in_flight_bound(config: object) -> None:
    """Backpressure: a stream with bound 2 holds 2 requests in the core, the rest wait."""

    async def main() -> list[pb.ModelStreamInferResponse]:
        core = InferenceCore(config)  # type: ignore[arg-type]
        await core.start()
        server = grpc.aio.server()
        service = _CountingService(core, max_stream_in_flight=2)
        add_service(service, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            hang = core.faults.add({"type": "hang", "model": "mlp", "duration_s": 30})
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = pb_grpc.GRPCInferenceServiceStub(channel).ModelStreamInfer()
                for i in range(5):
                    request = _mlp_request(np.full((1, 256), i, np.float32))
                    request.id = str(i)
                    await call.write(request)
                # Two requests in the core, and the third taken off the wire: the reader
                # now holds it, waiting for room.
                await until(lambda: core.in_flight >= 2 and service.pulled >= 3, 10, "2 in, 1 read")
                # A negative (nothing more gets in), so a bounded wait: without the bound
                # the third would enter the core, and the rest be read, within a loop turn.
                await asyncio.sleep(0.05)
                assert (core.in_flight, service.pulled) == (2, 3)
                core.faults.remove(hang["id"])
                answers = [await call.read() for _ in range(5)]
                await call.done_writing()
                return answers
        finally:
            await server.stop(0)
            await core.stop(0)

    answers = asyncio.run(main())
    assert sorted(a.infer_response.id for a in answers) == [str(i) for i in range(5)]
    assert not any(a.error_message for a in answers)

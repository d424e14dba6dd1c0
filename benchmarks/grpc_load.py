"""Closed-loop gRPC load generator for the server benchmark (run as its own process).

Why not tritonclient in the loop: the generator must be faster than the server it drives,
so it sends one ModelInferRequest serialized once (built with tritonclient's own stubs, raw
contents as tritonclient sends them) through a raw grpc.aio unary call with no
(de)serialization per request, from many concurrent coroutines over a few channels. It
checks the status of every answer, records per-request latency, and prints one JSON line
with its count, errors, percentiles and its own CPU use, so the caller can show the
generator was not the limit.

    python benchmarks/grpc_load.py --target 127.0.0.1:PORT --model mlp --batch 1 \
        --concurrency 64 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as pb

METHOD = "/inference.GRPCInferenceService/ModelInfer"
STREAM_METHOD = "/inference.GRPCInferenceService/ModelStreamInfer"

# (input name, per-sample shape) of the models the benchmark drives.
MODEL_INPUTS: dict[str, tuple[str, tuple[int, ...]]] = {
    "mlp": ("input", (256,)),
    "cnn": ("input", (3, 64, 64)),
}


def build_request(
    model: str, input_name: str, sample_shape: tuple[int, ...], batch: int, request_id: str = ""
) -> bytes:
    """One serialized ModelInferRequest with FP32 raw contents (tritonclient's default)."""
    rng = np.random.default_rng(0)
    data = rng.standard_normal((batch, *sample_shape), dtype=np.float32)
    request = pb.ModelInferRequest(model_name=model, id=request_id)
    request.inputs.add(name=input_name, datatype="FP32", shape=data.shape)
    request.raw_input_contents.append(data.tobytes())
    return request.SerializeToString()


async def _worker(
    call: grpc.aio.UnaryUnaryMultiCallable,
    payload: bytes,
    start_at: float,
    stop_at: float,
    latencies: list[int],
    errors: dict[str, int],
) -> None:
    while (now := time.perf_counter()) < stop_at:
        t0 = time.perf_counter_ns()
        try:
            await call(payload)
        except grpc.aio.AioRpcError as exc:
            key = exc.code().name
            errors[key] = errors.get(key, 0) + 1
            continue
        if now >= start_at:
            latencies.append(time.perf_counter_ns() - t0)


async def _stream_worker(
    channel: grpc.aio.Channel,
    payloads: list[bytes],
    start_at: float,
    stop_at: float,
    latencies: list[int],
    errors: dict[str, int],
) -> None:
    """One ModelStreamInfer stream keeping len(payloads) requests outstanding (ids 0..n-1)."""
    call = channel.stream_stream(STREAM_METHOD)()
    sent: dict[str, int] = {}
    for i, payload in enumerate(payloads):
        sent[str(i)] = time.perf_counter_ns()
        await call.write(payload)
    while sent:
        raw = await call.read()
        if raw is grpc.aio.EOF:
            errors["stream ended"] = errors.get("stream ended", 0) + 1
            break
        message = pb.ModelStreamInferResponse.FromString(raw)
        rid = message.infer_response.id
        t0 = sent.pop(rid)
        if message.error_message:
            errors["in-band error"] = errors.get("in-band error", 0) + 1
        elif time.perf_counter() >= start_at:
            latencies.append(time.perf_counter_ns() - t0)
        if time.perf_counter() < stop_at:
            sent[rid] = time.perf_counter_ns()
            await call.write(payloads[int(rid)])
    await call.done_writing()


def _workers(
    args: argparse.Namespace,
    channels: list[grpc.aio.Channel],
    window: tuple[float, float],
    latencies: list[int],
    errors: dict[str, int],
) -> list:
    """The coroutines of the load: unary callers, or one stream per channel."""
    shape = tuple(args.shape)
    if args.stream:
        per_stream = max(1, args.concurrency // len(channels))
        payloads = [
            build_request(args.model, args.input, shape, args.batch, str(i))
            for i in range(per_stream)
        ]
        return [_stream_worker(ch, payloads, *window, latencies, errors) for ch in channels]
    payload = build_request(args.model, args.input, shape, args.batch)
    calls = [ch.unary_unary(METHOD) for ch in channels]
    return [
        _worker(calls[i % len(calls)], payload, *window, latencies, errors)
        for i in range(args.concurrency)
    ]


async def run_load(args: argparse.Namespace) -> dict[str, object]:
    options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.use_local_subchannel_pool", 1)]
    channels = [
        grpc.aio.insecure_channel(args.target, options=[*options, ("grpc.channel_id", i)])
        for i in range(args.channels)
    ]
    for ch in channels:
        await asyncio.wait_for(ch.channel_ready(), timeout=10)
    latencies: list[int] = []
    errors: dict[str, int] = {}
    t_start = time.perf_counter()
    start_at, stop_at = t_start + args.warmup, t_start + args.warmup + args.duration
    cpu0 = None

    async def mark_cpu() -> None:
        nonlocal cpu0
        await asyncio.sleep(args.warmup)
        cpu0 = (os.times(), time.perf_counter())
        sys.stdout.write("measuring\n")  # the caller starts its own window here
        sys.stdout.flush()

    marker = asyncio.create_task(mark_cpu())
    await asyncio.gather(*_workers(args, channels, (start_at, stop_at), latencies, errors))
    await marker
    t1, w1 = os.times(), time.perf_counter()
    for ch in channels:
        await ch.close()
    assert cpu0 is not None
    t0, w0 = cpu0
    cpu = (t1.user - t0.user) + (t1.system - t0.system)
    lat = np.array(latencies, dtype=np.float64) / 1e6
    wall = w1 - w0
    return {
        "requests": len(latencies),
        "errors": errors,
        "wall_s": wall,
        "rps": len(latencies) / wall if wall > 0 else 0.0,
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
        "cpu_percent": 100.0 * cpu / wall if wall > 0 else 0.0,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="HOST:PORT of the gRPC server")
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument(
        "--stream", action="store_true", help="ModelStreamInfer: one stream per channel"
    )
    args = parser.parse_args(argv)
    args.input, args.shape = MODEL_INPUTS.get(args.model, ("input", (256,)))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import uvloop

    result = uvloop.run(run_load(args))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A null grpc.aio server: grpcio's own ceiling, the gRPC baseline of the server benchmark.

Why: the reference server's gRPC front end runs on grpcio's asyncio server. What grpcio
itself costs per call on one core bounds what any Python gRPC front end can do there, so
the benchmark measures this server in the same run: it answers every
`inference.GRPCInferenceService/ModelInfer` call with one fixed, pre-serialized
ModelInferResponse (an `mlp`-sized output) without parsing the request — no decoding, no
model, no batching — and every ModelStreamInfer message with the same answer under the
request's id (the one parse the stream load generator needs to match answers). The
reference server's gRPC rate divided by this one is the share of grpcio's ceiling it keeps.

    python benchmarks/null_grpc_server.py     # prints "listening http=0 grpc=PORT ..."
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as pb


def canned_response() -> bytes:
    response = pb.ModelInferResponse(model_name="mlp", model_version="1")
    response.outputs.add(name="output", datatype="FP32", shape=[1, 10])
    response.raw_output_contents.append(np.zeros((1, 10), dtype=np.float32).tobytes())
    return response.SerializeToString()


async def serve(host: str = "127.0.0.1", port: int = 0) -> None:
    answer = canned_response()

    async def model_infer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return answer

    async def model_stream_infer(
        requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        async for request in requests:  # the load generator matches answers by request id
            item = pb.ModelStreamInferResponse()
            item.infer_response.ParseFromString(answer)
            item.infer_response.id = pb.ModelInferRequest.FromString(request).id
            yield item.SerializeToString()

    handlers = {
        "ModelInfer": grpc.unary_unary_rpc_method_handler(model_infer),
        "ModelStreamInfer": grpc.stream_stream_rpc_method_handler(model_stream_infer),
    }
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("inference.GRPCInferenceService", handlers),)
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    sys.stdout.write(f"listening http=0 grpc={bound} metrics=0\n")
    sys.stdout.flush()
    await server.wait_for_termination()


def main() -> int:
    import uvloop  # the reference server's default loop

    uvloop.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

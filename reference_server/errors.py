"""Exceptions of the reference server; each maps to one HTTP status and one gRPC code.

ServerError                     500 INTERNAL
├── InvalidInput                400 INVALID_ARGUMENT   malformed body, bad tensor, wrong name
├── NotFound                    404 NOT_FOUND          unknown model, version or route
├── PayloadTooLarge             413 RESOURCE_EXHAUSTED body over the configured limit
├── Unauthorized                401 UNAUTHENTICATED    admin API without the right token
├── Unavailable                 503 UNAVAILABLE        not ready, device lost, shutting down
│   └── Rejected                503 UNAVAILABLE        queue full, or queued past its timeout
│                                                      (HTTP adds `Retry-After`)
├── BackendFailure              500 INTERNAL           the model's execution failed
├── InjectedFailure             500 INTERNAL           a chaos fault failed this request
└── ModelLoadError              (start-up only)        repository or model cannot be loaded

`failure_reason` is the `reason` label of Triton's `nv_inference_request_failure` counter
(REJECTED, CANCELED, BACKEND, OTHER), read in one place (core.InferenceCore.infer). A
request whose client left is not an exception of this tree: its handler is cancelled
(asyncio.CancelledError) and counted as CANCELED; nobody is left to read an answer.
"""

from __future__ import annotations

import grpc

FAILURE_REASONS = ("REJECTED", "CANCELED", "BACKEND", "OTHER")  # Triton's, in its order


class ServerError(Exception):
    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL
    failure_reason = "OTHER"


class InvalidInput(ServerError):
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServerError):
    http_status = 404
    grpc_code = grpc.StatusCode.NOT_FOUND


class PayloadTooLarge(ServerError):
    http_status = 413
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthorized(ServerError):
    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED


class Unavailable(ServerError):
    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE


class Rejected(Unavailable):
    """Shed by the queue policy; the client may retry after `retry_after_s` seconds."""

    failure_reason = "REJECTED"
    retry_after_s = 1  # HTTP's Retry-After takes whole seconds; 1 is the shortest


class BackendFailure(ServerError):
    failure_reason = "BACKEND"


class InjectedFailure(ServerError):
    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL


class ModelLoadError(ServerError):
    """The repository or a model in it cannot be loaded (raised at start-up)."""


class DeviceUnavailable(ModelLoadError):
    """`--device cuda` asked for, but no usable CUDA device/provider is present."""

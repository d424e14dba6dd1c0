"""Exceptions of the reference server; each maps to one HTTP status and one gRPC code.

ServerError                     500 INTERNAL
├── InvalidInput                400 INVALID_ARGUMENT   malformed body, bad tensor, wrong name
├── NotFound                    404 NOT_FOUND          unknown model, version or route
├── PayloadTooLarge             413 RESOURCE_EXHAUSTED body over the configured limit
├── Unauthorized                401 UNAUTHENTICATED    admin API without the right token
├── Unavailable                 503 UNAVAILABLE        not ready, device lost, shutting down
├── InjectedFailure             500 INTERNAL           a chaos fault failed this request
└── ModelLoadError              (start-up only)        repository or model cannot be loaded
"""

from __future__ import annotations

import grpc


class ServerError(Exception):
    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL


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


class InjectedFailure(ServerError):
    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL


class ModelLoadError(ServerError):
    """The repository or a model in it cannot be loaded (raised at start-up)."""


class DeviceUnavailable(ModelLoadError):
    """`--device cuda` asked for, but no usable CUDA device/provider is present."""

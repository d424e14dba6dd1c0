"""The target before the load: wait until it is ready, read each endpoint's input metadata.

Why in the orchestrator, before any Locust process starts: a target that never becomes ready,
or lacks a model the scenario names, is an infrastructure error (exit 3) that should be
reported once and clearly, not as thousands of failed requests. Readiness is polled with a
deadline (never a guessed sleep). Plain urllib for HTTP; tritonclient's gRPC client for gRPC
(this process is not gevent-patched, so it may use grpc freely).
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from typing import Any

from harness.errors import ProtocolViolation, TargetUnavailable
from harness.loadgen.payloads import TensorSpec, specs_from_metadata, tfserving_input_specs

log = logging.getLogger(__name__)

__all__ = ["fetch_input_specs", "wait_ready"]


def _get(url: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _model_path(model: str, version: str | None, v1: bool = False) -> str:
    base = f"/{'v1' if v1 else 'v2'}/models/{model}"
    return base + (f"/versions/{version}" if version else "")


def _ready_once(protocol: str, url: str, models: list[tuple[str, str | None]]) -> str | None:
    """None when ready, else why not."""
    if protocol == "kserve-grpc":
        return _grpc_ready(url, models)
    checks = ["/v2/health/ready"] if protocol == "kserve-http" else []
    for model, version in models:
        if protocol == "kserve-http":
            checks.append(_model_path(model, version) + "/ready")
        else:
            checks.append(_model_path(model, version, v1=True))
    for path in checks:
        status, body = _get(url.rstrip("/") + path, timeout_s=2.0)
        if status != 200:
            return f"{path} answered HTTP {status}"
        if protocol == "tfserving" and b"AVAILABLE" not in body:
            return f"{path}: model not AVAILABLE"
    return None


def _grpc_ready(url: str, models: list[tuple[str, str | None]]) -> str | None:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url=url.split("://", 1)[-1])
    try:
        if not client.is_server_ready(client_timeout=2.0):
            return "server not ready"
        for model, version in models:
            if not client.is_model_ready(model, version or "", client_timeout=2.0):
                return f"model {model} version {version or 'default'} not ready"
        return None
    finally:
        client.close()


def wait_ready(
    protocol: str, url: str, models: list[tuple[str, str | None]], timeout_s: float = 60.0
) -> None:
    """Poll until the server and every (model, version) are ready; TargetUnavailable if not."""
    deadline = time.monotonic() + timeout_s
    reason = "no answer"
    while True:
        try:
            problem = _ready_once(protocol, url, models)
        except Exception as exc:  # connection refused, reset, gRPC unavailable ...
            problem = f"{type(exc).__name__}: {exc}"
        if problem is None:
            return
        reason = problem
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    raise TargetUnavailable(f"target {url} not ready within {timeout_s:g}s ({reason})")


def fetch_input_specs(
    protocol: str, url: str, model: str, version: str | None
) -> tuple[TensorSpec, ...]:
    """The model's inputs as its metadata declares them (for random inputs and dataset names)."""
    try:
        if protocol == "kserve-grpc":
            return specs_from_metadata(_grpc_metadata(url, model, version))
        path = _model_path(model, version, v1=protocol == "tfserving")
        path += "/metadata" if protocol == "tfserving" else ""
        status, body = _get(url.rstrip("/") + path)
        if status != 200:
            raise TargetUnavailable(f"{url}{path}: HTTP {status}")
        meta: Any = json.loads(body)
        if protocol == "tfserving":
            return specs_from_metadata({"inputs": tfserving_input_specs(meta)})
        return specs_from_metadata(meta)
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolViolation(f"{url}: unusable metadata for model {model!r}: {exc}") from exc


def _grpc_metadata(url: str, model: str, version: str | None) -> dict[str, Any]:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url=url.split("://", 1)[-1])
    try:
        return client.get_model_metadata(model, version or "", as_json=True)
    finally:
        client.close()

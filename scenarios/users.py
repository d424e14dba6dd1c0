"""Protocol users for Locust: KServe v2 over HTTP and gRPC, and TF Serving REST.

Import them into any locustfile:

    from scenarios.users import KServeHttpUser

    class Digits(KServeHttpUser):
        host = "http://127.0.0.1:8000"
        model = "digits"

        @task
        def infer(self):
            self.infer_random()   # random inputs built from the model's metadata

Why one small seam per protocol (`prepare` once, `send` many times): the harness's open-loop
driver sends thousands of requests per second from one process, so everything that can be done
ahead of time (tensors, JSON bodies, tritonclient `InferInput`s) is, and the hot path is one
call that fires Locust's `request` event (so Locust's own stats see every request) and returns
an `Answer` with the predicted labels checked against the expected ones.

HTTP users build on FastHttpUser; the gRPC user on tritonclient's gRPC client, made
gevent-cooperative with grpc's `init_gevent()`. Importing this module imports Locust (and so
monkey-patches the process with gevent): only Locust processes should import it.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import numpy as np
from locust import FastHttpUser, User
from locust.exception import CatchResponseError

from harness.loadgen.payloads import (
    Sample,
    count_correct,
    kserve_json_body,
    kserve_path,
    label_from_kserve,
    label_from_tfserving,
    random_samples,
    specs_from_metadata,
    tfserving_body,
    tfserving_input_specs,
    tfserving_path,
)
from scenarios.rawhttp import KeepAliveHttpPool, build_post

__all__ = ["Answer", "KServeGrpcUser", "KServeHttpUser", "TFServingUser"]

log = logging.getLogger(__name__)
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class Answer:
    """Outcome of one request: transport/protocol success and the label check."""

    ok: bool
    checked: int = 0
    correct: int = 0


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request built ahead of time; `target` is protocol specific."""

    name: str
    target: Any
    expected: np.ndarray | None = None


class _InferenceMixin:
    """The `prepare`/`send` seam plus `infer_random()` for hand-written locustfiles."""

    model: ClassVar[str] = ""
    version: ClassVar[str | None] = None
    pool_size: ClassVar[int] = 32

    def prepare(self, name: str, model: str, version: str | None, sample: Sample) -> Prepared:
        raise NotImplementedError

    def send(self, request: Prepared) -> Answer:
        raise NotImplementedError

    def fetch_input_specs(self, model: str, version: str | None) -> list[dict[str, Any]]:
        raise NotImplementedError

    def infer_random(self) -> Answer:
        """One request with random inputs (from the metadata) for `model`/`version`."""
        if not self.model:
            raise ValueError(f"{type(self).__name__}: set the `model` class attribute")
        pool = self.__dict__.get("_default_pool")
        if pool is None:
            specs = specs_from_metadata(
                {"inputs": self.fetch_input_specs(self.model, self.version)}
            )
            name = f"{self.model}/{self.version}" if self.version else self.model
            samples = random_samples(specs, self.pool_size, seed=0)
            pool = itertools.cycle(
                [self.prepare(name, self.model, self.version, s) for s in samples]
            )
            self.__dict__["_default_pool"] = pool
        return self.send(next(pool))


def _judge_http(
    status: int, body: bytes, transport_error: str, decode: Any, expected: np.ndarray | None
) -> tuple[Answer, str | None]:
    """(answer, why it failed or None) of one HTTP inference answer; status 0: no answer."""
    if status != 200:
        detail = body[:200].decode("utf-8", "replace") if status else transport_error
        return Answer(False), f"HTTP {status}: {detail}"
    if expected is None:  # nothing to check: do not spend the generator's CPU decoding
        return Answer(True), None
    try:
        predicted = decode(body)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return Answer(False), f"malformed answer: {exc}"
    return Answer(True, *count_correct(expected, predicted)), None


def _http_answer(response: Any, decode: Any, expected: np.ndarray | None) -> Answer:
    """`_judge_http` for a Locust FastHttpSession response (marked failed through it)."""
    status = response.status_code
    error = "" if status else str(response.error)  # `error` exists only without an answer
    answer, failure = _judge_http(status, response.content or b"", error, decode, expected)
    if failure is not None:
        response.failure(failure)
    return answer


class _JsonHttpUser(_InferenceMixin, FastHttpUser):
    """Inference as one JSON POST: the protocol is the four functions below."""

    abstract = True
    request_path: ClassVar[Callable[[str, str | None], str]]
    request_body: ClassVar[Callable[[Sample], bytes]]
    answer_labels: ClassVar[Callable[[bytes], np.ndarray]]
    metadata_path: ClassVar[Callable[[str, str | None], str]]
    input_specs: ClassVar[Callable[[dict], list[dict[str, Any]]]]

    def prepare(self, name: str, model: str, version: str | None, sample: Sample) -> Prepared:
        path, body = type(self).request_path(model, version), type(self).request_body(sample)
        host_header = urlsplit(self.host or "").netloc
        wire = build_post(host_header, path, body, JSON_HEADERS["Content-Type"])
        return Prepared(name, (path, body, wire), sample.labels)

    def send(self, request: Prepared) -> Answer:
        path, body, _ = request.target
        with self.client.post(
            path, data=body, headers=JSON_HEADERS, name=request.name, catch_response=True
        ) as response:
            return _http_answer(response, type(self).answer_labels, request.expected)

    def _open_loop_pool(self) -> KeepAliveHttpPool | None:
        """The lean pool for plain-http targets; None for https (FastHttpSession serves)."""
        if "_keep_alive_pool" not in self.__dict__:
            plain = urlsplit(self.host or "").scheme == "http"
            self.__dict__["_keep_alive_pool"] = (
                KeepAliveHttpPool(self.host or "", self.network_timeout, self.connection_timeout)
                if plain
                else None
            )
        return self.__dict__["_keep_alive_pool"]

    def warm_open_loop(self, connections: int) -> int:
        """Open connections for `send_open_loop` before the load starts."""
        pool = self._open_loop_pool()
        return 0 if pool is None else pool.warm(connections)

    def send_open_loop(self, request: Prepared) -> Answer:
        """`send` over the lean keep-alive pool (`scenarios.rawhttp`): the open-loop
        driver's hot path. Same bytes on the wire; Locust's stats still see the request."""
        pool = self._open_loop_pool()
        if pool is None:
            return self.send(request)
        start = time.perf_counter()
        answer = pool.post(request.target[2])
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        result, failure = _judge_http(
            answer.status, answer.body, answer.error, type(self).answer_labels, request.expected
        )
        self.environment.events.request.fire(
            request_type="POST",
            name=request.name,
            response_time=elapsed_ms,
            response_length=len(answer.body),
            exception=None if failure is None else CatchResponseError(failure),
            context={},
        )
        return result

    def fetch_input_specs(self, model: str, version: str | None) -> list[dict[str, Any]]:
        response = self.client.get(type(self).metadata_path(model, version), name="metadata")
        response.raise_for_status()
        return type(self).input_specs(json.loads(response.content))


def _versioned(prefix: str, model: str, version: str | None) -> str:
    return f"{prefix}/{model}" + (f"/versions/{version}" if version else "")


class KServeHttpUser(_JsonHttpUser):
    """KServe v2 inference over HTTP/REST with JSON tensors."""

    abstract = True
    request_path = staticmethod(kserve_path)
    request_body = staticmethod(kserve_json_body)
    answer_labels = staticmethod(label_from_kserve)
    metadata_path = staticmethod(lambda model, version: _versioned("/v2/models", model, version))
    input_specs = staticmethod(lambda metadata: metadata["inputs"])


class TFServingUser(_JsonHttpUser):
    """TF Serving REST predict (`/v1/models/{m}[/versions/{v}]:predict`); its metadata route
    (serving_default signature) gives the input specs."""

    abstract = True
    request_path = staticmethod(tfserving_path)
    request_body = staticmethod(tfserving_body)
    answer_labels = staticmethod(label_from_tfserving)
    metadata_path = staticmethod(
        lambda model, version: _versioned("/v1/models", model, version) + "/metadata"
    )
    input_specs = staticmethod(tfserving_input_specs)


_GEVENT_GRPC_READY = False


def _init_gevent_grpc() -> None:
    """grpc's C core must cooperate with gevent before the first channel is created."""
    global _GEVENT_GRPC_READY
    if not _GEVENT_GRPC_READY:
        from grpc.experimental import gevent as grpc_gevent

        grpc_gevent.init_gevent()
        _GEVENT_GRPC_READY = True


class KServeGrpcUser(_InferenceMixin, User):
    """KServe v2 / Triton `GRPCInferenceService` through tritonclient's gRPC client."""

    abstract = True

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        _init_gevent_grpc()
        import tritonclient.grpc as grpcclient

        self._grpc = grpcclient
        url = (self.host or "").split("://", 1)[-1]
        self.client = grpcclient.InferenceServerClient(url=url)

    def on_stop(self) -> None:
        self.client.close()

    def prepare(self, name: str, model: str, version: str | None, sample: Sample) -> Prepared:
        from harness.kserve import datatype_of

        inputs = []
        for input_name, array in sample.inputs.items():
            tensor = self._grpc.InferInput(input_name, list(array.shape), datatype_of(array))
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        return Prepared(name, (model, version or "", inputs), sample.labels)

    def send(self, request: Prepared) -> Answer:
        model, version, inputs = request.target
        start = time.perf_counter()
        exc: Exception | None = None
        answer = Answer(False)
        try:
            result = self.client.infer(model, inputs, model_version=version)
            answer = Answer(True, *count_correct(request.expected, _grpc_labels(result)))
        except Exception as error:  # tritonclient raises InferenceServerException and others
            exc = error
        self.environment.events.request.fire(
            request_type="grpc",
            name=request.name,
            response_time=(time.perf_counter() - start) * 1000.0,
            response_length=0,
            exception=exc,
            context={},
        )
        return answer

    def fetch_input_specs(self, model: str, version: str | None) -> list[dict[str, Any]]:
        meta = self.client.get_model_metadata(model, model_version=version or "", as_json=True)
        return [
            {"name": i["name"], "datatype": i["datatype"], "shape": [int(d) for d in i["shape"]]}
            for i in meta["inputs"]
        ]


def _grpc_labels(result: Any) -> np.ndarray | None:
    labels = result.as_numpy("label")
    if labels is not None:
        return labels.astype(np.int64).ravel()
    outputs = result.get_response().outputs
    if not outputs:
        return None
    first = result.as_numpy(outputs[0].name)
    return None if first is None else np.argmax(first.reshape(first.shape[0], -1), axis=1)

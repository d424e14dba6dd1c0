"""Requests, responses, JSON helpers and the router of the HTTP front end.

Kept apart from the connection handling in `server.py`: these are plain values and pure
functions (no sockets), shared by every route module (kserve, tfserving, admin) and easy
to test alone. The router resolves exact paths through a dict and `{name}` patterns
through regexes whose results are cached per path, so the hot inference route costs two
dict lookups per request.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import rapidjson

from reference_server.errors import (
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Rejected,
    ServerError,
)

logger = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json"
_JSON = JSON_CONTENT_TYPE


class MethodNotAllowed(ServerError):
    http_status = 405


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    keep_alive: bool = True
    http_version: str = "1.1"
    refusal: ServerError | None = None  # refused at its headers: the body was not kept


@dataclass(frozen=True, slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = _JSON
    headers: tuple[tuple[str, str], ...] = ()


Handler = Callable[[Request, dict[str, str]], "Response | Awaitable[Response]"]


# rapidjson parses number arrays ~7x faster than the stdlib (NM_NATIVE: C doubles/int64)
# and writes ~2.5x faster; NaN/Infinity pass through as the stdlib json module allows.
_NUMBERS = rapidjson.NM_NATIVE | rapidjson.NM_NAN


def json_loads(data: bytes | str) -> Any:
    """Parse JSON fast; raises ValueError (rapidjson.JSONDecodeError) when malformed."""
    return rapidjson.loads(data, number_mode=_NUMBERS)


def json_dumps(obj: Any) -> bytes:
    return rapidjson.dumps(obj, number_mode=_NUMBERS, ensure_ascii=False).encode()


def json_response(obj: Any, status: int = 200, headers: tuple = ()) -> Response:
    return Response(status, json_dumps(obj), _JSON, headers)


def error_response(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


def response_for_exception(exc: BaseException) -> Response:
    """The JSON error answer for an exception raised while handling a request."""
    if isinstance(exc, ServerError):
        headers: tuple[tuple[str, str], ...] = ()
        if exc.http_status == 401:
            headers = (("WWW-Authenticate", "Bearer"),)
        elif isinstance(exc, Rejected):
            headers = (("Retry-After", str(exc.retry_after_s)),)
        return json_response({"error": str(exc) or type(exc).__name__}, exc.http_status, headers)
    logger.exception("unhandled error while handling a request", exc_info=exc)
    return error_response(500, f"internal error: {type(exc).__name__}")


class Router:
    """Exact paths through a dict; `{name}` patterns through regexes, cached per path."""

    def __init__(self) -> None:
        self._exact: dict[str, dict[str, Handler]] = {}
        self._patterns: list[tuple[re.Pattern[str], dict[str, Handler]]] = []
        self._cache: dict[str, tuple[dict[str, Handler], dict[str, str]] | None] = {}

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        if "{" not in pattern:
            self._exact.setdefault(pattern, {})[method] = handler
            return
        regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(pattern)) + "$"
        for compiled, methods in self._patterns:
            if compiled.pattern == regex:
                methods[method] = handler
                return
        self._patterns.append((re.compile(regex), {method: handler}))
        self._cache.clear()

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        methods = self._exact.get(path)
        params: dict[str, str] = {}
        if methods is None:
            hit = self._cache.get(path, False)
            if hit is False:
                hit = self._match(path)
                if len(self._cache) < 4096:
                    self._cache[path] = hit
            if hit is None:
                raise NotFound(f"no route for {method} {path}")
            methods, params = hit
        handler = methods.get(method)
        if handler is None:
            raise MethodNotAllowed(f"method {method} not allowed on {path}")
        return handler, params

    def _match(self, path: str) -> tuple[dict[str, Handler], dict[str, str]] | None:
        for compiled, methods in self._patterns:
            m = compiled.match(path)
            if m is not None:
                return methods, {k: unquote(v) for k, v in m.groupdict().items()}
        return None


def decode_content(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo gzip/deflate Content-Encoding without inflating more than `limit` bytes."""
    enc = encoding.strip().lower()
    if enc in ("", "identity"):
        return body
    if enc not in ("gzip", "deflate"):
        raise InvalidInput(f"unsupported Content-Encoding '{encoding}'")
    inflater = zlib.decompressobj(wbits=31 if enc == "gzip" else 15)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidInput(f"body is not valid {enc} data: {exc}") from None
    if len(out) > limit:
        raise PayloadTooLarge(f"decompressed body exceeds the limit of {limit} bytes")
    return out

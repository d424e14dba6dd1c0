"""The control API: Toxiproxy's REST routes, served by a small HTTP/1.1 server on asyncio.

Why wire-compatible: `chaostoolkit-toxiproxy` and `toxiproxy-python` must drive this proxy
unchanged, and an experiment must run against real Toxiproxy too. Routes, statuses and error
bodies follow Toxiproxy's `api.go`:

    GET  /version                      {"version": ...}
    GET  /proxies                      {name: proxy, ...}
    POST /proxies                      201 proxy; 409 duplicate name
    POST /populate                     201 {"proxies": [...]}
    GET|POST|DELETE /proxies/{p}       proxy | updated proxy | 204; 404 unknown
    GET|POST /proxies/{p}/toxics       [toxic, ...] | 200 toxic; 409 duplicate
    GET|POST|DELETE /proxies/{p}/toxics/{t}   toxic | updated toxic | 204
    POST /reset                        204 (every proxy enabled, every toxic removed)

Errors are `{"error": message, "status": N}`; a browser (`User-Agent: Mozilla/...`) gets 403,
as from Toxiproxy (a web page must not be able to drive the proxy). The server speaks only
what those clients send: Content-Length bodies (no chunked uploads), keep-alive.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from chaos.faultproxy.errors import BadRequest, FaultProxyError, Forbidden, NotFound
from chaos.faultproxy.proxy import ProxyCollection
from chaos.faultproxy.toxics import parse_toxic

log = logging.getLogger(__name__)

VERSION = "2.12.0-serving-harness"  # Toxiproxy's API version this follows, and who we are
MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024
REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 411: "Length Required",
           413: "Payload Too Large", 500: "Internal Server Error"}

Reply = tuple[int, Any]


class ControlApi:
    """Routes requests to the proxy collection; `handle` serves one client connection."""

    def __init__(self, proxies: ProxyCollection) -> None:
        self.proxies = proxies

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                method, path, headers, body = request
                status, payload = await self.dispatch(method, path, headers, body)
                _write_response(writer, status, payload)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except _HttpError as exc:  # unreadable request: answer, then hang up
            _write_response(writer, exc.status, _error_body(str(exc), exc.status))
        finally:
            writer.close()

    async def dispatch(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        """(status, JSON payload or None) for one request; errors become Toxiproxy's bodies."""
        try:
            if headers.get("user-agent", "").startswith("Mozilla/"):
                raise Forbidden("User agent not allowed")
            return await self._route(method, path.split("?", 1)[0], body)
        except FaultProxyError as exc:
            return exc.status, _error_body(exc.message, exc.status)
        except Exception as exc:  # the proxy keeps serving whatever one request did
            log.exception("fault proxy API: %s %s failed", method, path)
            return 500, _error_body(f"internal error: {exc}", 500)

    async def _route(self, method: str, path: str, body: bytes) -> Reply:
        parts = [p for p in path.split("/") if p]
        routes: dict[tuple[str, ...], dict[str, Callable[..., Awaitable[Reply]]]] = {
            ("version",): {"GET": self._version},
            ("reset",): {"POST": self._reset},
            ("populate",): {"POST": self._populate},
            ("proxies",): {"GET": self._proxy_index, "POST": self._proxy_create},
            ("proxies", "*"): {
                "GET": self._proxy_show, "POST": self._proxy_update,
                "PATCH": self._proxy_update, "DELETE": self._proxy_delete,
            },
            ("proxies", "*", "toxics"): {"GET": self._toxic_index, "POST": self._toxic_create},
            ("proxies", "*", "toxics", "*"): {
                "GET": self._toxic_show, "POST": self._toxic_update,
                "PATCH": self._toxic_update, "DELETE": self._toxic_delete,
            },
        }
        for pattern, methods in routes.items():
            if len(pattern) == len(parts) and all(
                p == "*" or p == part for p, part in zip(pattern, parts, strict=True)
            ):
                handler = methods.get(method)
                if handler is None:
                    raise FaultProxyError(f"method {method} not allowed on {path}", 405)
                args = [part for p, part in zip(pattern, parts, strict=True) if p == "*"]
                return await handler(*args, body=body)
        raise NotFound(f"no route {path}")

    async def _version(self, body: bytes) -> Reply:
        return 200, {"version": VERSION}

    async def _reset(self, body: bytes) -> Reply:
        await self.proxies.reset()
        return 204, None

    async def _populate(self, body: bytes) -> Reply:
        proxies = await self.proxies.populate(_json(body))
        return 201, {"proxies": [p.to_json() for p in proxies]}

    async def _proxy_index(self, body: bytes) -> Reply:
        return 200, {name: p.to_json() for name, p in self.proxies.proxies.items()}

    async def _proxy_create(self, body: bytes) -> Reply:
        proxy = await self.proxies.create(_json(body))
        return 201, proxy.to_json()

    async def _proxy_show(self, name: str, body: bytes) -> Reply:
        return 200, self.proxies.get(name).to_json()

    async def _proxy_update(self, name: str, body: bytes) -> Reply:
        proxy = self.proxies.get(name)
        update = _json(body)
        if not isinstance(update, dict):
            raise BadRequest("bad request body: proxy must be a JSON object")
        await proxy.update(update)
        return 200, proxy.to_json()

    async def _proxy_delete(self, name: str, body: bytes) -> Reply:
        await self.proxies.delete(name)
        return 204, None

    async def _toxic_index(self, name: str, body: bytes) -> Reply:
        return 200, [t.to_json() for t in self.proxies.get(name).toxics.values()]

    async def _toxic_create(self, name: str, body: bytes) -> Reply:
        proxy = self.proxies.get(name)
        toxic = parse_toxic(_json(body))
        proxy.add_toxic(toxic)
        return 200, toxic.to_json()

    async def _toxic_show(self, name: str, toxic: str, body: bytes) -> Reply:
        return 200, self.proxies.get(name).get_toxic(toxic).to_json()

    async def _toxic_update(self, name: str, toxic: str, body: bytes) -> Reply:
        proxy = self.proxies.get(name)
        updated = proxy.get_toxic(toxic).updated(_json(body))
        proxy.replace_toxic(updated)
        return 200, updated.to_json()

    async def _toxic_delete(self, name: str, toxic: str, body: bytes) -> Reply:
        self.proxies.get(name).remove_toxic(toxic)
        return 204, None


class _HttpError(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"bad request body: {exc}") from None


def _error_body(message: str, status: int) -> dict[str, Any]:
    return {"error": message, "status": status}


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bytes] | None:
    """(method, path, lower-cased headers, body), or None when the client hung up between
    requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise
    if len(head) > MAX_HEAD:
        raise _HttpError("request head too large", 413)
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, path, _version = lines[0].split(" ", 2)
    except ValueError:
        raise _HttpError(f"bad request line: {lines[0]!r}", 400) from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise _HttpError("chunked request bodies are not supported; send Content-Length", 411)
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise _HttpError("bad Content-Length", 400) from None
    if not 0 <= length <= MAX_BODY:
        raise _HttpError(f"request body over {MAX_BODY} bytes", 413)
    body = await reader.readexactly(length)
    return method.upper(), path, headers, body


def _write_response(writer: asyncio.StreamWriter, status: int, payload: Any) -> None:
    body = b"" if payload is None else json.dumps(payload).encode() + b"\n"
    head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}"]
    if status != 204:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

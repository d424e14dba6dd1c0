"""A small, fast asyncio HTTP/1.1 server on httptools (routes: see routing.py).

Why not a framework: the reference server must answer thousands of inference requests per
second per core, and a framework's per-request machinery (middleware stacks, request
objects with lazy parsing, ASGI message passing) costs more than the model itself for small
models. This module does only what the KServe v2 / TF-Serving / admin / metrics routes need:

- keep-alive and pipelining: requests on one connection are answered strictly in order; a
  connection with too many queued requests, or whose peer stops reading, is paused;
- bodies framed by Content-Length or chunked transfer encoding (httptools decodes both),
  optionally gzip/deflate Content-Encoding (what `tritonclient` can send);
- a body limit answered with 413 as soon as the declared length (or the received bytes)
  exceed it, followed by a lingering close so the client still reads the answer;
- every error is JSON `{"error": "..."}` with the status of the ServerError raised; a
  malformed request gets 400 and its connection closed, never an exception in the loop;
- admission before the body: an optional second router maps a method and path to a check
  run when the headers are complete (the KServe infer route asks whether the model's queue
  is full); a refused request's body is skipped, not buffered, and it is answered (503 and
  Retry-After) in its turn, so shedding costs little of the CPU the accepted requests need
  (a client waiting for `100 Continue` is answered at once and the connection closed). With
  nothing before it on its connection, a refused request builds no Request object and its
  answer is bytes serialised once per refusal: at 4x capacity most requests are refusals,
  and their cost decides how much CPU is left for the accepted ones;
- graceful shutdown: stop accepting, close idle connections, let busy ones finish;
- a client that leaves is not served: when its connection closes (or, as nginx judges it,
  sends EOF) while a request is being handled, that request's task is cancelled (the core
  takes it out of the batch queue before it runs) and its pipelined successors are dropped.

Handlers are `handler(request, params) -> Response` or `async def ... -> Response`; sync
handlers run inline in the protocol callback (no task per request).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable
from http import HTTPStatus
from urllib.parse import unquote

import httptools

from reference_server.errors import InvalidInput, PayloadTooLarge, ServerError
from reference_server.http.routing import (
    Request,
    Response,
    Router,
    decode_content,
    response_for_exception,
)

logger = logging.getLogger(__name__)

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_MAX_PIPELINED = 64  # queued requests per connection before we stop reading from it
_LINGER_S = 2.0  # how long to drain a rejected body before closing the socket
_IDLE_CLOSE_PAUSE_S = 0.05  # at shutdown, read what idle connections already sent


class _BodyTooLarge(Exception):
    pass


class _RefusedBeforeBody(Exception):
    """Refused at its headers by a client waiting for `100 Continue`: answer now, close."""

    def __init__(self, error: ServerError) -> None:
        self.error = error


class HttpServer:
    """One listening socket, its router and its connections."""

    def __init__(
        self,
        router: Router,
        *,
        max_body_bytes: int,
        idle_timeout_s: float = 75.0,
        name: str = "http",
        admission: Router | None = None,
    ) -> None:
        """`admission`: handlers `check(headers, params)` that return (or raise) a ServerError
        to refuse a request as soon as its headers are in, None to admit it (unknown paths
        are admitted)."""
        self.router = router
        self.admission = admission
        self.max_body_bytes = max_body_bytes
        self.idle_timeout_s = idle_timeout_s  # idle keep-alive or stalled partial request
        self.name = name
        self.closing = False
        self.in_flight = 0  # requests received and not yet answered
        self._connections: set[HttpProtocol] = set()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._refusal_answers: dict[tuple, bytes] = {}

    async def start(self, host: str, port: int, reuse_port: bool = False) -> int:
        """Listen on host:port (0 = pick) and return the bound port; `reuse_port`: share the
        port with other processes (SO_REUSEPORT, the kernel spreads connections)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: HttpProtocol(self), host, port, backlog=1024, reuse_address=True,
            reuse_port=reuse_port or None,
        )  # fmt: skip
        self._sweep()
        return self._server.sockets[0].getsockname()[1]

    def _sweep(self) -> None:
        """Close connections silent for longer than the idle timeout (one timer for all)."""
        loop = asyncio.get_running_loop()
        cutoff = loop.time() - self.idle_timeout_s
        for conn in list(self._connections):
            if conn.last_activity < cutoff:
                conn.close_if_idle()
        if not self.closing:
            interval = min(5.0, self.idle_timeout_s / 2)
            self._sweeper = loop.call_later(interval, self._sweep)

    def admit(self, method: str, path: str, headers: dict[str, str]) -> ServerError | None:
        """The refusal of a request by its headers alone, or None to read and handle it."""
        if self.admission is None:
            return None
        try:
            check, params = self.admission.resolve(method, path)
        except ServerError:  # no admission check for this route
            return None
        try:
            return check(headers, params)
        except ServerError as exc:
            return exc

    def refusal_answer(self, refusal: ServerError, keep_alive: bool, http10: bool) -> bytes:
        """The serialised answer to a refusal, built once per message and connection mode."""
        key = (type(refusal), refusal.args, keep_alive, http10)
        answer = self._refusal_answers.get(key)
        if answer is None:
            if len(self._refusal_answers) >= 256:  # messages are per model: few in practice
                self._refusal_answers.clear()
            answer = _serialize(response_for_exception(refusal), keep_alive, http10)
            self._refusal_answers[key] = answer
        return answer

    def dispatch(self, req: Request) -> Response | Awaitable[Response]:
        """Route and run a request; errors become JSON responses, never exceptions."""
        if req.refusal is not None:
            return response_for_exception(req.refusal)
        try:
            encoding = req.headers.get("content-encoding")
            if encoding:
                req.body = decode_content(req.body, encoding, self.max_body_bytes)
            handler, params = self.router.resolve(req.method, req.path)
            result = handler(req, params)
        except Exception as exc:
            return response_for_exception(exc)
        if isinstance(result, Response):
            return result
        return self._guard(result)

    @staticmethod
    async def _guard(coro: Awaitable[Response]) -> Response:
        try:
            return await coro
        except Exception as exc:
            return response_for_exception(exc)

    def stop_accepting(self) -> None:
        """Close the listening socket; connections already open keep being served."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()

    async def shutdown(self, deadline_s: float) -> bool:
        """Stop accepting, let busy connections finish until the deadline; True if all did.

        Idle keep-alive connections are closed after a short pause, so a request whose
        bytes already sit in the socket buffer is still read and answered (with
        `Connection: close`) rather than dropped.
        """
        self.stop_accepting()
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        await asyncio.sleep(min(_IDLE_CLOSE_PAUSE_S, deadline_s))
        while self._connections and loop.time() < end:
            for conn in list(self._connections):
                conn.close_if_idle()
            await asyncio.sleep(0.01)
        clean = not self._connections
        for conn in list(self._connections):
            conn.abort()
        return clean

    def _register(self, conn: HttpProtocol) -> None:
        self._connections.add(conn)

    def _unregister(self, conn: HttpProtocol) -> None:
        self._connections.discard(conn)


class HttpProtocol(asyncio.Protocol):
    """One client connection: httptools parsing, in-order answers, flow control."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._loop = asyncio.get_event_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._pending: deque[Request | ServerError] = deque()  # errors: answered in order
        self._busy = False
        self._task: asyncio.Task | None = None  # the request being handled, if async
        self._closed = False
        self._discarding = False
        self._read_paused = False
        self._write_paused = False
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_size = 0
        self._refusal: ServerError | None = None
        self.last_activity = self._loop.time()

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._server._register(self)
        if self._server.closing:
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._drop_pending()
        self._cancel_task()
        self._server._unregister(self)

    def eof_received(self) -> bool:
        """The client closed (or half-closed) its side: the requests it sent are abandoned.

        As nginx judges an EOF while a request is processed ("client prematurely closed
        connection"): the work is cancelled rather than run for nobody. Returning False lets
        the transport close.
        """
        self._closed = True
        self._drop_pending()
        self._cancel_task()
        return False

    def _cancel_task(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    def data_received(self, data: bytes) -> None:
        self.last_activity = self._loop.time()
        if self._discarding or self._closed:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _BodyTooLarge):
                self._reject(PayloadTooLarge(str(exc.__context__)))
            elif isinstance(exc.__context__, _RefusedBeforeBody):
                self._reject(exc.__context__.error)
            else:
                logger.exception("HTTP parser callback failed", exc_info=exc.__context__)
                self._reject(ServerError("internal error while reading the request"))
        except httptools.HttpParserUpgrade:
            self._reject(InvalidInput("protocol upgrade is not supported"))
        except httptools.HttpParserError as exc:
            self._reject(InvalidInput(f"malformed HTTP request: {exc}"))

    # -- httptools callbacks ----------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body = []
        self._body_size = 0
        self._refusal = None

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        length = self._headers.get("content-length")
        limit = self._server.max_body_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            raise _BodyTooLarge(f"request body of {length} bytes exceeds the limit of {limit}")
        expect = self._headers.get("expect")
        if self._server.admission is not None:
            method = self._parser.get_method().decode("latin-1")
            self._refusal = self._server.admit(method, self._path(), self._headers)
            if self._refusal is not None:
                if expect and expect.lower() == "100-continue":
                    raise _RefusedBeforeBody(self._refusal)  # it waits: the body never comes
                return  # answered in its turn, after the body the client is already sending
        if expect and expect.lower() == "100-continue" and self._transport is not None:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl waits 1 s otherwise

    def _path(self) -> str:
        path = self._url.decode("latin-1").partition("?")[0]
        return unquote(path) if "%" in path else path

    def on_body(self, body: bytes) -> None:
        if self._refusal is not None:
            return  # refused at its headers: skip the bytes
        self._body_size += len(body)
        if self._body_size > self._server.max_body_bytes:
            raise _BodyTooLarge(
                f"request body exceeds the limit of {self._server.max_body_bytes} bytes"
            )
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._refusal is not None and not self._busy:
            self._answer_refusal(self._refusal)  # the fast path: no Request, bytes made once
            return
        url = self._url.decode("latin-1")
        path, _, query = url.partition("?")
        if "%" in path:
            path = unquote(path)
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        req = Request(
            self._parser.get_method().decode("latin-1"),
            path,
            query,
            self._headers,
            body,
            self._parser.should_keep_alive(),
            self._parser.get_http_version(),
            self._refusal,
        )
        self._server.in_flight += 1
        if self._busy:
            self._pending.append(req)
            self._update_reading()
        else:
            self._start(req)

    # -- request processing -----------------------------------------------------------
    def _start(self, req: Request | ServerError) -> None:
        if isinstance(req, ServerError):
            self._send_rejection(req)
            return
        result = self._server.dispatch(req)
        if isinstance(result, Response):
            self._server.in_flight -= 1
            self._write(req, result)
        else:
            self._busy = True
            self._task = self._loop.create_task(self._finish(req, result))

    async def _finish(self, req: Request, pending: Awaitable[Response]) -> None:
        try:
            resp = await pending
        finally:  # also when cancelled: the client left
            self._server.in_flight -= 1
            self._busy = False
            self._task = None
        if self._closed:
            return
        self._write(req, resp)
        while self._pending and not self._busy and not self._closed:
            self._start(self._pending.popleft())
        self._update_reading()

    def _write(self, req: Request, resp: Response) -> None:
        if self._closed or self._transport is None:
            return
        keep = req.keep_alive and not self._server.closing
        self._transport.write(_serialize(resp, keep, req.http_version == "1.0"))
        self.last_activity = self._loop.time()
        if not keep:
            self._close()

    def _answer_refusal(self, refusal: ServerError) -> None:
        """Answer a request refused at its headers with nothing queued before it."""
        if self._closed or self._transport is None:
            return
        parser = self._parser
        keep = parser.should_keep_alive() and not self._server.closing
        http10 = parser.get_http_version() == "1.0"
        self._transport.write(self._server.refusal_answer(refusal, keep, http10))
        self.last_activity = self._loop.time()
        if not keep:
            self._close()

    def _update_reading(self) -> None:
        if self._transport is None or self._closed:
            return
        want_pause = self._write_paused or len(self._pending) >= _MAX_PIPELINED
        if want_pause and not self._read_paused:
            self._transport.pause_reading()
            self._read_paused = True
        elif not want_pause and self._read_paused:
            self._transport.resume_reading()
            self._read_paused = False

    def _reject(self, exc: ServerError) -> None:
        """Stop parsing; answer (after the requests before it) with an error, then close."""
        self._discarding = True
        if self._busy:
            self._pending.append(exc)
        else:
            self._send_rejection(exc)

    def _send_rejection(self, exc: ServerError) -> None:
        """Write the error, then drain the peer's remaining bytes for a while and close."""
        if self._transport is None or self._closed:
            return
        self._drop_pending()
        self._transport.write(_serialize(response_for_exception(exc), keep_alive=False))
        self._discarding = True
        if self._transport.can_write_eof():
            self._transport.write_eof()
        if self._read_paused:
            self._transport.resume_reading()
            self._read_paused = False
        self._loop.call_later(_LINGER_S, self._close)

    def _drop_pending(self) -> None:
        self._server.in_flight -= sum(isinstance(r, Request) for r in self._pending)
        self._pending.clear()

    def close_if_idle(self) -> None:
        if not self._busy and not self._pending:
            self._close()

    def _close(self) -> None:
        if not self._closed and self._transport is not None:
            self._closed = True
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


def _serialize(resp: Response, keep_alive: bool, http10: bool = False) -> bytes:
    head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (
        resp.status,
        _REASONS.get(resp.status, b"Unknown"),
        resp.content_type.encode(),
        len(resp.body),
    )
    for name, value in resp.headers:
        head += f"{name}: {value}\r\n".encode("latin-1")
    if not keep_alive:
        head += b"Connection: close\r\n"
    elif http10:  # HTTP/1.0 closes unless told otherwise (ab -k relies on this)
        head += b"Connection: keep-alive\r\n"
    return head + b"\r\n" + resp.body

"""`FaultProxyServer`: the control API and its proxies on one event loop, in-process or not.

Why both `serve()` and `start()`/`stop()`: the command line runs the loop in the main thread
until a signal (`serve`); a game day or a test embeds it in a background thread (`start`
returns once the API is bound, `api_address` says where, `stop` closes every proxy and
connection and joins the thread). A child process is the third way: `python -m
chaos.faultproxy --api 127.0.0.1:0 --port-file F` (see `cli.py`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Callable, Iterable

from chaos.faultproxy.addresses import AddressPolicy, join_address
from chaos.faultproxy.api import ControlApi
from chaos.faultproxy.proxy import ProxyCollection

log = logging.getLogger(__name__)


class FaultProxyServer:
    """The fault proxy: `api` is "host:port" (port 0 = ephemeral); `allow_hosts` are the
    non-loopback hosts it may listen on or connect to; `seed` fixes the toxicity and jitter
    draws (None = random)."""

    def __init__(
        self,
        api: str = "127.0.0.1:8474",
        allow_hosts: Iterable[str] = (),
        seed: int | None = None,
    ) -> None:
        self.policy = AddressPolicy(allow_hosts)
        self.api_host, self.api_port = self.policy.check(api, "api")
        self.rng = random.Random(seed)
        self.api_address: str | None = None  # "host:port" once bound
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        if self.api_address is None:
            raise RuntimeError("the fault proxy is not started")
        return f"http://{self.api_address}"

    async def serve(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Run until `request_stop()`: bind the API (then `on_ready(api_address)`), serve,
        then close every proxy and connection."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        proxies = ProxyCollection(self.policy, self.rng)
        api = ControlApi(proxies)
        server = await asyncio.start_server(api.handle, self.api_host, self.api_port)
        self.api_address = join_address(self.api_host, server.sockets[0].getsockname()[1])
        log.info("fault proxy API on %s", self.api_address)
        self._ready.set()
        if on_ready is not None:
            on_ready(self.api_address)
        try:
            await self._stop.wait()
        finally:
            server.close()
            await proxies.close()
            log.info("fault proxy stopped")

    def request_stop(self) -> None:
        """Ask `serve` to finish (safe from any thread or a signal handler)."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    def start(self, timeout: float = 10.0) -> FaultProxyServer:
        """Serve in a background thread; returns once the API is bound (or raises why not)."""
        self._thread = threading.Thread(target=self._run_thread, name="faultproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            self.stop()
            raise RuntimeError(f"fault proxy did not start: {self._error!r}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> FaultProxyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run_thread(self) -> None:
        try:
            asyncio.run(self.serve())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()

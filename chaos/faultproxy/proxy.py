"""Proxies: a named listener relaying to one upstream through its toxics; and their collection.

Why the rules are Toxiproxy's: a proxy created with port 0 reports the port it got and keeps
it when disabled and enabled again; disabling closes every connection and stops listening
(the "service is down" fault); a toxic added or removed applies to open connections too.
All methods run on the event loop that serves the control API (no locks needed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

from chaos.faultproxy.addresses import AddressPolicy, join_address
from chaos.faultproxy.errors import BadRequest, Conflict, ListenFailed, NotFound
from chaos.faultproxy.link import Link
from chaos.faultproxy.toxics import Toxic

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0


class Proxy:
    """One proxy: `listen` -> `upstream`, with its ordered toxics and open links."""

    def __init__(
        self, name: str, listen: str, upstream: str, policy: AddressPolicy, rng: random.Random
    ) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.policy = policy
        self.rng = rng
        self.toxics: dict[str, Toxic] = {}
        self.links: set[Link] = set()
        self._server: asyncio.Server | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [toxic.to_json() for toxic in self.toxics.values()],
        }

    def chain(self, stream: str) -> tuple[Toxic, ...]:
        return tuple(t for t in self.toxics.values() if t.stream == stream)

    async def start(self) -> None:
        """Listen (if not already); the listen address then names the port really bound."""
        if self._server is not None:
            return
        host, port = self.policy.check(self.listen, "listen")
        self.policy.check(self.upstream, "upstream")
        host = "127.0.0.1" if host == "localhost" else host  # one socket, one port
        try:
            self._server = await asyncio.start_server(self._accept, host, port)
        except OSError as exc:
            raise ListenFailed(f"proxy {self.name}: cannot listen on {self.listen}: {exc}") from exc
        bound = self._server.sockets[0].getsockname()
        self.listen = join_address(host, bound[1])
        self.enabled = True
        log.info("proxy %s listening on %s -> %s", self.name, self.listen, self.upstream)

    async def stop(self) -> None:
        """Stop listening and close every open connection (the proxied service is "down")."""
        self.enabled = False
        server, self._server = self._server, None
        if server is not None:
            server.close()
        links = list(self.links)
        for link in links:
            link.close()
        if server is not None:
            await server.wait_closed()
        # Wait (briefly) for their tasks, so a caller sees the connections really gone.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_all_done(links), 5.0)

    async def update(self, body: dict[str, Any]) -> None:
        """Toxiproxy's update: a new listen/upstream restarts the listener; `enabled` toggles."""
        listen = body.get("listen", self.listen)
        upstream = body.get("upstream", self.upstream)
        enabled = body.get("enabled", self.enabled)
        for key, value in (("listen", listen), ("upstream", upstream)):
            if not isinstance(value, str):
                raise BadRequest(f"{key} must be a string host:port, got {value!r}")
            self.policy.check(value, key)
        if not isinstance(enabled, bool):
            raise BadRequest(f"enabled must be true or false, got {enabled!r}")
        if (listen, upstream) != (self.listen, self.upstream):
            await self.stop()
            self.listen, self.upstream = listen, upstream
        if enabled and self._server is None:
            await self.start()
        elif not enabled:
            await self.stop()

    def add_toxic(self, toxic: Toxic) -> None:
        if toxic.name in self.toxics:
            raise Conflict("toxic already exists")
        self.toxics[toxic.name] = toxic
        self._arm_expiry(toxic)
        for link in list(self.links):
            link.toxic_added(toxic)

    def replace_toxic(self, toxic: Toxic) -> None:
        """Swap in an updated toxic at the same place in the chain (its lifetime, when it has
        one, counts again from now)."""
        old = self.get_toxic(toxic.name)
        self.toxics[toxic.name] = toxic
        _disarm_expiry(old)
        self._arm_expiry(toxic)
        old.removed.set()
        for link in list(self.links):
            link.toxic_removed(old, removed=False)
            link.toxic_added(toxic)

    def remove_toxic(self, name: str) -> None:
        toxic = self.get_toxic(name)
        del self.toxics[name]
        _disarm_expiry(toxic)
        toxic.removed.set()
        for link in list(self.links):
            link.toxic_removed(toxic)

    def _arm_expiry(self, toxic: Toxic) -> None:
        """`expires_in_s` (our extra): the toxic removes itself that long from now."""
        if toxic.expires_in_s is not None:
            loop = asyncio.get_running_loop()
            toxic.expiry = loop.call_later(toxic.expires_in_s, self._expire, toxic)

    def _expire(self, toxic: Toxic) -> None:
        if self.toxics.get(toxic.name) is toxic:  # not removed or replaced meanwhile
            log.warning("proxy %s: toxic %s expired after %gs", self.name, toxic.name,
                        toxic.expires_in_s)  # fmt: skip
            self.remove_toxic(toxic.name)

    def get_toxic(self, name: str) -> Toxic:
        try:
            return self.toxics[name]
        except KeyError:
            raise NotFound("toxic not found") from None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = self.policy.check(self.upstream, "upstream")
        try:
            upstream = await asyncio.wait_for(
                asyncio.open_connection(host, port), CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError) as exc:
            log.warning("proxy %s: upstream %s unreachable: %s", self.name, self.upstream, exc)
            writer.close()
            return
        link = Link(self.chain, self.rng, (reader, writer), upstream)
        self.links.add(link)
        try:
            await link.run()
        finally:
            self.links.discard(link)


def _disarm_expiry(toxic: Toxic) -> None:
    if toxic.expiry is not None:
        toxic.expiry.cancel()
        toxic.expiry = None


async def _all_done(links: list[Link]) -> None:
    while any(not link.closed.is_set() for link in links):
        await asyncio.sleep(0.01)


class ProxyCollection:
    """Every proxy by name; create, replace (populate), reset, delete."""

    def __init__(self, policy: AddressPolicy, rng: random.Random) -> None:
        self.policy = policy
        self.rng = rng
        self.proxies: dict[str, Proxy] = {}

    def get(self, name: str) -> Proxy:
        try:
            return self.proxies[name]
        except KeyError:
            raise NotFound("proxy not found") from None

    def parse(self, body: Any, where: str = "") -> tuple[str, str, str, bool]:
        """(name, listen, upstream, enabled) of a proxy's JSON, checked; listen defaults to
        127.0.0.1:0 (Toxiproxy would take any free port on every interface)."""
        if not isinstance(body, dict):
            raise BadRequest(f"proxy{where} must be a JSON object")
        unknown = sorted(set(body) - {"name", "listen", "upstream", "enabled", "toxics"})
        if unknown:
            raise BadRequest(f"unknown proxy field(s){where}: {', '.join(unknown)}")
        for key in ("name", "upstream"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise BadRequest(f"missing required field: {key}{where}")
        listen = body.get("listen") or "127.0.0.1:0"
        enabled = body.get("enabled", True)
        if not isinstance(listen, str):
            raise BadRequest(f"listen{where} must be a string host:port, got {listen!r}")
        if not isinstance(enabled, bool):
            raise BadRequest(f"enabled{where} must be true or false, got {enabled!r}")
        self.policy.check(listen, "listen")
        self.policy.check(body["upstream"], "upstream")
        return body["name"], listen, body["upstream"], enabled

    async def create(self, body: Any, replace: bool = False) -> Proxy:
        name, listen, upstream, enabled = self.parse(body)
        existing = self.proxies.get(name)
        if existing is not None:
            if not replace:
                raise Conflict("proxy already exists")
            if (existing.listen, existing.upstream) == (listen, upstream):
                return existing
            await self.delete(name)
        proxy = Proxy(name, listen, upstream, self.policy, self.rng)
        if enabled:
            await proxy.start()
        self.proxies[name] = proxy
        return proxy

    async def populate(self, body: Any) -> list[Proxy]:
        """Create or replace many proxies; every entry is checked before any is touched."""
        if not isinstance(body, list):
            raise BadRequest("populate expects a JSON list of proxies")
        for i, entry in enumerate(body, start=1):
            self.parse(entry, f" at proxy {i}")
        return [await self.create(entry, replace=True) for entry in body]

    async def delete(self, name: str) -> None:
        proxy = self.get(name)
        await proxy.stop()
        for toxic in proxy.toxics.values():
            _disarm_expiry(toxic)
            toxic.removed.set()
        del self.proxies[name]

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic (Toxiproxy's POST /reset)."""
        for proxy in list(self.proxies.values()):
            for name in list(proxy.toxics):
                proxy.remove_toxic(name)
            await proxy.start()

    async def close(self) -> None:
        for proxy in list(self.proxies.values()):
            await proxy.stop()

"""Toxics: what each one does to a stream of chunks, and how one is read from the API's JSON.

Why the shapes are Toxiproxy's: experiments written for Toxiproxy (through
`chaostoolkit-toxiproxy` or `toxiproxy-python`) must mean the same thing here. Units follow
Toxiproxy: milliseconds everywhere except the slicer's `delay` (microseconds); bandwidth
`rate` in KB/s (1 KB = 1000 bytes).

- `latency` (latency, jitter ms): each chunk leaves `latency +/- jitter` after it was *read*
  (not after the previous one left), so a response read in one go is delayed once.
- `bandwidth` (rate KB/s; 0 = unlimited): paced to `rate`, big chunks in 100 ms slices.
- `timeout` (timeout ms; 0 = hold forever): data dropped; the connection is closed once
  `timeout` passes with no new data; removing the toxic closes the connections it held.
- `reset_peer` (timeout ms): at the first data, waits `timeout`, then closes both sides with
  a TCP RST (SO_LINGER 0); the data is dropped.
- `slow_close` (delay ms): the close that follows end-of-stream is held back by `delay`.
- `slicer` (average_size, size_variation bytes; delay us): chunks cut into pieces of about
  `average_size`, `delay` microseconds between pieces.
- `limit_data` (bytes): at most `bytes` pass, then the connection is closed.

Every toxic has `stream` (`upstream` = client to server, `downstream` = server to client;
default downstream) and `toxicity` (0..1, default 1).

**Toxicity per connection (Toxiproxy) or per request (an extra).** Toxiproxy draws once per
connection whether a toxic applies: with keep-alive, `toxicity: 0.1` hits every request of
about 10 % of the connections, which is not 10 % of the requests (a client with 4 pooled
connections sees 0 %, 25 % ... of its requests affected). This proxy adds the attribute
`toxicity_scope`: `"connection"` (default, Toxiproxy's behaviour) or `"request"`, which draws
again for every exchange: an exchange starts when the client sends after the server has
answered, so with HTTP/1.1 keep-alive (no pipelining) it is one request and its response.
Real Toxiproxy ignores unknown attributes, so an experiment that sets it runs there with
per-connection draws.

**A bounded lifetime (an extra).** The attribute `expires_in_s` (seconds, a number > 0) makes
the proxy remove the toxic by itself that long after it was created (or last updated), as if
`DELETE`d: a toxic then cannot outlive the experiment that added it when that experiment's
process dies before its rollback. Real Toxiproxy ignores the attribute (no expiry there).

Unlike Toxiproxy, unknown attribute names, non-integer values and negative values are refused
(400 naming the attribute): a typo such as `latncy` would otherwise inject nothing, silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from chaos.faultproxy.errors import BadRequest

STREAMS = ("upstream", "downstream")
SCOPES = ("connection", "request")
EXTRAS = ("toxicity_scope", "expires_in_s")  # our attributes beyond Toxiproxy's


@dataclass(slots=True)
class Chunk:
    """Bytes read from one side, stamped with when (monotonic s) and in which exchange."""

    data: bytes
    read_at: float
    exchange: int


class CloseLink(Exception):
    """Raised by a toxic to end the connection: a FIN on both sides, or a RST if `reset`."""

    def __init__(self, reset: bool = False) -> None:
        super().__init__("reset" if reset else "close")
        self.reset = reset


Emit = Callable[[Chunk], Awaitable[None]]


@dataclass(eq=False)
class Slot:
    """One toxic's state on one direction of one connection: its toxicity draw and memory.

    `close` ends the connection (used by timers that fire without any data flowing).
    """

    toxic: Toxic
    rng: random.Random
    close: Callable[[bool], None]
    exchange: int = -1
    active: bool = False
    memory: dict[str, Any] = field(default_factory=dict)

    def active_for(self, exchange: int) -> bool:
        """Whether the toxic applies to a chunk of `exchange` (draws again per exchange when
        the scope is "request"; once per connection otherwise)."""
        if self.exchange == -1 or (self.toxic.scope == "request" and exchange != self.exchange):
            self.exchange = exchange
            self.active = self.rng.random() < self.toxic.toxicity
        return self.active


async def sleep_unless_removed(toxic: Toxic, seconds: float) -> None:
    """Sleep, but wake early when the toxic is removed (its held data then passes at once)."""
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(toxic.removed.wait(), seconds)


class Behaviour:
    """What a toxic type does. Subclasses name their integer attributes in ATTRIBUTES."""

    ATTRIBUTES: ClassVar[tuple[str, ...]] = ()

    async def process(self, toxic: Toxic, slot: Slot, chunk: Chunk, emit: Emit) -> None:
        await emit(chunk)

    async def at_end(self, toxic: Toxic, slot: Slot) -> None:
        """Called when the source side ended, before the connection is closed."""

    def attach(self, toxic: Toxic, slot: Slot) -> None:
        """Called when the toxic starts to apply to a connection (a new toxic or a new link)
        and its toxicity draw says it applies."""

    def detach(self, toxic: Toxic, slot: Slot, removed: bool) -> None:
        """Called when the toxic stops applying (removed, replaced or the link ended)."""


class Latency(Behaviour):
    ATTRIBUTES = ("latency", "jitter")

    async def process(self, toxic: Toxic, slot: Slot, chunk: Chunk, emit: Emit) -> None:
        delay_ms = toxic.attributes["latency"]
        jitter = toxic.attributes["jitter"]
        if jitter > 0:
            delay_ms += slot.rng.uniform(-jitter, jitter)
        # Measured from when the chunk was read, as Toxiproxy does: chunks queued behind a
        # delayed one do not wait twice.
        wait = chunk.read_at + delay_ms / 1000.0 - time.monotonic()
        await sleep_unless_removed(toxic, wait)
        chunk.read_at += max(wait, 0.0)
        await emit(chunk)


class Bandwidth(Behaviour):
    ATTRIBUTES = ("rate",)
    SLICE_S = 0.1  # big chunks leave in 100 ms slices, as Toxiproxy's

    async def process(self, toxic: Toxic, slot: Slot, chunk: Chunk, emit: Emit) -> None:
        rate = toxic.attributes["rate"] * 1000  # bytes per second
        if rate <= 0:
            await emit(chunk)
            return
        # Owed sleep carries over between chunks; oversleeping is paid back on the next one.
        owed = slot.memory.get("owed", 0.0) + len(chunk.data) / rate
        data = chunk.data
        per_slice = int(rate * self.SLICE_S)
        while len(data) > per_slice and not toxic.removed.is_set():
            await sleep_unless_removed(toxic, self.SLICE_S)
            await emit(Chunk(data[:per_slice], chunk.read_at, chunk.exchange))
            data = data[per_slice:]
            owed -= self.SLICE_S
        started = time.monotonic()
        await sleep_unless_removed(toxic, owed)
        slot.memory["owed"] = owed - (time.monotonic() - started)
        await emit(Chunk(data, chunk.read_at, chunk.exchange))


class Timeout(Behaviour):
    ATTRIBUTES = ("timeout",)

    async def process(self, toxic: Toxic, slot: Slot, chunk: Chunk, emit: Emit) -> None:
        self._restart_timer(toxic, slot)  # the data is dropped

    def attach(self, toxic: Toxic, slot: Slot) -> None:
        self._restart_timer(toxic, slot)  # an idle connection times out too

    def detach(self, toxic: Toxic, slot: Slot, removed: bool) -> None:
        timer = slot.memory.pop("timer", None)
        if timer is not None:
            timer.cancel()
        # The held stream lost data: like Toxiproxy, end it when the toxic goes away.
        if removed and slot.memory.get("held"):
            slot.close(False)

    def _restart_timer(self, toxic: Toxic, slot: Slot) -> None:
        slot.memory["held"] = True
        timer = slot.memory.pop("timer", None)
        if timer is not None:
            timer.cancel()
        timeout_ms = toxic.attributes["timeout"]
        if timeout_ms > 0:
            loop = asyncio.get_running_loop()
            slot.memory["timer"] = loop.call_later(timeout_ms / 1000.0, slot.close, False)


class ResetPeer(Behaviour):
    ATTRIBUTES = ("timeout",)

    async def process(self, toxic: Toxic, slot: Slot, chunk: Chunk, emit: Emit) -> None:
        await sleep_unless_removed(toxic, toxic.attributes["timeout"] / 1000.0)
        if toxic.removed.is_set():
            await emit(chunk)
            return
        raise CloseLink(reset=True)


class SlowClose(Behaviour):
    ATTRIBUTES = ("delay",)

    async def at_end(self, toxic: Toxic, slot: Slot) -> None:
        await sleep_unless_removed(toxic, toxic.attributes["delay"] / 1000.0)


class Slicer(Behaviour):
    ATTRIBUTES = ("average_size", "size_variation", "delay")

    async def process(self, toxic: Toxic, slot: Slot, chunk: Chunk, emit: Emit) -> None:
        bounds = self.cut(0, len(chunk.data), toxic.attributes, slot.rng)
        for i, (start, end) in enumerate(bounds):
            if i > 0:  # `delay` is in microseconds, between pieces
                await sleep_unless_removed(toxic, toxic.attributes["delay"] / 1e6)
            await emit(Chunk(chunk.data[start:end], chunk.read_at, chunk.exchange))

    @classmethod
    def cut(
        cls, start: int, end: int, attrs: dict[str, Any], rng: random.Random
    ) -> list[tuple[int, int]]:
        """Halve [start, end) recursively (the midpoint moved by up to +/- size_variation)
        until a piece is within size_variation of average_size, as Toxiproxy's slicer does."""
        average, variation = attrs["average_size"], attrs["size_variation"]
        if average <= 0 or (end - start) - average <= variation:
            return [(start, end)]
        mid = start + (end - start) // 2
        if variation > 0:
            mid += rng.randrange(-variation, variation)
        mid = min(max(mid, start + 1), end - 1)
        return cls.cut(start, mid, attrs, rng) + cls.cut(mid, end, attrs, rng)


class LimitData(Behaviour):
    ATTRIBUTES = ("bytes",)

    async def process(self, toxic: Toxic, slot: Slot, chunk: Chunk, emit: Emit) -> None:
        sent = slot.memory.get("sent", 0)
        remaining = max(toxic.attributes["bytes"] - sent, 0)
        data = chunk.data[:remaining]
        if data:
            await emit(Chunk(data, chunk.read_at, chunk.exchange))
            slot.memory["sent"] = sent + len(data)
        if toxic.attributes["bytes"] - slot.memory.get("sent", 0) <= 0:
            raise CloseLink()


TYPES: dict[str, Behaviour] = {
    "latency": Latency(),
    "bandwidth": Bandwidth(),
    "timeout": Timeout(),
    "reset_peer": ResetPeer(),
    "slow_close": SlowClose(),
    "slicer": Slicer(),
    "limit_data": LimitData(),
}


@dataclass(eq=False)
class Toxic:
    """One toxic of a proxy, as the API shows it; `removed` wakes its sleeping chunks."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, Any]
    removed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    expiry: asyncio.TimerHandle | None = field(default=None, repr=False)

    @property
    def behaviour(self) -> Behaviour:
        return TYPES[self.type]

    @property
    def expires_in_s(self) -> float | None:
        """The toxic's lifetime from its creation or last update (None: until removed)."""
        return self.attributes.get("expires_in_s")

    @property
    def scope(self) -> str:
        return self.attributes.get("toxicity_scope", "connection")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": dict(self.attributes),
        }

    def updated(self, body: Any) -> Toxic:
        """A copy with `toxicity` and `attributes` from an update body laid over this one
        (Toxiproxy's update: name, type and stream stay)."""
        body = _object(body, "toxic")
        attrs = _object(body.get("attributes") or {}, "attributes")
        toxicity = body.get("toxicity", self.toxicity)
        return Toxic(
            name=self.name,
            type=self.type,
            stream=self.stream,
            toxicity=_toxicity(toxicity),
            attributes=_attributes(self.type, {**self.attributes, **attrs}),
        )


def parse_toxic(body: Any) -> Toxic:
    """A Toxic from the API's JSON (Toxiproxy's defaults: downstream, toxicity 1, missing
    attributes 0, name `<type>_<stream>`); BadRequest naming the field otherwise."""
    body = _object(body, "toxic")
    unknown = sorted(set(body) - {"name", "type", "stream", "toxicity", "attributes"})
    if unknown:
        raise BadRequest(f"unknown toxic field(s): {', '.join(unknown)}")
    kind = body.get("type")
    if kind not in TYPES:
        raise BadRequest(f"invalid toxic type: {kind!r} (one of {', '.join(TYPES)})")
    stream = body.get("stream", "downstream")
    if stream not in STREAMS:
        raise BadRequest("stream was invalid, can be either upstream or downstream")
    name = body.get("name") or f"{kind}_{stream}"
    if not isinstance(name, str):
        raise BadRequest(f"toxic name must be a string, got {name!r}")
    attrs = _object(body.get("attributes") or {}, "attributes")
    return Toxic(
        name=name,
        type=kind,
        stream=stream,
        toxicity=_toxicity(body.get("toxicity", 1.0)),
        attributes=_attributes(kind, attrs),
    )


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _toxicity(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise BadRequest(f"toxicity must be a number from 0 to 1, got {value!r}")
    return float(value)


def _attributes(kind: str, given: dict[str, Any]) -> dict[str, Any]:
    """Every attribute of `kind` (0 when not given) plus `toxicity_scope`, and `expires_in_s`
    when given; refuses others."""
    allowed = TYPES[kind].ATTRIBUTES
    unknown = sorted(set(given) - set(allowed) - set(EXTRAS))
    if unknown:
        raise BadRequest(
            f"unknown attribute(s) for {kind}: {', '.join(unknown)} "
            f"(known: {', '.join((*allowed, *EXTRAS))})"
        )
    attrs: dict[str, Any] = {}
    for key in allowed:
        value = given.get(key, 0)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BadRequest(f"attribute {key} must be a non-negative integer, got {value!r}")
        attrs[key] = value
    scope = given.get("toxicity_scope", "connection")
    if scope not in SCOPES:
        raise BadRequest(f"attribute toxicity_scope must be connection or request, got {scope!r}")
    attrs["toxicity_scope"] = scope
    expires = given.get("expires_in_s")
    if expires is not None:
        number = not isinstance(expires, bool) and isinstance(expires, int | float)
        if not (number and math.isfinite(expires) and expires > 0):
            raise BadRequest(
                f"attribute expires_in_s must be a number of seconds > 0, got {expires!r}"
            )
        attrs["expires_in_s"] = expires
    return attrs

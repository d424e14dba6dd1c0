"""One proxied connection: two pipes (client to server, server to client) through the toxics.

Why a reader and a pump per direction: a toxic that delays a chunk (latency) must not stop
the next chunk from being read and stamped, or delays would add up along a stream. The reader
stamps each chunk with its read time and exchange number and queues it (bounded: a full queue
stops reading, so TCP back-pressure reaches the sender); the pump passes it through the toxics
that apply *now* (the chain is read per chunk, so toxics added or removed during a game day
reach open keep-alive connections too), then writes it.

Closing follows Toxiproxy: when one side ends (or a toxic ends the connection) both sides are
closed; `reset_peer` closes them with SO_LINGER 0, so the peers see a TCP RST.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
import time
from collections.abc import Callable

from chaos.faultproxy.toxics import Chunk, CloseLink, Slot, Toxic

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
QUEUE_CHUNKS = 64


class Pipe:
    """One direction of a link: `source` -> toxics of `stream` -> `dest`."""

    def __init__(
        self,
        link: Link,
        stream: str,
        source: asyncio.StreamReader,
        dest: asyncio.StreamWriter,
    ) -> None:
        self.link = link
        self.stream = stream
        self.source = source
        self.dest = dest
        self.queue: asyncio.Queue[Chunk | None] = asyncio.Queue(QUEUE_CHUNKS)
        self.slots: dict[int, Slot] = {}
        self.busy = False

    def chain(self) -> tuple[Toxic, ...]:
        return self.link.chain(self.stream)

    def slot(self, toxic: Toxic) -> Slot:
        """This toxic's state here, created (toxicity drawn, `attach` run) on first use."""
        slot = self.slots.get(id(toxic))
        if slot is None or slot.toxic is not toxic:
            slot = Slot(toxic=toxic, rng=self.link.rng, close=self.link.close)
            self.slots[id(toxic)] = slot
            if slot.active_for(self.link.exchange):
                toxic.behaviour.attach(toxic, slot)
        return slot

    def forget(self, toxic: Toxic, removed: bool) -> None:
        slot = self.slots.pop(id(toxic), None)
        if slot is not None and slot.toxic is toxic:
            toxic.behaviour.detach(toxic, slot, removed)

    async def read(self) -> None:
        """Source -> queue. With no toxic on this stream and nothing queued, write directly
        (the no-toxic fast path: one task switch less per chunk)."""
        try:
            while data := await self.source.read(READ_SIZE):
                exchange = self.link.note_data(self.stream)
                if not self.busy and self.queue.empty() and not self.chain():
                    if self.dest.is_closing():
                        break
                    self.dest.write(data)
                    await self.dest.drain()
                    continue
                await self.queue.put(Chunk(data, time.monotonic(), exchange))
        except (ConnectionError, OSError):
            pass
        await self.queue.put(None)

    async def pump(self) -> None:
        """Queue -> toxics -> dest, until the source ended; then the end-of-stream toxics
        (slow_close) and the close of the whole link."""
        reset = False
        try:
            while (chunk := await self.queue.get()) is not None:
                self.busy = True
                await self._through(self.chain(), 0, chunk)
                self.busy = self.queue.qsize() > 0
            for toxic in self.chain():
                slot = self.slot(toxic)
                if slot.active_for(slot.exchange):
                    await toxic.behaviour.at_end(toxic, slot)
        except CloseLink as signal:
            reset = signal.reset
        except (ConnectionError, OSError):
            pass
        except Exception:  # a bug must not leave the connection hanging open
            log.exception("fault proxy: %s pipe failed", self.stream)
        self.link.close(reset)

    async def _through(self, chain: tuple[Toxic, ...], index: int, chunk: Chunk) -> None:
        if index == len(chain):
            if self.dest.is_closing():  # the peer left while the chunk was held
                raise ConnectionResetError("destination closed")
            self.dest.write(chunk.data)
            await self.dest.drain()
            return
        toxic = chain[index]

        async def emit(out: Chunk) -> None:
            await self._through(chain, index + 1, out)

        if toxic.removed.is_set():  # removed while this chunk was on its way
            await emit(chunk)
            return
        slot = self.slot(toxic)
        if slot.active_for(chunk.exchange):
            await toxic.behaviour.process(toxic, slot, chunk, emit)
        else:
            await emit(chunk)

    def detach_all(self) -> None:
        for slot in list(self.slots.values()):
            slot.toxic.behaviour.detach(slot.toxic, slot, False)
        self.slots.clear()


class Link:
    """A client connection and its upstream connection, pumped through the proxy's toxics."""

    def __init__(
        self,
        chain: Callable[[str], tuple[Toxic, ...]],
        rng: random.Random,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.chain = chain
        self.rng = rng
        self.exchange = 0
        self._last_stream = "downstream"
        self.writers = (client[1], upstream[1])
        self.pipes = {
            "upstream": Pipe(self, "upstream", client[0], upstream[1]),
            "downstream": Pipe(self, "downstream", upstream[0], client[1]),
        }
        self.closed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def note_data(self, stream: str) -> int:
        """The exchange a chunk belongs to: client data after server data starts a new one."""
        if stream == "upstream" and self._last_stream == "downstream":
            self.exchange += 1
        self._last_stream = stream
        return self.exchange

    async def run(self) -> None:
        """Pump both directions until the link closes, then stop every task it started."""
        for pipe in self.pipes.values():
            for toxic in pipe.chain():  # toxics already present apply from the start
                pipe.slot(toxic)
            self._tasks += [asyncio.create_task(pipe.read()), asyncio.create_task(pipe.pump())]
        try:
            await self.closed.wait()
        finally:
            self.close()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for pipe in self.pipes.values():
                pipe.detach_all()

    def toxic_added(self, toxic: Toxic) -> None:
        if not self.closed.is_set():
            self.pipes[toxic.stream].slot(toxic)

    def toxic_removed(self, toxic: Toxic, removed: bool = True) -> None:
        self.pipes[toxic.stream].forget(toxic, removed)

    def close(self, reset: bool = False) -> None:
        """Close both sides (idempotent); with `reset`, abortively (TCP RST)."""
        if self.closed.is_set():
            return
        self.closed.set()
        for writer in self.writers:
            if reset:
                _abort_with_rst(writer)
            else:
                writer.close()


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()

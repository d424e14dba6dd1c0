"""Loopback ports the kernel picks (port 0), for tests that only need port numbers in a URL
or a config text: no fixed port appears in the tests, so parallel runs never collide."""

from __future__ import annotations

import contextlib
import socket


def kernel_picked_ports(count: int) -> list[int]:
    """`count` distinct ports (all held bound until every one is picked)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def kernel_picked_port() -> int:
    return kernel_picked_ports(1)[0]

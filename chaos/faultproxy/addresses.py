"""`host:port` parsing and the loopback-only safety rule.

Why: a fault proxy that listens on every interface, or relays to any host, is a tool for
hurting machines other than the one under test. Every listen and upstream address goes through
`check_address`: loopback (127.0.0.0/8, ::1, `localhost`) passes; anything else passes only
when its host is on the allow-list given at start-up (`--allow-host`), matched literally.
No name is resolved here (that could reach the network): a host name other than `localhost`
must be allow-listed as written.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from chaos.faultproxy.errors import BadRequest, Forbidden


def split_address(address: str, what: str) -> tuple[str, int]:
    """`"host:port"` or `"[v6]:port"` -> (host, port); a bad form is a BadRequest naming `what`."""
    if not isinstance(address, str) or ":" not in address:
        raise BadRequest(f"{what}: expected host:port, got {address!r}")
    host, _, port_text = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise BadRequest(f"{what}: port must be a number, got {address!r}") from None
    if not 0 <= port <= 65535:
        raise BadRequest(f"{what}: port out of range 0-65535, got {address!r}")
    return host, port


def join_address(host: str, port: int) -> str:
    """The inverse of `split_address` (IPv6 hosts in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AddressPolicy:
    """Loopback always; other hosts only when allow-listed (exact host string)."""

    def __init__(self, allow_hosts: Iterable[str] = ()) -> None:
        self.allow_hosts = frozenset(allow_hosts)

    def check(self, address: str, what: str) -> tuple[str, int]:
        """(host, port) of `address`; Forbidden (403) naming it when it is not permitted."""
        host, port = split_address(address, what)
        if host == "":
            host = "0.0.0.0"  # Go's ":port" form means every interface
        if is_loopback(host) or host in self.allow_hosts:
            return host, port
        raise Forbidden(
            f"{what} address {address} is not loopback; the fault proxy only uses loopback "
            f"unless started with --allow-host {host}"
        )

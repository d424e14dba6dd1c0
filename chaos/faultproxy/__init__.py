"""A Toxiproxy-compatible fault-injecting TCP proxy (stdlib + asyncio; loopback only by default).

Modules, from the ground up:
    errors.py     the error tree, each class carrying its HTTP status
    addresses.py  host:port parsing; the loopback / --allow-host rule
    toxics.py     toxic models (parsed from the API's JSON) and what each does to a stream;
                  per-connection vs per-request toxicity is explained there
    link.py       one proxied connection: reader and pump per direction through the toxics
    proxy.py      a proxy (listener -> upstream, its toxics, its links) and the collection
    api.py        the control API, Toxiproxy's REST routes on a small asyncio HTTP server
    server.py     FaultProxyServer: API + proxies on one loop, in a thread or the main loop
    cli.py        `python -m chaos.faultproxy` / `harness faultproxy`
    client.py     FaultProxyClient: the control API from Python (urllib)

This package imports nothing of `harness`, `scenarios` or `reference_server` (an
import-linter contract keeps it so): it runs wherever Python does, as a child process of the
stack or in a test.
"""

from chaos.faultproxy.client import FaultProxyClient
from chaos.faultproxy.errors import (
    BadRequest,
    Conflict,
    FaultProxyError,
    Forbidden,
    ListenFailed,
    NotFound,
)
from chaos.faultproxy.server import FaultProxyServer

__all__ = [
    "BadRequest",
    "Conflict",
    "FaultProxyClient",
    "FaultProxyError",
    "FaultProxyServer",
    "Forbidden",
    "ListenFailed",
    "NotFound",
]

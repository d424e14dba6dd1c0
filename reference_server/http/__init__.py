"""HTTP front ends of the reference server.

routing    Request / Response values, JSON helpers, the router (no I/O)
server     the asyncio HTTP/1.1 server on httptools (connections, limits, shutdown)
kserve     KServe v2 REST routes (JSON + binary tensor extension, Triton extensions)
tfserving  TF-Serving REST predict / model status
admin      the token-protected chaos fault API
"""

from reference_server.http.routing import (
    Request,
    Response,
    Router,
    error_response,
    json_response,
)
from reference_server.http.server import HttpServer

__all__ = ["HttpServer", "Request", "Response", "Router", "error_response", "json_response"]

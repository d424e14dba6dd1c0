"""HTTP front ends of the reference server: the HTTP/1.1 server, KServe v2, TF-Serving, admin."""

from reference_server.http.server import (
    HttpServer,
    Request,
    Response,
    Router,
    error_response,
    json_response,
)

__all__ = ["HttpServer", "Request", "Response", "Router", "error_response", "json_response"]

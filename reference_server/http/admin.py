"""Admin API for chaos fault hooks, on the HTTP port under /admin.

Off unless `ServerConfig.admin_token` is set: then every /admin route answers 404 as if it
did not exist, so a production-like server exposes nothing. With a token, a request needs
`Authorization: Bearer <token>` (compared in constant time with `hmac.compare_digest`),
otherwise 401.

    GET    /admin/faults        list active faults
    POST   /admin/faults        add one; body = fault spec (see reference_server.faults)
    DELETE /admin/faults/{id}   remove one
    DELETE /admin/faults        remove all

What a fault does (latency, failure ratio, device loss with its policy, hang) is the core's
business (`core.faults`); this module only authenticates and translates JSON.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from reference_server.core import InferenceCore
from reference_server.errors import InvalidInput, NotFound, Unauthorized
from reference_server.http.routing import Request, Response, Router, json_loads, json_response

logger = logging.getLogger(__name__)


FAULT_ID_HEADER = "x-fault-id"  # a supervisor's fan-out: the id every worker must use
Forward = Callable[[Request], Awaitable[Response]]


class AdminRoutes:
    """`forward`: a worker of `--workers N` hands changes (once authorized) to its supervisor,
    which applies them to every worker; `accept_ids`: the worker's private listener takes the
    supervisor's fault id from the X-Fault-Id header. Listing is answered locally."""

    def __init__(
        self,
        core: InferenceCore,
        token: str | None,
        forward: Forward | None = None,
        accept_ids: bool = False,
    ) -> None:
        self.core = core
        self._token = token.encode() if token else None
        self._forward = forward
        self._accept_ids = accept_ids

    def _authorize(self, req: Request) -> None:
        if self._token is None:
            raise NotFound(f"no route for {req.method} {req.path}")
        auth = req.headers.get("authorization", "")
        scheme, _, given = auth.partition(" ")
        ok = hmac.compare_digest(given.strip().encode(), self._token)
        if scheme.lower() != "bearer" or not ok:
            raise Unauthorized("admin API: missing or wrong bearer token")

    def list_faults(self, req: Request, params: dict[str, str]) -> Response:
        self._authorize(req)
        return json_response({"faults": self.core.faults.list()})

    async def add_fault(self, req: Request, params: dict[str, str]) -> Response:
        self._authorize(req)
        if self._forward is not None:
            return await self._forward(req)
        try:
            spec = json_loads(req.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"malformed JSON fault spec: {exc}") from None
        if not isinstance(spec, dict):
            raise InvalidInput("a fault spec must be a JSON object")
        fault_id = req.headers.get(FAULT_ID_HEADER) if self._accept_ids else None
        fault = self.core.faults.add(spec, fault_id)  # validates; InvalidInput names the field
        logger.warning("admin: fault added: %s", fault)
        return json_response(fault, 201)

    async def remove_fault(self, req: Request, params: dict[str, str]) -> Response:
        self._authorize(req)
        if self._forward is not None:
            return await self._forward(req)
        if not self.core.faults.remove(params["id"]):
            raise NotFound(f"no active fault with id '{params['id']}'")
        logger.warning("admin: fault %s removed", params["id"])
        return json_response({"removed": params["id"]})

    async def clear_faults(self, req: Request, params: dict[str, str]) -> Response:
        self._authorize(req)
        if self._forward is not None:
            return await self._forward(req)
        count = self.core.faults.clear()
        logger.warning("admin: all faults cleared")
        return json_response({"removed": count})


def add_routes(
    router: Router,
    core: InferenceCore,
    token: str | None,
    forward: Forward | None = None,
    accept_ids: bool = False,
) -> AdminRoutes:
    """Register /admin routes; they answer 404 unless `token` is set (see AdminRoutes)."""
    r = AdminRoutes(core, token, forward, accept_ids)
    router.add("GET", "/admin/faults", r.list_faults)
    router.add("POST", "/admin/faults", r.add_fault)
    router.add("DELETE", "/admin/faults", r.clear_faults)
    router.add("DELETE", "/admin/faults/{id}", r.remove_fault)
    return r

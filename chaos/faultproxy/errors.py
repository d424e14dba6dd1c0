"""The fault proxy's errors, each carrying the HTTP status the control API answers with.

Why one tree with the status on the class: the API maps any `FaultProxyError` to
`{"error": message, "status": N}` in one place (`api.py`), the way Toxiproxy answers, and
the in-process client raises the same classes back from those answers.

    FaultProxyError (500)
    ├── BadRequest (400)        bad JSON, a missing or ill-typed field, unknown toxic type
    ├── Forbidden (403)         a non-loopback address not on the allow-list
    ├── NotFound (404)          unknown proxy, toxic or route
    ├── Conflict (409)          a proxy or toxic of that name already exists
    └── ListenFailed (500)      the operating system refused to listen (port taken)
"""

from __future__ import annotations


class FaultProxyError(Exception):
    """Base class; `status` is the HTTP status the control API answers with."""

    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status

    @property
    def message(self) -> str:
        return str(self)


class BadRequest(FaultProxyError):
    status = 400


class Forbidden(FaultProxyError):
    status = 403


class NotFound(FaultProxyError):
    status = 404


class Conflict(FaultProxyError):
    status = 409


class ListenFailed(FaultProxyError):
    status = 500


_BY_STATUS: dict[int, type[FaultProxyError]] = {
    400: BadRequest, 403: Forbidden, 404: NotFound, 409: Conflict,
}


def error_for_status(status: int, message: str) -> FaultProxyError:
    """The error class an API answer of `status` stands for (used by the client)."""
    return _BY_STATUS.get(status, FaultProxyError)(message, status)

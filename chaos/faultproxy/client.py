"""`FaultProxyClient`: the control API from Python (stdlib urllib), for game days and tests.

Why not `toxiproxy-python`: it keeps its address in class attributes (one server per process)
and needs `requests` and `future`. This client is an object per API address, raises the
proxy's own error classes (`errors.py`) with the server's message, and speaks to real Toxiproxy
as well. Everything targets the address it is given; nothing is read from the environment.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from chaos.faultproxy.errors import error_for_status


class FaultProxyClient:
    """Client of one control API, e.g. `FaultProxyClient("127.0.0.1:8474")`."""

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        self.base = address if address.startswith("http") else f"http://{address}"
        self.timeout = timeout

    def version(self) -> str:
        return self._call("GET", "/version")["version"]

    def proxies(self) -> dict[str, dict[str, Any]]:
        return self._call("GET", "/proxies")

    def create_proxy(
        self, name: str, upstream: str, listen: str = "127.0.0.1:0", enabled: bool = True
    ) -> dict[str, Any]:
        """Create a proxy; the answer's `listen` names the port really bound."""
        body = {"name": name, "upstream": upstream, "listen": listen, "enabled": enabled}
        return self._call("POST", "/proxies", body)

    def proxy(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/proxies/{name}")

    def update_proxy(self, name: str, **fields: Any) -> dict[str, Any]:
        """Change `listen`, `upstream` or `enabled` (False: close connections, stop listening)."""
        return self._call("POST", f"/proxies/{name}", fields)

    def enable(self, name: str) -> dict[str, Any]:
        return self.update_proxy(name, enabled=True)

    def disable(self, name: str) -> dict[str, Any]:
        return self.update_proxy(name, enabled=False)

    def delete_proxy(self, name: str) -> None:
        self._call("DELETE", f"/proxies/{name}")

    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/proxies/{proxy}/toxics")

    def add_toxic(
        self,
        proxy: str,
        type: str,  # Toxiproxy's field name
        attributes: dict[str, Any] | None = None,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
    ) -> dict[str, Any]:
        body = {"type": type, "stream": stream, "toxicity": toxicity,
                "attributes": attributes or {}}
        if name is not None:
            body["name"] = name
        return self._call("POST", f"/proxies/{proxy}/toxics", body)

    def update_toxic(
        self,
        proxy: str,
        name: str,
        attributes: dict[str, Any] | None = None,
        toxicity: float | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"attributes": attributes or {}}
        if toxicity is not None:
            body["toxicity"] = toxicity
        return self._call("POST", f"/proxies/{proxy}/toxics/{name}", body)

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._call("POST", "/reset")

    def populate(self, proxies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._call("POST", "/populate", proxies)["proxies"]

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("User-Agent", "serving-harness-faultproxy-client")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                message = json.loads(raw)["error"]
            except (ValueError, KeyError, TypeError):
                message = raw.decode(errors="replace") or exc.reason
            raise error_for_status(exc.code, message) from exc
        return json.loads(raw) if raw else None

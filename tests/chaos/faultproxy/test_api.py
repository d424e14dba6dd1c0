"""The control API: Toxiproxy's statuses and bodies, refusals with messages, and a proxy that
keeps serving whatever a request did.

Requests go over raw HTTP (urllib) where the exact status and body are the point, and through
`FaultProxyClient` where the client's own behaviour is.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from chaos.faultproxy import (
    BadRequest,
    Conflict,
    FaultProxyClient,
    FaultProxyServer,
    Forbidden,
    NotFound,
)
from tests.chaos.faultproxy.conftest import connect, listen_port, round_trip_ms


def _http(address: str, method: str, path: str, body: bytes | None = None,
          user_agent: str = "test") -> tuple[int, object]:
    request = urllib.request.Request(f"http://{address}{path}", data=body, method=method)
    request.add_header("User-Agent", user_agent)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw, status = response.read(), response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    return status, (json.loads(raw) if raw else None)


def _error(status: int, message: str) -> tuple[int, dict]:
    return status, {"error": message, "status": status}


def test_statuses_and_shapes_follow_toxiproxy(api, proxy_process, echo_port):
    upstream = f"127.0.0.1:{echo_port}"
    body = json.dumps({"name": "echo", "upstream": upstream, "listen": "127.0.0.1:0"}).encode()
    status, created = _http(proxy_process, "POST", "/proxies", body)
    assert status == 201
    port = listen_port(created)
    assert port > 0  # port 0 answered with the port really bound
    assert created == {"name": "echo", "listen": f"127.0.0.1:{port}", "upstream": upstream,
                       "enabled": True, "toxics": []}
    assert _http(proxy_process, "POST", "/proxies", body) == _error(409, "proxy already exists")
    assert _http(proxy_process, "GET", "/proxies") == (200, {"echo": created})

    toxic = json.dumps({"type": "latency", "attributes": {"latency": 5}}).encode()
    status, shown = _http(proxy_process, "POST", "/proxies/echo/toxics", toxic)
    assert (status, shown) == (200, {
        "name": "latency_downstream", "type": "latency", "stream": "downstream",
        "toxicity": 1.0,
        "attributes": {"latency": 5, "jitter": 0, "toxicity_scope": "connection"},
    })
    assert _http(proxy_process, "POST", "/proxies/echo/toxics", toxic) == _error(
        409, "toxic already exists")
    assert _http(proxy_process, "GET", "/proxies/echo/toxics") == (200, [shown])
    assert _http(proxy_process, "GET", "/proxies/echo/toxics/latency_downstream") == (200, shown)
    # an update lays new attributes over the old (jitter stays), toxicity too
    update = json.dumps({"attributes": {"latency": 7}, "toxicity": 0.5}).encode()
    status, updated = _http(proxy_process, "POST", "/proxies/echo/toxics/latency_downstream",
                            update)
    assert status == 200 and updated["toxicity"] == 0.5
    assert updated["attributes"] == {"latency": 7, "jitter": 0, "toxicity_scope": "connection"}
    assert _http(proxy_process, "DELETE", "/proxies/echo/toxics/latency_downstream") == (204,
                                                                                         None)
    assert _http(proxy_process, "DELETE", "/proxies/echo/toxics/latency_downstream") == _error(
        404, "toxic not found")

    status, disabled = _http(proxy_process, "POST", "/proxies/echo", b'{"enabled": false}')
    assert (status, disabled["enabled"], listen_port(disabled)) == (200, False, port)
    with pytest.raises(ConnectionRefusedError):
        connect(port)
    assert _http(proxy_process, "POST", "/reset") == (204, None)
    assert _http(proxy_process, "GET", "/proxies/echo")[1]["enabled"] is True
    assert _http(proxy_process, "DELETE", "/proxies/echo") == (204, None)
    for method, path in (("GET", "/proxies/echo"), ("POST", "/proxies/echo"),
                         ("DELETE", "/proxies/echo"), ("GET", "/proxies/echo/toxics")):
        assert _http(proxy_process, method, path, b"{}") == _error(404, "proxy not found")
    assert _http(proxy_process, "GET", "/version") == (200, {"version": "2.12.0-serving-harness"})


def test_populate_creates_keeps_and_replaces(api, proxy_process, echo_port, bye_port):
    entries = [{"name": "a", "upstream": f"127.0.0.1:{echo_port}"},
               {"name": "b", "upstream": f"127.0.0.1:{echo_port}"}]
    status, first = _http(proxy_process, "POST", "/populate", json.dumps(entries).encode())
    assert status == 201 and [p["name"] for p in first["proxies"]] == ["a", "b"]
    # same again: kept (same ports); a changed upstream replaces that one
    entries[1]["upstream"] = f"127.0.0.1:{bye_port}"
    entries[0]["listen"] = first["proxies"][0]["listen"]
    with connect(listen_port(first["proxies"][0])) as kept:
        round_trip_ms(kept)
        status, second = _http(proxy_process, "POST", "/populate", json.dumps(entries).encode())
        assert round_trip_ms(kept) < 100  # kept, not recreated: its connection still flows
    assert status == 201 and second["proxies"][0] == first["proxies"][0]
    assert second["proxies"][1]["upstream"] == f"127.0.0.1:{bye_port}"
    # one bad entry: nothing touched
    bad = [{"name": "c", "upstream": f"127.0.0.1:{echo_port}"}, {"name": "d"}]
    assert _http(proxy_process, "POST", "/populate", json.dumps(bad).encode()) == _error(
        400, "missing required field: upstream at proxy 2")
    assert set(api.proxies()) == {"a", "b"}


BAD_REQUESTS = [
    ("/proxies", b"{not json", 400, "bad request body: Expecting property name enclosed in "
                                    "double quotes: line 1 column 2 (char 1)"),
    ("/proxies", b'{"upstream": "127.0.0.1:1"}', 400, "missing required field: name"),
    ("/proxies", b'{"name": "x", "upstream": "127.0.0.1:1", "lisen": "127.0.0.1:0"}', 400,
     "unknown proxy field(s): lisen"),
    ("/proxies", b'{"name": "x", "upstream": "127.0.0.1"}', 400,
     "upstream: expected host:port, got '127.0.0.1'"),
    ("/proxies", b'{"name": "x", "upstream": "127.0.0.1:1", "listen": "0.0.0.0:0"}', 403,
     "listen address 0.0.0.0:0 is not loopback; the fault proxy only uses loopback unless "
     "started with --allow-host 0.0.0.0"),
    ("/proxies", b'{"name": "x", "upstream": "192.0.2.1:80"}', 403,
     "upstream address 192.0.2.1:80 is not loopback; the fault proxy only uses loopback "
     "unless started with --allow-host 192.0.2.1"),
    ("/proxies/echo/toxics", b'{"type": "lag"}', 400, "invalid toxic type: 'lag' (one of "
     "latency, bandwidth, timeout, reset_peer, slow_close, slicer, limit_data)"),
    ("/proxies/echo/toxics", b'{"type": "latency", "stream": "sideways"}', 400,
     "stream was invalid, can be either upstream or downstream"),
    ("/proxies/echo/toxics", b'{"type": "latency", "toxicity": 2}', 400,
     "toxicity must be a number from 0 to 1, got 2"),
    ("/proxies/echo/toxics", b'{"type": "latency", "attributes": {"latncy": 100}}', 400,
     "unknown attribute(s) for latency: latncy (known: latency, jitter, toxicity_scope, "
     "expires_in_s)"),
    ("/proxies/echo/toxics", b'{"type": "latency", "attributes": {"expires_in_s": 0}}', 400,
     "attribute expires_in_s must be a number of seconds > 0, got 0"),
    ("/proxies/echo/toxics", b'{"type": "latency", "attributes": {"expires_in_s": "9"}}', 400,
     "attribute expires_in_s must be a number of seconds > 0, got '9'"),
    ("/proxies/echo/toxics", b'{"type": "latency", "attributes": {"expires_in_s": true}}', 400,
     "attribute expires_in_s must be a number of seconds > 0, got True"),
    ("/proxies/echo/toxics", b'{"type": "latency", "attributes": {"latency": -1}}', 400,
     "attribute latency must be a non-negative integer, got -1"),
    ("/proxies/echo/toxics", b'{"type": "latency", "attributes": {"latency": "100"}}', 400,
     "attribute latency must be a non-negative integer, got '100'"),
    ("/proxies/echo/toxics",
     b'{"type": "latency", "attributes": {"toxicity_scope": "packet"}}', 400,
     "attribute toxicity_scope must be connection or request, got 'packet'"),
    ("/proxies/echo", b'{"enabled": "no"}', 400, "enabled must be true or false, got 'no'"),
    ("/proxies/echo", b'{"listen": "10.0.0.1:0"}', 403,
     "listen address 10.0.0.1:0 is not loopback; the fault proxy only uses loopback unless "
     "started with --allow-host 10.0.0.1"),
    ("/nowhere", b"{}", 404, "no route /nowhere"),
]


def test_bad_requests_get_4xx_with_a_message_and_the_proxy_keeps_serving(
    api, proxy_process, echo_port
):
    port = listen_port(api.create_proxy("echo", f"127.0.0.1:{echo_port}"))
    with connect(port) as sock:
        round_trip_ms(sock)
        for path, body, status, message in BAD_REQUESTS:
            assert _http(proxy_process, "POST", path, body) == _error(status, message), path
        assert _http(proxy_process, "GET", "/proxies", user_agent="Mozilla/5.0") == _error(
            403, "User agent not allowed")
        assert round_trip_ms(sock) < 100  # the open connection still flows ...
    assert set(api.proxies()) == {"echo"} and api.toxics("echo") == []
    assert api.proxy("echo")["enabled"] is True
    with connect(port) as sock:  # ... and new ones too
        assert round_trip_ms(sock) < 100


def _raised(error: type[Exception], call, *args, **kwargs) -> str:
    with pytest.raises(error) as info:
        call(*args, **kwargs)
    return str(info.value)


def test_client_raises_the_proxy_errors_with_their_messages(api, echo_port):
    upstream = f"127.0.0.1:{echo_port}"
    api.create_proxy("echo", upstream)
    assert _raised(Conflict, api.create_proxy, "echo", upstream) == "proxy already exists"
    assert _raised(NotFound, api.add_toxic, "nope", "latency") == "proxy not found"
    assert _raised(BadRequest, api.add_toxic, "echo", "lag") == (
        "invalid toxic type: 'lag' (one of latency, bandwidth, timeout, reset_peer, "
        "slow_close, slicer, limit_data)"
    )
    assert _raised(Forbidden, api.create_proxy, "wide", upstream, listen="0.0.0.0:0") == (
        "listen address 0.0.0.0:0 is not loopback; the fault proxy only uses loopback unless "
        "started with --allow-host 0.0.0.0"
    )


def test_allow_host_permits_exactly_the_listed_host(echo_port):
    """An in-process server (start/stop in a thread) with 192.0.2.1 (TEST-NET, never
    connected to here) allow-listed: it may be an upstream; 192.0.2.2 may not."""
    with FaultProxyServer("127.0.0.1:0", allow_hosts=["192.0.2.1"]) as server:
        client = FaultProxyClient(server.api_address)
        assert client.create_proxy("far", "192.0.2.1:80")["upstream"] == "192.0.2.1:80"
        assert _raised(Forbidden, client.create_proxy, "farther", "192.0.2.2:80") == (
            "upstream address 192.0.2.2:80 is not loopback; the fault proxy only uses "
            "loopback unless started with --allow-host 192.0.2.2"
        )
        port = listen_port(client.create_proxy("echo", f"127.0.0.1:{echo_port}"))
        with connect(port) as sock:
            assert round_trip_ms(sock) < 100
        address = server.api_address
    # stopped: the API and the proxy no longer listen
    for host_port in (address, f"127.0.0.1:{port}"):
        with pytest.raises(ConnectionRefusedError):
            connect(int(host_port.rsplit(":", 1)[1]))


def test_api_address_must_be_loopback_unless_allowed():
    assert _raised(Forbidden, FaultProxyServer, "0.0.0.0:0") == (
        "api address 0.0.0.0:0 is not loopback; the fault proxy only uses loopback unless "
        "started with --allow-host 0.0.0.0"
    )
    assert FaultProxyServer("0.0.0.0:0", allow_hosts=["0.0.0.0"]).api_host == "0.0.0.0"

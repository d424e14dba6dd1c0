"""The Toxiproxy clients people already use drive the fault proxy unchanged.

`toxiproxy-python` (PyPI) and `chaostoolkit-toxiproxy` (module `chaostoxi`: the actions and
probes Chaos Toolkit experiments name) are used exactly as their docs say; only the address
they are given points at this proxy. Effects are checked on real connections through it.
"""

from __future__ import annotations

import statistics

import pytest
from chaostoxi.proxy import actions as proxy_actions
from chaostoxi.proxy import probes as proxy_probes
from chaostoxi.toxic import actions as toxic_actions
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import NotFound, ProxyExists

from tests.chaos.faultproxy.conftest import connect, round_trip_ms


def _p50(port: int, n: int = 9) -> float:
    with connect(port) as sock:
        return statistics.median(round_trip_ms(sock) for _ in range(n))


@pytest.fixture
def toxiproxy_server(api, proxy_process, monkeypatch) -> Toxiproxy:
    host, port = proxy_process.rsplit(":", 1)
    # toxiproxy-python keeps the address in class attributes; restored after the test.
    monkeypatch.setattr(APIConsumer, "host", host)
    monkeypatch.setattr(APIConsumer, "port", int(port))
    return Toxiproxy()


def test_toxiproxy_python_creates_toxics_disables_and_enables(toxiproxy_server, echo_port):
    server = toxiproxy_server
    assert server.running()
    assert server.version().startswith(b'{"version": ')
    proxy = server.create(upstream=f"127.0.0.1:{echo_port}", name="echo")
    port = int(proxy.listen.rsplit(":", 1)[1])
    assert port != 0 and proxy.enabled is True
    assert set(server.proxies()) == {"echo"}
    base = _p50(port)

    proxy.add_toxic(type="latency", attributes={"latency": 100})
    toxic = proxy.get_toxic("latency_downstream")  # toxiproxy-python's default name
    assert (toxic.type, toxic.stream, toxic.toxicity) == ("latency", "downstream", 1.0)
    assert toxic.attributes["latency"] == 100
    assert 95 <= _p50(port, 5) - base <= 110

    proxy.destroy_toxic("latency_downstream")
    assert proxy.toxics() == {}
    assert _p50(port) - base < 5

    with proxy.down():
        with pytest.raises(ConnectionRefusedError):
            connect(port)
        assert server.get_proxy("echo").enabled is False
    assert server.get_proxy("echo").enabled is True
    assert _p50(port) - base < 5  # the same port again after enable

    with pytest.raises(ProxyExists):  # the client's own check
        server.create(upstream=f"127.0.0.1:{echo_port}", name="echo")
    with pytest.raises(ProxyExists):  # the server's 409
        APIConsumer.post("/proxies", json={"name": "echo", "upstream": f"127.0.0.1:{echo_port}"})
    with pytest.raises(NotFound):
        APIConsumer.get("/proxies/nope")
    with pytest.raises(NotFound):
        APIConsumer.delete("/proxies/echo/toxics/nope")

    proxy.add_toxic(type="latency", attributes={"latency": 50}, stream="upstream")
    proxy.disable()
    assert server.reset() is True
    assert server.get_proxy("echo").enabled is True
    assert server.get_proxy("echo").toxics() == {}
    server.destroy_all()
    assert server.proxies() == {}


@pytest.fixture
def chaos_config(proxy_process, monkeypatch) -> dict:
    host, port = proxy_process.rsplit(":", 1)
    # create_proxy writes <name>_PORT into os.environ: setting it first makes monkeypatch
    # remove it afterwards.
    monkeypatch.setenv("echo_PORT", "unset")
    return {"toxiproxy_host": host, "toxiproxy_port": int(port)}


def test_chaostoolkit_toxiproxy_actions_and_probes(api, chaos_config, echo_port):
    cfg = chaos_config
    assert proxy_actions.create_proxy(
        proxy_name="echo", upstream_host="127.0.0.1", upstream_port=echo_port,
        listen_host="127.0.0.1", configuration=cfg,
    )
    port = int(cfg["echo_PORT"])
    assert port == int(api.proxy("echo")["listen"].rsplit(":", 1)[1])
    assert proxy_probes.proxy_exist("echo", configuration=cfg) is True
    assert proxy_probes.get_proxy_attribute("echo", "enabled", configuration=cfg) is True
    base = _p50(port)

    assert toxic_actions.create_latency_toxic("echo", "lag", latency=100, jitter=0,
                                              configuration=cfg)
    assert 95 <= _p50(port, 5) - base <= 110
    assert toxic_actions.delete_toxic("echo", "lag", configuration=cfg) is True
    assert _p50(port) - base < 5

    created = [
        toxic_actions.create_bandwith_degradation_toxic("echo", "bw", rate=1000,
                                                        configuration=cfg),
        toxic_actions.create_slow_connection_close_toxic("echo", "sc", delay=10,
                                                         configuration=cfg),
        toxic_actions.create_timeout_toxic("echo", "to", timeout=1000, configuration=cfg),
        toxic_actions.create_slicer_toxic("echo", "sl", average_size=10, size_variation=2,
                                          delay=5, configuration=cfg),
        toxic_actions.create_limiter_toxic("echo", "lim", bytes_limit=4096, configuration=cfg),
        toxic_actions.create_toxic("echo", "rst", "reset_peer", stream="upstream",
                                   toxicity=0.5, attributes={"timeout": 10}, configuration=cfg),
    ]
    assert created == [True] * 6
    listed = {t["name"]: t for t in api.toxics("echo")}
    assert listed["bw"]["attributes"]["rate"] == 1000
    assert listed["sl"]["attributes"] | {} == {"average_size": 10, "size_variation": 2,
                                               "delay": 5, "toxicity_scope": "connection"}
    assert listed["lim"]["attributes"]["bytes"] == 4096
    assert (listed["rst"]["stream"], listed["rst"]["toxicity"]) == ("upstream", 0.5)

    assert proxy_actions.disable_proxy("echo", configuration=cfg) is True
    assert proxy_probes.get_proxy_attribute("echo", "enabled", configuration=cfg) is False
    with pytest.raises(ConnectionRefusedError):
        connect(port)
    assert proxy_actions.enable_proxy("echo", configuration=cfg) is True
    assert proxy_actions.reset(configuration=cfg) is True
    assert api.toxics("echo") == []
    assert _p50(port) - base < 5

    proxy_actions.delete_proxy("echo", configuration=cfg)
    assert proxy_probes.proxy_exist("echo", configuration=cfg) is False


def test_chaostoolkit_default_listen_on_every_interface_is_refused(api, chaos_config, echo_port):
    """create_proxy listens on 0.0.0.0 unless told otherwise: refused (not loopback)."""
    with pytest.raises(AssertionError):
        proxy_actions.create_proxy(
            proxy_name="echo", upstream_host="127.0.0.1", upstream_port=echo_port,
            configuration=chaos_config,
        )
    assert api.proxies() == {}

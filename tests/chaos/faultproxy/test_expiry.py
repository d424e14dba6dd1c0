"""`expires_in_s`, our extra beyond Toxiproxy: a toxic that removes itself after its lifetime,
as if deleted (open connections included), counted again from an update, and never touching a
later toxic of the same name once it was removed early.

The fault proxy runs as a child process (conftest); lifetimes are 1-2 s, so a busy 2-core host
gets generous upper bounds, while the lower bounds (nothing removed early) stay tight.
"""

from __future__ import annotations

import time

from chaos.faultproxy import FaultProxyClient
from tests.chaos.faultproxy.conftest import connect, listen_port, round_trip_ms, wait_for


def _names(api: FaultProxyClient, proxy: str) -> set[str]:
    return {t["name"] for t in api.toxics(proxy)}


def _gone_after(api: FaultProxyClient, name: str, since: float, timeout: float = 10) -> float:
    wait_for(lambda: name not in _names(api, "echo"), timeout, f"toxic {name} to expire", 0.02)
    return time.monotonic() - since


def test_a_toxic_with_a_lifetime_removes_itself_from_open_connections_too(api, echo_port):
    port = listen_port(api.create_proxy("echo", f"127.0.0.1:{echo_port}"))
    with connect(port) as sock:
        added = time.monotonic()
        made = api.add_toxic("echo", "latency", {"latency": 60, "expires_in_s": 1.0}, "slow")
        api.add_toxic("echo", "bandwidth", {"rate": 0}, "stays")  # no lifetime: stays
        assert made["attributes"] == {"latency": 60, "jitter": 0, "toxicity_scope": "connection",
                                      "expires_in_s": 1.0}  # fmt: skip
        assert round_trip_ms(sock) >= 60
        lived = _gone_after(api, "slow", added)
        assert 0.95 <= lived <= 3.0
        assert _names(api, "echo") == {"stays"}
        assert round_trip_ms(sock) < 50  # the open connection is no longer slowed


def test_an_update_counts_the_lifetime_again(api, echo_port):
    api.create_proxy("echo", f"127.0.0.1:{echo_port}")
    api.add_toxic("echo", "latency", {"latency": 5, "expires_in_s": 2.0}, "t")
    time.sleep(1.0)  # half its lifetime passes (the scenario, not a synchronisation)
    updated_at = time.monotonic()
    assert api.update_toxic("echo", "t", {"latency": 7})["attributes"]["expires_in_s"] == 2.0
    lived = _gone_after(api, "t", updated_at)
    assert 1.95 <= lived <= 4.0, "2 s from the update, not from the creation"


def test_a_toxic_removed_early_leaves_a_new_one_of_that_name_alone(api, echo_port):
    api.create_proxy("echo", f"127.0.0.1:{echo_port}")
    api.add_toxic("echo", "latency", {"latency": 5, "expires_in_s": 0.5}, "t")
    api.remove_toxic("echo", "t")
    api.add_toxic("echo", "latency", {"latency": 5}, "t")
    deadline = time.monotonic() + 1.5  # a bounded wait proving a negative: 3x the old lifetime
    while time.monotonic() < deadline:
        assert _names(api, "echo") == {"t"}
        time.sleep(0.05)

"""reference_server_inflight_seconds_total: the integral of the in-flight count, exact at scrape.

Expected values come from hand arithmetic on an injected clock, and, on a real server, from a
latency fault of known length: every request then spends at least that long in flight.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from reference_server.metrics import InflightIntegral
from tests.reference_server.conftest import ADMIN_TOKEN, RunningServer

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
NAME = "reference_server_inflight_seconds_total"


class FakeClock:
    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        return self.ns


def test_integral_by_hand_counts_the_open_interval() -> None:
    clock = FakeClock()
    integral = InflightIntegral(clock)
    clock.ns += 5 * 10**9  # 0 in flight for 5 s: 0
    integral.set(2)
    clock.ns += 3 * 10**9  # 2 for 3 s: 6
    integral.set(1)
    clock.ns += 10**9  # 1 for 1 s: 7
    assert integral.seconds() == 7.0
    clock.ns += 5 * 10**8  # still 1, read mid-interval: 7.5
    assert integral.seconds() == 7.5
    integral.set(0)
    clock.ns += 10 * 10**9  # 0 for 10 s: unchanged
    assert integral.seconds() == 7.5 and integral.count == 0


def _call(port: int, method: str, path: str, doc: object = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = None if doc is None else json.dumps(doc)
        conn.request(method, path, body=body, headers=AUTH)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def _pair_infer(port: int) -> int:
    doc = {
        "inputs": [
            {"name": "a", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]},
            {"name": "b", "datatype": "FP32", "shape": [1, 4], "data": [1, 1, 1, 1]},
        ]
    }
    return _call(port, "POST", "/v2/models/pair/infer", doc)


def _scrape(server: RunningServer) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics}/metrics") as resp:
        text = resp.read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (NAME, "reference_server_inflight_requests"):
                values[sample.name] = sample.value
    return values


def test_counter_grows_by_requests_times_their_latency(server: RunningServer) -> None:
    """4 threads x 3 requests, each held 200 ms by a latency fault: 12 x 0.2 = 2.4 s in flight,
    plus each request's own service time (a few ms at most on this host)."""
    assert _call(server.http, "POST", "/admin/faults", {"type": "latency", "fixed_ms": 200}) == 201
    try:
        before = _scrape(server)[NAME]
        statuses: list[int] = []

        def client() -> None:
            statuses.extend(_pair_infer(server.http) for _ in range(3))

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        after = _scrape(server)
    finally:
        assert _call(server.http, "DELETE", "/admin/faults") == 200
    assert statuses == [200] * 12
    assert after["reference_server_inflight_requests"] == 0
    assert 2.4 <= after[NAME] - before < 2.4 + 12 * 0.05


def test_a_request_in_flight_counts_between_two_scrapes(server: RunningServer) -> None:
    """One request held 1.5 s: two scrapes 0.5 s apart inside it differ by ~0.5 s (the counter
    is exact at scrape time, not updated only when requests finish)."""
    assert _call(server.http, "POST", "/admin/faults", {"type": "latency", "fixed_ms": 1500}) == 201
    try:
        held = threading.Thread(target=_pair_infer, args=(server.http,))
        held.start()
        deadline = time.monotonic() + 5
        while _scrape(server).get("reference_server_inflight_requests") != 1:
            assert time.monotonic() < deadline, "the held request never showed as in flight"
        first, t0 = _scrape(server)[NAME], time.monotonic()
        time.sleep(0.5)  # the quantity measured: an interval, not a synchronisation
        second, t1 = _scrape(server)[NAME], time.monotonic()
        held.join(timeout=10)
    finally:
        assert _call(server.http, "DELETE", "/admin/faults") == 200
    # one in flight the whole time; the scrape round trips blur the ends by a few ms
    assert abs((second - first) - (t1 - t0)) < 0.05

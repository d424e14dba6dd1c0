"""Each toxic does what Toxiproxy's does, measured on real loopback connections.

Upstreams answer at once (an echo server; a server that says "bye" and hangs up), so the
time a toxic adds is the difference against the same proxy without it, measured in the same
test. Timing bounds are loose where the machine's scheduling could move them (a 2-core shared
host), tight where the claim is the number (latency p50 within 2 ms, bandwidth within 10 %).
The proxy is seeded (`--seed 7`), so the toxicity and jitter draws repeat run to run; the
bands are wide enough to hold for any seed.
"""

from __future__ import annotations

import statistics
import threading
import time

import pytest

from tests.chaos.faultproxy.conftest import (
    connect,
    listen_port,
    read_until_closed,
    round_trip_ms,
)


@pytest.fixture
def echo(api, echo_port) -> int:
    """A proxy in front of the echo server; its listen port."""
    return listen_port(api.create_proxy("echo", f"127.0.0.1:{echo_port}"))


def _samples(port: int, n: int, payload: bytes = b"x" * 100) -> list[float]:
    with connect(port) as sock:
        round_trip_ms(sock, payload)  # the first exchange pays for the connect
        return [round_trip_ms(sock, payload) for _ in range(n)]


def test_latency_adds_100ms_at_p50(api, echo):
    base = statistics.median(_samples(echo, 30))
    api.add_toxic("echo", "latency", {"latency": 100})
    delayed = statistics.median(_samples(echo, 30))
    # downstream latency applies once per answer: +100 ms, within 2 ms
    assert delayed - base == pytest.approx(100, abs=2)


def test_latency_is_measured_from_read_time_so_a_big_answer_is_delayed_once(api, echo):
    """A 2 MB echo arrives in ~30 chunks of up to 64 KB; each leaves 100 ms after it was read,
    so the whole answer is late by at most ~100 ms (less: the transfer overlaps the delay),
    not 100 ms per chunk (that would be about 3 s)."""
    payload = b"y" * 2_000_000
    base = statistics.median(_samples(echo, 3, payload))
    api.add_toxic("echo", "latency", {"latency": 100})
    delayed = statistics.median(_samples(echo, 3, payload))
    assert 50 <= delayed - base <= 300


def test_upstream_and_downstream_latency_add_up(api, echo):
    base = statistics.median(_samples(echo, 15))
    api.add_toxic("echo", "latency", {"latency": 40}, stream="upstream")
    api.add_toxic("echo", "latency", {"latency": 60}, stream="downstream")
    assert statistics.median(_samples(echo, 15)) - base == pytest.approx(100, abs=3)


def test_jitter_spreads_within_its_bounds(api, echo):
    base = statistics.median(_samples(echo, 15))
    api.add_toxic("echo", "latency", {"latency": 60, "jitter": 20})
    added = [s - base for s in _samples(echo, 40)]
    # uniform in [40, 80] ms (+ scheduling slack); 40 draws all within 10 ms of the centre
    # has probability 0.5**40
    assert min(added) >= 40 - 1.5 and max(added) <= 80 + 5
    assert max(added) - min(added) >= 10
    assert statistics.median(added) == pytest.approx(60, abs=8)


def _timed_echo(port: int, size: int) -> float:
    """Seconds from the first byte sent to the last byte echoed back (a sender thread keeps
    sending while this thread reads)."""
    payload = b"z" * size
    with connect(port) as sock:
        start = time.perf_counter()
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        received = 0
        while received < size:
            data = sock.recv(65536)
            assert data, "closed early"
            received += len(data)
        elapsed = time.perf_counter() - start
        sender.join(10)
    return elapsed


def test_bandwidth_gives_the_expected_transfer_time(api, echo):
    api.add_toxic("echo", "bandwidth", {"rate": 200})  # 200 KB/s = 200,000 bytes/s
    # 300,000 bytes at 200,000 B/s: 1.5 s, within 10 %
    assert _timed_echo(echo, 300_000) == pytest.approx(1.5, rel=0.10)


def test_bandwidth_zero_means_unlimited(api, echo):
    api.add_toxic("echo", "bandwidth", {"rate": 0})
    assert _timed_echo(echo, 300_000) < 0.5


def test_timeout_drops_data_then_closes(api, echo):
    api.add_toxic("echo", "timeout", {"timeout": 300})
    with connect(echo) as sock:
        start = time.perf_counter()
        sock.sendall(b"hello")
        assert read_until_closed(sock) == b""  # nothing passes, then the close
        assert 0.25 <= time.perf_counter() - start <= 2.0


def test_timeout_zero_holds_until_removed_then_closes(api, echo):
    api.add_toxic("echo", "timeout", {"timeout": 0}, name="hold")
    with connect(echo) as sock:
        sock.sendall(b"hello")
        sock.settimeout(0.5)  # a bounded wait proving a negative: nothing arrives, no close
        with pytest.raises(TimeoutError):
            sock.recv(10)
        sock.settimeout(10)
        api.remove_toxic("echo", "hold")
        assert read_until_closed(sock) == b""  # Toxiproxy's cleanup: the held stream ends
    assert _samples(echo, 3)  # new connections pass again


def test_reset_peer_resets_after_its_timeout(api, echo):
    api.add_toxic("echo", "reset_peer", {"timeout": 200})
    with connect(echo) as sock:
        start = time.perf_counter()
        sock.sendall(b"hello")
        with pytest.raises(ConnectionResetError):
            read_until_closed(sock)
        assert 0.18 <= time.perf_counter() - start <= 2.0


def test_limit_data_passes_that_many_bytes_then_closes(api, echo):
    api.add_toxic("echo", "limit_data", {"bytes": 1000})
    with connect(echo) as sock:
        sock.sendall(b"a" * 5000)
        assert read_until_closed(sock) == b"a" * 1000


def test_slicer_cuts_into_pieces_with_microsecond_delays(api, echo):
    # Toxiproxy's slicer halves until a piece is within size_variation of average_size:
    # 1000 -> 500 -> 250 -> 125 -> 62 + 63, so 16 pieces of 62-63 bytes; 20,000 us = 20 ms
    # between pieces: 15 gaps = 0.3 s (were it milliseconds: 300 s)
    api.add_toxic("echo", "slicer", {"average_size": 100, "size_variation": 0, "delay": 20000})
    with connect(echo, timeout=5) as sock:
        start = time.perf_counter()
        sock.sendall(b"s" * 1000)
        pieces = []
        while sum(pieces) < 1000:
            pieces.append(len(sock.recv(1000)))
        elapsed = time.perf_counter() - start
    assert pieces[0] == 62 and len(pieces) >= 8  # the reader may merge a few late pieces
    assert 0.29 <= elapsed <= 2.0


def test_slow_close_holds_the_close_back(api, bye_port):
    port = listen_port(api.create_proxy("bye", f"127.0.0.1:{bye_port}"))

    def time_to_close() -> tuple[bytes, float]:
        with connect(port) as sock:
            start = time.perf_counter()
            return read_until_closed(sock), time.perf_counter() - start

    assert time_to_close()[1] < 0.25  # a busy host's scheduling; the toxic adds 0.3 s
    api.add_toxic("bye", "slow_close", {"delay": 300})
    data, elapsed = time_to_close()
    # 0.29, not 0.3: the proxy's 300 ms start when the upstream's end-of-stream reaches it,
    # which can be a few ms before this side's connect() returns and starts the stopwatch
    # (seen: 0.2997 s on a busy host)
    assert data == b"bye" and 0.29 <= elapsed <= 2.0


def _delayed(port: int, requests: int) -> list[bool]:
    """For each request on one keep-alive connection: did it take the 30 ms latency?"""
    return [ms >= 25 for ms in _samples(port, requests)]


def test_toxicity_is_drawn_per_connection_by_default(api, echo):
    api.add_toxic("echo", "latency", {"latency": 30}, toxicity=0.5)
    connections = [_delayed(echo, 4) for _ in range(30)]
    # all requests of a connection share its one draw (Toxiproxy's rule) ...
    assert all(len(set(c)) == 1 for c in connections)
    # ... and about half the connections are hit: Binomial(30, 0.5) in [7, 23] fails with
    # probability 2 x 0.0007
    assert 7 <= sum(c[0] for c in connections) <= 23


def test_toxicity_scope_request_draws_per_request(api, echo):
    api.add_toxic(
        "echo", "latency", {"latency": 30, "toxicity_scope": "request"}, toxicity=0.5
    )
    delayed = _delayed(echo, 60)  # one keep-alive connection
    # Binomial(60, 0.5) in [17, 43]: fails with probability about 2 x 0.0003
    assert 17 <= sum(delayed) <= 43


def test_a_toxic_reaches_open_connections_and_reset_restores_direct_latency(api, echo_port):
    port = listen_port(api.create_proxy("echo", f"127.0.0.1:{echo_port}"))
    with connect(echo_port) as direct:
        round_trip_ms(direct)
        direct_p50 = statistics.median(round_trip_ms(direct) for _ in range(30))
    with connect(port) as sock:  # stays open through the whole test (keep-alive)
        round_trip_ms(sock)
        api.add_toxic("echo", "latency", {"latency": 50}, stream="upstream")
        api.add_toxic("echo", "latency", {"latency": 50})
        assert statistics.median(round_trip_ms(sock) for _ in range(5)) >= 99
        api.reset()
        assert api.toxics("echo") == []
        after = statistics.median(round_trip_ms(sock) for _ in range(30))
    assert after - direct_p50 < 2  # direct latency again (the proxy's own cost well under)

"""Overload without collapse: the shipped `cnn` configuration at about twice its capacity.

One real server (one intra-op thread, the shipped bounded queue: 200 requests, 100 ms), the
open-loop client of benchmarks/openloop_http.py on the same host. Capacity is measured first
in the same test: a closed loop of 64 connections saturates the server, then an open loop at
1.25x that rate gives the answers per second the server keeps while the client, on the same
two cores, sends open loop (the client's CPU is the server's loss). Twice that capacity is
then offered for 6 s. What issue 16 saw
without a bounded queue: RSS 112 MiB -> 1.74 GiB and still there 30 s later, p99 17.8 s,
1,500 inferences run for clients that had left.

Latencies are taken from the moment the client actually sent each request (its own lag on a
busy host is not the server's); the client's lag is checked and the test skips, saying so,
when the host is too busy for the client to keep its schedule.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.openloop_http import kserve_binary_request, run_closed_loop, run_open_loop
from tests.reference_server.conftest import RunningServer, running_server

pytestmark = pytest.mark.integration

MiB = 2**20
RSS_BOUND = 200 * MiB  # peak over idle; issue 16 saw +1.6 GiB
RSS_AFTER_BOUND = 150 * MiB  # 5 s after the load, over idle; issue 16: +1.6 GiB 30 s after
QUEUE_TIMEOUT_S = 0.100  # the shipped default_timeout_microseconds
END_TO_END_S = 1.0  # p99 from the send, answered or refused
MAX_CLIENT_LAG_S = 0.050  # p99 of (actual - intended send); beyond it the host is too busy


@pytest.fixture(scope="module")
def cnn_server(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    log_dir = tmp_path_factory.mktemp("overload-logs")
    args = ("--model-repository", str(model_repository), "--device", "cpu")
    with running_server(log_dir, *args, "--intra-op-threads", "1") as server:
        yield server


def scrape(server: RunningServer) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics}/metrics", timeout=5).read()
    return {
        (s.name.removesuffix("_total"), tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def cnn(sample: dict, name: str, **labels: str) -> float:
    return sample[(name, tuple(sorted({"model": "cnn", "version": "1", **labels}.items())))]


class PeakRss:
    """Samples a process's RSS every 20 ms in a thread; `peak` is the largest seen."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return self.peak


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99))


def test_twice_capacity_sheds_fast_keeps_answers_in_bound_and_gives_memory_back(
    cnn_server: RunningServer,
) -> None:
    host, port = "127.0.0.1", cnn_server.http
    one_row = kserve_binary_request("cnn", (1, 3, 64, 64))
    full_batch = kserve_binary_request("cnn", (32, 3, 64, 64))
    run_open_loop(host, port, full_batch, 20, 1.0)  # ONNX Runtime's arena at its largest
    run_open_loop(host, port, one_row, 200, 1.0)
    process = psutil.Process(cnn_server.proc.pid)
    idle_rss = process.memory_info().rss

    closed = run_closed_loop(host, port, one_row, 64, 2.0).throughput_rps()
    capacity = run_open_loop(host, port, one_row, 1.25 * closed, 2.0).throughput_rps()
    assert capacity > 300, f"cnn serves {capacity:.0f} req/s: host too busy to overload"
    before = scrape(cnn_server)
    sampler = PeakRss(cnn_server.proc.pid)
    load = run_open_loop(host, port, one_row, 2 * capacity, 6.0, timeout_s=5.0)
    load_end = load.schedule_end  # the last request was due; the client then awaits answers
    idle_deadline = load_end + 15.0
    while True:  # poll: the server is idle when nothing is queued or in flight
        sample = scrape(cnn_server)
        if (
            cnn(sample, "nv_inference_pending_request_count") == 0
            and sample[("reference_server_inflight_requests", ())] == 0
        ):
            break
        assert time.monotonic() < idle_deadline, "the server never became idle"
        time.sleep(0.01)
    idle_after_s = time.monotonic() - load_end
    peak_rss = sampler.stop()
    while time.monotonic() < load_end + 5.0:  # a measurement interval, not a synchronisation
        time.sleep(0.1)
    rss_5s_after = process.memory_info().rss
    after = scrape(cnn_server)

    lag = p99(load.send_lag)
    if lag > MAX_CLIENT_LAG_S:
        pytest.skip(f"the client lagged {lag * 1e3:.0f} ms (p99): host too busy to judge")
    report = (
        f"capacity {capacity:.0f}/s, offered {2 * capacity:.0f}/s, answered "
        f"{load.throughput_rps():.0f}/s, refused {len(load.refused)}, RSS idle "
        f"{idle_rss / MiB:.0f} MiB peak {peak_rss / MiB:.0f} 5 s after {rss_5s_after / MiB:.0f}"
        f", p99 from send: answered {p99(load.answered_from_send) * 1e3:.0f} ms, refused "
        f"{p99(load.refused_from_send) * 1e3:.0f} ms, client lag {lag * 1e3:.1f} ms, "
        f"idle {idle_after_s:.2f} s after"
    )
    # Shedding: a share of the offered load is refused (503 with Retry-After).
    assert len(load.refused) > 0.2 * len(load.answered), report
    assert load.refused_with_retry_after == len(load.refused)
    assert load.failed == load.timed_out == load.not_sent == 0, report
    # Accepted requests waited in the server's queue at most its timeout (on average well
    # under it; the timeout bounds each one), then ran.
    queued_us = cnn(after, "nv_inference_queue_duration_us") - cnn(
        before, "nv_inference_queue_duration_us"
    )
    answered = cnn(after, "nv_inference_request_success") - cnn(
        before, "nv_inference_request_success"
    )
    assert queued_us / answered < QUEUE_TIMEOUT_S * 1e6, report
    # End to end, answers and refusals came back within a second (unbounded: p99 17.8 s).
    # Measured here 140-420 ms (answered) and 125-640 ms (refused): most of it is the wait
    # in the socket buffers while the single front-end thread, sharing two cores with the
    # client, reads 49 KiB bodies at 4-5 k/s; refusals are as fast as the front end reads.
    assert p99(load.answered_from_send) < END_TO_END_S, report
    assert p99(load.refused_from_send) < END_TO_END_S, report
    # No congestive collapse: most of the capacity is still answered (measured 0.83-0.94).
    assert load.throughput_rps() > 0.6 * capacity, report
    # No inference for clients that left: every executed row was answered (batch-1 requests).
    executed = cnn(after, "nv_inference_count") - cnn(before, "nv_inference_count")
    assert executed == answered == len(load.answered), report
    # Idle soon after; memory bounded and largely given back (measured: +70-150 MiB at the
    # peak over an idle server that has run full batches; 5 s later +30-130 MiB).
    assert idle_after_s < 2.0, report
    assert peak_rss - idle_rss < RSS_BOUND, report
    assert rss_5s_after - idle_rss < RSS_AFTER_BOUND, report

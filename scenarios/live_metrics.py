"""A run you can watch live: the Locust master's Prometheus endpoint.

Why in the master: it is the one process that sees every worker's windows merged exactly, the
workers' per-second health and the run's events as they happen. Its numbers are the run's
own (the closed per-second HDR windows the master appends to windows.jsonl), not a second
measurement, so a dashboard followed during a game day shows what the report will say.

Served by prometheus_client on 127.0.0.1, port picked by the kernel; the URL is written to
`<run_dir>/stream/live.json` once listening. Everything is computed at scrape time from
state the master updates (`observe_windows`, `observe_health`), each metric in its own
registry (never the process-global one):

  harness_run_requests_total{endpoint,outcome}   counter  requests of closed seconds
  harness_run_second                              gauge    the last closed second (from 0)
  harness_run_offered_rps                         gauge    requests intended in that second
  harness_run_achieved_rps                        gauge    successful answers among them
  harness_run_errors_rps                          gauge    failed ones among them
  harness_run_latency_ms{quantile}                gauge    p50/p99 of that second's successes,
                                                           from the intended start (HDR merge)
  harness_run_target_rps                          gauge    the schedule's rate now (open loop)
  harness_run_stage                               gauge    index of the stage running now
  harness_run_generator_healthy                   gauge    1 when every worker's last second was
  harness_run_generator_cpu_percent / _lag_p99_ms gauge    worst worker, last second reported
  harness_run_generator_dropped_total             counter  requests the generator dropped
  harness_run_fault_active                        gauge    1 between fault_start and fault_end
  harness_run_events_total{type}                  counter  events.jsonl of the run (game days)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from harness.config.scenario import OpenLoad, Scenario
from harness.config.shapes import Level, stage_index_at
from harness.latency.hdr import decode_histogram, new_histogram
from harness.latency.windows import SUCCESS, WindowRecord
from harness.loadgen import stream

__all__ = ["LIVE_FILE", "LiveMetrics"]

log = logging.getLogger(__name__)

LIVE_FILE = "live.json"
QUANTILES = (("0.5", 50.0), ("0.99", 99.0))


class LiveMetrics(Collector):
    """The master's live view of a run, rendered for Prometheus at scrape time."""

    def __init__(
        self, scenario: Scenario, run_dir: Path, clock: Callable[[], float] = time.time
    ) -> None:
        self.scenario = scenario
        self.run_dir = run_dir
        self.clock = clock
        self.epoch: float | None = None
        self.requests: dict[tuple[str, str], int] = {}
        self.second: int | None = None
        self.offered = self.achieved = self.errors = 0
        self.latency_ms: dict[str, float] = {}
        self.health: dict[int, dict[str, Any]] = {}  # worker -> its latest second's row
        self.dropped = 0
        self.events: dict[str, int] = {}
        self.fault_active = False
        self._events_offset = 0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self.url: str | None = None

    def serve(self, host: str = "127.0.0.1") -> str:
        """Listen on `host`, port 0; write the URL to `<run_dir>/stream/live.json`."""
        server, _ = start_http_server(0, addr=host, registry=self.registry)
        self.url = f"http://{host}:{server.server_port}/metrics"
        stream.write_json_atomic(self.run_dir / "stream" / LIVE_FILE, {"url": self.url})
        log.info("live run metrics at %s", self.url)
        return self.url

    # -- what the master tells it --------------------------------------------------------
    def observe_windows(self, closed: Iterable[WindowRecord]) -> None:
        """Closed windows (a late fragment of an earlier second counts, but the per-second
        gauges describe the newest second of the batch)."""
        records = list(closed)
        for r in records:
            key = (r.endpoint, r.outcome)
            self.requests[key] = self.requests.get(key, 0) + r.count
        if not records:
            return
        newest = max(r.second for r in records)
        if self.second is not None and newest <= self.second:
            return
        of_second = [r for r in records if r.second == newest]
        merged = new_histogram()
        for r in of_second:
            if r.outcome == SUCCESS:
                merged.add(decode_histogram(r.hdr))
        self.second = newest
        self.achieved = sum(r.count for r in of_second if r.outcome == SUCCESS)
        self.errors = sum(r.count for r in of_second if r.outcome != SUCCESS)
        self.offered = self.achieved + self.errors
        self.latency_ms = (
            {q: merged.get_value_at_percentile(p) / 1000.0 for q, p in QUANTILES}
            if merged.get_total_count()
            else {}
        )

    def observe_health(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.dropped += int(row.get("dropped", 0))
            worker = int(row.get("worker", 0))
            if row["second"] >= self.health.get(worker, {}).get("second", -1):
                self.health[worker] = row

    def _read_events(self) -> None:
        items, self._events_offset = stream.read_lines(
            self.run_dir / "events.jsonl", self._events_offset
        )
        for item in items:
            kind = str(item.get("type", "?"))
            self.events[kind] = self.events.get(kind, 0) + 1
            if kind == "fault_start":
                self.fault_active = True
            elif kind == "fault_end":
                self.fault_active = False

    # -- rendering -----------------------------------------------------------------------
    def _now_s(self) -> float | None:
        return None if self.epoch is None else self.clock() - self.epoch

    def _stage(self, t: float) -> int | None:
        load = self.scenario.load
        if not load.stages:
            return 0 if t < load.total_duration_s() else None
        return stage_index_at([Level(s.duration, 0.0) for s in load.stages], t)

    def collect(self) -> Iterator[Metric]:
        self._read_events()
        requests = CounterMetricFamily(
            "harness_run_requests", "Requests of closed seconds", labels=["endpoint", "outcome"]
        )
        for (endpoint, outcome), count in sorted(self.requests.items()):
            requests.add_metric([endpoint, outcome], count)
        yield requests
        if self.second is not None:
            yield _gauge("harness_run_second", "The last closed second (0 = start)", self.second)
            yield _gauge("harness_run_offered_rps", "Requests intended in it", self.offered)
            yield _gauge("harness_run_achieved_rps", "Successes among them", self.achieved)
            yield _gauge("harness_run_errors_rps", "Failures among them", self.errors)
        latency = GaugeMetricFamily(
            "harness_run_latency_ms",
            "Latency of the last closed second's successes, from the intended start",
            labels=["quantile"],
        )
        for q, value in self.latency_ms.items():
            latency.add_metric([q], value)
        yield latency
        yield from self._now_metrics()
        yield from self._health_metrics()
        yield _gauge("harness_run_fault_active", "1 during a fault", int(self.fault_active))
        events = CounterMetricFamily("harness_run_events", "Events of the run", labels=["type"])
        for kind, count in sorted(self.events.items()):
            events.add_metric([kind], count)
        yield events

    def _now_metrics(self) -> Iterator[Metric]:
        t = self._now_s()
        if t is None:
            return
        stage = self._stage(t)
        if stage is not None:
            yield _gauge("harness_run_stage", "Index of the stage running now", stage)
        load = self.scenario.load
        if isinstance(load, OpenLoad) and load.arrival != "trace":
            rate = self.scenario.rate_at(t)
            if rate is not None:
                yield _gauge("harness_run_target_rps", "The schedule's rate now", rate)

    def _health_metrics(self) -> Iterator[Metric]:
        rows = list(self.health.values())
        yield CounterMetricFamily(
            "harness_run_generator_dropped", "Requests the generator dropped", self.dropped
        )
        if not rows:
            return
        healthy = all(r.get("healthy", True) for r in rows)
        yield _gauge("harness_run_generator_healthy", "1 when every worker was", int(healthy))
        cpu = max(float(r.get("cpu_percent", 0.0)) for r in rows)
        yield _gauge("harness_run_generator_cpu_percent", "Busiest worker's CPU", cpu)
        lag = max(float(r.get("lag_p99_ms", 0.0)) for r in rows)
        yield _gauge("harness_run_generator_lag_p99_ms", "Worst schedule lag p99", lag)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)

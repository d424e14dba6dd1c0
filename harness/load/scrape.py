"""Scrape the target's Prometheus `/metrics` every second while the load runs.

Why: server-side numbers (queue time, batch sizes, in-flight requests, Triton's
`nv_inference_*` counters) explain the client-side latency; they are stored next to the
windows as server_metrics.parquet (long format: ts, metric, labels JSON, value) on the same
clock (seconds since the run's second 0). A failed scrape is logged and counted, never fatal:
the measurement of the load does not depend on it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Sequence

from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

Row = tuple[float, str, str, float]


def parse_metrics(text: str, wall_ts: float, instance: str) -> list[Row]:
    """Prometheus text exposition -> rows (wall time, sample name, labels JSON, value)."""
    rows = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = dict(sample.labels)
            labels["instance"] = instance
            rows.append((wall_ts, sample.name, json.dumps(labels, sort_keys=True), sample.value))
    return rows


class MetricsScraper:
    """A daemon thread scraping `urls` every `interval_s`; rows carry wall-clock times."""

    def __init__(self, urls: Sequence[str], interval_s: float = 1.0, timeout_s: float = 0.8):
        self.urls = list(urls)
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.rows: list[Row] = []
        self.failures = 0
        self.scrapes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metrics-scraper", daemon=True)

    def start(self) -> MetricsScraper:
        if self.urls:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            for url in self.urls:
                self.scrape_once(url)
            next_at += self.interval_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def scrape_once(self, url: str) -> None:
        wall = time.time()
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                text = response.read().decode("utf-8", errors="replace")
            self.rows.extend(parse_metrics(text, wall, url))
            self.scrapes += 1
        except Exception as exc:  # unreachable, 404, malformed: count and go on
            self.failures += 1
            if self.failures in (1, 10, 100):
                log.warning("scraping %s failed (%d so far): %s", url, self.failures, exc)

    def relative_rows(self, epoch: float) -> list[Row]:
        """Rows with `ts` as seconds since the run's second 0 (negative before it)."""
        return [
            (round(ts - epoch, 3), name, labels, value) for ts, name, labels, value in self.rows
        ]

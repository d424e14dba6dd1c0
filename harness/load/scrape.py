"""Scrape the target's Prometheus `/metrics` every second while the load runs.

Why: server-side numbers (queue time, batch sizes, in-flight requests, Triton's
`nv_inference_*` counters) explain the client-side latency; they are stored next to the
windows as server_metrics.parquet (long format: ts, metric, labels JSON, value) on the same
clock (seconds since the run's second 0). A failed scrape is logged and counted, never fatal:
the measurement of the load does not depend on it.

Several replicas (a local stack behind nginx): nginx's `/metrics` would show one replica per
scrape, so every replica is scraped directly; each row keeps `instance` (its URL) and a
`replica` label (its index), and all replicas of one tick share the tick's time, so
`merge_replicas` can sum each counter series across replicas (the stack's total). The
scraper scrapes once more when stopped, so the last rows hold the final counts.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence

from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

Row = tuple[float, str, str, float]


CUMULATIVE_TYPES = ("counter", "histogram", "summary")
ALL_REPLICAS = "all"


def cumulative_names(text: str) -> set[str]:
    """Sample names of the counter, histogram and summary families in `text` (the series
    that add up across replicas)."""
    return {
        sample.name
        for family in text_string_to_metric_families(text)
        if family.type in CUMULATIVE_TYPES
        for sample in family.samples
    }


def parse_metrics(
    text: str, wall_ts: float, instance: str, replica: str | None = None
) -> list[Row]:
    """Prometheus text exposition -> rows (wall time, sample name, labels JSON, value);
    labels gain `instance` (and `replica` when given)."""
    rows = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = dict(sample.labels)
            labels["instance"] = instance
            if replica is not None:
                labels["replica"] = replica
            rows.append((wall_ts, sample.name, json.dumps(labels, sort_keys=True), sample.value))
    return rows


def merge_replicas(rows: Iterable[Row], cumulative: Collection[str]) -> list[Row]:
    """Samples named in `cumulative` (counters: `cumulative_names`, or the scraper's
    `cumulative`) summed across replicas per (time, name, labels without instance and
    replica); merged rows carry `replica: "all"`. Gauges are left out (a sum of, say, a
    readiness gauge means nothing). Rows must come from one scraper (shared tick times)."""
    sums: dict[tuple[float, str, str], float] = defaultdict(float)
    for ts, name, labels_json, value in rows:
        if name not in cumulative:
            continue
        labels = json.loads(labels_json)
        labels.pop("instance", None)
        labels.pop("replica", None)
        labels["replica"] = ALL_REPLICAS
        sums[(ts, name, json.dumps(labels, sort_keys=True))] += value
    return [(ts, name, labels, value) for (ts, name, labels), value in sorted(sums.items())]


class MetricsScraper:
    """A daemon thread scraping `urls` every `interval_s`; rows carry wall-clock times."""

    def __init__(self, urls: Sequence[str], interval_s: float = 1.0, timeout_s: float = 0.8):
        self.urls = list(urls)
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.rows: list[Row] = []
        self.cumulative: set[str] = set()
        self.failures = 0
        self.scrapes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metrics-scraper", daemon=True)

    def start(self) -> MetricsScraper:
        if self.urls:
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread, then scrape once more: the last rows hold the final counts."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
            self.scrape_all()

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.scrape_all()
            next_at += self.interval_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def scrape_all(self) -> None:
        """One tick: every URL, all rows stamped with the tick's time."""
        wall = time.time()
        for index, url in enumerate(self.urls):
            self.scrape_once(url, wall, str(index) if len(self.urls) > 1 else None)

    def scrape_once(self, url: str, wall: float | None = None, replica: str | None = None) -> None:
        wall = time.time() if wall is None else wall
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                text = response.read().decode("utf-8", errors="replace")
            self.rows.extend(parse_metrics(text, wall, url, replica))
            self.cumulative |= cumulative_names(text)
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

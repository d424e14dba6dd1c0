"""Live progress of a run, read from the master's window stream (never from Locust).

Shows elapsed/remaining time, the offered rate (what the scenario asks for now) against the
achieved rate (responses in the last closed second), the last closed second's p50/p99 (from
its merged HDR windows), errors, and seconds the generator flagged unhealthy. `RunMonitor`
only tails `stream/windows.jsonl` and `stream/health.jsonl` and keeps per-second counts, so
it can also feed a non-interactive caller (tests, `show_progress=False`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from harness.latency.windows import FAILURE, WindowStore
from harness.loadgen import stream


@dataclass
class RunMonitor:
    stream_dir: Path
    planned_s: float
    offered_at: object = None  # callable(t) -> offered rate or users (None: unknown)
    offered_unit: str = "req/s"
    epoch: float | None = None
    requests: int = 0
    failures: int = 0
    unhealthy: set[int] = field(default_factory=set)
    lost_workers: list[str] = field(default_factory=list)
    per_second: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    last: WindowStore = field(default_factory=WindowStore)
    last_second: int | None = None
    _offsets: dict[str, int] = field(default_factory=dict)

    def poll(self) -> None:
        if self.epoch is None:
            start = stream.read_json(self.stream_dir / stream.START)
            self.epoch = float(start["epoch"]) if start else None
        items = self._read(stream.WINDOWS)
        newest = max((int(i["second"]) for i in items), default=None)
        if newest is not None and (self.last_second is None or newest > self.last_second):
            self.last_second, self.last = newest, WindowStore()
        for item in items:
            count, second = int(item["count"]), int(item["second"])
            self.requests += count
            self.per_second[second] += count
            if item["outcome"] == FAILURE:
                self.failures += count
            if second == self.last_second:
                self.last.add(stream.record_from_json(item))
        for item in self._read(stream.HEALTH):
            if not item.get("healthy", True):
                self.unhealthy.add(int(item["second"]))
        for item in self._read(stream.EVENTS):
            if item.get("type") == "worker_lost":
                self.lost_workers.append(str(item.get("worker")))

    def _read(self, name: str) -> list[dict]:
        items, self._offsets[name] = stream.read_lines(
            self.stream_dir / name, self._offsets.get(name, 0)
        )
        return items

    def elapsed(self) -> float:
        return 0.0 if self.epoch is None else max(0.0, time.time() - self.epoch)

    def table(self) -> Table:
        elapsed = self.elapsed()
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        grid.add_row("elapsed", f"{elapsed:6.1f} s / {self.planned_s:g} s")
        grid.add_row("remaining", f"{max(0.0, self.planned_s - elapsed):6.1f} s")
        # Once the load is over, show what the last moment asked for, not "-".
        at = min(elapsed, max(0.0, self.planned_s - 1e-6))
        offered = self.offered_at(at) if callable(self.offered_at) else None
        achieved = self.per_second.get(self.last_second, 0) if self.last_second is not None else 0
        grid.add_row("offered", "-" if offered is None else f"{offered:g} {self.offered_unit}")
        grid.add_row("achieved", f"{achieved} req/s (second {self.last_second})")
        hist = self.last.histogram()
        if hist.get_total_count():
            p50 = hist.get_value_at_percentile(50) / 1000
            p99 = hist.get_value_at_percentile(99) / 1000
            grid.add_row("last p50/p99", f"{p50:.2f} / {p99:.2f} ms")
        grid.add_row("requests", f"{self.requests} ({self.failures} errors)")
        if self.unhealthy:
            grid.add_row("unhealthy s", f"[yellow]{len(self.unhealthy)}[/]")
        return grid


class ProgressView:
    """A rich Live panel around a RunMonitor; a no-op when disabled."""

    def __init__(self, monitor: RunMonitor, enabled: bool, console: Console | None = None):
        self.monitor = monitor
        self.live = (
            Live(console=console or Console(stderr=True), refresh_per_second=2, transient=False)
            if enabled
            else None
        )

    def __enter__(self) -> ProgressView:
        if self.live is not None:
            self.live.__enter__()
        return self

    def update(self) -> None:
        self.monitor.poll()
        if self.live is not None:
            self.live.update(self.monitor.table())

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

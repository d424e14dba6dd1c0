"""Shared helpers for the `harness run` integration tests (scenarios, histograms, polling)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from harness.config import Scenario, validate_scenario
from harness.latency.hdr import decode_histogram, new_histogram, to_us
from harness.results import load_run
from tests.integration.cli_helpers import wait_for


def scenario(url: str, load: dict[str, Any], **extra: Any) -> Scenario:
    data: dict[str, Any] = {
        "name": extra.pop("name", "itest"),
        "target": {"url": url, "protocol": "kserve-http", "model": "m", "version": "1"},
        "load": load,
        "slo": {"p99_ms": 60000},
        "validity": {"min_duration_s": 0, "min_requests": 0},
    }
    data.update(extra)
    return validate_scenario(data, "test")


def merged_histogram(
    run_dir: Path,
    corrected: bool = True,
    endpoint: str | None = None,
    healthy_only: bool = False,
    seconds: Collection[int] | None = None,
) -> HdrHistogram:
    """All windows of a run directory merged (successes only; healthy seconds, or only the
    given seconds, if asked)."""
    merged = new_histogram()
    for record in load_run(run_dir).windows:
        if record.outcome != "success" or (endpoint and record.endpoint != endpoint):
            continue
        if healthy_only and not record.healthy:
            continue
        if seconds is not None and record.second not in seconds:
            continue
        merged.add(decode_histogram(record.hdr if corrected else record.hdr_uncorrected))
    return merged


def histogram_of(seconds: np.ndarray) -> HdrHistogram:
    hist = new_histogram()
    for value in seconds:
        assert hist.record_value(to_us(float(value)))
    return hist


def ms(hist: HdrHistogram, percentile: float) -> float:
    return hist.get_value_at_percentile(percentile) / 1000.0


def epoch_of(run_dir: Path, timeout_s: float = 60.0) -> float:
    path = run_dir / "stream" / "start.json"

    def read() -> float | None:
        try:
            return float(json.loads(path.read_text())["epoch"])
        except (OSError, ValueError, KeyError):
            return None

    return wait_for(read, timeout_s, f"{path}")


def at_run_time(run_dir: Path, offset_s: float, action: Callable[[], None]) -> threading.Thread:
    """Run `action` at `offset_s` seconds after the run's second 0 (in a thread)."""

    def body() -> None:
        epoch = epoch_of(run_dir)
        time.sleep(max(0.0, epoch + offset_s - time.time()))
        action()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def verdict_code(summary: dict[str, Any]) -> int:
    """The exit code a complete run must have: its SLO verdict (a generator starved by a
    busy machine can leave too few measured seconds for the SLO to pass)."""
    return 0 if summary["slo"]["passed"] else 1

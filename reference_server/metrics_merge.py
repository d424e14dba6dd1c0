"""One Prometheus exposition out of several workers' expositions (`--workers N`).

Why a merge of the text instead of prometheus_client's multiprocess mode: every metric of a
core is rendered at scrape time from its statistics (metrics.py), so there are no
prometheus_client value objects to put in shared files, and the in-flight integral is exact
only when read at the scrape. The supervisor gathers each worker's own exposition at scrape
time and merges them sample by sample, so the sum is exact at that instant.

Aggregation, by family type and name (the Triton names and labels are kept as they are):
  counter, histogram, summary, untyped    summed per (sample name, labels): requests,
                                          failures by `reason`, durations, batch buckets,
                                          in-flight-seconds, requests by protocol
  gauge                                   summed (pending requests, in flight now) except:
    reference_server_ready                min  (the server is ready only if every worker is)
    reference_server_degraded, reference_server_device_info, nv_gpu_*   max (one device seen
                                          by every worker, or "any worker degraded")
    reference_server_event_loop_lag_seconds   max  (the worker most behind)
Families and samples keep the order of their first appearance; HELP and TYPE lines are kept
verbatim (so a counter named without `_total` stays so).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from prometheus_client.utils import floatToGoString

__all__ = ["GAUGE_RULES", "format_value", "merge_expositions"]

GAUGE_RULES = {
    "reference_server_ready": min,
    "reference_server_degraded": max,
    "reference_server_event_loop_lag_seconds": max,  # the most behind of the workers
    "reference_server_device_info": max,
    "nv_gpu_utilization": max,
    "nv_gpu_memory_used_bytes": max,
    "nv_gpu_memory_total_bytes": max,
}

# `name{labels} value` or `name value`; label values may hold escaped quotes
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?\s+(\S+)')


class _Family:
    __slots__ = ("comments", "name", "samples", "type")

    def __init__(self, name: str, mtype: str) -> None:
        self.name = name
        self.type = mtype
        self.comments: list[str] = []
        self.samples: dict[tuple[str, str], float] = {}

    def add(self, key: tuple[str, str], value: float) -> None:
        old = self.samples.get(key)
        if old is None:
            self.samples[key] = value
        elif self.type == "gauge":
            self.samples[key] = GAUGE_RULES.get(self.name, _sum)(old, value)
        else:
            self.samples[key] = old + value


def format_value(value: float) -> str:
    """Integers as the workers write them (`20`, not `20.0`); other values as Go writes them."""
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return floatToGoString(value)


def _sum(a: float, b: float) -> float:
    return a + b


def merge_expositions(texts: Iterable[str]) -> str:
    """Merge Prometheus text expositions (0.0.4) as the module docstring says."""
    families: dict[str, _Family] = {}
    for text in texts:
        _merge_one(text, families)
    lines: list[str] = []
    for family in families.values():
        lines += family.comments
        for (name, labels), value in family.samples.items():
            lines.append(f"{name}{labels} {format_value(value)}")
    lines.append("")
    return "\n".join(lines)


def _merge_one(text: str, families: dict[str, _Family]) -> None:
    current: _Family | None = None
    pending: list[str] = []  # HELP seen before its TYPE
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                current = families.get(parts[2])
                if current is None:
                    current = families[parts[2]] = _Family(parts[2], parts[3].strip())
                    current.comments = [*pending, line]
                pending = []
            elif len(parts) >= 3 and parts[1] == "HELP":
                pending = [line]
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
        if current is None or not name.startswith(current.name):
            current = families.setdefault(name, _Family(name, "untyped"))
        current.add((name, labels), value)

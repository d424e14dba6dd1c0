"""A small client of Prometheus' HTTP API (stdlib urllib): instant and range queries, series,
targets. What a dashboard panel or the Prometheus Adapter asks, asked the same way.

    PrometheusError (InfrastructureError)   the server refused the query or could not be reached
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import InfrastructureError

__all__ = ["PromClient", "PrometheusError", "Sample", "Series"]


class PrometheusError(InfrastructureError):
    """A query Prometheus refused (`errorType: error`), or no answer at all."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One series of an instant vector: its labels and value at the query's time."""

    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a range query: (unix time, value) points."""

    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]


class PromClient:
    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _get(self, path: str, params: Mapping[str, Any]) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        url = f"{self.url}{path}?{query}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:
                doc = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                doc = json.loads(exc.read())
            except ValueError:
                raise PrometheusError(f"{path}: HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise PrometheusError(f"prometheus at {self.url} unreachable: {exc}") from exc
        if doc.get("status") != "success":
            raise PrometheusError(f"{params.get('query', path)}: {doc.get('error', doc)}")
        return doc["data"]

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """An instant query; a scalar result is one sample without labels."""
        data = self._get("/api/v1/query", {"query": expr, "time": at})
        if data["resultType"] == "scalar":
            return [Sample({}, float(data["result"][1]))]
        if data["resultType"] != "vector":
            raise PrometheusError(f"{expr}: expected a vector, got {data['resultType']}")
        return [Sample(r["metric"], float(r["value"][1])) for r in data["result"]]

    def query_range(self, expr: str, start: float, end: float, step_s: float) -> list[Series]:
        data = self._get(
            "/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step_s}
        )
        return [
            Series(r["metric"], tuple((float(t), float(v)) for t, v in r["values"]))
            for r in data["result"]
        ]

    def series(self, match: str, start: float | None = None, end: float | None = None) -> list:
        """Label sets of the series a selector matches (what the adapter's seriesQuery finds)."""
        return self._get("/api/v1/series", {"match[]": match, "start": start, "end": end})

    def active_targets(self) -> list[dict[str, Any]]:
        return self._get("/api/v1/targets", {"state": "active"})["activeTargets"]

    def wait_for_targets(self, count: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Poll until `count` targets have been scraped successfully (health `up`)."""
        deadline = time.monotonic() + timeout_s
        up: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            up = [t for t in self.active_targets() if t.get("health") == "up"]
            if len(up) >= count:
                return up
            time.sleep(0.2)
        raise PrometheusError(f"{len(up)} of {count} targets up after {timeout_s:.0f}s")

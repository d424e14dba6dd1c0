"""Prometheus scrape configuration for a local stack: one file, targets kept in a file_sd file.

Why file_sd: the replicas are known when Prometheus starts, but a run's live endpoint (the
Locust master's) only appears once the load starts; Prometheus watches a `file_sd_configs`
file and picks up a rewritten one within seconds, so targets are added without a restart.
Each target carries the labels the Kubernetes service discovery would give a pod
(`namespace`, `pod`), so the Prometheus Adapter's rules evaluate here unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness.files import atomic_write_text

__all__ = [
    "LOCAL_NAMESPACE",
    "TARGETS_FILE",
    "ScrapeTarget",
    "render_config",
    "replica_targets",
    "write_targets",
]

LOCAL_NAMESPACE = "local"
TARGETS_FILE = "targets.json"


@dataclass(frozen=True, slots=True)
class ScrapeTarget:
    """One endpoint to scrape: `address` is host:port; `labels` are attached to its series."""

    job: str
    address: str
    labels: Mapping[str, str] = field(default_factory=dict)
    metrics_path: str = "/metrics"


def render_config(targets_file: Path, interval_s: float = 1.0) -> str:
    """prometheus.yml: every job reads its targets from `targets_file` (file_sd)."""
    interval = f"{round(interval_s * 1000)}ms"
    config = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval},
        "scrape_configs": [
            {
                "job_name": "harness",  # each target's own `job` label (file_sd) wins
                "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "1s"}],
            }
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def write_targets(targets_file: Path, targets: Iterable[ScrapeTarget]) -> None:
    """Atomically (Prometheus never reads half a file): one file_sd group per target."""
    groups = [
        {
            "targets": [t.address],
            "labels": {"job": t.job, "__metrics_path__": t.metrics_path, **t.labels},
        }
        for t in targets
    ]
    atomic_write_text(targets_file, json.dumps(groups, indent=2))


def replica_targets(metrics_urls: Iterable[str]) -> list[ScrapeTarget]:
    """The local stack's replicas as the adapter sees pods: namespace `local`, pod `replica-i`."""
    targets = []
    for i, url in enumerate(metrics_urls):
        host_port = url.split("://", 1)[-1].split("/", 1)[0]
        labels = {"namespace": LOCAL_NAMESPACE, "pod": f"replica-{i}", "replica": str(i)}
        targets.append(ScrapeTarget("reference-server", host_port, labels))
    return targets

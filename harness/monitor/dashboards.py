"""The Grafana dashboards, as JSON built by this module (`python -m harness.monitor.dashboards
deploy/grafana` writes them): the serving stack, a live run, a game day.

Why hand-built dicts rather than a builder library: three small dashboards of time series do
not need one at run time; the shipped JSON is checked offline against Grafana's own
generated dashboard types (grafana-foundation-sdk, a dev dependency) and every panel's PromQL
is evaluated against a real Prometheus in tests/integration/test_monitoring_dashboards.py.
`GPU_PANELS` names the panels that return data only where a GPU is (Triton exports its GPU
gauges only then, and so does the reference server).

Metric sources: the reference server / Triton (`nv_*`, `reference_server_*`, `process_*`),
and the Locust master's live endpoint (`harness_run_*`, `scenarios.live_metrics`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.files import atomic_write_text

__all__ = ["DASHBOARDS", "GPU_PANELS", "Panel", "dashboard", "write_dashboards"]

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "[1m]"
DATASOURCE_VARIABLE = {
    "name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
    "hide": 0,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    exprs: tuple[tuple[str, str], ...]  # (PromQL, legend)
    unit: str = "short"
    description: str = ""


def _per_pod(metric: str) -> str:
    return f"sum by (pod) (rate({metric}{RATE}))"


SERVING = (
    Panel("Inference requests/s per pod", ((_per_pod("nv_inference_request_success"), "{{pod}}"),),
          "reqps"),
    Panel("Failed requests/s by reason",
          (("sum by (pod, reason) (rate(nv_inference_request_failure[1m]))",
            "{{pod}} {{reason}}"),), "reqps"),
    Panel("Mean request latency (server)",
          ((f"{_per_pod('nv_inference_request_duration_us')} / 1000 / "
            f"{_per_pod('nv_inference_request_success')}", "{{pod}}"),), "ms"),
    Panel("Mean queue time", ((f"{_per_pod('nv_inference_queue_duration_us')} / 1000 / "
                               f"{_per_pod('nv_inference_request_success')}", "{{pod}}"),), "ms"),
    Panel("Queue size", (("sum by (pod) (nv_inference_pending_request_count)", "{{pod}}"),)),
    Panel("Mean batch size", ((f"{_per_pod('nv_inference_batch_size_sum')} / "
                               f"{_per_pod('nv_inference_batch_size_count')}", "{{pod}}"),)),
    Panel("In flight per pod (time average: the HPA's metric)",
          ((_per_pod("reference_server_inflight_seconds_total"), "{{pod}}"),), "short",
          "rate of the in-flight-seconds counter = mean requests in flight (Little's law)"),
    Panel("GPU utilisation", (("nv_gpu_utilization", "{{pod}} {{gpu_uuid}}"),), "percentunit"),
    Panel("GPU memory used", (("nv_gpu_memory_used_bytes", "{{pod}} {{gpu_uuid}}"),), "bytes"),
    Panel("CPU (cores) per pod",
          (('sum by (pod) (rate(process_cpu_seconds_total{job="reference-server"}[1m]))',
            "{{pod}}"),), "short"),
    Panel("Resident memory per pod",
          (('sum by (pod) (process_resident_memory_bytes{job="reference-server"})', "{{pod}}"),),
          "bytes"),
)  # fmt: skip

LIVE_RUN = (
    Panel("Offered vs achieved rate",
          (("harness_run_target_rps", "target"), ("harness_run_offered_rps", "offered"),
           ("harness_run_achieved_rps", "achieved")), "reqps"),
    Panel("Latency per second from the intended start",
          (('harness_run_latency_ms{quantile="0.5"}', "p50"),
           ('harness_run_latency_ms{quantile="0.99"}', "p99")), "ms"),
    Panel("Errors per second", (("harness_run_errors_rps", "errors"),), "reqps"),
    Panel("Requests by endpoint and outcome",
          (("sum by (endpoint, outcome) (rate(harness_run_requests_total[1m]))",
            "{{endpoint}} {{outcome}}"),), "reqps"),
    Panel("Generator health",
          (("harness_run_generator_healthy", "healthy"),
           ("harness_run_generator_cpu_percent / 100", "cpu (busiest worker)"),
           ("harness_run_generator_lag_p99_ms", "lag p99 ms")), "short"),
    Panel("Stage", (("harness_run_stage", "stage"),)),
)  # fmt: skip

GAMEDAY = (
    Panel("Fault active", (("harness_run_fault_active", "fault"),)),
    *LIVE_RUN[:3],
    Panel("Requests/s per replica", ((_per_pod("nv_inference_request_success"), "{{pod}}"),),
          "reqps"),
    Panel("Replicas ready", (("sum(reference_server_ready)", "ready"),)),
)  # fmt: skip

FAULT_ANNOTATION = {
    "name": "fault",
    "datasource": DATASOURCE,
    "enable": True,
    "iconColor": "red",
    "expr": "harness_run_fault_active > 0",
}
GPU_PANELS = ("GPU utilisation", "GPU memory used")


def _panel(p: Panel, index: int) -> dict[str, Any]:
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": p.title,
        "description": p.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
        "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr,
             "legendFormat": legend}
            for i, (expr, legend) in enumerate(p.exprs)
        ],
    }  # fmt: skip


def dashboard(
    uid: str, title: str, panels: Sequence[Panel], annotations: Sequence[dict] = ()
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "tags": ["serving-harness"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 38,
        "refresh": "5s",
        "time": {"from": "now-15m", "to": "now"},
        "annotations": {"list": list(annotations)},
        "templating": {"list": [DATASOURCE_VARIABLE]},
        "panels": [_panel(p, i) for i, p in enumerate(panels)],
    }


DASHBOARDS = {
    "serving-stack.json": dashboard("harness-serving", "Serving stack", SERVING),
    "live-run.json": dashboard("harness-live-run", "Live run", LIVE_RUN),
    "gameday.json": dashboard("harness-gameday", "Game day", GAMEDAY, [FAULT_ANNOTATION]),
}


def write_dashboards(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, doc in DASHBOARDS.items():
        atomic_write_text(out_dir / name, json.dumps(doc, indent=2) + "\n")
        paths.append(out_dir / name)
    return paths


if __name__ == "__main__":  # python -m harness.monitor.dashboards deploy/grafana
    write_dashboards(Path(sys.argv[1] if len(sys.argv) > 1 else "deploy/grafana"))

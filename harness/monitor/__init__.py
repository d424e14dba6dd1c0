"""Monitoring the stack for real: Prometheus scraping it, the HPA's metrics, dashboards.

- `prometheus.py`   Prometheus as a child process on loopback (port read back from its log),
                    TSDB in a temporary directory removed at stop
- `scrape_config.py` prometheus.yml and its file_sd targets (replicas labelled as pods)
- `promql.py`       a small client of Prometheus' HTTP API (instant/range queries, series)
- `adapter.py`      the Prometheus Adapter's rules rendered and evaluated as the adapter does
- `dashboards.py`   the Grafana dashboards (serving stack, live run, game day) as JSON

Floor 3, below `harness.stack` (the local stack starts Prometheus with `monitor=True`).
"""

from harness.monitor.adapter import AdapterRule, RuleResult, evaluate_rule, load_rules
from harness.monitor.prometheus import MonitorState, PrometheusProcess, find_prometheus
from harness.monitor.promql import PromClient, PrometheusError, Sample, Series
from harness.monitor.scrape_config import LOCAL_NAMESPACE, ScrapeTarget, replica_targets

__all__ = [
    "LOCAL_NAMESPACE",
    "AdapterRule",
    "MonitorState",
    "PromClient",
    "PrometheusError",
    "PrometheusProcess",
    "RuleResult",
    "Sample",
    "ScrapeTarget",
    "Series",
    "evaluate_rule",
    "find_prometheus",
    "load_rules",
    "replica_targets",
]

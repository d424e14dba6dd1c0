"""The adapter rules' rendering, offline: what the adapter would send Prometheus (its Go
template fields substituted by hand here), the metric names the HPA asks for, the shipped
rules' definitions, and the generated scrape configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from harness.errors import ConfigError
from harness.monitor import load_rules, replica_targets
from harness.monitor.adapter import AdapterRule, render_query
from harness.monitor.scrape_config import render_config, write_targets

RULES = Path(__file__).parents[3] / "deploy/k8s/monitoring/prometheus-adapter-rules.yaml"
FIELDS = {"Series": "s_total", "LabelMatchers": 'namespace="n",pod=~"a|b"', "GroupBy": "pod"}


def test_render_substitutes_the_adapters_fields() -> None:
    template = "sum(rate(<<.Series>>{<< .LabelMatchers >>}[1m])) by (<<.GroupBy>>)"
    expected = 'sum(rate(s_total{namespace="n",pod=~"a|b"}[1m])) by (pod)'
    assert render_query(template, FIELDS) == expected


def test_an_unknown_template_field_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        render_query("<<.Resource>>", FIELDS)
    assert str(err.value) == (
        "metricsQuery field <<.Resource>>: not one of ('Series', 'LabelMatchers', 'GroupBy')"
    )


def test_shipped_rules_are_time_averages_named_as_the_hpa_asks() -> None:
    rules = load_rules(RULES)
    names = [r.metric_name(r.series_query.split("{")[0]) for r in rules]
    assert names == ["inflight_requests", "inference_requests_per_second"]
    inflight = rules[0]
    assert inflight.series_query.startswith("reference_server_inflight_seconds_total{")
    rendered = render_query(inflight.metrics_query, FIELDS)
    assert rendered == 'sum(rate(s_total{namespace="n",pod=~"a|b"}[1m])) by (pod)'
    short = inflight.with_window("15s").metrics_query
    assert short == "sum(rate(<<.Series>>{<<.LabelMatchers>>}[15s])) by (<<.GroupBy>>)"


def test_metric_name_follows_matches_and_as() -> None:
    rule = AdapterRule("x", {}, "^(.*)_total$", "", "q")
    assert rule.metric_name("requests_total") == "requests"  # the one group by default
    rule = AdapterRule("x", {}, "^(.*)_seconds_total$", "${1}_per_second", "q")
    assert rule.metric_name("busy_seconds_total") == "busy_per_second"


def test_scrape_config_labels_replicas_as_pods(tmp_path: Path) -> None:
    targets = replica_targets(["http://127.0.0.1:9101/metrics", "http://127.0.0.1:9102/metrics"])
    write_targets(tmp_path / "targets.json", targets)
    groups = json.loads((tmp_path / "targets.json").read_text())
    assert groups[1] == {
        "targets": ["127.0.0.1:9102"],
        "labels": {"job": "reference-server", "__metrics_path__": "/metrics",
                   "namespace": "local", "pod": "replica-1", "replica": "1"},
    }  # fmt: skip
    config = yaml.safe_load(render_config(tmp_path / "targets.json", 0.5))
    assert config["global"]["scrape_interval"] == "500ms"
    files = config["scrape_configs"][0]["file_sd_configs"][0]["files"]
    assert files == [str(tmp_path / "targets.json")]

"""The Prometheus Adapter's custom-metrics rules, evaluated as the adapter evaluates them.

Why: the HPA that `harness plan` writes scales on two Pods metrics the adapter computes with
these rules (`deploy/k8s/monitoring/prometheus-adapter-rules.yaml`); no cluster runs here, so
the rules are proven by rendering each `metricsQuery` exactly as the adapter does for a
pods request -- `<<.Series>>` the series name its `seriesQuery` discovered,
`<<.LabelMatchers>>` `namespace="NS",pod=~"p1|p2"` (through the rule's resource overrides),
`<<.GroupBy>>` `pod` -- and running it against a real Prometheus. The metric's name comes
from `name: {matches, as}` (default: the series name). Other template fields are refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from harness.errors import ConfigError
from harness.monitor.promql import PromClient

__all__ = ["AdapterRule", "RuleResult", "evaluate_rule", "load_rules", "render_query"]

TEMPLATE_FIELD = re.compile(r"<<\s*\.(\w+)\s*>>")
KNOWN_FIELDS = ("Series", "LabelMatchers", "GroupBy")
RANGE = re.compile(r"\[(\d+[smh])\]")
GROUP_REF = re.compile(r"\$\{?(\d+)\}?")


@dataclass(frozen=True, slots=True)
class AdapterRule:
    series_query: str
    resources: Mapping[str, str]  # Prometheus label -> Kubernetes resource
    name_matches: str
    name_as: str
    metrics_query: str

    def metric_name(self, series: str) -> str:
        """The custom metric's name for a discovered series (the adapter's `name` section:
        `as` with `$1`/`${1}` references; empty: the one capture group, else the series)."""
        pattern = re.compile(self.name_matches)
        match = pattern.search(series)
        if match is None:
            raise ConfigError(f"adapter rule name.matches {self.name_matches!r}: not {series!r}")
        if not self.name_as:
            return match.group(1) if pattern.groups == 1 else series
        return GROUP_REF.sub(lambda m: match.group(int(m.group(1))) or "", self.name_as)

    def label_for(self, resource: str) -> str:
        for label, res in self.resources.items():
            if res == resource:
                return label
        raise ConfigError(f"adapter rule for {self.series_query!r}: no label maps to {resource}")

    def with_window(self, window: str) -> AdapterRule:
        """The same rule with every range (`[1m]`) replaced: a test can only wait so long."""
        return replace(self, metrics_query=RANGE.sub(f"[{window}]", self.metrics_query))


@dataclass(frozen=True, slots=True)
class RuleResult:
    metric: str  # the custom metric's name, as the HPA asks for it
    series: str
    query: str  # the metricsQuery as rendered
    per_pod: Mapping[str, float]


def load_rules(path: Path) -> tuple[AdapterRule, ...]:
    """The rules of the adapter's config, from a ConfigMap (`data: {config.yaml}`) or bare."""
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
        doc = yaml.safe_load(doc["data"]["config.yaml"])
    rules = []
    for i, raw in enumerate(doc.get("rules", [])):
        try:
            overrides = raw["resources"]["overrides"]
            name = raw.get("name", {})
            rules.append(
                AdapterRule(
                    series_query=raw["seriesQuery"],
                    resources={label: v["resource"] for label, v in overrides.items()},
                    name_matches=name.get("matches", ".*"),
                    name_as=name.get("as", ""),
                    metrics_query=raw["metricsQuery"],
                )
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: rules[{i}]: missing {exc}") from exc
    return tuple(rules)


def render_query(template: str, fields: Mapping[str, str]) -> str:
    """Go template `<<.Field>>` substitution, for the fields the adapter gives metricsQuery."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in KNOWN_FIELDS:
            raise ConfigError(f"metricsQuery field <<.{name}>>: not one of {KNOWN_FIELDS}")
        return fields[name]

    return TEMPLATE_FIELD.sub(value, template)


def _series_names(client: PromClient, rule: AdapterRule) -> list[str]:
    return sorted({s["__name__"] for s in client.series(rule.series_query)})


def evaluate_rule(
    client: PromClient,
    rule: AdapterRule,
    namespace: str,
    pods: Sequence[str],
    at: float | None = None,
) -> list[RuleResult]:
    """The value per pod of every metric this rule yields, as the adapter computes it for an
    HPA's `pods` metric request on `pods` in `namespace`."""
    ns_label, pod_label = rule.label_for("namespace"), rule.label_for("pod")
    pod_regex = "|".join(pods)  # as the adapter joins them (pod names are DNS labels)
    matchers = f'{ns_label}="{namespace}",{pod_label}=~"{pod_regex}"'
    results = []
    for series in _series_names(client, rule):
        fields = {"Series": series, "LabelMatchers": matchers, "GroupBy": pod_label}
        query = render_query(rule.metrics_query, fields)
        per_pod = {s.labels.get(pod_label, ""): s.value for s in client.query(query, at)}
        results.append(RuleResult(rule.metric_name(series), series, query, per_pod))
    return results

"""The shipped Grafana dashboards, checked offline.

Schema: Grafana's own dashboard types as generated from its schema (grafana-foundation-sdk's
`models.dashboard`, Grafana 10.1): each dashboard is decoded by them and encoded again, and
nothing may be lost -- a field the schema does not know (a typo, a field of another version)
is dropped by the decoder and fails here. Panel queries are opaque to those types; their
PromQL is evaluated against a real Prometheus in tests/integration/test_monitoring_dashboards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from harness.monitor.dashboards import DASHBOARDS

SHIPPED = Path(__file__).parents[3] / "deploy" / "grafana"


def _lost(original: Any, back: Any, path: str = "") -> list[str]:
    """Paths of `original` that the round trip dropped or changed."""
    if isinstance(original, dict):
        if not isinstance(back, dict):
            return [path]
        return [
            p
            for key, value in original.items()
            for p in (
                [f"{path}/{key}"] if key not in back else _lost(value, back[key], f"{path}/{key}")
            )
        ]
    if isinstance(original, list):
        if not isinstance(back, list) or len(back) != len(original):
            return [path]
        return [
            p
            for i, (a, b) in enumerate(zip(original, back, strict=True))
            for p in _lost(a, b, f"{path}[{i}]")
        ]
    return [] if original == back else [path]


def _round_trip(doc: dict) -> dict:
    return json.loads(json.dumps(Dashboard.from_json(doc), cls=JSONEncoder))


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_shipped_dashboard_is_the_generated_one_and_survives_grafanas_types(name: str) -> None:
    shipped = json.loads((SHIPPED / name).read_text())
    assert shipped == DASHBOARDS[name]  # regenerate: python -m harness.monitor.dashboards
    assert _lost(shipped, _round_trip(shipped)) == []
    assert all(p["targets"] and all(t["expr"] for t in p["targets"]) for p in shipped["panels"])


def test_an_unknown_field_is_caught() -> None:
    doc = json.loads(json.dumps(DASHBOARDS["live-run.json"]))
    doc["panels"][0]["titel"] = "typo"
    doc["refresh_rate"] = "5s"
    assert sorted(_lost(doc, _round_trip(doc))) == ["/panels[0]/titel", "/refresh_rate"]

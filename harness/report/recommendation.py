"""The recommendation section of a capacity report (`harness capacity`'s recommendation.json).

Why first and read from its own file: a planning review reads the answer before the evidence
(replicas, HPA settings, expected p99 at peak, replica-hours, assumptions), and the answer
must be the one the plan wrote -- `harness.capacity` copies it from plan.json, this module
only lays it out, so the report and plan.json cannot disagree.
"""

from __future__ import annotations

from typing import Any

from harness.report.model import Section, Table, fmt_ms, fmt_num

__all__ = ["recommendation_headline", "recommendation_section"]

FILE = "recommendation.json"


def recommendation_headline(doc: dict[str, Any]) -> str:
    return str(doc["sentence"])


def recommendation_section(doc: dict[str, Any]) -> Section:
    rows = (
        ("replicas at peak", str(doc["replicas"])),
        ("peak", f"{fmt_num(doc['peak_qps'])} req/s"),
        ("HPA minReplicas", str(doc["min_replicas"])),
        ("HPA maxReplicas", str(doc["max_replicas"])),
        ("HPA in-flight target / pod", f"{doc['hpa_inflight_target']:.3f}"),
        ("HPA requests/s target / pod", f"{doc['hpa_rps_target']:.2f}"),
        ("expected p99 at peak", fmt_ms(doc.get("expected_p99_ms"))),
        ("p99 SLO", fmt_ms(doc["slo_p99_ms"])),
        (
            f"replica-hours over {fmt_num(doc['traffic_hours'])} h of traffic",
            fmt_num(doc["replica_hours"]),
        ),
        ("minutes over the SLO (simulated)", fmt_num(doc["minutes_over_slo"])),
        ("HPA at a constant peak holds", str(doc["settle_from_plan"])),
    )
    return Section(
        "recommendation",
        "Recommendation",
        facts=(doc["sentence"],),
        tables=(
            Table("Recommendation", ("", ""), rows),
            Table(
                "Assumptions",
                ("#", "assumption"),
                tuple((str(i), line) for i, line in enumerate(doc["assumptions"], 1)),
            ),
        ),
    )

"""JUnit XML for CI: one testcase per SLO check and per gate metric, failures with numbers.

CI systems (GitHub Actions test reporters, GitLab, Jenkins) show JUnit files as test results:
a failed SLO check or a regressed metric becomes a failed test that names the numbers. Suite
"slo" holds the SLO checks of summary.json; suite "gate" (only with a baseline) the compared
metrics. Written with the standard library; `junitparser` reads it back in the tests.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.files import atomic_write_text
from harness.gate.runs import GateResult

__all__ = ["junit_xml", "write_junit"]


def _suite(parent: ET.Element, name: str, cases: list[tuple[str, str | None, str]]) -> None:
    """`cases`: (testcase name, failure message or None, system-out text)."""
    failures = sum(1 for _, failure, _ in cases if failure is not None)
    suite = ET.SubElement(
        parent, "testsuite", name=name, tests=str(len(cases)), failures=str(failures), errors="0"
    )
    for case_name, failure, text in cases:
        case = ET.SubElement(suite, "testcase", classname=name, name=case_name)
        if failure is not None:
            ET.SubElement(case, "failure", message=failure, type=name).text = failure
        ET.SubElement(case, "system-out").text = text


def _slo_cases(summary: Mapping[str, Any]) -> list[tuple[str, str | None, str]]:
    cases = []
    for check in summary["slo"]["checks"]:
        text = f"{check['name']}: observed {check['observed']} vs threshold {check['threshold']}"
        cases.append((str(check["name"]), None if check["passed"] else f"SLO failed: {text}", text))
    return cases


def _gate_cases(gate: GateResult) -> list[tuple[str, str | None, str]]:
    cases = []
    for metric in gate.metrics:
        text = metric.describe() + f" against {gate.baseline_run_id}, margin {gate.margin:.0%}"
        failed = metric.verdict == "regressed"
        cases.append((metric.metric, f"regression: {text}" if failed else None, text))
    return cases


def junit_xml(summary: Mapping[str, Any], gate: GateResult | None = None) -> str:
    """The JUnit document of a run: its SLO checks, and the gate's metrics when given."""
    root = ET.Element("testsuites", name=f"harness run {summary['run_id']}")
    _suite(root, "slo", _slo_cases(summary))
    if gate is not None:
        _suite(root, "gate", _gate_cases(gate))
    tests = sum(int(s.get("tests", "0")) for s in root)
    root.set("tests", str(tests))
    root.set("failures", str(sum(int(s.get("failures", "0")) for s in root)))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(
    path: str | os.PathLike[str], summary: Mapping[str, Any], gate: GateResult | None = None
) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, junit_xml(summary, gate))
    return target

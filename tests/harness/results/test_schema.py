"""summary.json has exactly the keys its declaration (`harness.results.schema`) promises."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.analysis.ab.synthetic import window_rows
from harness.config import validate_scenario
from harness.config.scenario import SloConfig
from harness.latency.windows import WindowRecord
from harness.results import load_run, summarize, write_synthetic_run
from harness.results.schema import (
    EndpointSummary,
    LatencyMs,
    LoadgenSummary,
    SloCheckSummary,
    SloSummary,
    Summary,
    ValiditySummary,
)
from tests.harness.summary_shape import full_summary

SCENARIO = {
    "name": "schema",
    "target": {"url": "http://127.0.0.1:9", "protocol": "kserve-http", "model": "m"},
    "load": {"mode": "open", "rate": 50, "duration": "20s"},
}


def _run(tmp_path: Path, with_stream: bool) -> Path:
    rng = np.random.default_rng(0)
    seconds = np.repeat(np.arange(20), 50)
    rows = window_rows("m", seconds, rng.lognormal(8, 0.3, seconds.size), rng.random(1000) < 0.01)
    scenario = validate_scenario(SCENARIO).model_dump(mode="json")
    records = [WindowRecord.from_dict(r) for r in rows]
    run_dir = write_synthetic_run(tmp_path / "r", records, scenario_config=scenario)
    if with_stream:
        (run_dir / "stream").mkdir()
    return run_dir


def test_a_summary_has_the_declared_keys(tmp_path: Path) -> None:
    summary = summarize(load_run(_run(tmp_path, with_stream=False)))
    assert set(summary) == Summary.__required_keys__
    assert set(summary["latency_ms"]) == set(LatencyMs.__annotations__)
    assert set(summary["validity"]) == set(ValiditySummary.__annotations__)
    assert set(summary["endpoints"]["m"]) == set(EndpointSummary.__annotations__)


def test_a_load_engine_run_adds_the_loadgen_section(tmp_path: Path) -> None:
    summary = summarize(load_run(_run(tmp_path, with_stream=True)))
    assert set(summary) == Summary.__required_keys__ | {"loadgen"}
    # open loop with a constant rate: the planned load is known (50/s x 20 s)
    assert set(summary["loadgen"]) == set(LoadgenSummary.__annotations__)
    assert summary["loadgen"]["planned_requests"] == 1000.0
    assert summary["loadgen"]["planned_rps"] == 50.0


def test_slo_section_and_the_stand_in_summary_have_the_declared_keys(tmp_path: Path) -> None:
    """The slo section is declared too, and the stand-in summary the fake engines of the sweep
    tests return (tests/harness/summary_shape.py) matches a real one key for key."""
    real = summarize(load_run(_run(tmp_path, with_stream=False)))
    assert set(real["slo"]) == set(SloSummary.__annotations__)
    real_slo = summarize(
        load_run(_run(tmp_path / "slo", with_stream=False)),
        slo=SloConfig(p99_ms=1.0),
    )
    assert set(real_slo["slo"]["checks"][0]) == set(SloCheckSummary.__annotations__)
    stand_in = full_summary(requests=10, latency_ms={"p99": 1.0}, validity={"stable": False})
    assert set(stand_in) == set(real)
    for section in ("latency_ms", "latency_uncorrected_ms", "validity", "slo"):
        assert set(stand_in[section]) == set(real[section]), section
    assert stand_in["latency_ms"]["p99"] == 1.0 and stand_in["validity"]["stable"] is False

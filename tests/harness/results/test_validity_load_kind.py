"""Validity fits the load kind: stability is judged where the load holds one level, not on a
trace replay or a last stage that ramps (non-stationary by design), and the summary says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.analysis.ab.synthetic import window_rows
from harness.config import validate_scenario
from harness.latency.windows import WindowRecord
from harness.results import load_run, summarize, write_synthetic_run

TARGET = {"url": "http://127.0.0.1:9", "protocol": "kserve-http", "model": "m"}
VALIDITY = {"min_duration_s": 10, "min_requests": 500}
TRACE = {"mode": "open", "arrival": "trace", "trace": {"path": "trace.csv"}, "duration": "40s"}
POISSON = {"mode": "open", "arrival": "poisson", "rate": 100, "duration": "40s"}
RAMP = {"mode": "open", "stages": [{"duration": "10s", "rate": 50},
                                   {"duration": "30s", "rate": 200, "ramp": True}]}  # fmt: skip
HOLD = {"mode": "open", "stages": [{"duration": "10s", "rate": 50},
                                   {"duration": "30s", "rate": 150}]}  # fmt: skip
TRACE_NOTE = (
    "stability not judged: trace replay: the rate follows the trace (non-stationary by design)"
)
RAMP_NOTE = "stability not judged: the last stage ramps: the load never holds one level"


def _run(tmp_path: Path, load: dict) -> Path:
    """40 s whose rate climbs from 50 to 245 req/s (5 more each second): no three 5 s blocks
    agree within 10 %, so a load that should hold a level is unstable here."""
    rng = np.random.default_rng(7)
    seconds = np.repeat(np.arange(40), 50 + 5 * np.arange(40))
    latency = rng.lognormal(np.log(5000), 0.3, seconds.size)
    rows = window_rows("m", seconds, latency, np.zeros(seconds.size, bool))
    config = validate_scenario(
        {"name": "kind", "target": TARGET, "load": {**load, "warmup": "1s"}, "validity": VALIDITY}
    ).model_dump(mode="json")
    records = [WindowRecord.from_dict(r) for r in rows]
    return write_synthetic_run(tmp_path / "run", records, scenario_config=config)


@pytest.mark.parametrize(("load", "note"), [(TRACE, TRACE_NOTE), (RAMP, RAMP_NOTE)])
def test_non_stationary_loads_are_valid_and_say_why_stability_was_not_judged(
    tmp_path: Path, load: dict, note: str
) -> None:
    summary = summarize(load_run(_run(tmp_path, load)))
    assert summary["valid"] is True, summary["validity"]["reasons"]
    assert summary["validity"]["reasons"] == []
    assert summary["validity"]["stability_note"] == note
    assert summary["validity"]["stable"] is False and summary["validity"]["stable_from_s"] is None


@pytest.mark.parametrize("load", [POISSON, HOLD])
def test_loads_that_hold_a_level_must_be_stable(tmp_path: Path, load: dict) -> None:
    summary = summarize(load_run(_run(tmp_path, load)))
    assert summary["valid"] is False
    assert summary["validity"]["reasons"] == [
        "not stable: throughput of the last 3 blocks differs by more than 10%"
    ]
    assert summary["validity"]["stability_note"] is None


def test_a_trace_replay_still_needs_enough_data(tmp_path: Path) -> None:
    summary = summarize(
        load_run(_run(tmp_path, TRACE)), validity=validate_scenario(
            {"name": "k", "target": TARGET, "load": POISSON,
             "validity": {"min_duration_s": 60, "min_requests": 500}}
        ).validity,
    )  # fmt: skip
    assert summary["valid"] is False
    assert summary["validity"]["reasons"] == ["measured 39 s < min_duration_s 60"]
    assert summary["validity"]["stability_note"] == TRACE_NOTE

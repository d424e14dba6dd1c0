"""From scenario to plan: rate profiles, worker schedules, closed-loop ticks, stage indexes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.config import validate_scenario
from harness.load.arrivals import (
    closed_tick,
    offered_total,
    rate_profile,
    run_length_s,
    stage_at,
    stages_entered,
    worker_schedule,
)

TRACE = Path(__file__).resolve().parents[2] / "scenarios" / "data" / "azure_llm_conv_2023.csv"
TARGET = {"url": "http://127.0.0.1:9", "protocol": "kserve-http", "model": "m"}


def _scenario(load: dict, **extra: object):
    return validate_scenario({"name": "t", "target": TARGET, "load": load, **extra})


def test_open_stages_become_the_rate_profile_the_config_describes() -> None:
    load = {
        "mode": "open",
        "arrival": "constant",
        "stages": [
            {"duration": "10s", "rate": 100, "ramp": True},
            {"duration": "5s", "rate": 300},
            {"duration": "5s", "rate": 50},
        ],
    }
    scenario = _scenario(load)
    profile = rate_profile(scenario.load)
    for t in (0.5, 5.0, 9.9, 12.0, 17.0):
        assert profile.rate_at(t) == pytest.approx(scenario.rate_at(t))
    assert offered_total(scenario) == pytest.approx(0.5 * 100 * 10 + 300 * 5 + 50 * 5)
    times = np.concatenate(list(worker_schedule(scenario, 0, 1, seed=1)))
    assert times.size == pytest.approx(offered_total(scenario), abs=1)
    assert [stage_at(scenario, t) for t in (0, 9.99, 10, 16, 20)] == [0, 0, 1, 2, None]


def test_poisson_workers_share_the_rate_and_are_reproducible() -> None:
    scenario = _scenario(
        {"mode": "open", "arrival": "poisson", "rate": 200, "duration": 30}, workers=3
    )
    counts = []
    for worker in range(3):
        first = np.concatenate(list(worker_schedule(scenario, worker, 3, seed=9)))
        again = np.concatenate(list(worker_schedule(scenario, worker, 3, seed=9)))
        assert np.array_equal(first, again)
        counts.append(first.size)
    assert abs(sum(counts) - 6000) < 4 * 6000**0.5
    assert all(abs(c - 2000) < 4 * 2000**0.5 for c in counts)


def test_trace_schedule_is_cut_at_the_duration_and_dealt_round_robin() -> None:
    trace = {"path": str(TRACE), "speedup": 30}
    scenario = _scenario({"mode": "open", "arrival": "trace", "trace": trace, "duration": 20})
    parts = [np.concatenate(list(worker_schedule(scenario, w, 2, 0, TRACE))) for w in range(2)]
    assert abs(parts[0].size - parts[1].size) <= 1
    merged = np.sort(np.concatenate(parts))
    assert merged.max() < 20 and merged.size == offered_total(scenario, TRACE)
    whole = _scenario({"mode": "open", "arrival": "trace", "trace": trace})
    assert run_length_s(whole, TRACE) > 100  # no duration: the whole (scaled) trace


def test_closed_ticks_follow_users_stages_and_spawn_rates() -> None:
    load = {
        "mode": "closed",
        "spawn_rate": 4,
        "stages": [
            {"duration": 10, "users": 20, "ramp": True},
            {"duration": 10, "users": 20, "spawn_rate": 50},
        ],
    }
    scenario = _scenario(load)
    assert closed_tick(scenario, 5.0) == (10, 4.0)
    assert closed_tick(scenario, 15.0) == (20, 50.0)
    assert closed_tick(scenario, 20.0) is None
    flat = _scenario({"mode": "closed", "users": 7, "duration": 3})
    assert closed_tick(flat, -1.0) == (7, 7.0)  # before second 0: the first level
    with pytest.raises(TypeError):
        closed_tick(_scenario({"mode": "open", "rate": 5, "duration": 1}), 0.0)


def test_stages_entered_reports_stages_shorter_than_the_look_interval() -> None:
    stages = [{"duration": "1s", "users": 2}, {"duration": "0.5s", "users": 4}]
    stages += [{"duration": "3s", "users": 1}]
    scenario = _scenario({"mode": "closed", "stages": stages})
    assert stages_entered(scenario, None, -0.2) == []  # before second 0
    # first look only 1.6 s in: stages 0 and 1 both began (and 1 already ended) unseen
    assert stages_entered(scenario, None, 1.6) == [(0, 0.0), (1, 1.0), (2, 1.5)]
    assert stages_entered(scenario, 2, 2.6) == []  # nothing new
    assert stages_entered(scenario, 0, 1.2) == [(1, 1.0)]
    assert stages_entered(scenario, 2, 9.0) == []  # after the end

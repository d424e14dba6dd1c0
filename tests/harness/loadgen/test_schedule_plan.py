"""From scenario to plan: rate profiles, worker schedules, closed-loop ticks, stage indexes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from harness.config import validate_scenario
from harness.loadgen.arrivals import (
    closed_tick,
    offered_total,
    rate_profile,
    run_length_s,
    stage_at,
    stages_entered,
    worker_schedule,
)

TRACE = Path(__file__).resolve().parents[3] / "scenarios" / "data" / "azure_llm_conv_2023.csv"
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
        # each worker is a Poisson process at 200/3 per s: Exp gaps of mean 3/200 s
        assert stats.kstest(np.diff(first), "expon", args=(0, 3 / 200)).pvalue > 0.01
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


def test_the_trace_column_named_in_the_scenario_is_replayed(tmp_path: Path) -> None:
    csv = tmp_path / "own.csv"
    csv.write_text("sent_s,tokens\n0.0,5\n0.5,7\n3.0,9\n")
    trace = {"path": str(csv), "column": "sent_s", "speedup": 2}
    scenario = _scenario({"mode": "open", "arrival": "trace", "trace": trace})
    times = np.sort(np.concatenate(list(worker_schedule(scenario, 0, 1, 0, csv))))
    np.testing.assert_allclose(times, [0.0, 0.25, 1.5])  # the column's seconds, sped up 2x
    assert run_length_s(scenario, csv) == pytest.approx(1.5, abs=1.0)


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


def _trace_file(tmp_path: Path, seconds: list[int]) -> Path:
    path = tmp_path / "trace.csv"
    rows = [f"2023-11-16 18:00:{s:02d}.0000000" for s in seconds]
    path.write_text("TIMESTAMP\n" + "\n".join(rows) + "\n")
    return path


def test_a_rate_zero_stage_is_a_pause_in_the_schedule() -> None:
    stages = [
        {"duration": "1s", "rate": 10},
        {"duration": "1s", "rate": 0},
        {"duration": "1s", "rate": 10},
    ]
    scenario = _scenario({"mode": "open", "arrival": "constant", "stages": stages})
    assert offered_total(scenario) == 20.0  # 10 + 0 + 10
    times = np.concatenate(list(worker_schedule(scenario, 0, 1, seed=1)))
    # 10/s: 0.0, 0.1, ..., 0.9; nothing in [1, 2); 2.0, ..., 2.9
    expected = np.concatenate([np.arange(10) / 10, 2.0 + np.arange(10) / 10])
    assert np.allclose(times, expected, rtol=0, atol=1e-12)


def test_constant_workers_take_every_nth_arrival_of_the_global_schedule() -> None:
    scenario = _scenario({"mode": "open", "rate": 10, "duration": 1}, workers=2)
    # global schedule 0.0, 0.1, ..., 0.9; worker 1 of 2 takes arrivals 1, 3, 5, 7, 9
    second = np.concatenate(list(worker_schedule(scenario, 1, 2, seed=0)))
    assert np.allclose(second, [0.1, 0.3, 0.5, 0.7, 0.9], rtol=0, atol=1e-12)


def test_trace_is_sped_up_cut_before_the_duration_and_dealt_round_robin(tmp_path: Path) -> None:
    path = _trace_file(tmp_path, [0, 1, 2, 3, 4])
    trace = {"path": str(path), "speedup": 2}
    cut = _scenario({"mode": "open", "arrival": "trace", "trace": trace, "duration": 1.5})
    # offsets / 2 = 0, 0.5, 1, 1.5, 2; the cut keeps t < 1.5 (1.5 itself is the run's end)
    assert offered_total(cut, path) == 3.0
    assert run_length_s(cut, path) == 1.5
    parts = [np.concatenate(list(worker_schedule(cut, w, 2, 0, path))) for w in range(2)]
    assert parts[0].tolist() == [0.0, 1.0] and parts[1].tolist() == [0.5]
    whole = _scenario({"mode": "open", "arrival": "trace", "trace": trace})
    # no duration: the scaled span (last arrival at 2.0) plus 1 us, so that arrival is inside
    assert run_length_s(whole, path) == pytest.approx(2.000001, rel=0, abs=1e-12)
    assert offered_total(whole, path) == 5.0


def test_run_length_is_the_duration_or_the_stages_without_a_trace() -> None:
    assert run_length_s(_scenario({"mode": "open", "rate": 5, "duration": 30})) == 30.0
    stages = [{"duration": 10, "rate": 5}, {"duration": 2.5, "rate": 1}]
    assert run_length_s(_scenario({"mode": "open", "stages": stages})) == 12.5
    closed = [{"duration": 4, "users": 2}, {"duration": 6, "users": 3}]
    assert run_length_s(_scenario({"mode": "closed", "stages": closed})) == 10.0


def test_plan_functions_name_the_load_they_need(tmp_path: Path) -> None:
    closed = _scenario({"mode": "closed", "users": 2, "duration": 3})
    opened = _scenario({"mode": "open", "rate": 5, "duration": 1})
    with pytest.raises(TypeError, match=r"^worker_schedule needs an open load, not 'closed'$"):
        worker_schedule(closed, 0, 1, seed=0)
    with pytest.raises(TypeError, match=r"^offered_total needs an open load, not 'closed'$"):
        offered_total(closed)
    with pytest.raises(TypeError, match=r"^closed_tick needs a closed load, not 'open'$"):
        closed_tick(opened, 0.0)
    trace = {"path": str(_trace_file(tmp_path, [0, 1])), "speedup": 1}
    replay = _scenario({"mode": "open", "arrival": "trace", "trace": trace})
    with pytest.raises(ValueError, match=r"^trace arrival needs the trace path$"):
        worker_schedule(replay, 0, 1, seed=0)


def test_closed_tick_in_the_first_second_and_without_a_spawn_rate() -> None:
    ramp = _scenario(
        {"mode": "closed", "spawn_rate": 4, "stages": [{"duration": 10, "users": 20, "ramp": True}]}
    )
    assert closed_tick(ramp, 0.0) == (0, 4.0)
    assert closed_tick(ramp, 0.5) == (1, 4.0)  # 20 * 0.5 / 10 = 1 user half a second in
    # no spawn rate: all users at once (spawn = users), and at least 1/s when there are none
    one = _scenario({"mode": "closed", "users": 1, "duration": 3})
    assert closed_tick(one, 0.0) == (1, 1.0)
    unpaced = _scenario({"mode": "closed", "stages": [{"duration": 10, "users": 20, "ramp": True}]})
    assert closed_tick(unpaced, 0.0) == (0, 1.0)
    assert closed_tick(unpaced, 5.0) == (10, 10.0)

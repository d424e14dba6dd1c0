"""The sweep driver as a library: a run function in, a sweep run directory out.

The run function here is a synthetic closed system standing in for the load engine (which
`tests/integration/test_cli_journeys.py` drives for real): throughput follows the USL with
lambda 100 req/s per user, sigma 0.05, kappa 0.0005; mean latency by Little's law; p99 twice
the mean. Expected values are worked by hand below.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import Scenario, validate_scenario
from harness.errors import ConfigError
from harness.load.api import RunOutcome
from harness.results.sweeps import read_sweep
from harness.sweep import SweepInterrupted, run_sweep, step_scenario, sweep_settings
from tests.harness.summary_shape import full_summary


def scenario(load: dict, p99_ms: float = 40.0) -> Scenario:
    return validate_scenario({
        "name": "driver",
        "target": {"url": "http://127.0.0.1:9", "protocol": "kserve-http", "model": "digits"},
        "load": load,
        "slo": {"p99_ms": p99_ms},
        # short stand-in steps: validity rules a 5 s step can meet
        "validity": {"min_duration_s": 2, "min_requests": 0,
                     "stability": {"windows": 2, "window_s": 1}},
    })  # fmt: skip


def usl_system(calls: list[tuple[float, float]]):
    def run(step: Scenario, steps_dir: Path, run_id: str) -> RunOutcome:
        n = float(step.load.users)
        calls.append((n, step.load.duration))
        x = 100.0 * n / (1 + 0.05 * (n - 1) + 0.0005 * n * (n - 1))
        mean_ms = n / x * 1000.0
        summary = full_summary(
            requests=int(x * 10), throughput_rps=x,
            latency_ms={"p50": mean_ms, "p99": 2 * mean_ms, "mean": mean_ms},
        )  # fmt: skip
        (steps_dir / run_id).mkdir(parents=True)
        return RunOutcome(steps_dir / run_id, summary, 0, "complete")

    return run


def test_closed_loop_sweep_finds_the_highest_passing_users_by_hand(tmp_path: Path) -> None:
    # p99 = 2 x mean = 2 x (1 + 0.05 (n-1) + 0.0005 n (n-1)) x 10 ms:
    #   n=16: 1 + 0.75 + 0.12 = 1.87 -> 37.4 ms (pass, SLO 40 ms)
    #   n=17: 1 + 0.80 + 0.136 = 1.936 -> 38.72 ms (pass)
    #   n=18: 1 + 0.85 + 0.153 = 2.003 -> 40.06 ms (fail)
    calls: list[tuple[float, float]] = []
    closed = scenario({"mode": "closed", "users": 1, "duration": "5s"})
    settings = sweep_settings(closed, max_steps=16)
    outcome = run_sweep(closed, tmp_path, settings, progress=False, run_step=usl_system(calls))
    assert outcome.result.best_load == 17 and outcome.exit_code == 0
    loads = [n for n, _ in calls]
    assert loads[:6] == [1, 2, 4, 8, 16, 32]  # growth x2 from the scenario's own 1 user
    assert {d for _, d in calls} == {5.0}
    swept = read_sweep(outcome.run_dir)
    assert swept.mode == "closed" and swept.columns["load"].tolist() == loads
    assert swept.meta["best_load"] == 17 and swept.meta["first_failing_load"] == 18
    assert (outcome.run_dir / "run.json").is_file()


def test_an_interrupted_step_stops_the_sweep_and_keeps_it_incomplete(tmp_path: Path) -> None:
    calls: list[tuple[float, float]] = []
    engine = usl_system(calls)

    def interrupted_second(step: Scenario, steps_dir: Path, run_id: str) -> RunOutcome:
        outcome = engine(step, steps_dir, run_id)
        return outcome if len(calls) < 2 else RunOutcome(
            outcome.run_dir, full_summary(status="incomplete"), 130, "incomplete"
        )

    closed = scenario({"mode": "closed", "users": 1, "duration": "5s"})
    with pytest.raises(SweepInterrupted, match=r"^interrupted during step 1 "):
        run_sweep(closed, tmp_path, sweep_settings(closed), progress=False,
                  run_step=interrupted_second)
    assert len(calls) == 2


def test_settings_default_to_the_scenario_and_refuse_nonsense() -> None:
    open_loop = scenario({"mode": "open", "rate": 40, "duration": "5s"})
    settings = sweep_settings(open_loop)
    assert (settings.start, settings.resolution, settings.integer) == (40.0, 2.0, False)
    assert settings.criteria.p99_ms == 40.0 and settings.criteria.max_error_rate == 0.01
    assert settings.criteria.min_throughput_ratio == 0.95
    with pytest.raises(ConfigError, match=r"^--growth must be > 1"):
        sweep_settings(open_loop, growth=1.0)
    no_slo = validate_scenario({**open_loop.model_dump(mode="json"), "slo": {}})
    with pytest.raises(ConfigError, match=r"^driver: a sweep needs a p99 SLO"):
        sweep_settings(no_slo)


def test_a_trace_replay_cannot_be_swept() -> None:
    trace = scenario({"mode": "open", "arrival": "trace", "trace": {"path": "t.csv"},
                      "duration": "5s"})
    with pytest.raises(ConfigError, match=r"^driver: sweep a constant/poisson or closed load"):
        step_scenario(trace, 10, 5.0)

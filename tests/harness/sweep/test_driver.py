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
from harness.sweep.steps import RunStep
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


# --- what limited a step, and what a step length can ever show (issue 14) ------------------


def _open(duration: str, validity: dict | None = None, warmup: str = "auto") -> Scenario:
    data = scenario({"mode": "open", "rate": 20, "duration": duration, "warmup": warmup})
    raw = data.model_dump(mode="json")
    raw["validity"] = validity or {}  # the defaults: 3 x 5 s stability, 10 s, 500 requests
    return validate_scenario(raw)


def test_a_step_length_that_can_never_be_valid_is_refused_with_the_arithmetic() -> None:
    # default stability: 3 blocks of 5 s after warm-up; auto warm-up: allow one more window
    with pytest.raises(ConfigError) as err:
        sweep_settings(_open("10s"), start=1000)
    assert str(err.value) == (
        "a 10 s step can never be valid: stability needs 3 x 5 s after warm-up "
        "(auto-detected: allow one window): use --step-duration >= 20s or --allow-unstable"
    )
    sweep_settings(_open("20s"), start=1000)  # 5 + 15: just enough
    # an explicit warm-up is counted as given
    with pytest.raises(ConfigError, match=r"after the 8 s warm-up: use --step-duration >= 23s"):
        sweep_settings(_open("20s", warmup="8s"), start=1000)
    # unstable steps allowed: only min_duration_s (10 s) is left to meet
    sweep_settings(_open("15s"), start=1000, allow_unstable=True)
    with pytest.raises(ConfigError, match=r"min_duration_s needs 10 s .*>= 15s$"):
        sweep_settings(_open("14s"), start=1000, allow_unstable=True)


def test_too_few_requests_at_the_start_rate_is_refused_not_blamed_on_the_target() -> None:
    """20 req/s for 20 s is ~400 requests < min_requests 500: 'start lower' would make it
    worse; the refusal says how long a step must be at that rate, or to start higher."""
    with pytest.raises(ConfigError) as err:
        sweep_settings(_open("20s"))
    assert str(err.value) == (
        "a 20 s step at the start rate 20 req/s can never be valid: min_requests 500 needs "
        "25 s after warm-up (auto-detected: allow one window): use --step-duration >= 30s "
        "or a higher --start"
    )
    sweep_settings(_open("30s"))


def _engine(calls: list, verdict) -> RunStep:
    """A stand-in engine: `verdict(load, duration, workers)` -> summary fields."""

    def run(step: Scenario, steps_dir: Path, run_id: str) -> RunOutcome:
        load, seconds, workers = float(step.load.level()), step.load.duration, step.workers
        calls.append((load, seconds, workers))
        (steps_dir / run_id).mkdir(parents=True)
        fields = {"requests": int(load * seconds), "throughput_rps": load,
                  "latency_ms": {"p50": 2.0, "p99": 5.0, "mean": 2.5},
                  "latency_uncorrected_ms": {"mean": 2.0},
                  **verdict(load, seconds, workers)}  # fmt: skip
        summary = full_summary(**fields)
        return RunOutcome(steps_dir / run_id, summary, 0, "complete")

    return run


def test_a_step_short_of_data_is_extended_then_judged(tmp_path: Path) -> None:
    """Too few requests in 5 s: run again at 10 s, where the rules can judge it."""
    calls: list = []

    def verdict(load, seconds, workers):
        if seconds < 10:
            return {"valid": False, "validity": {
                "reasons": ["measured 300 requests < min_requests 400"]}}
        return {}

    base = scenario({"mode": "open", "rate": 100, "duration": "5s"})
    settings = sweep_settings(base, max_load=100, max_step_duration_s=20)
    out = run_sweep(base, tmp_path, settings, progress=False, run_step=_engine(calls, verdict))
    assert [(c[0], c[1]) for c in calls] == [(100, 5), (100, 10)]
    assert out.result.verdicts == ("pass",) and out.unmeasured_loads == ()
    # the in-flight count at the server: 100 req/s x 2 ms from the actual send = 0.2
    assert out.result.steps[0].concurrency == pytest.approx(0.2)


def test_a_step_still_short_of_data_at_the_cap_is_unmeasured_and_stops_the_sweep(
    tmp_path: Path,
) -> None:
    calls: list = []

    def verdict(load, seconds, workers):
        if load > 200:
            return {"valid": False, "validity": {"reasons": ["p99 unbounded: 12 more requests"]}}
        return {}

    base = scenario({"mode": "open", "rate": 100, "duration": "5s"})
    settings = sweep_settings(base, max_step_duration_s=10)
    out = run_sweep(base, tmp_path, settings, progress=False, run_step=_engine(calls, verdict))
    assert [(c[0], c[1]) for c in calls] == [(100, 5), (200, 5), (400, 5), (400, 10)]
    assert out.result.verdicts == ("pass", "pass", "unmeasured")
    assert out.result.best_load == 200 and out.unmeasured_loads == (400.0,)
    assert out.result.reason == (
        "stopped unmeasured at load 400: too little data: p99 unbounded: 12 more requests"
    )
    swept = read_sweep(out.run_dir)
    assert swept.meta["fitted_steps"] == ["step00-load100", "step01-load200"]


def test_a_generator_limited_step_gets_more_workers_then_the_sweep_stops(
    tmp_path: Path,
) -> None:
    """The generator gives out above 150 req/s per worker: 200 needs 2 workers (re-measured
    with 2, and later steps keep 2); 400 with the maximum of 2 is still generator-limited:
    the sweep stops there and names the generator, not the target."""
    calls: list = []

    def verdict(load, seconds, workers):
        if load / workers > 150:
            return {"loadgen": {"unhealthy_seconds": [0, 1, 2, 3, 4],
                                "unhealthy_reasons": ["cpu 97.0% > 90%"]},
                    "validity": {"measured_s": 0}}  # fmt: skip
        return {"loadgen": {}}

    base = scenario({"mode": "open", "rate": 100, "duration": "5s"})
    settings = sweep_settings(base, max_workers=2)
    out = run_sweep(base, tmp_path, settings, progress=False, run_step=_engine(calls, verdict))
    assert calls == [(100, 5, 1), (200, 5, 1), (200, 5, 2), (400, 5, 2)]
    assert out.result.verdicts == ("pass", "pass", "unmeasured")
    assert [s.workers for s in out.result.steps] == [1, 2, 2]
    assert out.result.best_load == 200 and out.result.first_failure is None
    why = out.result.steps[-1].unmeasured
    assert why.startswith("the load generator was unhealthy in 5 of 5 s (cpu 97.0% > 90%)")
    assert "saturated at load 400 (400 req/s achieved) with 2 workers: add workers" in why
    assert read_sweep(out.run_dir).columns["workers"].tolist() == [1, 2, 2]


def test_a_failing_step_with_a_partly_unhealthy_generator_is_not_blamed_on_the_target(
    tmp_path: Path,
) -> None:
    """At 400 req/s the generator was unhealthy in 3 of 20 s and the step fell behind the
    offered rate: that failure may be the generator's, so it is unmeasured, not a fail. A
    passing step with a few unhealthy seconds still passes (those seconds were left out)."""
    calls: list = []

    def verdict(load, seconds, workers):
        if load >= 200:
            fell_behind = {"throughput_rps": load * 0.8} if load >= 400 else {}
            return {"loadgen": {"unhealthy_seconds": [3, 9, 14]},
                    "validity": {"measured_s": 17}, **fell_behind}  # fmt: skip
        return {"loadgen": {}}

    base = scenario({"mode": "open", "rate": 100, "duration": "5s"})
    settings = sweep_settings(base, max_workers=1)
    out = run_sweep(base, tmp_path, settings, progress=False, run_step=_engine(calls, verdict))
    assert out.result.verdicts == ("pass", "pass", "unmeasured")
    assert out.result.first_failure is None and out.result.best_load == 200


def test_a_p99_over_the_slo_in_the_healthy_seconds_is_the_targets_failure(
    tmp_path: Path,
) -> None:
    """At 400 req/s the generator hiccuped in 1 of 20 s, but in the 19 healthy seconds p99
    was 900 ms against a 40 ms SLO: that is the target's failure, not the generator's."""
    calls: list = []

    def verdict(load, seconds, workers):
        if load >= 400:
            return {"loadgen": {"unhealthy_seconds": [7]}, "validity": {"measured_s": 19},
                    "latency_ms": {"p50": 300.0, "p99": 900.0, "mean": 350.0}}  # fmt: skip
        return {"loadgen": {}}

    base = scenario({"mode": "open", "rate": 100, "duration": "5s"})
    settings = sweep_settings(base, max_workers=1, resolution=50)
    out = run_sweep(base, tmp_path, settings, progress=False, run_step=_engine(calls, verdict))
    assert out.result.verdicts == ("pass", "pass", "fail", "pass", "pass")  # 100 200 400 300 350
    assert out.result.first_failure.load == 400 and out.unmeasured_loads == ()


def test_an_unstable_step_already_over_the_slo_is_not_rerun_to_settle(tmp_path: Path) -> None:
    """400 req/s: unstable AND p99 900 ms > 40 ms: overload only gets worse with time, so
    no longer re-run (it fails as measured); 200: unstable but within the SLO: re-run."""
    calls: list = []

    def verdict(load, seconds, workers):
        if load >= 400:
            return {"validity": {"stable": False},
                    "latency_ms": {"p50": 300.0, "p99": 900.0, "mean": 350.0}}  # fmt: skip
        return {"validity": {"stable": seconds >= 10}}

    base = scenario({"mode": "open", "rate": 100, "duration": "5s"})
    settings = sweep_settings(base, max_steps=3, max_step_duration_s=20)
    out = run_sweep(base, tmp_path, settings, progress=False, run_step=_engine(calls, verdict))
    assert [(c[0], c[1]) for c in calls] == [(100, 5), (100, 10), (200, 5), (200, 10), (400, 5)]
    assert out.result.verdicts == ("pass", "pass", "fail")


def test_server_inflight_is_the_counter_rate_over_the_measured_span(tmp_path: Path) -> None:
    """Two replicas' in-flight-seconds counters scraped each second (shared tick times):
    over [4, 8] the sum grows from 3.0 + 1.0 to 9.2 + 3.0 = 8.2 s of in-flight time in 4 s ->
    2.05 requests in flight on average. Scrapes outside the span (warm-up, the drain) and
    other metrics do not count; fewer than 2 s of scrapes give None."""
    from harness.results import RunWriter
    from harness.sweep.steps import INFLIGHT_SECONDS, server_inflight

    writer = RunWriter(tmp_path, "inflight", scenario_config={})
    writer.start()
    counter = {0: 0.0, 2: 1.0, 4: 3.0, 6: 6.0, 8: 9.2, 10: 9.2}  # replica 0
    rows = []
    for ts, value in counter.items():
        rows += [(float(ts), INFLIGHT_SECONDS, {"replica": "0"}, value),
                 (float(ts), INFLIGHT_SECONDS, {"replica": "1"}, value / 3 if ts > 2 else 0.0),
                 (float(ts), "nv_inference_request_success", {}, 1000.0 * ts)]  # fmt: skip
    writer.write_server_metrics(rows)
    assert server_inflight(writer.run_dir, 4.0, 8.0) == pytest.approx((9.2 + 9.2 / 3 - 4.0) / 4)
    assert server_inflight(writer.run_dir, 4.0, 5.0) is None  # one scrape in the span
    bare = RunWriter(tmp_path / "bare", "no-metrics", scenario_config={})  # no /metrics
    bare.start()
    assert server_inflight(bare.run_dir, 0.0, 10.0) is None


def test_with_allow_unstable_too_few_stability_blocks_is_no_bar(tmp_path: Path) -> None:
    """2 s steps against a 2 x 1 s stability rule: "not stable: 1 of 2 blocks measured". With
    --allow-unstable the step is judged on its numbers (measured); without, it is short of
    data (unmeasured)."""
    calls: list = []

    def verdict(load, seconds, workers):
        return {"validity": {"stable": False, "reasons": ["not stable: 1 of 2 blocks measured"]}}

    base = scenario({"mode": "closed", "users": 1, "duration": "5s"})
    lenient = sweep_settings(base, max_steps=2, allow_unstable=True)
    out = run_sweep(base, tmp_path / "a", lenient, progress=False,
                    run_step=_engine(calls, verdict))  # fmt: skip
    assert out.result.verdicts == ("pass", "pass")
    strict = sweep_settings(base, max_steps=2)
    out = run_sweep(base, tmp_path / "b", strict, progress=False,
                    run_step=_engine(calls, verdict))  # fmt: skip
    assert out.result.verdicts == ("unmeasured",)
    assert out.result.steps[0].unmeasured == (
        "too little data: not stable: 1 of 2 blocks measured"
    )

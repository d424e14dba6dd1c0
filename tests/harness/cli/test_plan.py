"""`harness plan` / `harness simulate-hpa` / `harness sweep` end to end (exit codes, files).

The sweep test swaps the load engine's `run_scenario` for a synthetic USL system that
writes a contract-shaped summary.json, so the CLI's wiring (steps, sweep.parquet, sweep.json,
USL fit, plan --from) is exercised without starting servers; the real engine is covered by
the integration test.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from harness.cli.main import main
from harness.config import Scenario
from harness.load.api import RunOutcome
from harness.results.sweeps import read_sweep
from tests.harness.analysis.capacity.usl_truth import usl_x
from tests.harness.summary_shape import full_summary

# short stand-in steps: validity rules a 5 s step can meet (a real sweep keeps the defaults)
SHORT_STEPS = {"min_duration_s": 2, "min_requests": 0, "stability": {"windows": 2, "window_s": 1}}

def test_plan_by_hand_worked_example(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "plan"
    rc = main(
        [
            "plan",
            "--peak-qps",
            "10000",
            "--latency-ms",
            "50",
            "--concurrency",
            "1",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    plan = json.loads((out / "plan.json").read_text())
    assert plan["replicas"] == 500 and plan["n0"] == 500
    assert {"min_replicas", "max_replicas", "inputs", "arithmetic", "operating_point"} <= set(plan)
    assert sorted(plan["manifests"]) == ["deployment.yaml", "hpa.yaml", "pdb.yaml", "service.yaml"]
    hpa = yaml.safe_load((out / "hpa.yaml").read_text())
    assert hpa["spec"]["maxReplicas"] == plan["max_replicas"]
    text = capsys.readouterr().out
    assert "500" in text and "MEAN" in text


def test_plan_headroom_n_plus_one_and_gpu(tmp_path: Path) -> None:
    out = tmp_path / "p"
    rc = main(
        [
            "plan",
            "--peak-qps",
            "10000",
            "--latency-ms",
            "50",
            "--concurrency",
            "1",
            "--headroom",
            "0.2",
            "--redundancy",
            "1",
            "--gpu",
            "--k8s-version",
            "1.29",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    assert json.loads((out / "plan.json").read_text())["replicas"] == 601
    dep = yaml.safe_load((out / "deployment.yaml").read_text())
    limits = dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"


def test_plan_usage_errors_exit_2(tmp_path: Path) -> None:
    assert main(["plan", "--peak-qps", "100", "--out", str(tmp_path / "x")]) == 2
    assert (
        main(["plan", "--peak-qps", "100", "--latency-ms", "5", "--out", str(tmp_path / "x")]) == 2
    )
    assert (
        main(
            [
                "plan",
                "--peak-qps",
                "100",
                "--latency-ms",
                "5",
                "--concurrency",
                "1",
                "--headroom",
                "-1",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert (
        main(
            [
                "plan",
                "--peak-qps",
                "100",
                "--latency-ms",
                "5",
                "--concurrency",
                "1",
                "--k8s-version",
                "1.99",
                "--out",
                str(tmp_path / "y"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "y" / "plan.json").exists()


def test_simulate_hpa_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "p"
    assert (
        main(
            [
                "plan",
                "--peak-qps",
                "500",
                "--latency-ms",
                "20",
                "--concurrency",
                "4",
                "--p99-ms",
                "40",
                "--slo-p99-ms",
                "100",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rc = main(
        [
            "simulate-hpa",
            "--plan",
            str(out / "plan.json"),
            "--compare",
            "plan",
            "k8s-default",
            "slow-scale-up",
        ]
    )
    assert rc == 0
    doc = json.loads((out / "hpa_sim.json").read_text())
    assert [r["name"] for r in doc["results"]] == ["plan", "k8s-default", "slow-scale-up"]
    assert doc["peak_qps"] == pytest.approx(500)
    rows = (out / "hpa_sim.csv").read_text().splitlines()
    assert rows[0].startswith("setting,t_s") and len(rows) == 1 + 3 * doc["seconds"]
    assert "min>SLO" in capsys.readouterr().out
    spec = "plan:scale_down.stabilization_window_s=60,pod_startup_s=120"
    assert main(["simulate-hpa", "--plan", str(out), "--compare", spec]) == 0
    doc = json.loads((out / "hpa_sim.json").read_text())
    assert doc["settings"][spec]["scale_down"]["stabilization_window_s"] == 60
    assert doc["settings"][spec]["pod_startup_s"] == 120
    assert main(["simulate-hpa", "--plan", str(out), "--compare", "nonsense"]) == 2


# --- sweep with a synthetic engine -------------------------------------------------------


def fake_run_scenario(scenario: Scenario, out_dir: Path, run_id=None, show_progress=True):
    """A USL system (lambda 100/user, sigma .05, kappa .0005); p99 = 2.5 x mean."""
    n = float(scenario.load.users)
    x = float(usl_x(n, 100.0, 0.05, 0.0005))
    mean_ms = n / x * 1000
    run_dir = Path(out_dir) / run_id
    run_dir.mkdir(parents=True)
    summary = full_summary(
        run_id=run_id,
        requests=int(x * 10),
        throughput_rps=x,
        latency_ms={"p50": mean_ms, "p99": 2.5 * mean_ms, "mean": mean_ms},
    )
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return RunOutcome(run_dir, summary, 0, "complete")


def test_sweep_cli_then_plan_from_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.load.api

    monkeypatch.setattr(harness.load.api, "run_scenario", fake_run_scenario)
    scen = write_closed_scenario(tmp_path, "sweep-test", "10s")
    out = tmp_path / "results"
    rc = main(["sweep", str(scen), "--out", str(out), "--no-progress", "--max-steps", "20"])
    assert rc == 0
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    sw = read_sweep(run_dir)
    meta = sw.meta
    # p99 = 2.5 N/X(N) ms: 100 ms between N=42 (98.6 ms) and 43 (101.0 ms) -> best 42
    assert meta["best_load"] == 42 and meta["first_failing_load"] == 43
    assert meta["search"]["steps"] < meta["search"]["linear_steps"]
    assert meta["usl"]["kappa"]["value"] == pytest.approx(0.0005, rel=0.05)
    assert json.loads((run_dir / "run.json").read_text())["kind"] == "sweep"
    assert len(sw.columns["load"]) == meta["search"]["steps"]
    plan_dir = tmp_path / "plan"
    assert main(["plan", "--peak-qps", "5000", "--from", str(run_dir), "--out", str(plan_dir)]) == 0
    plan = json.loads((plan_dir / "plan.json").read_text())
    assert plan["operating_point"]["source"] == "sweep-closed"
    assert plan["operating_point"]["concurrency"] == 42
    assert plan["inputs"]["slo_p99_ms"] == 100
    # c_op overridden by hand: X_op from the fitted USL at N = 20
    assert (
        main(
            [
                "plan",
                "--peak-qps",
                "5000",
                "--from",
                str(run_dir),
                "--concurrency",
                "20",
                "--out",
                str(tmp_path / "plan20"),
            ]
        )
        == 0
    )
    op20 = json.loads((tmp_path / "plan20" / "plan.json").read_text())["operating_point"]
    assert op20["concurrency"] == 20
    assert op20["throughput"] == pytest.approx(usl_x(20, 100, 0.05, 0.0005), rel=0.02)
    assert any("given by hand" in n for n in op20["notes"])


def write_closed_scenario(
    tmp_path: Path, name: str, duration: str, p99_ms: float = 100, **load: object
) -> Path:
    """A closed-loop scenario file of 1 user (or `load`'s) for the faked engines."""
    path = tmp_path / "closed.yaml"
    target = {"url": "http://127.0.0.1:9", "protocol": "kserve-http", "model": "digits"}
    scenario = {"name": name, "target": target,
                "load": {"mode": "closed", "users": 1, "duration": duration, **load},
                "slo": {"p99_ms": p99_ms}, "validity": SHORT_STEPS}  # fmt: skip
    path.write_text(yaml.safe_dump(scenario))
    return path


def write_open_scenario(tmp_path: Path, name: str, rate: float) -> Path:
    """An open-loop Poisson scenario file (its target is never reached: run_scenario is faked)."""
    path = tmp_path / "open.yaml"
    target = {"url": "http://127.0.0.1:9", "protocol": "kserve-http", "model": "digits"}
    load = {"mode": "open", "arrival": "poisson", "rate": rate, "duration": "10s"}
    scenario = {"name": name, "target": target, "load": load, "slo": {"p99_ms": 50},
                "validity": SHORT_STEPS}
    path.write_text(yaml.safe_dump(scenario))
    return path


def fake_open_loop(scenario: Scenario, out_dir: Path, run_id=None, show_progress=True):
    """Open loop M/M/1-like: saturates at 1000 req/s, mean 4/(1-u) ms, p99 = 4.6 x mean."""
    rate = float(scenario.load.rate)
    u = min(rate / 1000.0, 0.999)
    mean = 4.0 / (1 - u)
    run_dir = Path(out_dir) / run_id
    run_dir.mkdir(parents=True)
    summary = full_summary(
        requests=1000,
        throughput_rps=min(rate, 1000.0),
        latency_ms={"p50": mean * 0.7, "p99": mean * 4.6, "mean": mean},
    )
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return RunOutcome(run_dir, summary, 0, "complete")


def test_open_loop_sweep_then_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.load.api

    monkeypatch.setattr(harness.load.api, "run_scenario", fake_open_loop)
    scen = write_open_scenario(tmp_path, "open-sweep", 10)
    out = tmp_path / "results"
    assert (
        main(
            [
                "sweep",
                str(scen),
                "--out",
                str(out),
                "--no-progress",
                "--start",
                "50",
                "--resolution",
                "10",
            ]
        )
        == 0
    )
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    meta = json.loads((run_dir / "sweep.json").read_text())
    # p99 = 18.4/(1-u) <= 50 -> u <= 0.632: best within 10 req/s below 632
    assert 622 <= meta["best_load"] <= 632 and meta["usl"] is None
    assert meta["latency"]["max_under_slo"]["throughput"] <= 632
    plan_dir = tmp_path / "plan"
    assert main(["plan", "--peak-qps", "6000", "--from", str(run_dir), "--out", str(plan_dir)]) == 0
    op = json.loads((plan_dir / "plan.json").read_text())["operating_point"]
    assert op["source"] == "sweep-open" and op["throughput"] == meta["best_load"]
    # Little: c_op = X_op x mean time in system
    assert op["concurrency"] == pytest.approx(op["throughput"] * op["mean_latency_s"])


def test_unstable_steps_rerun_longer_up_to_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.load.api

    durations: list[float] = []

    def slow_to_settle(scenario: Scenario, out_dir: Path, run_id=None, show_progress=True):
        durations.append(scenario.load.duration)
        outcome = fake_run_scenario(scenario, out_dir, run_id, show_progress)
        stable = scenario.load.duration >= 20
        summary = {**outcome.summary, "validity": {**outcome.summary["validity"], "stable": stable}}
        return dataclasses.replace(outcome, summary=summary)

    monkeypatch.setattr(harness.load.api, "run_scenario", slow_to_settle)
    scen = write_closed_scenario(tmp_path, "settle", "5s")
    out = tmp_path / "results"
    assert (
        main(
            [
                "sweep",
                str(scen),
                "--out",
                str(out),
                "--no-progress",
                "--max-steps",
                "2",
                "--max-step-duration",
                "20s",
            ]
        )
        == 0
    )
    assert durations == [5, 10, 20, 5, 10, 20]  # each load: 5 s, 10 s, then stable at 20 s
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    assert len(list((run_dir / "steps").glob("step*"))) == 6
    assert read_sweep(run_dir).columns["stable"].tolist() == [True, True]


def starved_generator(scenario: Scenario, out_dir: Path, run_id=None, show_progress=True):
    """The target keeps up, but above 400 req/s the load generator is unhealthy every second."""
    rate = float(scenario.load.rate)
    run_dir = Path(out_dir) / run_id
    run_dir.mkdir(parents=True)
    starved = rate > 400
    summary = full_summary(
        requests=int(rate * 10),
        throughput_rps=None if starved else rate,
        latency_ms={} if starved else {"p50": 2.0, "p99": 8.0, "mean": 2.5},
        validity={"stable": not starved, "measured_s": 0 if starved else 10},
        loadgen={"unhealthy_seconds": list(range(10)) if starved else []},
    )
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return RunOutcome(run_dir, summary, 0, "complete")


def test_steps_the_generator_could_not_measure_are_flagged_not_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import harness.load.api

    monkeypatch.setattr(harness.load.api, "run_scenario", starved_generator)
    scen = write_open_scenario(tmp_path, "starved", 100)
    out = tmp_path / "results"
    argv = ["sweep", str(scen), "--out", str(out), "--no-progress", "--max-steps", "4"]
    assert main(argv) == 0
    printed = " ".join(capsys.readouterr().out.split())
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    meta = json.loads((run_dir / "sweep.json").read_text())
    assert meta["unmeasured_loads"] == [800.0]  # 100, 200, 400 pass; 800 measured nothing
    assert "step 3 unmeasured: the load generator was unhealthy in 10 of 10 s" in printed
    assert "saturated at load 800 (nothing achieved) with 1 worker: add workers" in printed
    assert "highest passing load: 400 req/s offered (stopped unmeasured at load 800" in printed
    assert "nan" not in printed
    (unmeasured,) = meta["unmeasured"]
    assert unmeasured["load"] == 800 and unmeasured["reason"].startswith("the load generator")
    assert read_sweep(run_dir).columns["verdict"].tolist() == ["pass"] * 3 + ["unmeasured"]
    assert meta["fitted_steps"] == [f"step{i:02d}-load{x}" for i, x in enumerate((100, 200, 400))]
    plan_dir = tmp_path / "plan"
    assert main(["plan", "--peak-qps", "1000", "--from", str(run_dir), "--out", str(plan_dir)]) == 0
    notes = json.loads((plan_dir / "plan.json").read_text())["notes"]
    assert any("floor set by the measurement" in n for n in notes)


def test_ctrl_c_in_a_step_stops_the_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import harness.load.api

    calls: list[float] = []

    def interrupted_at_second_step(scenario: Scenario, out_dir: Path, run_id=None, **_: object):
        calls.append(float(scenario.load.rate))
        outcome = fake_open_loop(scenario, out_dir, run_id)
        # the engine saw SIGINT at the second step
        return dataclasses.replace(outcome, exit_code=130 if len(calls) == 2 else 0)

    monkeypatch.setattr(harness.load.api, "run_scenario", interrupted_at_second_step)
    scen = write_open_scenario(tmp_path, "stopped", 50)
    out = tmp_path / "results"
    assert main(["sweep", str(scen), "--out", str(out), "--no-progress"]) == 130
    assert calls == [50.0, 100.0], "no step may start after the interrupted one"
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "incomplete" and "interrupted during step 1" in run["status_reason"]


def fake_thinking_users(scenario: Scenario, out_dir: Path, run_id=None, show_progress=True):
    """Closed loop with 100 ms think time in front of a server that is a USL system in its
    OWN concurrency c (lambda 100, sigma .05, kappa .0005): users N = X (R + Z) with R = c / X
    (Little at the server), p99 = 2.5 R. The engine reports what a real run reports: the
    throughput and the latency from the actual send."""
    users, think_s = float(scenario.load.users), 0.1
    lo, hi = 1e-6, users
    for _ in range(100):  # the server concurrency c with c + X(c) Z = N
        c = (lo + hi) / 2
        lo, hi = (c, hi) if c + float(usl_x(c, 100.0, 0.05, 0.0005)) * think_s < users else (lo, c)
    x = float(usl_x(c, 100.0, 0.05, 0.0005))
    r_ms = c / x * 1000
    run_dir = Path(out_dir) / run_id
    run_dir.mkdir(parents=True)
    summary = full_summary(
        run_id=run_id, requests=int(x * 10), throughput_rps=x,
        latency_ms={"p50": r_ms, "p99": 2.5 * r_ms, "mean": r_ms},
        latency_uncorrected_ms={"mean": r_ms},
    )  # fmt: skip
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return RunOutcome(run_dir, summary, 0, "complete")


def test_think_time_sweep_fits_and_plans_on_the_server_concurrency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Fitted on users the USL would say ~10 req/s 'per user' (1 / think time); fitted on the
    server's in-flight requests it recovers the server's own lambda 100 and N* = 43.6, and the
    plan's c_op is an in-flight count at the server: p99 = 2.5 R meets 100 ms up to R = 40 ms,
    i.e. 1 + .05 (c - 1) + .0005 c (c - 1) = 4, c = 42.97."""
    import harness.load.api

    monkeypatch.setattr(harness.load.api, "run_scenario", fake_thinking_users)
    scen = write_closed_scenario(tmp_path, "thinking", "10s", users=4, wait_time=0.1)
    out = tmp_path / "results"
    assert main(["sweep", str(scen), "--out", str(out), "--no-progress", "--max-steps", "20"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    meta = read_sweep(run_dir).meta
    assert meta["concurrency"] == "server"
    assert meta["usl"]["lambda"]["value"] == pytest.approx(100.0, rel=0.02)
    assert meta["usl"]["n_star"] == pytest.approx(43.59, rel=0.03)
    assert "USL (N = requests in flight at the server" in printed
    assert any("think time" in note for note in meta["notes"]) and "think time" in printed
    plan_dir = tmp_path / "plan"
    assert main(["plan", "--peak-qps", "5000", "--from", str(run_dir), "--out", str(plan_dir)]) == 0
    op = json.loads((plan_dir / "plan.json").read_text())["operating_point"]
    assert op["concurrency"] == pytest.approx(42.97, rel=0.02)
    assert op["server_inflight"] == op["concurrency"]  # already counted at the server


def test_a_closed_sweep_with_too_few_measured_levels_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """1 2 4 users measured, 8 left to a starved generator: the plan cannot fit a USL on 3
    levels and says so, naming the unmeasured step, instead of the fit's own message."""
    import harness.load.api

    def starved_at_8(scenario: Scenario, out_dir: Path, run_id=None, show_progress=True):
        outcome = fake_run_scenario(scenario, out_dir, run_id, show_progress)
        if scenario.load.users < 8:
            return outcome
        summary = {**outcome.summary, "validity": {**outcome.summary["validity"], "measured_s": 0},
                   "loadgen": full_summary(loadgen={"unhealthy_seconds": [0, 1, 2]})["loadgen"]}
        summary["loadgen"]["unhealthy_seconds"] = list(range(10))
        return dataclasses.replace(outcome, summary=summary)

    monkeypatch.setattr(harness.load.api, "run_scenario", starved_at_8)
    scen = write_closed_scenario(tmp_path, "few-levels", "10s", p99_ms=1000)
    out = tmp_path / "results"
    assert main(["sweep", str(scen), "--out", str(out), "--no-progress", "--max-steps", "6",
                 "--max-workers", "1"]) == 0  # fmt: skip
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    capsys.readouterr()
    assert main(["plan", "--peak-qps", "100", "--from", str(run_dir)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err == (
        f"error: {run_dir}: 3 measured load levels; the USL fit behind a closed-loop plan "
        "needs 4 (1 step(s) unmeasured, see sweep.json): sweep more levels (--max-steps), "
        "or give --latency-ms and --concurrency"
    )

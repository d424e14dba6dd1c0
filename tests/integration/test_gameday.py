"""`harness gameday` end to end: a real local stack (2 replicas, nginx, fault proxies), a
small open-loop load on 127.0.0.1, Chaos Toolkit's node-kill experiment run in-process.

Each test runs the CLI as a user would and reads what it wrote; every process the game day
started is listed in gameday.json and checked gone. Bounded: ~30 s of load at 40 req/s.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness.results import load_run
from harness.results.windows import decode_windows, per_second
from tests.integration.cli_helpers import REPO, cli_env, harness_cmd, reaped, wait_for

pytestmark = pytest.mark.timeout(240)

FAST = ["--config", "fault_s=5", "--config", "recover_s=3", "--k", "3", "--baseline-s", "6"]
# 3 (warm-up) + 6 (baseline) + 8 (method pauses) + 3 (recovery) + 5 (margin) = 25 s of load


def _scenario(tmp: Path, duration: str = "26s", p99_ms: float = 250, **load: Any) -> Path:
    data = {
        "name": "gameday-itest",
        "target": {"url": "http://127.0.0.1:8000", "protocol": "kserve-http", "model": "digits",
                   "inputs": {"source": "dataset", "dataset": "digits"}},
        "stack": {"local": True, "replicas": 2, "device": "cpu"},
        "load": {"mode": "open", "arrival": "constant", "rate": 40, "duration": duration,
                 "warmup": "3s", **load},
        "slo": {"p99_ms": p99_ms, "error_rate": 0.05},
        "validity": {"min_duration_s": 0, "min_requests": 0},
    }  # fmt: skip
    path = tmp / "scenario.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    return path


@contextlib.contextmanager
def stopped(proc: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """On the way out (a failed assertion mid-run included), a game day still running is
    interrupted with SIGINT, so it rolls back and stops every process it started; killed
    only if it has not ended 90 s later (a SIGKILL would leave its stack running)."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def _gameday(*args: object, timeout: float = 200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(harness_cmd("gameday", *args), cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def _doc(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "gameday.json").read_text())


def _events(run_dir: Path) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        found.setdefault(event["type"], float(event["ts"]))
    return found


def _assert_all_stopped(doc: dict[str, Any]) -> None:
    assert len(doc["processes"]) >= 4  # 2 replicas (+ a restarted one), nginx, proxy, load
    alive = [p for p in doc["processes"] if psutil.pid_exists(p)
             and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]  # fmt: skip
    assert alive == [], "every process the game day started must be stopped"


def test_dry_run_prints_the_plan_and_touches_nothing(tmp_path: Path) -> None:
    scenario, out, tmpdir = _scenario(tmp_path), tmp_path / "out", tmp_path / "tmp"
    tmpdir.mkdir()
    cmd = harness_cmd("gameday", "node-kill", "--scenario", scenario, "--out", out, "--dry-run",
                      *FAST)  # fmt: skip
    env = {**cli_env(), "TMPDIR": str(tmpdir)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    children: set[int] = set()

    def watch() -> None:  # every child the CLI ever has, polled while it runs
        with pytest.raises(psutil.NoSuchProcess):
            parent = psutil.Process(proc.pid)
            while True:
                children.update(c.pid for c in parent.children(recursive=True))
                time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with reaped(proc):
        output, _ = proc.communicate(timeout=60)
    watcher.join(timeout=5)
    assert proc.returncode == 0, output
    assert children == set(), "a dry run starts no process"
    assert not out.exists() and list(tmpdir.iterdir()) == [], "a dry run writes nothing"
    lines = [line.strip() for line in output.splitlines()]
    assert lines[0] == "game-day plan (dry run: nothing started, nothing written)"
    assert "stack: local stack: 2 replica(s), fault proxies, device cpu" in lines
    assert (
        "durations: 3 (warm-up) + 6 (baseline) + 8 (method) + 3 (recovery windows) + 5 "
        "(margin) = 25 s <= load 26 s" in lines
    )
    assert any(line.startswith("fault: method pauses kill-replica (after) 5, restart-replica "
                               "(after) 3 = 8 s (max 120 s)") for line in lines)  # fmt: skip


def test_a_load_too_short_is_refused_with_the_arithmetic(tmp_path: Path) -> None:
    result = _gameday("node-kill", "--scenario", _scenario(tmp_path, duration="20s"), "--out",
                      tmp_path / "out", *FAST)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: gameday-itest: the load is too short for this game day: 3 (warm-up) + 6 "
        "(baseline) + 8 (method) + 3 (recovery windows) + 5 (margin) = 25 s <= load 20 s "
        "does not hold; lengthen load.duration"
    )
    assert not (tmp_path / "out").exists()


def test_node_kill_fails_over_recovers_and_rolls_back(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _gameday("node-kill", "--scenario", _scenario(tmp_path), "--out", out,
                      "--run-id", "kill", *FAST)  # fmt: skip
    run_dir = out / "kill"
    doc = _doc(run_dir)
    print(json.dumps(doc["impact"], indent=1), json.dumps(doc["timeline"], indent=1))
    assert result.returncode == 0 == doc["verdict"]["exit_code"], result.stdout + result.stderr
    assert doc["verdict"] == {"result": "pass", "reasons": [], "exit_code": 0}
    assert doc["hypothesis"]["before"]["met"] is True and doc["hypothesis"]["after"]["met"]
    # the fault's moments, on the windows' clock: kill, 5 s, restart
    events = _events(run_dir)
    assert events["fault_end"] - events["fault_start"] == pytest.approx(5.0, abs=0.5)
    assert events["rollback_start"] > events["method_end"] >= events["fault_end"]
    windows = per_second(decode_windows(load_run(run_dir).windows))
    assert windows[0].second <= events["fault_start"] <= windows[-1].second
    # failed requests: counted from the windows independently, and bounded (nginx fails over)
    impact = doc["impact"]
    first, last = impact["impact_seconds"]
    assert first == int(events["fault_start"])
    assert impact["failed_requests"] == sum(w.failures for w in windows if first <= w.second
                                            <= last)  # fmt: skip
    assert impact["failed_requests"] <= 0.05 * impact["during"]["requests"]
    # recovery measured and plausible: back within a few seconds of the restart
    assert impact["time_to_recover_s"] is not None and 0 <= impact["time_to_recover_s"] <= 15
    assert impact["before"]["requests"] >= 6 * 40 * 0.9
    # the replica came back: the same stack shape before and after
    assert doc["rollback"]["equal"] is True and doc["rollback"]["differences"] == []
    assert doc["rollback"]["after"]["replicas_up"] == [True, True]
    assert doc["capacity_check"]["predicted"]["carries"] is True
    assert doc["capacity_check"]["observed"]["carried"] is True
    journal = json.loads((run_dir / "journal.json").read_text())
    assert journal["status"] == "completed" and [r["activity"]["name"] for r in journal["run"]][
        :2] == ["kill-replica", "restart-replica"]  # fmt: skip
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "complete" and run["kind"] == "gameday"
    # the killed replica's log is kept beside its successor's, for the post-mortem
    killed = journal["run"][0]["output"]
    assert (run_dir / "stack" / f"replica-{killed['index']}.log.{killed['pid']}").is_file()
    assert (run_dir / "stack" / f"replica-{killed['index']}.log").is_file()
    _assert_all_stopped(doc)


def test_a_steady_state_failing_before_the_method_fails_the_game_day(tmp_path: Path) -> None:
    """chaoslib says completed / not deviated and skips the method; for us that is a FAIL."""
    out = tmp_path / "out"
    result = _gameday("node-kill", "--scenario", _scenario(tmp_path, p99_ms=0.05), "--out", out,
                      "--run-id", "unsteady", "--steady-timeout-s", "3", *FAST)  # fmt: skip
    run_dir = out / "unsteady"
    journal = json.loads((run_dir / "journal.json").read_text())
    assert journal["status"] == "completed" and journal["deviated"] is False
    assert journal["steady_states"]["before"]["steady_state_met"] is False
    doc = _doc(run_dir)
    assert result.returncode == 1 == doc["verdict"]["exit_code"], result.stderr
    assert doc["verdict"]["reasons"] == [
        "the steady state did not hold before the method (the method was skipped)",
        "no impact measured (no fault was injected, or no windows)",
    ]
    assert "fault_start" not in _events(run_dir)  # nothing was injected
    assert doc["rollback"]["equal"] is True
    _assert_all_stopped(doc)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_a_signal_mid_experiment_rolls_back_and_keeps_the_data(tmp_path: Path, sig: int) -> None:
    """Ctrl-C (SIGINT) or SIGTERM (chaoslib's own handler is installed while the experiment
    runs) while the replica is dead: rolled back, stopped, data kept, exit 130. The game day
    starts with SIGINT inherited *ignored*, as from a shell's background job: it must still
    obey (it once ran its 20 s fault to the end and exited 0 when started that way)."""
    out, run_dir = tmp_path / "out", tmp_path / "out" / "interrupted"
    cmd = harness_cmd("gameday", "node-kill", "--scenario", _scenario(tmp_path, duration="45s"),
                      "--out", out, "--run-id", "interrupted", "--config", "fault_s=20",
                      "--config", "recover_s=3", "--baseline-s", "4")  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    with stopped(proc):
        events = run_dir / "events.jsonl"
        wait_for(lambda: events.exists() and "fault_start" in events.read_text(), 120, "fault")
        os.kill(proc.pid, sig)  # the game day alone, mid-method (replica dead)
        output, _ = proc.communicate(timeout=120)
    doc = _doc(run_dir)
    assert proc.returncode == 130 == doc["verdict"]["exit_code"], output[-3000:]
    assert doc["status"] == "interrupted"
    assert doc["verdict"]["reasons"][0] == (
        "interrupted (Ctrl-C / SIGTERM): rolled back and stopped"
    )
    after = doc["rollback"]["after"]
    assert after["replicas_up"] == [True, True]  # the killed replica was restarted
    assert all(f == [] for f in after["server_faults"].values())
    assert all(t == [] for t in after["proxy_toxics"].values())
    assert doc["rollback"]["equal"] is True
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "incomplete"
    assert (run_dir / "windows.parquet").exists() and len(load_run(run_dir).windows) > 0
    _assert_all_stopped(doc)


def _overrunning_experiment(tmp: Path) -> Path:
    """network-latency whose method gets stuck after adding the toxic: its pauses add up to
    nothing (the plan accepts it), but an action runs for 60 s."""
    experiment = json.loads((REPO / "chaos" / "experiments" / "network-latency.json").read_text())
    add = experiment["method"][0]
    add.pop("pauses")
    stuck = {"type": "action", "name": "stuck",
             "provider": {"type": "process", "path": "sleep", "arguments": "60"}}  # fmt: skip
    experiment["method"] = [add, stuck, *experiment["method"][1:]]
    path = tmp / "overrun.json"
    path.write_text(json.dumps(experiment))
    return path


def test_the_watchdog_rolls_back_a_method_that_overruns_its_maximum(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _gameday(_overrunning_experiment(tmp_path), "--scenario", _scenario(tmp_path),
                      "--out", out, "--run-id", "overrun", "--max-fault-s", "3", *FAST)  # fmt: skip
    run_dir = out / "overrun"
    doc = _doc(run_dir)
    assert result.returncode == 1 == doc["verdict"]["exit_code"], result.stdout + result.stderr
    assert "the fault overran its maximum duration (3 s): aborted" in doc["verdict"]["reasons"]
    events = _events(run_dir)
    # aborted ~3 s into the method (the watchdog polls every 0.1 s), not after the 60 s action
    assert events["rollback_start"] - events["method_start"] == pytest.approx(3.0, abs=1.0)
    # the rollback took the toxic off (both written as the rollbacks start)
    assert events["fault_end"] == pytest.approx(events["rollback_start"], abs=0.05)
    journal = json.loads((run_dir / "journal.json").read_text())
    assert journal["status"] == "interrupted"
    assert [r["activity"]["name"] for r in journal["rollbacks"]] == [
        "remove-all-toxics", "rollback-all: no toxic, no server fault, every replica running"
    ]  # fmt: skip
    assert all(r["status"] == "succeeded" for r in journal["rollbacks"])
    assert doc["rollback"]["equal"] is True and doc["rollback"]["forced"] is None
    assert all(t == [] for t in doc["rollback"]["after"]["proxy_toxics"].values())
    assert not [p for p in psutil.process_iter(["cmdline"])
                if p.info["cmdline"] == ["sleep", "60"]], "the stuck action was ended"  # fmt: skip
    _assert_all_stopped(doc)


def test_sigterm_inside_a_python_activity_still_interrupts(tmp_path: Path) -> None:
    """SIGTERM while `restart_replica` runs (a Python activity of a few seconds: the replica
    starts and loads its models). chaoslib's own SIGTERM handler would raise an exception
    that the activity reports as a failure, and the method would go on; the game day makes it
    an interrupt like Ctrl-C: rolled back, stopped, exit 130."""
    out, run_dir = tmp_path / "out", tmp_path / "out" / "restarting"
    cmd = harness_cmd("gameday", "node-kill", "--scenario", _scenario(tmp_path), "--out", out,
                      "--run-id", "restarting", *FAST)  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    with stopped(proc):
        events = run_dir / "events.jsonl"
        wait_for(lambda: events.exists() and "fault_end" in events.read_text(), 120, "restart")
        os.kill(proc.pid, signal.SIGTERM)  # the restart activity has just begun
        output, _ = proc.communicate(timeout=120)
    doc = _doc(run_dir)
    print(output[-4000:], json.dumps(doc["rollback"], indent=1))
    assert proc.returncode == 130 == doc["verdict"]["exit_code"], output[-3000:]
    assert doc["status"] == "interrupted"
    journal = json.loads((run_dir / "journal.json").read_text())
    assert journal["status"] == "interrupted"
    assert doc["rollback"]["after"]["replicas_up"] == [True, True]
    assert doc["rollback"]["equal"] is True
    _assert_all_stopped(doc)

"""`chaos run` -- the real Chaos Toolkit CLI, another process -- against a local stack of two
replicas behind nginx while a real `harness run` loads it.

Proves the chain a game day depends on: the experiment's configuration comes from the
environment (`HARNESS_STACK_STATE`, `HARNESS_RUN_DIR`), `live_slo` reads the running load's
windows, the actions reach the stack through its state file, rollbacks run, and the stack is
at full strength afterwards. Also pins what chaoslib 1.44 does when the steady state fails
*before* the method (the method is skipped, yet the journal says completed / not deviated and
`chaos run` exits 0), which is why the game-day runner reads
`steady_states.before.steady_state_met` itself.

Bounded: a 50 s load at 40 requests/s on 127.0.0.1, faults of 3 s; every process started here
is stopped by PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.loadgen import stream
from harness.stack import faults
from harness.stack.local import LocalStack, read_state
from harness.stack.server_process import pid_alive
from tests.integration.cli_helpers import harness_cmd, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
CHAOS = Path(sys.executable).with_name("chaos")
EXPERIMENTS = REPO / "chaos" / "experiments"


@pytest.fixture(scope="module")
def stack_state(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    workdir = tmp_path_factory.mktemp("chaos-cli-stack")
    stack = LocalStack(
        replicas=2, model_repository=model_repository, device="cpu", admin_token="cli-token",
        workdir=workdir, state_file=workdir / "stack.json",
    )  # fmt: skip
    with stack:
        yield workdir / "stack.json"


@pytest.fixture(scope="module")
def run_dir(stack_state: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real `harness run` against the stack's URL, until the module's tests are done."""
    out = tmp_path_factory.mktemp("chaos-cli-load")
    scenario = out / "load.yaml"
    scenario.write_text(
        "name: chaos-cli-load\n"
        f"target: {{url: '{read_state(stack_state).url}', protocol: kserve-http, model: digits,"
        " inputs: {source: dataset, dataset: digits}}\n"
        "load: {mode: open, arrival: constant, rate: 40, duration: 50s}\n"
        "slo: {p99_ms: 1000, error_rate: 0.05}\nworkers: 1\n"
    )
    cmd = harness_cmd("run", scenario, "--out", out, "--run-id", "load", "--no-progress")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    with open(out / "harness-run.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    windows = out / "load" / "stream" / stream.WINDOWS
    try:
        wait_for(lambda: len(_seconds(windows)) >= 4, 60, "four closed windows of load")
        yield out / "load"
    finally:
        proc.send_signal(signal.SIGINT)  # the run keeps what it measured and stops Locust
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _seconds(path: Path) -> set[int]:
    return {int(item["second"]) for item in stream.read_lines(path)[0]}


def chaos_run(experiment: Path, workdir: Path, **env: str) -> tuple[int, dict, str]:
    """`chaos run` as a user runs it; (exit code, journal, output)."""
    journal = workdir / "journal.json"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    full_env |= {"PYTHONPATH": str(REPO), **env}
    proc = subprocess.run(
        [str(CHAOS), "--no-version-check", "run", "--journal-path", str(journal), str(experiment)],
        cwd=workdir, env=full_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return proc.returncode, json.loads(journal.read_text()), proc.stdout + proc.stderr


def base_env(stack_state: Path, run_dir: Path) -> dict[str, str]:
    return {
        "HARNESS_STACK_STATE": str(stack_state), "HARNESS_RUN_DIR": str(run_dir),
        "HARNESS_SLO_WINDOWS": "3", "HARNESS_SLO_P99_MS": "1000", "HARNESS_SLO_ERROR_RATE": "0.05",
        "HARNESS_CHAOS_FAULT_S": "3", "HARNESS_CHAOS_RECOVER_S": "3",
    }  # fmt: skip


def test_a_steady_state_failed_before_the_method_skips_it_yet_exits_0(
    stack_state: Path, run_dir: Path, tmp_path: Path
):
    before = [r.pid for r in read_state(stack_state).replicas]
    env = base_env(stack_state, run_dir) | {"HARNESS_SLO_P99_MS": "0.001"}  # impossible
    code, journal, output = chaos_run(EXPERIMENTS / "node-kill.json", tmp_path, **env)
    # what chaoslib 1.44 reports: a run that looks fine ...
    assert code == 0, output
    assert journal["status"] == "completed" and journal["deviated"] is False
    # ... although the hypothesis failed and the method never ran
    assert journal["steady_states"]["before"]["steady_state_met"] is False
    slo = journal["steady_states"]["before"]["probes"][0]["output"]
    assert slo["ok"] is False and slo["requests"] > 0 and slo["p99_ms"] > 0.001
    assert journal["run"] == [] and journal["steady_states"]["after"] is None
    assert [r.pid for r in read_state(stack_state).replicas] == before  # nobody was killed
    # rollbacks run anyway (strategy "always" from the experiment's runtime)
    rollbacks = [(r["activity"]["name"], r["status"]) for r in journal["rollbacks"]]
    name = "rollback-all: no toxic, no server fault, every replica running"
    assert rollbacks == [(name, "succeeded")]


def test_node_kill_through_the_real_cli(stack_state: Path, run_dir: Path, tmp_path: Path):
    victim = read_state(stack_state).replicas[1].pid
    code, journal, output = chaos_run(
        EXPERIMENTS / "node-kill.json", tmp_path, **base_env(stack_state, run_dir)
    )
    assert code == 0, output
    assert journal["status"] == "completed" and journal["deviated"] is False, output
    assert journal["steady_states"]["before"]["steady_state_met"] is True
    assert journal["steady_states"]["after"]["steady_state_met"] is True
    runs = {r["activity"]["name"]: r for r in journal["run"]}
    assert runs["kill-replica"]["status"] == "succeeded"
    assert runs["kill-replica"]["output"] == {"index": 1, "pid": victim}
    restarted = runs["restart-replica"]["output"]["pid"]
    assert restarted != victim and not pid_alive(victim)
    assert [r["status"] for r in journal["rollbacks"]] == ["succeeded"]
    # the rollback left the stack whole; the state file names the restarted replica
    state = read_state(stack_state)
    assert state.replicas[1].pid == restarted and pid_alive(restarted)
    health = faults.stack_health(state)
    assert health.full_strength and health.clean, health.to_dict()
    # nginx failed over: the load kept being served while replica 1 was dead
    windows = stream.read_lines(run_dir / "stream" / stream.WINDOWS)[0]
    requests = sum(int(w["count"]) for w in windows)
    failures = sum(int(w["count"]) for w in windows if w["outcome"] == "failure")
    assert requests > 200 and failures <= 0.02 * requests, (requests, failures)

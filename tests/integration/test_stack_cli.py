"""`harness serve` and `harness stack up|status|down` as a user runs them: real subprocesses.

Why: the Python API (`LocalStack`) has its own tests; these prove the command line around it
keeps its promises: the state file names every PID, `status` shows the endpoints in full
(also when piped, where rich falls back to 80 columns), a second `up` is refused, `down`
leaves no process behind (nginx workers included), a dead stack is reported as such, and a
foreground stack stops everything on SIGTERM or a terminal Ctrl-C. Each test bounds its
waits with deadlines and, whatever happens, stops every PID it caused to be started.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from sklearn.datasets import load_digits

from harness.stack.local import StackState, stop_state
from harness.stack.server_process import LISTENING_RE, pid_alive
from tests.integration.cli_helpers import (
    cli_env,
    ctrl_c,
    harness_cmd,
    reaped,
    run_cli,
    wait_for,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def read_state(state_dir: Path) -> StackState | None:
    try:
        return StackState.from_json((state_dir / "stack.json").read_text())
    except (OSError, ValueError, KeyError):
        return None


def state_pids(state: StackState) -> list[int]:
    return ([state.nginx_pid] if state.nginx_pid else []) + [r.pid for r in state.replicas]


def nginx_workers(state: StackState) -> list[int]:
    if not state.nginx_pid:
        return []
    return [child.pid for child in psutil.Process(state.nginx_pid).children()]


@contextmanager
def stack_cleanup(state_dir: Path) -> Iterator[None]:
    """Whatever a test does, stop the processes its stack state names (by PID)."""
    try:
        yield
    finally:
        state = read_state(state_dir)
        if state is not None:
            stop_state(state, grace_s=5.0)


def digits_samples(n: int) -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    return data.data[-n:].astype(np.float32), data.target[-n:]


def infer_labels_http(url: str, x: np.ndarray) -> np.ndarray:
    client = httpclient.InferenceServerClient(url.removeprefix("http://"))
    try:
        assert client.is_server_ready()
        inp = httpclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)  # binary tensor extension (tritonclient's default)
        result = client.infer("digits", [inp], model_version="2")
        return result.as_numpy("label").ravel()
    finally:
        client.close()


def infer_labels_grpc(url: str, x: np.ndarray) -> np.ndarray:
    client = grpcclient.InferenceServerClient(url)
    try:
        inp = grpcclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        return client.infer("digits", [inp], model_version="2").as_numpy("label").ravel()
    finally:
        client.close()


def test_detached_up_status_down_leaves_no_process(model_repository: Path, tmp_path: Path):
    state_dir = tmp_path / "state"
    with stack_cleanup(state_dir):
        up = run_cli("stack", "up", "--replicas", 2, "--detach", "--state-dir", state_dir,
                     "--model-repository", model_repository, "--device", "cpu")  # fmt: skip
        assert up.returncode == 0, up.stderr
        state = read_state(state_dir)
        assert state is not None and state.nginx_pid and len(state.replicas) == 2
        pids, workers = state_pids(state), nginx_workers(state)
        assert len(set(pids)) == 3 and all(pid_alive(p) for p in pids) and workers
        # the printed endpoint is the state's, and it serves the real classifier (HTTP + gRPC)
        assert state.url in up.stdout and state.grpc_url in up.stdout
        x, truth = digits_samples(40)
        labels = infer_labels_http(state.url, x)
        assert (labels == truth).mean() > 0.85
        assert np.array_equal(infer_labels_grpc(state.grpc_url, x), labels)

        status = run_cli("stack", "status", "--state-dir", state_dir)
        assert status.returncode == 0, status.stderr
        for pid in pids:
            assert str(pid) in status.stdout
        for replica in state.replicas:  # full host:port cells, not elided with '…'
            for url in (replica.http_url, replica.grpc_url, replica.metrics_url):
                assert url.split("://")[-1].removesuffix("/metrics") in status.stdout
        assert "…" not in status.stdout

        again = run_cli("stack", "up", "--replicas", 1, "--detach", "--state-dir", state_dir,
                        "--model-repository", model_repository, "--device", "cpu")  # fmt: skip
        assert again.returncode == 2 and "already running" in again.stderr
        assert read_state(state_dir) == state, "a refused `up` must not touch the state"

        down = run_cli("stack", "down", "--state-dir", state_dir)
        assert down.returncode == 0, down.stderr
        assert "stopped 3 process(es)" in down.stdout
        assert not any(pid_alive(p) for p in pids), "down returns once its PIDs are gone"
        wait_for(lambda: not any(pid_alive(p) for p in workers), 10, "nginx workers to exit")
        assert not (state_dir / "stack.json").exists()

    after = run_cli("stack", "status", "--state-dir", state_dir)
    assert after.returncode == 1 and "no stack running" in after.stdout
    idle = run_cli("stack", "down", "--state-dir", state_dir)
    assert idle.returncode == 0 and "nothing to stop" in idle.stdout


def test_status_reports_a_dead_stack_and_down_clears_it(model_repository: Path, tmp_path: Path):
    state_dir = tmp_path / "state"
    with stack_cleanup(state_dir):
        up = run_cli("stack", "up", "--detach", "--state-dir", state_dir,
                     "--model-repository", model_repository, "--device", "cpu")  # fmt: skip
        assert up.returncode == 0, up.stderr
        state = read_state(state_dir)
        assert state is not None and state.nginx_pid is None and len(state.replicas) == 1
        assert state.url == state.replicas[0].http_url  # one replica: no nginx in front
        victim = state.replicas[0].pid
        os.kill(victim, signal.SIGKILL)  # the replica dies behind the CLI's back
        wait_for(lambda: not pid_alive(victim), 10, "the killed replica to go")

        status = run_cli("stack", "status", "--state-dir", state_dir)
        assert status.returncode == 1 and "not running" in status.stdout
        down = run_cli("stack", "down", "--state-dir", state_dir)
        assert down.returncode == 0 and "stopped 0 process(es)" in down.stdout
        assert not (state_dir / "stack.json").exists()


@pytest.mark.parametrize(
    ("replicas", "how"),
    [(2, "SIGTERM to the process"), (1, "Ctrl-C to the process group")],
)
def test_foreground_up_stops_everything_on_a_signal(
    model_repository: Path, tmp_path: Path, replicas: int, how: str
) -> None:
    state_dir = tmp_path / "state"
    cmd = harness_cmd("stack", "up", "--replicas", replicas, "--state-dir", state_dir,
                      "--model-repository", model_repository, "--device", "cpu")  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    with stack_cleanup(state_dir), reaped(proc):
        state = wait_for(lambda: read_state(state_dir), 90, "the stack state file")
        pids = state_pids(state)
        assert len(pids) == replicas + (1 if replicas > 1 else 0)
        assert all(pid_alive(p) for p in pids)
        assert infer_labels_http(state.url, digits_samples(4)[0]).shape == (4,)
        if how.startswith("SIGTERM"):
            proc.send_signal(signal.SIGTERM)
            output, _ = proc.communicate(timeout=60)
        else:
            output = ctrl_c(proc)
    assert proc.returncode == 0, output[-2000:]
    assert "stack stopped" in output
    assert not any(pid_alive(p) for p in pids)
    assert not (state_dir / "stack.json").exists()


def _read_listening_line(proc: subprocess.Popen[str], timeout_s: float) -> dict[str, int]:
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if selector.select(timeout=0.2):
            line = proc.stdout.readline()
            seen.append(line)
            match = LISTENING_RE.search(line)
            if match:
                return dict(zip(("http", "grpc", "metrics"), map(int, match.groups()), strict=True))
    raise AssertionError(f"no 'listening' line within {timeout_s}s: {''.join(seen)[-1000:]}")


def test_serve_prints_its_ports_serves_tritonclient_and_exits_0_on_sigterm(
    model_repository: Path, tmp_path: Path
) -> None:
    cmd = harness_cmd("serve", "--http-port", 0, "--grpc-port", 0, "--metrics-port", 0,
                      "--model-repository", model_repository, "--device", "cpu")  # fmt: skip
    log = tmp_path / "serve.log"
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(cmd, cwd=REPO, env=cli_env(), stdout=subprocess.PIPE,
                                stderr=stderr, text=True)  # fmt: skip
    with proc, reaped(proc):  # reaped first, then Popen closes its stdout pipe
        ports = _read_listening_line(proc, 90)
        assert len(set(ports.values())) == 3 and all(p > 0 for p in ports.values())
        x, truth = digits_samples(40)
        labels = infer_labels_http(f"http://127.0.0.1:{ports['http']}", x)
        assert (labels == truth).mean() > 0.85
        assert np.array_equal(infer_labels_grpc(f"127.0.0.1:{ports['grpc']}", x), labels)
        url = f"http://127.0.0.1:{ports['metrics']}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode()
        served = re.findall(
            r'^nv_inference_request_success\{[^}]*model="digits"[^}]*\} (\S+)', text, re.M
        )
        assert sum(float(v) for v in served) >= 2  # both calls counted, Triton's metric name
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert not pid_alive(proc.pid)
    # `--device cpu` is said in the log, as `python -m reference_server` says it
    assert "provider CPUExecutionProvider" in log.read_text()

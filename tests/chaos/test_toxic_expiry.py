"""A toxic added by our actions does not outlive a crashed actor: the real `chaos run` adds the
network-latency toxic (through `chaos.actions.add_latency_toxic`, `duration_s` 3 s) and is
SIGKILLed mid-fault, so neither its method's removal nor its rollbacks ever run; the fault
proxy removes the toxic by itself 3 s after it was added (attribute `expires_in_s`).

The stack is only what the action touches: a fault-proxy process with the proxy
`replica-0-http` in front of an echo server, described by a stack.json (no replica runs).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.faultproxy import FaultProxyClient
from harness.stack.local import FaultProxyState, ProxyState, StackState, write_state
from tests.chaos.faultproxy.conftest import (
    _Echo,
    _serve,
    start_proxy_process,
    stop_process,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[2]
CHAOS = Path(sys.executable).with_name("chaos")
LIFETIME_S = 3.0


@pytest.fixture
def stack_state(tmp_path: Path) -> Iterator[tuple[Path, FaultProxyClient]]:
    proc, address = start_proxy_process(tmp_path)
    try:
        with _serve(_Echo) as echo_port:
            api = FaultProxyClient(address)
            made = api.create_proxy("replica-0-http", f"127.0.0.1:{echo_port}")
            proxy = ProxyState("replica-0-http", made["listen"], made["upstream"])
            state = StackState(
                url=f"http://{made['listen']}", grpc_url="", replicas=(),
                fault_proxy=FaultProxyState(proc.pid, f"http://{address}", (proxy,)),
            )  # fmt: skip
            write_state(tmp_path / "stack.json", state)
            yield tmp_path / "stack.json", api
    finally:
        stop_process(proc)


def _experiment(path: Path) -> Path:
    add = {
        "type": "action", "name": "add-latency-toxic",
        "provider": {"type": "python", "module": "chaos.actions", "func": "add_latency_toxic",
                     "arguments": {"target": "replica-0", "latency_ms": 100,
                                   "name": "gameday_latency", "duration_s": LIFETIME_S}},
        "pauses": {"after": 60},
    }  # fmt: skip
    remove = {
        "type": "action", "name": "remove-all-toxics",
        "provider": {"type": "python", "module": "chaos.actions", "func": "remove_all_toxics"},
    }  # fmt: skip
    experiment = {
        "version": "1.0.0", "title": "a toxic whose actor dies", "description": "test",
        "configuration": {"stack_state": {"type": "env", "key": "HARNESS_STACK_STATE"}},
        "steady-state-hypothesis": {"title": "nothing", "probes": []},
        "method": [add, {**remove, "name": "remove-after"}], "rollbacks": [remove],
    }  # fmt: skip
    path.write_text(json.dumps(experiment))
    return path


def test_a_toxic_outliving_its_killed_actor_expires_by_itself(
    stack_state: tuple[Path, FaultProxyClient], tmp_path: Path
) -> None:
    state_file, api = stack_state
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    env |= {"PYTHONPATH": str(REPO), "HARNESS_STACK_STATE": str(state_file)}
    cmd = [str(CHAOS), "--no-version-check", "--no-log-file", "run",
           str(_experiment(tmp_path / "experiment.json"))]  # fmt: skip
    actor = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        toxics = wait_for(lambda: api.toxics("replica-0-http"), 60, "the toxic", 0.02)
        seen = time.monotonic()
        assert toxics[0]["attributes"]["expires_in_s"] == LIFETIME_S
        os.killpg(actor.pid, signal.SIGKILL)  # mid-fault: no removal, no rollback
        assert actor.wait(timeout=10) == -signal.SIGKILL
        assert api.toxics("replica-0-http") != [], "nobody removed it: the actor is dead"
        wait_for(lambda: api.toxics("replica-0-http") == [], 10, "the toxic to expire", 0.02)
        gone = time.monotonic() - seen
    finally:
        if actor.poll() is None:
            os.killpg(actor.pid, signal.SIGKILL)
            actor.wait(timeout=10)
    print(f"toxic gone {gone:.2f} s after it was first seen (lifetime {LIFETIME_S:g} s)")
    assert gone <= LIFETIME_S + 1.0  # seen at most a poll after it was added
    assert gone >= LIFETIME_S - 1.0  # and not removed early (the actor needs < 1 s to pause)

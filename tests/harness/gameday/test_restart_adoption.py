"""A restart interrupted half way (Ctrl-C or SIGTERM while `restart_replica` launched the
server) leaves a replica running that the state file does not know, on the replica's ports.
The rollback's restart must adopt it, not start a second server that cannot bind those ports
(seen in a game day SIGTERMed during the restart: the rollback failed, the replica stayed
"down" in the record and the stray server outlived the game day).

Real processes: one replica on 127.0.0.1; the stray is launched the way `restart_replica`
launches (`launch_orphan` with the recorded command line); every PID is stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.stack import faults
from harness.stack.local import LocalStack, read_state
from harness.stack.server_process import launch_orphan, pid_alive, terminate_pid

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def stack(model_repository: Path, tmp_path: Path) -> Iterator[Path]:
    state_file = tmp_path / "stack.json"
    with LocalStack(replicas=1, model_repository=model_repository, device="cpu",
                    workdir=tmp_path / "stack", state_file=state_file):  # fmt: skip
        yield state_file


def test_a_stray_replica_left_by_an_interrupted_restart_is_adopted(stack: Path) -> None:
    state = read_state(stack)
    replica = state.replicas[0]
    faults.kill_replica(state, 0)
    stray, _ = launch_orphan(replica.argv, Path(replica.log_path).with_suffix(".stray"),
                             cwd=replica.cwd)  # fmt: skip
    try:
        assert faults.running_with(replica.argv) == stray
        restarted = faults.restart_replica(state, 0, ready_timeout_s=60)
        assert restarted.replicas[0].pid == stray  # adopted, recorded
        assert faults.running_with(replica.argv) == stray  # and no second server
        assert faults.stack_health(restarted).full_strength
    finally:
        terminate_pid(stray, grace_s=5)
    assert not pid_alive(stray)
    assert faults.running_with(replica.argv) is None

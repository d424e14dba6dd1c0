"""The stack under a game day: started with fault proxies and an admin token, looked at
before and after, rolled back by force if the experiment left anything behind.

Why a snapshot of its own: `stack_health` holds PIDs, which change when a killed replica is
restarted; what a rollback owes is the same *shape* -- every replica up and ready, no server
fault, no toxic, nginx and the fault proxy alive -- so that is what is compared.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.config import Scenario, validate_scenario
from harness.stack import faults
from harness.stack.local import LocalStack, StackState, read_state, write_state

__all__ = ["force_rollback", "load_scenario_for", "snapshot", "started_stack"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def started_stack(scenario: Scenario, workdir: Path, state_file: Path) -> Iterator[LocalStack]:
    """The scenario's local stack with fault proxies; stopped (every PID) on the way out."""
    cfg = scenario.stack
    assert cfg is not None
    stack = LocalStack(
        replicas=cfg.replicas,
        model_repository=Path(cfg.model_repository) if cfg.model_repository else None,
        device=cfg.device,
        admin_token=secrets.token_hex(16),
        workdir=workdir,
        fault_proxies=True,
        state_file=state_file,
        workers=cfg.workers,
        monitor=cfg.monitor,
    )
    with stack:
        if stack.prometheus is not None:  # `stack: {monitor: true}`: watch the game day there
            print(f"Prometheus for this game day's stack: {stack.prometheus.url}", file=sys.stderr)
        yield stack


def load_scenario_for(scenario: Scenario, state: StackState) -> Scenario:
    """The scenario aimed at the running stack (no `stack`: the load must not start one),
    its dataset named by path in the stack's model repository, as `harness sweep` does."""
    data = scenario.model_dump(mode="json")
    data["stack"] = None
    grpc = scenario.target.protocol == "kserve-grpc"
    data["target"]["url"] = state.grpc_url if grpc else state.url
    inputs = data["target"].get("inputs") or {}
    name = str(inputs.get("dataset") or "")
    repo = state.model_repository
    if repo and inputs.get("source") == "dataset" and not name.endswith(".npz"):
        inputs["dataset"] = str(Path(repo) / name / "test_set.npz")
    return validate_scenario(data, f"{scenario.name} (game-day load)")


def snapshot(state_file: Path) -> dict[str, Any]:
    """What must be equal before the fault and after the rollback (no PIDs)."""
    health = faults.stack_health(read_state(state_file))
    return {
        "replicas_up": [r.alive and r.ready for r in health.replicas],
        "server_faults": {str(r.index): _fault_types(r.faults) for r in health.replicas},
        "proxy_toxics": _toxic_names(health.toxics),
        "nginx_alive": health.nginx_alive,
        "fault_proxy_alive": health.fault_proxy_alive,
    }


def _toxic_names(toxics: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {name: sorted(str(t.get("name", "?")) for t in found) for name, found in toxics.items()}


def _fault_types(found: tuple[dict[str, Any], ...] | None) -> list[str] | None:
    return None if found is None else sorted(str(f.get("type", "?")) for f in found)


def force_rollback(state_file: Path) -> str | None:
    """`faults.rollback_all` directly (the experiment's rollbacks may not have run: a crash,
    a second Ctrl-C); None when it worked, else the error in words."""
    try:
        write_state(state_file, faults.rollback_all(read_state(state_file)))
    except Exception as exc:  # report it, keep stopping the rest
        log.exception("forced rollback failed")
        return f"{type(exc).__name__}: {exc}"
    return None

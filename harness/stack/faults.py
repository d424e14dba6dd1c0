"""Faults on a running local stack, driven from outside it through what stack.json records.

Why plain functions over a `StackState`: the actor is often another process -- the `chaos`
CLI running an experiment against a detached stack, or the game-day runner calling chaoslib
in-process next to a `LocalStack`. Neither holds the replicas' `Popen` objects, so everything
is addressed through the state file: PIDs and restart command lines, the admin token, the
fault proxy's control API. A function that changes the stack (a restart gives a replica a new
PID) returns the new state; the caller writes it back (`harness.stack.local.write_state`).

    kill_replica / restart_replica          the node-kill fault and its undo (same ports)
    add_server_fault / clear_server_faults  the reference server's admin API (`/admin/faults`:
                                            latency, failure, device_loss, hang)
    add_toxic / remove_toxic / reset_toxics the fault proxy's Toxiproxy REST API
    stack_health -> StackHealth             replicas alive + ready, nginx, faults, toxics
    rollback_all                            every toxic and fault cleared, dead replicas back

Errors: `TargetUnavailable` when a replica or the proxy does not answer, `ConfigError` for an
index or a proxy the state does not know, `InfrastructureError` when an API refuses a call.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, InfrastructureError, TargetUnavailable
from harness.stack.local import ReplicaState, StackState, is_ours
from harness.stack.server_process import (
    launch_orphan,
    pid_alive,
    rest_call,
    rest_request,
    terminate_pid,
    wait_until_ready,
)

__all__ = [
    "ReplicaHealth",
    "StackHealth",
    "add_server_fault",
    "add_toxic",
    "clear_server_faults",
    "kill_replica",
    "list_server_faults",
    "list_toxics",
    "remove_toxic",
    "reset_toxics",
    "restart_replica",
    "rollback_all",
    "running_with",
    "stack_health",
]

log = logging.getLogger(__name__)


# -- replicas ------------------------------------------------------------------------------
def _replica(state: StackState, index: int) -> ReplicaState:
    if not 0 <= index < len(state.replicas):
        raise ConfigError(f"replica index {index}: the stack has {len(state.replicas)} replica(s)")
    return state.replicas[index]


def kill_replica(state: StackState, index: int, timeout_s: float = 10.0) -> int:
    """SIGKILL replica `index` (the node-kill fault) and wait until it is gone; its PID.

    A replica that is already dead is left alone (killing twice is not an error: a retried
    experiment must not fail on it)."""
    replica = _replica(state, index)
    if not pid_alive(replica.pid):
        log.warning("replica %d (pid %d) is already dead", index, replica.pid)
        return replica.pid
    if not is_ours(replica.pid):
        raise ConfigError(f"pid {replica.pid} is not a reference server: refusing to kill it")
    with contextlib.suppress(ProcessLookupError):
        os.kill(replica.pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while pid_alive(replica.pid):
        if time.monotonic() > deadline:
            raise InfrastructureError(f"replica pid {replica.pid} survived SIGKILL {timeout_s}s")
        time.sleep(0.02)
    log.warning("replica %d (pid %d) killed", index, replica.pid)
    return replica.pid


def restart_replica(state: StackState, index: int, ready_timeout_s: float = 60.0) -> StackState:
    """Start a dead replica again with its recorded command line (the same ports, so nginx's
    or the fault proxy's upstream stays valid) and wait until it is ready; the new state.

    A replica that is still running is left as it is (a rollback may run after a method that
    never killed it). A server already running with the replica's exact command line is
    adopted instead of started twice: an earlier restart interrupted half way (Ctrl-C or
    SIGTERM while it launched) leaves one behind that the state does not know, holding the
    replica's ports."""
    replica = _replica(state, index)
    if pid_alive(replica.pid):
        return state
    if not replica.argv:
        raise ConfigError(f"replica {index}: the state file records no command line to restart")
    stray = running_with(replica.argv)
    if stray is not None:
        return _adopt(state, index, stray, ready_timeout_s)
    log_path = Path(replica.log_path)
    if log_path.exists():  # keep the dead replica's log for the post-mortem
        log_path.replace(log_path.with_name(log_path.name + f".{replica.pid}"))
    env = dict(os.environ, **replica.env)
    if state.admin_token:
        env["HARNESS_ADMIN_TOKEN"] = state.admin_token
    host = replica.http_url.split("://", 1)[-1].rsplit(":", 1)[0]
    pid, ports = launch_orphan(replica.argv, log_path, host, ready_timeout_s, env, replica.cwd)
    if replica.http_url != f"http://{host}:{ports.http}":  # nginx would point at nothing
        raise InfrastructureError(f"replica {index} came back on other ports: {ports}")
    log.warning("replica %d restarted as pid %d on %s", index, pid, replica.http_url)
    replicas = list(state.replicas)
    replicas[index] = replace(replica, pid=pid)
    return replace(state, replicas=tuple(replicas))


def running_with(argv: tuple[str, ...]) -> int | None:
    """The PID of a live process whose command line is exactly `argv` (None if none)."""
    wanted = b"\0".join(a.encode() for a in argv) + b"\0"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "cmdline").read_bytes() != wanted:
                continue
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if pid_alive(int(entry.name)) and is_ours(int(entry.name)):
            return int(entry.name)
    return None


def _adopt(state: StackState, index: int, pid: int, ready_timeout_s: float) -> StackState:
    replica = state.replicas[index]
    try:
        wait_until_ready(replica.http_url, ready_timeout_s)
    except TargetUnavailable:  # started but never ready: replace it
        log.warning("replica %d: stray pid %d never became ready; stopping it", index, pid)
        terminate_pid(pid, grace_s=5.0)
        return restart_replica(state, index, ready_timeout_s)
    log.warning("replica %d already runs as pid %d (an interrupted restart): adopted", index, pid)
    replicas = list(state.replicas)
    replicas[index] = replace(replica, pid=pid)
    return replace(state, replicas=tuple(replicas))


# -- server faults (admin API) -------------------------------------------------------------
def _admin_token(state: StackState) -> str:
    if not state.admin_token:
        raise ConfigError("the stack was started without an admin token: no fault API")
    return state.admin_token


def add_server_fault(state: StackState, index: int, spec: dict[str, Any]) -> dict[str, Any]:
    """POST a fault spec (see reference_server.faults) to replica `index`; the fault as the
    server recorded it (with its id and `remaining_s`)."""
    url = _replica(state, index).http_url + "/admin/faults"
    return rest_call("POST", url, spec, token=_admin_token(state), expect=(201,))


def list_server_faults(state: StackState, index: int) -> list[dict[str, Any]]:
    url = _replica(state, index).http_url + "/admin/faults"
    return rest_call("GET", url, token=_admin_token(state))["faults"]


def clear_server_faults(state: StackState, index: int | None = None) -> int:
    """Remove every fault of replica `index` (None: of every live replica); how many."""
    indices = range(len(state.replicas)) if index is None else [index]
    removed = 0
    for i in indices:
        replica = _replica(state, i)
        if index is None and not pid_alive(replica.pid):
            continue  # a dead replica has no faults; a restarted one starts clean
        url = replica.http_url + "/admin/faults"
        removed += int(rest_call("DELETE", url, token=_admin_token(state))["removed"])
    return removed


# -- proxy toxics (Toxiproxy REST) ---------------------------------------------------------
def _api(state: StackState) -> str:
    if state.fault_proxy is None:
        raise ConfigError("the stack was started without fault proxies (fault_proxies=True)")
    return state.fault_proxy.api_url


def proxy_names(state: StackState, target: str) -> list[str]:
    """The proxies of a target: 'replica-0' -> its HTTP and gRPC proxies; 'client' -> the
    proxies between the client and the stack's front; an exact proxy name -> itself."""
    _api(state)  # raises when the stack has no fault proxy
    names = [p.name for p in state.fault_proxy.proxies]  # type: ignore[union-attr]
    chosen = [n for n in names if n == target or n.rsplit("-", 1)[0] == target]
    if not chosen:
        raise ConfigError(f"no fault proxy for {target!r}; the stack has: {', '.join(names)}")
    return chosen


def add_toxic(state: StackState, target: str, toxic: dict[str, Any]) -> list[dict[str, Any]]:
    """Add one toxic (Toxiproxy's shape: name, type, stream, toxicity, attributes) to every
    proxy of `target`; the toxics as the proxy recorded them."""
    api = _api(state)
    return [
        rest_call("POST", f"{api}/proxies/{name}/toxics", toxic, expect=(200,))
        for name in proxy_names(state, target)
    ]


def remove_toxic(state: StackState, target: str, name: str) -> int:
    """Delete toxic `name` from every proxy of `target` that has it; how many were removed."""
    api = _api(state)
    removed = 0
    for proxy in proxy_names(state, target):
        url = f"{api}/proxies/{proxy}/toxics/{name}"
        status, _ = rest_request("DELETE", url, expect=(204, 404))
        removed += status == 204
    return removed


def list_toxics(state: StackState) -> dict[str, list[dict[str, Any]]]:
    """Every proxy's toxics, by proxy name ({} when the stack has no fault proxy)."""
    if state.fault_proxy is None:
        return {}
    api = state.fault_proxy.api_url
    return {
        p.name: rest_call("GET", f"{api}/proxies/{p.name}/toxics")
        for p in state.fault_proxy.proxies
    }


def reset_toxics(state: StackState) -> None:
    """Toxiproxy's `/reset`: every toxic removed, every proxy enabled again."""
    if state.fault_proxy is not None:
        rest_call("POST", f"{state.fault_proxy.api_url}/reset", expect=(204,))


# -- health and rollback -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ReplicaHealth:
    index: int
    pid: int
    alive: bool
    ready: bool
    faults: tuple[dict[str, Any], ...] | None  # None: not asked (dead, or no admin token)


@dataclass(frozen=True, slots=True)
class StackHealth:
    """One look at the stack: what a rollback check compares before and after."""

    replicas: tuple[ReplicaHealth, ...]
    nginx_alive: bool | None  # None: no nginx (one replica)
    fault_proxy_alive: bool | None  # None: no fault proxy
    toxics: dict[str, list[dict[str, Any]]]

    @property
    def full_strength(self) -> bool:
        """Every replica alive and ready, nginx and the fault proxy (where there are) alive."""
        up = all(r.alive and r.ready for r in self.replicas)
        return up and self.nginx_alive is not False and self.fault_proxy_alive is not False

    @property
    def clean(self) -> bool:
        """No server fault on any replica and no toxic on any proxy."""
        no_faults = all(not r.faults for r in self.replicas)
        return no_faults and not any(self.toxics.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "full_strength": self.full_strength, "clean": self.clean}


def stack_health(state: StackState) -> StackHealth:
    replicas = tuple(_replica_health(state, r) for r in state.replicas)
    nginx = pid_alive(state.nginx_pid) if state.nginx_pid else None
    proxy = pid_alive(state.fault_proxy.pid) if state.fault_proxy else None
    return StackHealth(replicas, nginx, proxy, list_toxics(state) if proxy else {})


def _replica_health(state: StackState, replica: ReplicaState) -> ReplicaHealth:
    alive = pid_alive(replica.pid)
    ready = alive and _is_ready(replica.http_url)
    faults = None
    if alive and state.admin_token:
        with contextlib.suppress(TargetUnavailable):
            faults = tuple(list_server_faults(state, replica.index))
    return ReplicaHealth(replica.index, replica.pid, alive, ready, faults)


def _is_ready(base_url: str) -> bool:
    try:
        status, _ = rest_request("GET", base_url + "/v2/health/ready", expect=(200, 503))
        return status == 200
    except TargetUnavailable:
        return False


def rollback_all(state: StackState, ready_timeout_s: float = 60.0) -> StackState:
    """Undo every fault this module can make: toxics reset, server faults cleared, dead
    replicas restarted. Tries every step even when one fails, then raises the first error
    (so a journal shows the rollback as failed); returns the new state otherwise."""
    errors: list[Exception] = []
    steps = [lambda: reset_toxics(state), lambda: clear_server_faults(state)]
    for step in steps:
        try:
            step()
        except Exception as exc:  # keep rolling back the rest
            log.exception("rollback step failed")
            errors.append(exc)
    for index in range(len(state.replicas)):
        try:
            state = restart_replica(state, index, ready_timeout_s)
        except Exception as exc:
            log.exception("restarting replica %d failed", index)
            errors.append(exc)
    if errors:
        raise errors[0]
    return state

"""Chaos Toolkit actions on the local reference stack: kill/restart a replica, server faults
through the admin API, toxics on the fault proxy, and one rollback that undoes all of them.

Why thin wrappers: the mechanics live in `harness.stack.faults` (the game-day runner and the
tests use them directly); this module adds what Chaos Toolkit needs -- plain functions with
typed keyword arguments, `configuration` injected, JSON-friendly results -- and the safety
rules of an experiment: every server fault and every toxic carries a bounded `duration_s` (the
server, or the fault proxy through the toxic attribute `expires_in_s`, removes it by itself,
so an experiment whose process dies before its rollback cannot leave the stack broken); the
rollback removes them earlier; only a stack on loopback is touched.

Configuration key: `stack_state` (path of stack.json, default `.harness/stack/stack.json`).
An action that changes the stack (a restart gives a replica a new PID) writes the state back.
No `from __future__ import annotations`, so `chaos discover` sees real types.
"""

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chaoslib.types import Configuration

from harness.stack import faults
from harness.stack.local import LOOPBACK_HOSTS, StackState, read_state, write_state

__all__ = [
    "add_latency_toxic",
    "add_toxic",
    "clear_server_faults",
    "kill_replica",
    "remove_all_toxics",
    "remove_toxic",
    "restart_replica",
    "rollback_all",
    "set_device_loss",
    "set_server_failure",
    "set_server_hang",
    "set_server_latency",
]

log = logging.getLogger(__name__)

DEFAULT_STATE = ".harness/stack/stack.json"
MAX_FAULT_S = 900.0  # no fault or toxic outlives a quarter of an hour, whatever an experiment asks


def kill_replica(index: int = 0, configuration: Configuration = None) -> dict:
    """SIGKILL replica `index` (node kill); {index, pid}."""
    pid = faults.kill_replica(_state(configuration), index)
    return {"index": index, "pid": pid}


def restart_replica(
    index: int = 0, ready_timeout_s: float = 60.0, configuration: Configuration = None
) -> dict:
    """Restart replica `index` on its old ports if it is dead and wait until it is ready (a
    running replica is left alone); {index, pid, url}. The new PID goes into stack.json."""
    state = faults.restart_replica(_state(configuration), index, ready_timeout_s)
    _save(state, configuration)
    replica = state.replicas[index]
    return {"index": index, "pid": replica.pid, "url": replica.http_url}


def set_server_latency(
    index: int = 0,
    latency_ms: float = 100.0,
    jitter_ms: float = 0.0,
    duration_s: float = 60.0,
    model: str = "",
    configuration: Configuration = None,
) -> dict:
    """Replica `index` delays each request by latency_ms +- jitter_ms (uniform) for
    `duration_s`; the fault as the server recorded it (its `id` removes it early)."""
    spec = {"type": "latency", "fixed_ms": latency_ms, "jitter_ms": jitter_ms}
    return _add_fault(index, spec, duration_s, model, configuration)


def set_server_failure(
    index: int = 0,
    ratio: float = 0.1,
    duration_s: float = 60.0,
    model: str = "",
    configuration: Configuration = None,
) -> dict:
    """Replica `index` fails that share of requests (HTTP 500) for `duration_s`."""
    return _add_fault(index, {"type": "failure", "ratio": ratio}, duration_s, model, configuration)


def set_device_loss(
    index: int = 0,
    policy: str = "unready",
    duration_s: float = 60.0,
    configuration: Configuration = None,
) -> dict:
    """Replica `index` loses its accelerator for `duration_s`: policy `unready` (readiness
    fails, inference 503: traffic must move) or `cpu-fallback` (serves on the CPU, degraded)."""
    spec = {"type": "device_loss", "policy": policy}
    return _add_fault(index, spec, duration_s, "", configuration)


def set_server_hang(
    index: int = 0, duration_s: float = 30.0, model: str = "", configuration: Configuration = None
) -> dict:
    """Requests to replica `index` never complete until `duration_s` ends or the fault is
    cleared."""
    return _add_fault(index, {"type": "hang"}, duration_s, model, configuration)


def clear_server_faults(index: int = -1, configuration: Configuration = None) -> int:
    """Remove every server fault of replica `index` (-1: of every live replica); how many."""
    state = _state(configuration)
    return faults.clear_server_faults(state, None if index < 0 else index)


def add_latency_toxic(
    target: str = "replica-0",
    latency_ms: int = 100,
    jitter_ms: int = 0,
    stream: str = "downstream",
    toxicity: float = 1.0,
    name: str = "latency",
    duration_s: float = 60.0,
    configuration: Configuration = None,
) -> list:
    """Toxiproxy's `latency` toxic on the proxies of `target` (`replica-<i>`: between nginx
    and that replica; `client`: between the client and the stack). Removed by
    `remove_toxic(target, name)` or `remove_all_toxics` in the rollback, else by the fault
    proxy itself after `duration_s`."""
    attributes = {"latency": latency_ms, "jitter": jitter_ms}
    return add_toxic(
        target, "latency", attributes, stream, toxicity, name, duration_s, configuration
    )


def add_toxic(
    target: str = "replica-0",
    toxic_type: str = "latency",
    attributes: dict | None = None,
    stream: str = "downstream",
    toxicity: float = 1.0,
    name: str = "",
    duration_s: float = 60.0,
    configuration: Configuration = None,
) -> list:
    """Any Toxiproxy toxic (latency, bandwidth, timeout, reset_peer, slow_close, slicer,
    limit_data) on every proxy of `target`, removed by the fault proxy itself after
    `duration_s` (the attribute `expires_in_s`) unless a rollback removes it first; the
    toxics as recorded."""
    _check_duration(duration_s)
    toxic = {
        "name": name or f"{toxic_type}_{stream}",
        "type": toxic_type,
        "stream": stream,
        "toxicity": toxicity,
        "attributes": {**(attributes or {}), "expires_in_s": duration_s},
    }
    return faults.add_toxic(_state(configuration), target, toxic)


def remove_toxic(
    target: str = "replica-0", name: str = "latency", configuration: Configuration = None
) -> int:
    """Delete toxic `name` from the proxies of `target` (absent: nothing to do); how many."""
    return faults.remove_toxic(_state(configuration), target, name)


def remove_all_toxics(configuration: Configuration = None) -> None:
    """Toxiproxy's `/reset`: every toxic gone, every proxy enabled."""
    faults.reset_toxics(_state(configuration))


def rollback_all(ready_timeout_s: float = 60.0, configuration: Configuration = None) -> dict:
    """Clear every toxic and server fault, restart dead replicas; the stack's health after
    (`full_strength` and `clean` must both be true). Safe to run when nothing was done."""
    state = faults.rollback_all(_state(configuration), ready_timeout_s)
    _save(state, configuration)
    return faults.stack_health(state).to_dict()


# -- helpers -------------------------------------------------------------------------------
def _add_fault(
    index: int, spec: dict[str, Any], duration_s: float, model: str, configuration: Configuration
) -> dict:
    _check_duration(duration_s)
    spec = {**spec, "duration_s": duration_s, **({"model": model} if model else {})}
    return faults.add_server_fault(_state(configuration), index, spec)


def _check_duration(duration_s: float) -> None:
    if not 0 < duration_s <= MAX_FAULT_S:
        raise ValueError(f"duration_s: must be in (0, {MAX_FAULT_S:g}] s, got {duration_s}")


def _state_path(configuration: Configuration) -> Path:
    return Path((configuration or {}).get("stack_state") or DEFAULT_STATE)


def _state(configuration: Configuration) -> StackState:
    """The stack, refused unless every address it names is on loopback."""
    state = read_state(_state_path(configuration))
    urls = [state.url, *(r.http_url for r in state.replicas)]
    urls += [state.fault_proxy.api_url] if state.fault_proxy else []
    outside = [u for u in urls if urlsplit(u).hostname not in LOOPBACK_HOSTS]
    if outside:
        raise ValueError(f"refusing a stack outside loopback: {', '.join(outside)}")
    return state


def _save(state: StackState, configuration: Configuration) -> None:
    write_state(_state_path(configuration), state)

"""Chaos Toolkit probes: the running load's SLO numbers and the local stack's state.

Why these read files, not the load engine: a game day's load runs in Locust processes that
the chaos side must not import (gevent), and the `chaos` CLI is another process altogether.
The Locust master appends every closed per-second window to `<run_dir>/stream/windows.jsonl`
(`harness.loadgen.stream`) and the stack records itself in stack.json, so a probe only reads.

    live_slo(run_dir, windows, max_p99_ms, max_error_rate) -> {p99_ms, error_rate, requests, ok}
    slo_met(...)                   -> bool (the same check, for a plain `true` tolerance)
    slo_ok(value)                  -> bool: a `"type": "probe"` tolerance for live_slo's output
                                      (keeps the numbers in the journal; jsonpath tolerances
                                      need jsonpath2, which chaostoolkit-lib does not install)
    stack_at_full_strength()       -> bool: every replica alive + ready, nginx and proxy alive
    stack_restored()               -> bool: full strength, no server fault, no proxy toxic
    stack_health()                 -> everything `harness.stack.faults.stack_health` sees
    server_faults() / proxy_toxics()

Configuration keys (the experiments take them from the environment, with defaults):
`stack_state` (path of stack.json) and `run_dir` (the running load's run directory).
Plain functions with typed keyword arguments, as Chaos Toolkit discovers and injects them; no
`from __future__ import annotations`, so `chaos discover` sees real types.
"""

import os
from pathlib import Path
from typing import Any

from chaoslib.types import Configuration

from harness.latency.sparse import SparseHist, merge
from harness.latency.windows import FAILURE, SUCCESS
from harness.loadgen import stream
from harness.stack import faults
from harness.stack.local import StackState, read_state

__all__ = [
    "live_slo",
    "proxy_toxics",
    "server_faults",
    "slo_met",
    "slo_ok",
    "stack_at_full_strength",
    "stack_health",
    "stack_restored",
]

DEFAULT_STATE = ".harness/stack/stack.json"
TAIL_BYTES = 256 * 1024
LATE_MARGIN_S = 5  # late copies of a window arrive within seconds; read that far back too


def live_slo(
    run_dir: str = "",
    windows: int = 5,
    max_p99_ms: float = 1000.0,
    max_error_rate: float = 0.01,
    min_requests: int = 1,
    configuration: Configuration = None,
) -> dict:
    """p99 (of successful requests, from the intended start) and error rate over the last
    `windows` closed seconds of the running load, merged exactly from their HDR windows.

    `ok` is True when there were at least `min_requests` requests, p99 <= max_p99_ms and the
    error rate <= max_error_rate: no load at all is not a steady state."""
    if windows < 1:
        raise ValueError(f"windows: must be >= 1, got {windows}")
    path = _run_dir(run_dir, configuration) / "stream" / stream.WINDOWS
    items = _last_seconds(path, windows)
    seconds = sorted({int(i["second"]) for i in items})
    requests = sum(int(i["count"]) for i in items)
    failures = sum(int(i["count"]) for i in items if i["outcome"] == FAILURE)
    hist = merge(SparseHist.from_blob(_blob(i["hdr"])) for i in items if i["outcome"] == SUCCESS)
    p99_us, p50_us = hist.percentile(99.0), hist.percentile(50.0)
    p99_ms = None if p99_us is None else p99_us / 1000.0
    error_rate = failures / requests if requests else None
    ok = (
        requests >= max(min_requests, 1)
        and failures <= max_error_rate * requests
        and (p99_ms is None or p99_ms <= max_p99_ms)  # None: every request failed
    )
    return {
        "p99_ms": p99_ms,
        "p50_ms": None if p50_us is None else p50_us / 1000.0,
        "error_rate": error_rate,
        "requests": requests,
        "failures": failures,
        "seconds": [seconds[0], seconds[-1]] if seconds else [],
        "unhealthy_seconds": len({int(i["second"]) for i in items if not i.get("healthy", 1)}),
        "max_p99_ms": max_p99_ms,
        "max_error_rate": max_error_rate,
        "ok": bool(ok),
    }


def slo_met(
    run_dir: str = "",
    windows: int = 5,
    max_p99_ms: float = 1000.0,
    max_error_rate: float = 0.01,
    min_requests: int = 1,
    configuration: Configuration = None,
) -> bool:
    """`live_slo(...)["ok"]`: for a steady-state probe with the tolerance `true`."""
    result = live_slo(run_dir, windows, max_p99_ms, max_error_rate, min_requests, configuration)
    return bool(result["ok"])


def slo_ok(value: dict | None = None) -> bool:
    """Tolerance of a `live_slo` probe: chaoslib passes the probe's output as `value`."""
    return bool(isinstance(value, dict) and value.get("ok") is True)


def stack_at_full_strength(stack_state: str = "", configuration: Configuration = None) -> bool:
    """Every replica alive and ready; nginx and the fault proxy (where there are) alive."""
    return faults.stack_health(_state(stack_state, configuration)).full_strength


def stack_restored(stack_state: str = "", configuration: Configuration = None) -> bool:
    """Full strength, and no server fault and no proxy toxic left: what a rollback owes."""
    health = faults.stack_health(_state(stack_state, configuration))
    return health.full_strength and health.clean


def stack_health(stack_state: str = "", configuration: Configuration = None) -> dict:
    """Replicas (pid, alive, ready, faults), nginx, fault proxy, toxics; full_strength, clean."""
    return faults.stack_health(_state(stack_state, configuration)).to_dict()


def server_faults(stack_state: str = "", configuration: Configuration = None) -> dict:
    """Active server faults by replica index ("0", "1", ...); a dead replica has none."""
    health = faults.stack_health(_state(stack_state, configuration))
    return {str(r.index): list(r.faults or ()) for r in health.replicas}


def proxy_toxics(stack_state: str = "", configuration: Configuration = None) -> dict:
    """Every fault proxy's toxics, by proxy name ({} when the stack has no fault proxy)."""
    return faults.list_toxics(_state(stack_state, configuration))


# -- helpers -------------------------------------------------------------------------------
def _run_dir(run_dir: str, configuration: Configuration) -> Path:
    chosen = run_dir or (configuration or {}).get("run_dir") or ""
    if not chosen:
        raise ValueError("no run directory: pass run_dir or set the `run_dir` configuration")
    return Path(chosen)


def _state(stack_state: str, configuration: Configuration) -> StackState:
    return read_state(Path(state_path(stack_state, configuration)))


def state_path(stack_state: str = "", configuration: Configuration = None) -> str:
    """The stack.json to use: the argument, else the `stack_state` configuration key, else
    the default of `harness stack up`."""
    return stack_state or (configuration or {}).get("stack_state") or DEFAULT_STATE


def _blob(value: str | bytes) -> bytes:
    return value.encode("ascii") if isinstance(value, str) else value


def _last_seconds(path: Path, count: int, tail_bytes: int = TAIL_BYTES) -> list[dict[str, Any]]:
    """The window lines of the newest `count` seconds, read from the end of the file (a long
    run's stream is large; a probe runs every second or so). The read widens until it also
    holds LATE_MARGIN_S older seconds, so earlier copies of a late window are not missed."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return []
    tail = tail_bytes
    while True:
        start = max(0, size - tail)
        items = _complete_lines(path, start)
        seconds = sorted({int(i["second"]) for i in items})
        chosen = seconds[-count:]
        enough = len(seconds) > count and seconds[0] < chosen[0] - LATE_MARGIN_S
        if start == 0 or enough:
            first = chosen[0] if chosen else 0
            return [i for i in items if int(i["second"]) >= first]
        tail *= 4


def _complete_lines(path: Path, start: int) -> list[dict[str, Any]]:
    """Whole lines from byte `start` on (a line cut by `start` is skipped, a torn last line
    ignored, as `stream.read_lines` does)."""
    if start == 0:
        return stream.read_lines(path, 0)[0]
    with open(path, "rb") as handle:
        handle.seek(start - 1)
        skip = len(handle.readline())  # the rest of the line `start` falls into
    return stream.read_lines(path, start - 1 + skip)[0]

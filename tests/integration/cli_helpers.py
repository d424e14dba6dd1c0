"""Running the `harness` command line as a user would, for the CLI integration tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def harness_cmd(*args: object) -> list[str]:
    """The installed `harness` console script when present, else the module."""
    script = Path(sys.executable).with_name("harness")
    head = [str(script)] if script.exists() else [sys.executable, "-m", "harness.cli.main"]
    return [*head, *map(str, args)]


def cli_env() -> dict[str, str]:
    # No COLUMNS: output as in a pipe / CI log (rich's 80-column default).
    return {k: v for k, v in os.environ.items() if k != "COLUMNS"}


def run_cli(*args: object, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        harness_cmd(*args), cwd=REPO, env=cli_env(), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def wait_for(
    predicate: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.05
) -> Any:
    """Poll `predicate` every `every_s` until it returns something truthy, or fail at the
    deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")


@contextlib.contextmanager
def reaped(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """Kill and reap `proc` on the way out if it still runs: a failing test leaves nothing."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def interrupt(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout_s: float = 60) -> str:
    """Stop `proc` as its user would; returns the process's remaining output.

    SIGINT goes to the process group, as a terminal's Ctrl-C does (start the process with
    `start_new_session=True`); SIGTERM goes to the process alone, as a service manager or a
    CI runner cancelling a job sends it."""
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)
    output, _ = proc.communicate(timeout=timeout_s)
    return output


def ctrl_c(proc: subprocess.Popen, timeout_s: float = 60) -> str:
    """What a terminal's Ctrl-C does (see `interrupt`)."""
    return interrupt(proc, signal.SIGINT, timeout_s)

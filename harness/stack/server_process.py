"""One reference-server replica as a child process.

The server binds port 0 and prints `listening http=P grpc=P metrics=P` once it is ready; we
redirect its output to a log file and poll that file for the line, so the same code works for
a foreground stack and for a detached one whose parent has exited. Stopping is by PID: SIGTERM
(the server drains in-flight requests), then SIGKILL after a deadline.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import TargetUnavailable

log = logging.getLogger(__name__)

LISTENING_RE = re.compile(r"listening http=(\d+) grpc=(\d+) metrics=(\d+)")


@dataclass(frozen=True, slots=True)
class Ports:
    http: int
    grpc: int
    metrics: int


class ServerProcess:
    """A started `python -m reference_server` process with the ports it bound."""

    def __init__(self, popen: subprocess.Popen, ports: Ports, log_path: Path, host: str) -> None:
        self.popen = popen
        self.ports = ports
        self.log_path = log_path
        self.host = host

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.ports.grpc}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.ports.metrics}/metrics"

    @classmethod
    def start(
        cls,
        log_path: Path,
        extra_args: Sequence[str] = (),
        host: str = "127.0.0.1",
        ready_timeout_s: float = 60.0,
        env: dict[str, str] | None = None,
        detach: bool = False,
    ) -> ServerProcess:
        """Start a replica on ephemeral ports and wait until it is ready to serve.

        `detach` changes nothing here any more (every replica gets its own session); it is
        kept so callers need not change."""
        cmd = [sys.executable, "-m", "reference_server", "--host", host]
        cmd += ["--http-port", "0", "--grpc-port", "0", "--metrics-port", "0", *extra_args]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as log_file:
            popen = subprocess.Popen(
                cmd,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                # Always its own session: a terminal Ctrl-C (SIGINT to the foreground group)
                # must reach only the orchestrator, which stops the load first and the stack
                # after; otherwise the replicas drain mid-load and the run records failures.
                start_new_session=True,
            )
        try:
            ports = wait_for_listening_line(popen, log_path, ready_timeout_s)
            server = cls(popen, ports, log_path, host)
            wait_until_ready(server.http_url, ready_timeout_s)
        except BaseException:
            terminate_pid(popen.pid, grace_s=2.0)
            popen.wait(timeout=5)
            raise
        log.info("replica pid=%d ready on %s", popen.pid, server.http_url)
        return server

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM, wait up to grace_s, then SIGKILL. Returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("replica pid=%d ignored SIGTERM for %.0fs; killing", self.pid, grace_s)
                self.popen.kill()
        return self.popen.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL with no grace: the node-kill fault."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=10)


def wait_for_listening_line(popen: subprocess.Popen, log_path: Path, timeout_s: float) -> Ports:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        match = LISTENING_RE.search(text)
        if match:
            return Ports(*(int(g) for g in match.groups()))
        if popen.poll() is not None:
            raise TargetUnavailable(
                f"reference server exited with code {popen.returncode} before listening: "
                f"{_tail(text)}"
            )
        time.sleep(0.05)
    raise TargetUnavailable(
        f"reference server did not report its ports within {timeout_s:.0f}s (log: {log_path})"
    )


def wait_until_ready(base_url: str, timeout_s: float, path: str = "/v2/health/ready") -> None:
    """Poll a health route until it answers 200, or raise TargetUnavailable at the deadline."""
    deadline = time.monotonic() + timeout_s
    last_error = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base_url + path, timeout=2) as resp:
                if resp.status == 200:
                    return
                last_error = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last_error = f"HTTP {exc.code}"
        except OSError as exc:
            last_error = str(exc)
        time.sleep(0.1)
    raise TargetUnavailable(f"{base_url}{path} not ready within {timeout_s:.0f}s ({last_error})")


def terminate_pid(pid: int, grace_s: float = 10.0) -> bool:
    """SIGTERM a PID we started, SIGKILL after grace_s. True if it was running."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


def pid_alive(pid: int) -> bool:
    try:
        # A zombie (exited, not yet reaped by its parent) counts as gone.
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"
